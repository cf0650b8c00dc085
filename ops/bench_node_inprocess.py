"""A storage node's CPU per hot call in one process, without sockets or disk waits.

``python -m ops.bench_node_inprocess [--phases put,manifest,batch,blobs] [--calls 2000]
[--connections 16] [--rounds 3] [--json]``

Builds a node's application (:func:`objstore.node.app.create_app`, its store in a temporary
folder) in this process, with ``os.fsync`` and ``os.fdatasync`` made no-ops, and feeds
signed requests to the lean front's protocol (:class:`objstore.node.hot_front.HotProtocol`)
through a fake transport, ``--connections`` at a time, one request at a time per connection
(the next when the answer is written), as the gateway's pooled client sends them:

- ``put``: 4 KiB blob writes (``PUT /blobs/{vid}/0``);
- ``manifest``: one commit manifest per call (``PUT /manifests``);
- ``batch``: four manifests per call (``PUT /manifests/batch``);
- ``blobs``: four 4 KiB blobs per call (``PUT /blobs/batch``).

It prints the process's CPU time per call (every thread: the event loop and the commit
threads) for each round after a first one that warms up, and the median. The requests are
made and signed before a round starts, so only the node's side is counted: the Python work
of a call (head parsing, signature check, handler, group commit, index, answer) and its
thread hand-offs, without the kernel's socket work or the disk. Compare versions by running
this file (``python /path/to/ops/bench_node_inprocess.py``) with another checkout first on
``PYTHONPATH`` (from a folder outside both checkouts), alternating, several times: it is
CPU time, so other load on the machine still inflates it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import Callable

SECRET = "bench-node-inprocess-secret"
ADDRESS = "127.0.0.1:1"  # the Host the requests are signed for (no socket is opened)
BLOB = 4096
PLACEMENT = {"X-Objstore-Bucket": "bench", "X-Objstore-Key": "key", "X-Objstore-Policy": "replica:3"}
PHASES = ("put", "manifest", "batch", "blobs")


def _request(method: str, path: str, body: bytes, streamed: bool = False, extra: dict | None = None,
             content_type: str = "") -> bytes:
    from objstore import internal_auth

    signed = internal_auth.headers(SECRET, method, path, body=None if streamed else body,
                                   stream_length=len(body) if streamed else None, target=ADDRESS, extra=extra)
    head = f"{method} {path} HTTP/1.1\r\nHost: {ADDRESS}\r\nContent-Length: {len(body)}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    head += "X-Request-Id: 0123456789abcdef\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n"
    return head.encode("latin-1") + body


def _manifest_json(i: int) -> bytes:
    from objstore.manifest import CommitManifest
    from objstore.types import ObjectVersion

    key = f"key-{uuid.uuid4().hex[:12]}"
    version = ObjectVersion("bench", key, uuid.uuid4().hex, BLOB, "0" * 32, time.time(),
                            placement=("s1", "s2", "s3"), ring_epoch=1)
    return json.dumps(CommitManifest("bench", key, i + 1, version, write_quorum=2).to_dict(),
                      ensure_ascii=False).encode()


def make_requests(phase: str, n: int) -> list[bytes]:
    """``n`` signed requests of ``phase``, each for new blobs or keys."""
    from objstore.node.blob_batch import BlobWrite, encode_request

    out = []
    for i in range(n):
        if phase == "put":
            out.append(_request("PUT", f"/blobs/{uuid.uuid4().hex}/0", os.urandom(BLOB), True, PLACEMENT))
        elif phase == "manifest":
            out.append(_request("PUT", "/manifests?ring_epoch=1", _manifest_json(i), content_type="application/json"))
        elif phase == "batch":
            body = b'{"manifests": [%s], "ring_epoch": 1}' % b", ".join(_manifest_json(4 * i + j) for j in range(4))
            out.append(_request("PUT", "/manifests/batch", body, content_type="application/json"))
        elif phase == "blobs":
            out.append(_request("PUT", "/blobs/batch", encode_request([
                BlobWrite(uuid.uuid4().hex, 0, "bench", "key", "replica:3", os.urandom(BLOB)) for _ in range(4)])))
        else:
            raise ValueError(f"unknown phase {phase!r}")
    return out


class _Transport:
    """What the protocol writes its answers to: each answer must be a 2xx; ``answered``
    is called after each."""

    def __init__(self, answered: Callable[[], None]) -> None:
        self.answered = answered

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def write(self, data: bytes) -> None:
        if not data.startswith(b"HTTP/1.1 2"):
            raise SystemExit(f"the node answered {data[:200]!r}")
        self.answered()

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def run_phase(phase: str, calls: int, connections: int, rounds: int) -> list[float]:
    """CPU-µs per call of each round but the first (which warms up)."""
    from aiohttp import web

    from objstore.config import StorageConfig
    from objstore.node.app import HOT, create_app
    from objstore.node.hot_front import HotProtocol

    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="bench-node-inprocess-") as data_dir:
        app = create_app(StorageConfig(node_id="bench", data_dir=data_dir, secret=SECRET, repair_rate=0))
        runner = web.AppRunner(app)
        await runner.setup()
        out: list[float] = []
        try:
            for rnd in range(rounds + 1):
                requests = make_requests(phase, calls)
                left = [len(requests)]
                finished: asyncio.Future[None] = loop.create_future()

                def start(queue: list[bytes]) -> None:
                    proto = HotProtocol(app[HOT], lambda: None)  # type: ignore[arg-type, return-value]

                    def answered() -> None:
                        left[0] -= 1
                        if queue:  # the next request on this connection once its answer is out
                            loop.call_soon(proto.data_received, queue.pop())
                        elif not left[0] and not finished.done():
                            finished.set_result(None)

                    proto.connection_made(_Transport(answered))  # type: ignore[arg-type]
                    proto.data_received(queue.pop())

                cpu = time.process_time()
                for i in range(connections):
                    if requests[i::connections]:
                        start(requests[i::connections])
                await finished
                if rnd:
                    out.append((time.process_time() - cpu) / calls * 1e6)
        finally:
            await runner.cleanup()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench_node_inprocess", description=__doc__.split("\n")[0])
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--calls", type=int, default=2000, help="calls per round")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="measured rounds, after one that warms up")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    phases = [x for x in args.phases.split(",") if x]
    if not set(phases) <= set(PHASES):
        p.error(f"phases are {', '.join(PHASES)}")
    os.fsync = os.fdatasync = lambda fd: None  # type: ignore[assignment] # no disk waits: CPU only
    from objstore.eventloop import install_fast_loop

    install_fast_loop()
    rows = []
    for phase in phases:
        per_call = asyncio.run(run_phase(phase, args.calls, args.connections, args.rounds))
        rows.append({"phase": phase, "cpu_us_per_call": round(statistics.median(per_call), 1),
                     "rounds": [round(x, 1) for x in per_call]})
        if not args.json:
            print(f"{phase:>9}: {rows[-1]['cpu_us_per_call']:7.1f} CPU-µs/call "
                  f"(rounds {', '.join(f'{x:.0f}' for x in per_call)})")
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
