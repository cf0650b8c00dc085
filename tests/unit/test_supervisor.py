"""Children started together are waited for together: one that dies is reported at once,
even while another ahead of it has not answered yet."""
from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from objstore.cluster.supervisor import Child, ChildFailed, free_port, wait_all_healthy


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _child(tmp_path, name: str, code: str, port: int) -> Child:
    c = Child("storage", name, f"127.0.0.1:{port}", [sys.executable, "-c", code], tmp_path / f"{name}.log")
    c.start()
    return c


def test_a_child_that_exits_is_reported_while_an_earlier_one_still_starts(tmp_path):
    slow = _child(tmp_path, "s1", "import time; time.sleep(30)", free_port())  # never answers
    dead = _child(tmp_path, "s2", "raise SystemExit(3)", free_port())
    began = time.monotonic()
    try:
        with pytest.raises(ChildFailed) as failed:
            wait_all_healthy([slow, dead], timeout=20)
    finally:
        slow.stop(grace=1)
        dead.stop(grace=1)
    assert failed.value.child is dead and failed.value.exited
    assert "exited with code 3" in str(failed.value)
    assert time.monotonic() - began < 10  # not after the first child's deadline


def test_every_child_answering_ends_the_wait_and_a_silent_one_times_out(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    up = _child(tmp_path, "s1", "import time; time.sleep(30)", port)  # the test's server answers for it
    silent = _child(tmp_path, "s2", "import time; time.sleep(30)", free_port())
    try:
        wait_all_healthy([up], timeout=5)
        with pytest.raises(ChildFailed) as failed:
            wait_all_healthy([up, silent], timeout=0.5)
        assert failed.value.child is silent and not failed.value.exited
        assert "did not become healthy" in str(failed.value)
    finally:
        server.shutdown()
        up.stop(grace=1)
        silent.stop(grace=1)


def test_free_ports_lie_below_the_ephemeral_range_and_bind() -> None:
    """A port handed to a child is one no outgoing connection can be given meanwhile: below
    the kernel's ephemeral range (where the range leaves room), and free when chosen."""
    import socket

    from objstore.cluster import supervisor

    low = supervisor._ephemeral_low()
    ports = {free_port() for _ in range(20)}
    if low - supervisor.LOWEST_PORT >= 4096:
        assert all(supervisor.LOWEST_PORT <= p < low for p in ports), (low, sorted(ports))
    assert len(ports) > 1  # chosen afresh, not one fixed port
    for p in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_ports_planned_before_anything_listens_are_distinct():
    """``objstore up`` plans every child's port before any child binds one: a random pick
    that merely binds now could hand the same port to two children (seen: a metadata node
    and a storage node planned on one port, and the cluster never came up)."""
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)


def test_ports_drawn_by_processes_side_by_side_are_distinct():
    """Test workers and launchers in other processes draw ports at the same time: a port one
    of them drew is claimed against the others until its child had time to bind it."""
    import subprocess
    import sys
    code = "from objstore.cluster.supervisor import free_port; print(*[free_port() for _ in range(300)])"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    drawn = [set(map(int, p.communicate(timeout=60)[0].split())) for p in procs]
    assert len(drawn[0]) == len(drawn[1]) == 300
    assert not drawn[0] & drawn[1]
