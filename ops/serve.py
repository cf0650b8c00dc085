"""``python -m ops.serve ROLE [flags]``: run one service, exactly as ``objstore ROLE`` does
(``storage``, ``metadata`` or ``gateway``: the same flags, logging and exit codes), but
importing only that service's modules.

``objstore up`` starts its children this way. The ``objstore`` command imports every part
of objstore to build its parser, which doubles the start-up CPU of a service process
(about 1.3 s instead of 0.6 s on a small machine), and a local cluster starts ten.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from objstore.errors import ObjstoreError
from objstore.logs import add_log_arguments, configure_from_args

# role -> (its flags module: add_arguments, config_from_args; its process: main(config))
SERVICES = {
    "storage": ("objstore.node.cli_args", "objstore.node.app"),
    "metadata": ("metadata.cli_args", "metadata.app"),
    "gateway": ("gateway.cli_args", "gateway.app"),
}
USAGE, INTERRUPTED = 2, 130  # as ops.cli.output's


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SERVICES:
        print(f"usage: python -m ops.serve {{{','.join(SERVICES)}}} [flags]", file=sys.stderr)
        return USAGE
    role = argv[0]
    flags_module, app_module = SERVICES[role]
    flags = importlib.import_module(flags_module)
    parser = argparse.ArgumentParser(prog=f"objstore {role}")
    flags.add_arguments(parser)
    add_log_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        configure_from_args(role, args)
        importlib.import_module(app_module).main(flags.config_from_args(args))
    except ObjstoreError as exc:
        print(f"objstore {role}: {exc.message}", file=sys.stderr, flush=True)
        return USAGE
    except KeyboardInterrupt:
        print(f"objstore {role}: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
