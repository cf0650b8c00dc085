#!/usr/bin/env bash
# Set up objstore on a fresh machine: a virtualenv in .venv with objstore, its test tools
# and the AWS CLI. Idempotent: running it again only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
echo "objstore installed in $(pwd)/.venv  (run: .venv/bin/objstore --help)"
