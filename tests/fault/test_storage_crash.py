"""A real storage node process stopped under concurrent writes loses nothing acknowledged.

The node is killed with SIGKILL (a crash) or stopped with SIGTERM (a clean shutdown that
finishes in-flight commits and exits 0). After a restart on the same data dir, every blob
whose PUT was acknowledged (201) reads back byte-identical, and any other blob either is
absent or reads back whole: never torn.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from objstore.cluster.supervisor import free_port
from objstore.errors import NoSuchKey, ObjstoreError
from objstore.node.client import StorageClient
from tests.harness.eventually import eventually_async

SECRET = "crash-test-secret"
ROOT = Path(__file__).resolve().parents[2]


def blob_data(vid: str) -> bytes:
    """Deterministic content per version id; every tenth blob is large (its own file)."""
    n = int(vid.rsplit("-", 1)[1])
    size = 1_300_000 + n if n % 10 == 0 else 200 + (n * 7919) % 20_000
    seed = hashlib.sha256(vid.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class NodeProcess:
    def __init__(self, data_dir: Path, log: Path, extra: tuple[str, ...] = ()) -> None:
        self.data_dir, self.log, self.extra = data_dir, log, extra
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "objstore.node", "--node-id", "s1", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--secret", SECRET, *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    async def wait_healthy(self, timeout: float = 20.0) -> None:
        async with aiohttp.ClientSession() as s:
            async def healthy() -> bool:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                try:
                    async with s.get(f"http://{self.address}/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually_async(healthy, timeout, message=lambda: "the storage node to become healthy:\n"
                                   + self.log.read_text())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    async def stop(self, sig: int) -> int:
        """Send ``sig`` and wait (without blocking the loop the clients run on) for the exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await asyncio.to_thread(self.proc.wait, 20)


async def chunks(data: bytes, n: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), n):
        yield data[i : i + n]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_stop_during_concurrent_puts_loses_no_acknowledged_blob(tmp_path: Path, sig: int) -> None:
    node = NodeProcess(tmp_path / "s1", tmp_path / "s1.log")
    node.start()
    try:
        await node.wait_healthy()
        acked: set[str] = set()
        attempted: set[str] = set()
        counter = iter(range(1, 1_000_000))
        enough = asyncio.Event()

        async with aiohttp.ClientSession() as session:
            client = StorageClient(session, SECRET)

            async def writer() -> None:
                while True:
                    vid = f"0000018c2f3a1b2c-{next(counter):06d}"
                    data = blob_data(vid)
                    attempted.add(vid)
                    try:
                        res = await client.put_blob(node.address, vid, 0, "bkt", f"key/{vid}", "replica:3",
                                                    len(data), chunks(data))
                    except ObjstoreError:
                        return  # the node is gone
                    assert res["size"] == len(data)
                    acked.add(vid)
                    if len(acked) >= 150:
                        enough.set()

            tasks = [asyncio.create_task(writer()) for _ in range(24)]
            await asyncio.wait_for(enough.wait(), 60)
            status = await node.stop(sig)  # with writes in flight
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert status == (0 if sig == signal.SIGTERM else -signal.SIGKILL), node.log.read_text()

        assert len(acked) >= 150 and attempted - acked, "the stop should land with writes in flight"

        node.start()
        await node.wait_healthy()
        async with aiohttp.ClientSession() as session:
            client = StorageClient(session, SECRET)
            readable = 0
            for vid in sorted(attempted):
                try:
                    async with client.get_blob(node.address, vid, 0) as blob:
                        got = await blob.read()
                except NoSuchKey:
                    assert vid not in acked, f"acknowledged blob {vid} lost"
                    continue
                assert got == blob_data(vid), f"blob {vid} reads back torn (acked={vid in acked})"
                readable += 1
            stats = await client.stats(node.address)
            assert stats["blob_count"] == readable >= len(acked)

        assert await node.stop(signal.SIGTERM) == 0, node.log.read_text()
    finally:
        node.kill()


def _cpu_ms_and_state(pid: int) -> tuple[int, str]:
    """The process's CPU time so far (user + system, ms) and its state letter, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) * 1000 // tick, fields[0]


@pytest.mark.timeout(60)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_a_clean_stop_spends_little_cpu_between_sigterm_and_exit(tmp_path: Path) -> None:
    """SIGTERM to exit: the node's stop, not Python's finalization collecting its heap
    (~130-150 ms of CPU for an idle node before the heap was frozen at exit, ~20-30 after).
    CPU time, not wall time, so a loaded machine does not make it flaky."""
    node = NodeProcess(tmp_path / "s1", tmp_path / "s1.log")
    node.start()
    try:
        await node.wait_healthy()
        assert node.proc is not None
        before, _ = _cpu_ms_and_state(node.proc.pid)
        node.proc.send_signal(signal.SIGTERM)
        for _ in range(5000):  # until it exits (a zombie: not reaped yet, so /proc still has its times)
            spent, state = _cpu_ms_and_state(node.proc.pid)
            if state == "Z":
                break
            await asyncio.sleep(0.002)
        assert state == "Z", node.log.read_text()
        assert node.proc.wait(10) == 0, node.log.read_text()
        assert spent - before < 80, (spent - before, node.log.read_text()[-2000:])
    finally:
        node.kill()
