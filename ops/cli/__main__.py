"""``python -m ops.cli``: the ``objstore`` command."""
import sys

from ops.cli.main import main

sys.exit(main())
