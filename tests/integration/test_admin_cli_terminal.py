"""The admin commands as a person sees them, against a real `objstore up` cluster: under a
pseudo-terminal (`script`, tmux) the tables are aligned and coloured and `objstore top`
redraws in place and ends cleanly on Ctrl-C; piped, every command's `--json` parses and no
escape code appears."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from ops.cli import main as objstore_main
from tests.harness.eventually import eventually

pytestmark = pytest.mark.integration

ESC = "\x1b"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def objstore(*args: str) -> list[str]:
    return [sys.executable, "-m", "ops.cli", *args]


def piped(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(objstore(*args), capture_output=True, text=True, timeout=60, cwd=ROOT)


def on_terminal(*args: str) -> tuple[int, str]:
    """Run under a pseudo-terminal (`script`): the exit code and what the screen got."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    out = subprocess.run(["script", "-qec", shlex.join(objstore(*args)), "/dev/null"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    return out.returncode, out.stdout.replace("\r\n", "\n")


@pytest.mark.skipif(shutil.which("script") is None, reason="needs `script` (util-linux)")
def test_status_on_a_terminal_is_coloured_and_aligned_and_plain_when_piped(cluster):
    code, screen = on_terminal("status", "--data-dir", str(cluster.data_dir))
    assert code == 0, screen
    assert f"{ESC}[32mup{ESC}[0m" in screen and f"{ESC}[32mhealthy" in screen and f"{ESC}[1mNODE" in screen
    plain = ANSI.sub("", screen)
    rows = [ln for ln in plain.splitlines() if re.match(r"s\d+\s", ln) and "zone-" in ln]
    assert len(rows) >= len(cluster.processes("storage"))
    assert len({ln.index("zone-") for ln in rows}) == 1 and len({ln.index(" up ") for ln in rows}) == 1
    out = piped("status", "--data-dir", str(cluster.data_dir))
    assert out.returncode == 0 and ESC not in out.stdout + out.stderr
    assert ANSI.sub("", screen).split("\n")[:3] == out.stdout.split("\n")[:3]


def test_every_command_prints_json_when_piped_and_no_escape_codes(cluster, s3, bucket, capsys):
    """In this process (stdout captured: not a terminal), to keep it quick."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"j" * 1000)
    d = ("--data-dir", str(cluster.data_dir))
    node = cluster.processes("storage")[0]["id"]
    commands = [("status",), ("object", "info", bucket, "k"), ("key", "list"), ("metadata", "status"),
                ("scrub", "status", node), ("repair", "status"), ("top", "--count", "1")]
    for command in commands:
        assert objstore_main([*command, *d, "--json"]) == 0, (command, capsys.readouterr().err)
        out = capsys.readouterr()
        assert ESC not in out.out + out.err, command
        assert json.loads(out.out), command
        assert objstore_main([*command, *d]) == 0, command
        out = capsys.readouterr()
        assert out.out and ESC not in out.out + out.err, command
    assert objstore_main(["key", "create", f"cli-{uuid.uuid4().hex[:6]}", *d, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert objstore_main(["key", "delete", created["access_key"], *d, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == created["access_key"]


def test_errors_say_what_to_do_with_consistent_exit_codes(cluster, tmp_path):
    out = piped("status", "--data-dir", str(tmp_path / "nothing"))
    assert out.returncode == 2 and "no cluster found in" in out.stderr and "objstore up" in out.stderr
    out = piped("object", "info", "no-such-bucket", "k", "--data-dir", str(cluster.data_dir))
    assert out.returncode == 1 and out.stderr.startswith("objstore object: no-such-bucket/k")
    out = piped("scrub", "status", "nope", "--data-dir", str(cluster.data_dir))
    assert out.returncode == 2 and "no storage node 'nope'" in out.stderr and "nodes:" in out.stderr


def test_top_piped_prints_one_json_frame_per_interval_with_request_rates(cluster, s3, bucket):
    proc = subprocess.Popen(objstore("top", "--data-dir", str(cluster.data_dir), "--json", "--count", "3",
                                     "--interval", "0.5"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        s3.put_object(Bucket=bucket, Key="load", Body=b"l" * 100)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    frames = [json.loads(line) for line in out.splitlines()]
    assert len(frames) == 3 and frames[0]["gateway"] is None  # rates need two scrapes
    assert frames[-1]["health"]["state"] == "healthy" and frames[-1]["metadata"]["leader"]
    assert frames[-1]["gateway"]["requests_per_s"] > 0 and "PutObject" in frames[-1]["gateway"]["ops"]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_top_on_a_terminal_refreshes_in_place_and_ends_on_ctrl_c(cluster):
    session = f"objstore-top-{uuid.uuid4().hex[:8]}"
    top = shlex.join(objstore("top", "--data-dir", str(cluster.data_dir), "--interval", "0.5"))
    cmd = f"trap : INT; {top}; echo EXIT=$?; sleep 60"  # the shell outlives Ctrl-C to show top's exit code
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", "-c", ROOT,
                    f"env TERM=xterm-256color sh -c {shlex.quote(cmd)}"], check=True)

    def screen(escapes: bool = False) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", *(["-e"] if escapes else []), "-t", session],
                              capture_output=True, text=True, check=True).stdout

    def screen_when(ok, what: str, timeout: float = 30) -> str:
        def check() -> str | None:
            s = screen()
            return s if ok(s) else None
        return eventually(check, timeout, 0.2, message=what)

    try:
        first = screen_when(lambda s: "requests" in s and "s1" in s, "the live view's first frame")
        stamp = re.search(r"objstore top\s+(\S+)", first).group(1)
        later = screen_when(lambda s: re.search(r"requests\s+\d", s) and stamp not in s,
                            "a later frame with request rates")
        assert later.count("objstore top") == 1 and later.count("health ") == 1  # redrawn, not appended
        assert f"{ESC}[32m" in screen(escapes=True)  # coloured
        assert "leader m" in later and "below policy" in later
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        ended = screen_when(lambda s: "EXIT=" in s, "top to end on Ctrl-C", 15)
        assert "EXIT=0" in ended and "Traceback" not in ended and "leader m" in ended  # the last frame stays
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_up_json_prints_its_summary_as_one_json_line(tmp_path):
    from tests.cluster_harness import free_port

    data = tmp_path / "data"
    proc = subprocess.Popen(objstore("up", "--json", "--data-dir", str(data), "--s3-port", str(free_port()),
                                     "--storage-nodes", "1", "--metadata-nodes", "1", "--default-policy", "replica:1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        summary = json.loads(line)
        assert summary["endpoint"].startswith("http://") and summary["data_dir"] == str(data)
        assert sorted(p["role"] for p in summary["processes"]) == ["gateway", "metadata", "storage"]
        secret = json.loads((data / "credentials.json").read_text())["cluster_secret"]
        assert secret not in line
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == "" and "objstore is running" in err and "stopped" in err
