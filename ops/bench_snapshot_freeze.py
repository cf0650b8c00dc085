"""What a metadata snapshot costs the event loop, in all, and to restore, as the index grows.

Run: ``.venv/bin/python -m ops.bench_snapshot_freeze [--objects 1000000] [--rounds 3]``.
It fills a state machine in this process with ``--objects`` objects in one bucket (through
``MetadataFSM.apply``, as the log applies them), then, per round, prints:
- ``freeze ms``: :func:`metadata.fsm.snapshot.freeze`, the part of a snapshot that runs on
  the metadata node's event loop (no request is served meanwhile);
- ``encode s``: encoding the frozen state to its bytes (in a node, a thread that pauses
  for the loop after each 64 KiB; here without pauses), and the snapshot's size;
- ``changes``: commands applied between the freeze and the encoding (each round changes
  ``--changes`` keys meanwhile, as a node keeps applying commands while it writes);
- ``restore s``: rebuilding a state machine from that snapshot (``MetadataFSM.restore``:
  the records, each bucket's index, the placement index), most of a node's start-up.

To compare two versions, run it with the other checkout first on ``PYTHONPATH``.
"""
from __future__ import annotations

import argparse
import gc
import time
from typing import Sequence

from metadata.api import commands as c
from metadata.fsm import snapshot
from metadata.fsm.machine import MetadataFSM
from objstore.types import NodeInfo, ObjectVersion


def _version(key: str, vid: str) -> ObjectVersion:
    return ObjectVersion(bucket="b", key=key, version_id=vid, size=4096, etag="0123456789abcdef0123456789abcdef",
                         last_modified=1700000000.5, placement=("s1", "s2", "s3"), ring_epoch=1, owner="o")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench_snapshot_freeze", description=__doc__.split("\n")[0])
    p.add_argument("--objects", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--changes", type=int, default=10_000)
    args = p.parse_args(argv)
    fsm = MetadataFSM()
    index = 0

    def apply(cmd: c.Command) -> None:
        nonlocal index
        index += 1
        fsm.apply(index, cmd)

    t0 = time.perf_counter()
    for node in ("s1", "s2", "s3"):  # the records' nodes, up: the objects are at full policy
        apply(c.RegisterNode(NodeInfo(node, "127.0.0.1:1")))
    apply(c.CreateBucket("b", "o", "replica:3", 1.0))
    for i in range(args.objects):
        apply(c.PutObject(_version(f"objects/{i:012d}", f"v{i}")))
    print(f"{args.objects:,} objects applied in {time.perf_counter() - t0:.1f} s")
    print(f"{'round':>5} {'freeze ms':>10} {'encode s':>9} {'snapshot MB':>12} {'changes':>8} {'restore s':>10}")
    for r in range(args.rounds):
        gc.collect()
        t0 = time.perf_counter()
        frozen = snapshot.freeze(fsm)
        freeze_ms = (time.perf_counter() - t0) * 1000
        for j in range(args.changes):
            n = (r * args.changes + j) * 7919 % args.objects
            apply(c.PutObject(_version(f"objects/{n:012d}", f"r{r}-{j}")))
        t0 = time.perf_counter()
        chunks = list(snapshot.frozen_chunks(frozen))
        encode_s = time.perf_counter() - t0
        del frozen
        gc.collect()
        t0 = time.perf_counter()
        restored = snapshot.restore(line for chunk in chunks for line in chunk.splitlines(keepends=True))
        restore_s = time.perf_counter() - t0
        assert restored.object_count() == fsm.object_count()
        size = sum(map(len, chunks))
        del restored, chunks
        print(f"{r + 1:>5} {freeze_ms:>10.1f} {encode_s:>9.2f} {size / 1e6:>12.1f} {args.changes:>8,} "
              f"{restore_s:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
