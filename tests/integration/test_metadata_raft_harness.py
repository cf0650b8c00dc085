"""A real Raft metadata group for tests: N ``python -m metadata`` processes on 127.0.0.1.

:class:`RaftGroup` starts members with identical ``--peers`` on free ports (fault
injection on, fast ticks), finds the leader by asking every member for its status, cuts
and heals links with ``POST /debug/partition``, kills and restarts members, and stops
everything it started (``stop``, also on a failed start). Helpers wait for conditions with
a deadline; nothing sleeps "to let things settle". No tests live here.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest

from metadata.api.client import MetadataClient
from metadata.storage import log_format
from objstore import internal_auth
from objstore.cluster.supervisor import free_port
from objstore.types import Credential
from tests.harness.eventually import eventually, eventually_async

SECRET = "raft-test-secret"
REPO = Path(__file__).resolve().parents[2]


class Member:
    """One metadata process (started, killed and restarted by its group)."""

    def __init__(self, node_id: str, port: int, data_dir: Path, log_path: Path) -> None:
        self.id = node_id
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.argv: list[str] = []

    def start(self, argv: list[str]) -> None:
        self.argv = argv
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class RaftGroup:
    """``n`` members ``m1``..``mN`` in ``base``; ``extra`` flags go to every member."""

    def __init__(self, base: Path, n: int = 3, extra: tuple[str, ...] = ()) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.extra = extra
        self.members: dict[str, Member] = {}
        for i in range(n):
            self._new_member(f"m{i + 1}")
        self.peers = ",".join(f"{m.id}={m.address}" for m in self.members.values())

    def _new_member(self, nid: str) -> Member:
        m = Member(nid, free_port(), self.base / nid, self.base / f"{nid}.log")
        self.members[nid] = m
        return m

    def argv(self, m: Member, *flags: str) -> list[str]:
        return [sys.executable, "-m", "metadata", "--node-id", m.id, "--data-dir", str(m.data_dir),
                "--port", str(m.port), "--secret", SECRET, "--log-level", "INFO", "--enable-fault-injection",
                *self.extra, *flags]

    # --- processes ---------------------------------------------------------------------------

    def start(self) -> "RaftGroup":
        try:
            for m in self.members.values():
                m.start(self.argv(m, "--peers", self.peers))
            for m in self.members.values():
                self.wait_healthy(m)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, m: Member) -> None:
        m.kill()
        m.start(m.argv)
        self.wait_healthy(m)

    def add_joining(self, nid: str) -> Member:
        """Start a new, empty member with --join (not yet in the group)."""
        m = self._new_member(nid)
        m.start(self.argv(m, "--join"))
        self.wait_healthy(m)
        return m

    def wait_healthy(self, m: Member, timeout: float = 30.0) -> None:
        def listening() -> bool:
            if not m.running:
                raise AssertionError(f"{m.id} exited ({m.proc.returncode if m.proc else None}):\n{m.output()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", m.port), timeout=0.5):
                    return True
            except OSError:
                return False

        eventually(listening, timeout, message=lambda: f"{m.id} to start listening:\n{m.output()[-3000:]}")

    def stop(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL); nothing is left running."""
        for m in self.members.values():
            if m.running:
                assert m.proc is not None
                m.proc.send_signal(signal.SIGTERM)
        for m in self.members.values():
            if m.running and not _wait(m, 10):
                m.kill(signal.SIGKILL)

    def addresses(self, members: "list[Member] | None" = None) -> list[str]:
        return [m.address for m in (members if members is not None else self.members.values())]

    def client(self, members: "list[Member] | None" = None, **kw: Any) -> MetadataClient:
        return MetadataClient(self.addresses(members), SECRET, client_id="raft-test", **kw)

    # --- status and faults -------------------------------------------------------------------

    async def status(self, m: Member) -> dict[str, Any] | None:
        """``m``'s own status, or None when it does not answer."""
        try:
            return await signed(m, "GET", "/v1/status")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            return None

    async def statuses(self, members: "list[Member] | None" = None) -> dict[str, dict[str, Any] | None]:
        ms = members if members is not None else [m for m in self.members.values() if m.running]
        found = await asyncio.gather(*(self.status(m) for m in ms))
        return {m.id: s for m, s in zip(ms, found)}

    async def leader(self, among: "list[Member] | None" = None, timeout: float = 10.0,
                     min_term: int = 0) -> Member:
        """The member that says it leads (term above ``min_term``), waiting for one."""
        seen: dict[str, Any] = {}

        async def leader_now() -> Member | None:
            seen["statuses"] = sts = await self.statuses(among)
            leaders = [(s["term"], nid) for nid, s in sts.items() if s and s["role"] == "leader" and s["term"] > min_term]
            return self.members[max(leaders)[1]] if leaders else None

        return await eventually_async(leader_now, timeout, 0.02,
                                      message=lambda: f"a leader: {json.dumps(seen['statuses'])[:2000]}")

    async def partition(self, m: Member, drop_to: list[str], drop_from: list[str]) -> None:
        await signed(m, "POST", "/debug/partition", {"drop_to": drop_to, "drop_from": drop_from})

    async def isolate(self, m: Member) -> None:
        """Cut every link of ``m``, both ways."""
        others = [o for o in self.members.values() if o is not m and o.running]
        await self.partition(m, [o.id for o in others], [o.id for o in others])
        for o in others:
            await self.partition(o, [m.id], [m.id])

    async def heal(self) -> None:
        for m in self.members.values():
            if m.running:
                await self.partition(m, [], [])

    async def wait_converged(self, members: "list[Member] | None" = None, timeout: float = 20.0) -> dict:
        """Wait until every given member has applied the same index as the leader's commit."""
        ms = members if members is not None else [m for m in self.members.values() if m.running]
        seen: dict[str, Any] = {}

        async def converged() -> dict | None:
            sts = await self.statuses(ms)
            seen["applied"] = applied = {nid: s["applied_index"] if s else None for nid, s in sts.items()}
            lead = [s for s in sts.values() if s and s["role"] == "leader"]
            return sts if lead and all(a == lead[0]["commit_index"] for a in applied.values()) else None

        return await eventually_async(converged, timeout, message=lambda: f"convergence: {seen['applied']}")


def _wait(m: Member, timeout: float) -> bool:
    try:
        assert m.proc is not None
        m.proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


async def signed(m: Member, method: str, path: str, body: Any = None, secret: str = SECRET) -> Any:
    """One signed request to ``m``; the decoded JSON answer (raises the objstore error)."""
    from objstore.errors import raise_for_error_body

    data = None if body is None else json.dumps(body).encode()
    headers = internal_auth.headers(secret, method, path, body=data, target=m.address)
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as s:
        async with s.request(method, f"http://{m.address}{path}", data=data, headers=headers) as resp:
            raw = await resp.read()
    raise_for_error_body(resp.status, raw)
    return json.loads(raw)


async def write_credentials(group: RaftGroup, prefix: str, n: int) -> None:
    """``n`` credentials ``prefix-i`` written by 8 concurrent callers."""
    async with group.client() as c:
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with sem:
                await c.put_credential(Credential(f"{prefix}-{i}", f"secret-{i}", "owner"))

        await asyncio.gather(*(one(i) for i in range(n)))


async def reads_through(group: RaftGroup, m: Member) -> set[str]:
    """Make ``m`` the leader and read every credential through it alone."""
    leader = await group.leader()
    if leader is not m:
        await signed(leader, "POST", "/v1/raft/members", {"op": "transfer", "id": m.id})

    async def leads() -> bool:
        return (await group.leader(timeout=5)) is m

    await eventually_async(leads, 10, message=f"{m.id} to lead")
    async with group.client([m]) as c:
        return {cr.access_key for cr in await c.list_credentials()}


def corrupt_middle(log_dir: Path) -> Path:
    """Flip bytes in the middle of the records of the oldest segment that has records after
    the damage (a killed member's newest segment ends in preallocated zeros, which are no
    records: damage there is a torn tail)."""
    segs = sorted(p for p in log_dir.iterdir() if p.name.startswith("seg-"))
    seg = segs[0] if len(segs) > 1 else segs[-1]
    data = bytearray(seg.read_bytes())
    first = log_format.parse_segment_name(seg.name)
    assert first is not None
    records_end = log_format.scan_segment(bytes(data), first, True, seg.name).valid_end
    assert records_end > 2000, f"segment {seg} too small to corrupt in the middle"
    mid = records_end // 3
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    seg.write_bytes(bytes(data))
    return seg


def group_fixture(name: str, extra: tuple[str, ...] = ()):
    """A module-scoped fixture: a started 3-node RaftGroup under a temp dir, stopped after."""
    @pytest.fixture(scope="module")
    def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaftGroup]:
        g = RaftGroup(tmp_path_factory.mktemp(name), extra=extra).start()
        try:
            yield g
        finally:
            g.stop()
    return group
