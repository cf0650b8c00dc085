"""``objstore up`` forks its services from the launcher (objstore.cluster.forking).

A forked service must be indistinguishable from ``python -m ops.cli <role> ...`` to whoever
looks at it or stops it: its parent is the launcher, its command line (``ps``, ``pkill
-f``, the benchmark's role check) is that command, it serves, logs to its own file, and
it stops on SIGTERM with the exit code the service chose. ``OBJSTORE_FORK_SERVICES=0``
starts them by exec as before.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import psutil
import pytest

from tests.cluster_harness import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _s3(c: LocalCluster):
    return boto3.client("s3", endpoint_url=c.endpoint, aws_access_key_id=c.access_key,
                        aws_secret_access_key=c.secret_key, region_name="us-east-1")


def test_up_forks_services_that_look_serve_and_stop_as_exec_ones(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "data", storage_nodes=3)
    with cluster:
        launcher = cluster.info["launcher_pid"]
        assert launcher == cluster.proc.pid  # type: ignore[union-attr]
        for p in cluster.processes():
            proc = psutil.Process(p["pid"])
            assert proc.ppid() == launcher
            line = " ".join(proc.cmdline())
            assert line.startswith(f"{sys.executable} -m ops.cli {p['role']} "), line
            assert p["id"] in line and p["address"].rsplit(":", 1)[1] in line
            assert cluster.secret_key not in line  # the keys go by environment only
            assert proc.status() != psutil.STATUS_ZOMBIE
        s3 = _s3(cluster)
        s3.create_bucket(Bucket="forked")
        s3.put_object(Bucket="forked", Key="k", Body=b"x" * 5000)
        assert s3.get_object(Bucket="forked", Key="k")["Body"].read() == b"x" * 5000
    # stop() asserted nothing is left; each service took its own stop path and logged it.
    logs = cluster.data_dir / "logs"
    for nid in ("s1", "s2", "s3"):
        assert f"storage node {nid} stopped" in (logs / f"{nid}.log").read_text()
    assert "objstore: stopped." in cluster.output()


CHILDREN = textwrap.dedent("""
    import json, os, signal, subprocess, sys, threading
    from pathlib import Path
    from objstore.cluster.forking import ForkedProcess, ServiceForker
    from objstore.cluster.supervisor import Child, free_port, wait_healthy

    tmp = Path(sys.argv[1])
    out = {}
    forker = ServiceForker.prepare()
    out["prepared"] = forker is not None
    cli = [sys.executable, "-m", "ops.cli"]
    # The children end with this script even when an assertion stops it early.
    env = {**os.environ, "OBJSTORE_CLUSTER_SECRET": "forked-test-secret", "OBJSTORE_PARENT_PID": str(os.getpid())}

    # A service that refuses its arguments: argparse's exit code and message, in its log.
    bad = Child("storage", "bad", "127.0.0.1:1", [*cli, "storage", "--no-such-flag"], tmp / "bad.log")
    bad.start(env, forker=forker)
    out["bad_forked"] = isinstance(bad.proc, ForkedProcess)
    out["bad_code"] = bad.proc.wait(timeout=30)

    # A running node: waited for with a timeout, then killed outright.
    port = free_port()
    node = Child("storage", "s1", f"127.0.0.1:{port}",
                 [*cli, "storage", "--node-id", "s1", "--data-dir", str(tmp / "s1"), "--host", "127.0.0.1",
                  "--port", str(port), "--metadata", f"127.0.0.1:{free_port()}", "--reserve-bytes", "1048576"],
                 tmp / "s1.log")
    node.start(env, forker=forker)
    wait_healthy(node, timeout=60)
    try:
        node.proc.wait(timeout=0.2)
        out["timeout_raised"] = False
    except subprocess.TimeoutExpired:
        out["timeout_raised"] = True
    out["running"] = node.running()
    node.proc.kill()
    out["killed_code"] = node.proc.wait(timeout=30)
    node.proc.kill()  # a reaped child is not signalled again (its pid may be reused)

    # Started again on the same data dir, stopped with SIGTERM: the service's own stop path.
    node.start(env, forker=forker)
    wait_healthy(node, timeout=60)
    out["stop_seconds"] = node.stop(grace=30)
    out["stopped_code"] = node.proc.returncode

    # SIGTERM at once, before the child has its own handlers: not lost to the launcher's
    # handler (which, like objstore up's, only notes that it was asked to stop), it ends.
    signal.signal(signal.SIGTERM, lambda *_: None)
    port2 = free_port()
    early = Child("storage", "s2", f"127.0.0.1:{port2}",
                  [*cli, "storage", "--node-id", "s2", "--data-dir", str(tmp / "s2"), "--host", "127.0.0.1",
                   "--port", str(port2), "--metadata", f"127.0.0.1:{free_port()}"], tmp / "s2.log")
    early.start(env, forker=forker)
    early.proc.terminate()
    out["early_code"] = early.proc.wait(timeout=20)

    threading.Thread(target=threading.Event().wait, daemon=True).start()
    out["prepared_with_a_thread"] = ServiceForker.prepare() is not None
    print(json.dumps(out))
""")


def test_forked_children_are_waited_for_and_signalled_as_popen_children(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", CHILDREN, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, env={k: v for k, v in os.environ.items()
                                                       if k != "OBJSTORE_FORK_SERVICES"})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["prepared"] and out["bad_forked"]
    assert out["bad_code"] == 2
    assert "unrecognized arguments: --no-such-flag" in (tmp_path / "bad.log").read_text()
    assert out["timeout_raised"] and out["running"]
    assert out["killed_code"] == -9
    assert out["stopped_code"] == 0
    log = (tmp_path / "s1.log").read_text()
    assert log.count("storage node s1 stopped") == 1  # the second run; the killed one never got there
    assert out["early_code"] in (0, -15)  # its own stop, or SIGTERM's default before it had one
    assert out["prepared_with_a_thread"] is False  # never fork a process running threads


LONG = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from objstore.cluster.forking import ServiceForker
    from objstore.cluster.supervisor import Child, free_port, wait_healthy

    tmp = Path(sys.argv[1])
    forker = ServiceForker.prepare()
    assert forker is not None
    port = free_port()
    # A command line longer than this process's own arguments and environment together.
    many = ",".join(f"127.0.0.1:{p}" for p in range(20000, 20040))
    argv = [sys.executable, "-m", "ops.cli", "storage", "--node-id", "s1", "--data-dir", str(tmp / "s1"),
            "--host", "127.0.0.1", "--port", str(port), "--metadata", many, "--reserve-bytes", "1048576"]
    node = Child("storage", "s1", f"127.0.0.1:{port}", argv, tmp / "s1.log")
    node.start({**os.environ, "OBJSTORE_CLUSTER_SECRET": "long-title-secret"}, forker=forker)
    wait_healthy(node, timeout=60)
    shown = Path(f"/proc/{node.pid}/cmdline").read_bytes().rstrip(b"\\0").split(b"\\0")
    print(shown == [a.encode() for a in argv], flush=True)
    node.stop(grace=30)
    print(node.proc.returncode)
""")


def test_a_command_line_too_long_for_a_title_is_exec_d_whole(tmp_path: Path) -> None:
    """The title of a forked child lives in the launcher's argument and environment memory;
    a launcher with little of it (a short command, an almost empty environment) execs a
    child whose command line would not fit, so ps and pkill -f still see all of it."""
    script = tmp_path / "launch.py"
    script.write_text(LONG)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "0"], done.stdout + done.stderr


def test_without_forking_services_are_exec_d(tmp_path: Path) -> None:
    code = ("import os; from objstore.cluster.forking import ServiceForker; "
            "print(ServiceForker.prepare() is None, ServiceForker.prepare({}) is None)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OBJSTORE_FORK_SERVICES": "0"})
    assert done.stdout.split() == ["True", "False"], done.stderr
