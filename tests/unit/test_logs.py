"""Log lines as text or JSON with the record's fields; a size-rotated log file that takes
stderr along when stderr was the log file (as under `objstore up`)."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

from objstore.logs import LOG_BACKUPS, JsonFormatter, TextFormatter


def record(**fields) -> logging.LogRecord:
    rec = logging.LogRecord("objstore.access", logging.INFO, __file__, 1, "GetObject %s %d", ("b", 200), None)
    rec.fields = fields
    return rec


def test_json_line_holds_message_role_and_fields():
    line = json.loads(JsonFormatter("gateway").format(record(request_id="ABC", status=200, latency_ms=1.5)))
    assert line["msg"] == "GetObject b 200" and line["role"] == "gateway" and line["level"] == "INFO"
    assert line["request_id"] == "ABC" and line["status"] == 200 and line["latency_ms"] == 1.5
    assert line["ts"].endswith("Z")


def test_text_line_appends_fields():
    text = TextFormatter("gateway").format(record(request_id="ABC", bytes_out=7))
    assert text.endswith("GetObject b 200 request_id=ABC bytes_out=7") and " gateway INFO " in text


def test_log_file_rotates_by_size_and_stderr_follows(tmp_path):
    log = tmp_path / "gw1.log"
    script = textwrap.dedent(f"""
        import logging, os, sys
        fd = os.open({str(log)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)  # as the launcher starts a child: stderr is the log file
        from objstore.logs import configure
        configure("gateway", "json", {str(log)!r}, max_bytes=2000)
        for i in range(200):
            logging.getLogger("t").info("line %d", i)
        sys.stderr.write("traceback after the last rollover\\n")
        sys.stderr.flush()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["gw1.log"] + [f"gw1.log.{i}" for i in range(1, LOG_BACKUPS + 1)]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    current = log.read_text()
    assert "traceback after the last rollover" in current
    assert json.loads(current.splitlines()[-2])["msg"] == "line 199"


def test_text_time_stamps_are_the_standard_ones_across_seconds():
    ours, standard = TextFormatter("gateway"), logging.Formatter()
    for created in (1700000000.999, 1700000001.0, 1700000001.5, 1700000000.25):  # back in time too
        record = logging.LogRecord("x", logging.INFO, "p", 1, "m", None, None)
        record.created, record.msecs = created, int((created - int(created)) * 1000)
        assert ours.formatTime(record) == standard.formatTime(record)
