#!/usr/bin/env bash
# Compare a running objstore cluster with a running Swift peer (../shared/peers/swift), interleaved.
# Starts nothing: start the cluster (objstore up --data-dir DATA_DIR ...) and the peer (start.sh) first.
#
#   ops/bench_compare.sh [DATA_DIR] [more objstore bench flags, e.g. --rounds 7 --phases small-put,small-get]
#
# Steps: the disk's limit (three parallel fsynced streams on DATA_DIR's filesystem), then
# `objstore bench --compare` (4 KiB PUT/GET at 16 and 64, 64 MiB PUT/GET at 2, multipart 64 MiB in
# 8 MiB parts at 2; 5 rounds A B A B ...), then the disk's limit again. Results (table, JSON, disk
# figures) go to OUT (default /tmp/bench-compare-<time>). The Swift key's secret comes from
# OBJSTORE_COMPARE_SECRET_KEY (default: the peer's documented benchsecret); nothing secret on a command line.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA_DIR="$(realpath "${1:-$ROOT/objstore-data}")"
[ $# -gt 0 ] && shift
SWIFT_ENDPOINT="${SWIFT_ENDPOINT:-http://127.0.0.1:18080}"
SWIFT_ACCESS_KEY="${SWIFT_ACCESS_KEY:-s3bench:bench}"
SWIFT_BUCKET="${SWIFT_BUCKET:-bench-rep}"
SWIFT_RUN="${PEERS_SWIFT_DIR:-/tmp/peers-swift}/run"
export OBJSTORE_COMPARE_SECRET_KEY="${OBJSTORE_COMPARE_SECRET_KEY:-benchsecret}"
OUT="${OUT:-/tmp/bench-compare-$(date -u +%Y%m%dT%H%M%SZ)}"
PY="$ROOT/.venv/bin/python"
DISK_MB="${DISK_MB:-512}"  # MiB per disk stream
mkdir -p "$OUT"
cd "$ROOT"

[ -f "$DATA_DIR/cluster.json" ] || { echo "no cluster.json in $DATA_DIR: start objstore up --data-dir $DATA_DIR" >&2; exit 1; }
curl -fsS "$SWIFT_ENDPOINT/healthcheck" >/dev/null || { echo "Swift peer not answering on $SWIFT_ENDPOINT" >&2; exit 1; }

echo "== disk limit before (3 parallel fsynced streams, $DATA_DIR)"
"$PY" -m ops.bench_disk --data-dir "$DATA_DIR" --mb "$DISK_MB" --json >"$OUT/disk-before.json"
LIMIT="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_mb_per_s"])' "$OUT/disk-before.json")"
echo "   $LIMIT MB/s in total"

echo "== objstore bench --compare $SWIFT_ENDPOINT"
set +e
"$ROOT/.venv/bin/objstore" bench --data-dir "$DATA_DIR" \
  --compare "$SWIFT_ENDPOINT" --compare-access-key "$SWIFT_ACCESS_KEY" --compare-bucket "$SWIFT_BUCKET" \
  --compare-pids-from "$SWIFT_RUN" --disk-limit "$LIMIT" --json-file "$OUT/compare.json" "$@" \
  2> >(tee "$OUT/progress.log" >&2) | tee "$OUT/compare.txt"
status=${PIPESTATUS[0]}
set -e

echo "== disk limit after"
"$PY" -m ops.bench_disk --data-dir "$DATA_DIR" --mb "$DISK_MB" --json >"$OUT/disk-after.json"
"$PY" -c 'import json,sys; print("   %s MB/s in total" % json.load(open(sys.argv[1]))["total_mb_per_s"])' "$OUT/disk-after.json"
echo "results in $OUT"
exit "$status"
