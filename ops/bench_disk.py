"""The disk's write limit for replicated PUTs: parallel fsynced write streams, as replica:3 writes.

``python -m ops.bench_disk [--dir D] [--streams 3] [--mb 512] [--file-mb 64] [--json]``

Each of ``--streams`` threads writes ``--mb`` MiB into its own files of ``--file-mb`` MiB
(1 MiB writes, fsync at the end of each file and of the folder, as a storage node does for
a 64 MiB blob), all at once; prints the total MB/s (10**6 bytes) and each stream's.
A replica:3 PUT writes every byte three times, so ``total / 3`` is the client MB/s a
64 MiB PUT could reach on this disk: give the total to ``objstore bench --disk-limit``.

The folder defaults to a new ``bench-disk-<pid>`` folder inside ``--data-dir``
(``./objstore-data``), so it is the data dir's filesystem; the files and the folder are
removed at the end, also on errors and Ctrl-C. The data is random (not compressible) and
written from one shared buffer (the measure is the disk, not the generator).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
MB = 1_000_000
WRITE = MiB


@dataclass(frozen=True)
class StreamResult:
    stream: int
    nbytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / MB / self.seconds if self.seconds > 0 else 0.0


def write_stream(folder: Path, stream: int, total: int, file_size: int, buf: memoryview,
                 start: threading.Barrier) -> StreamResult:
    """Write ``total`` bytes into files of ``file_size`` under ``folder``, each fsynced; the time taken."""
    start.wait()
    t0 = time.perf_counter()
    written, index = 0, 0
    while written < total:
        size = min(file_size, total - written)
        path = folder / f"s{stream}-{index:05d}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            done = 0
            while done < size:
                done += os.write(fd, buf[: min(WRITE, size - done)])
            os.fsync(fd)
        finally:
            os.close(fd)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        written += size
        index += 1
    return StreamResult(stream, written, time.perf_counter() - t0)


def measure(folder: Path, streams: int, total_per_stream: int, file_size: int) -> tuple[list[StreamResult], float]:
    """Run the streams at once in ``folder`` (created, then removed); each stream's result and the wall time."""
    folder.mkdir(parents=True, exist_ok=False)
    buf = memoryview(os.urandom(WRITE))
    barrier = threading.Barrier(streams + 1)
    results: list[StreamResult | None] = [None] * streams
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = write_stream(folder, i, total_per_stream, file_size, buf, barrier)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(streams)]
    try:
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if errors:
        raise errors[0]
    return [r for r in results if r is not None], wall


def summary(results: list[StreamResult], wall: float) -> dict:
    """Total MB/s (all bytes over the wall time), each stream's, and the client ceiling for that many copies."""
    total = sum(r.nbytes for r in results) / MB / wall if wall > 0 else 0.0
    return {"streams": len(results), "bytes": sum(r.nbytes for r in results), "seconds": round(wall, 3),
            "total_mb_per_s": round(total, 1), "per_stream_mb_per_s": [round(r.mb_per_s, 1) for r in results],
            "client_ceiling_mb_per_s": round(total / max(1, len(results)), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench_disk", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="./objstore-data", help="the folder goes inside it (default ./objstore-data)")
    p.add_argument("--dir", help="folder to write in (created and removed; default DATA_DIR/bench-disk-<pid>)")
    p.add_argument("--streams", type=int, default=3, help="parallel streams, one per copy (default 3)")
    p.add_argument("--mb", type=int, default=512, help="MiB written by each stream (default 512)")
    p.add_argument("--file-mb", type=int, default=64, help="MiB per fsynced file (default 64)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.streams < 1 or args.mb < 1 or args.file_mb < 1:
        p.error("--streams, --mb and --file-mb must be at least 1")
    folder = Path(args.dir) if args.dir else Path(args.data_dir) / f"bench-disk-{os.getpid()}"
    if folder.exists():
        p.error(f"{folder} exists: give a new folder (it is removed afterwards)")
    results, wall = measure(folder, args.streams, args.mb * MiB, args.file_mb * MiB)
    out = summary(results, wall)
    out["folder"] = str(folder)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{out['streams']} parallel fsynced streams in {folder}: {out['total_mb_per_s']} MB/s in total "
              f"({', '.join(f'{v} MB/s' for v in out['per_stream_mb_per_s'])} per stream), "
              f"{out['bytes'] / MB:.0f} MB in {out['seconds']} s")
        print(f"client ceiling for {out['streams']} copies: {out['client_ceiling_mb_per_s']} MB/s "
              f"(objstore bench --disk-limit {out['total_mb_per_s']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
