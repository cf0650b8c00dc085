#!/usr/bin/env bash
# Set up objstore on a fresh machine: a virtualenv in .venv with objstore, its test tools
# and the AWS CLI, plus rclone and s3cmd from the system's package manager (Debian/apt)
# for the S3 tool tests. Idempotent: running it again only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# Compile the project's modules once, here: an editable install leaves them as source, and
# where PYTHONDONTWRITEBYTECODE is set every process (each service of a cluster, each
# admin command) would compile them again as it starts, ~0.5 s of CPU each.
.venv/bin/python -m compileall -q -j 0 objstore gateway metadata ops tests >/dev/null
# The optional C module for ec parity (setup.py) is skipped silently when it cannot be
# compiled (no compiler, or one too old for the vector instructions it names); say which
# parity code this install will use.
.venv/bin/python - <<'PY' >&2 || true
try:
    from objstore.erasure import _gf256
    print(f"install.sh: ec parity: C module ({_gf256.simd()})")
except ImportError:
    print("install.sh: ec parity: the C module objstore/erasure/_gf256.c did not build "
          "(no C compiler, or GCC older than 8); using zfec, same bytes, slower")
PY

# rclone, s3cmd, prometheus (its promtool checks the metrics, alert rules and dashboard
# queries in the tests; `objstore up --prometheus` runs it) and iptables (for the
# many-hosts tests, which cut links inside network namespaces): system packages. Skipped
# (with a message) when already present, when not root, or when there is no apt; the tests
# that need them say so if they are missing.
missing=()
for tool in rclone s3cmd prometheus iptables; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: not root, skipping apt install of ${missing[*]} (run: sudo apt-get install -y ${missing[*]})" >&2
  elif ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: no apt-get, skipping ${missing[*]}; install them with your package manager" >&2
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
echo "objstore installed in $(pwd)/.venv  (run: .venv/bin/objstore --help)"
