"""How every process logs: text or JSON lines, to stderr or to a size-rotated file.

Flags (``objstore storage|metadata|gateway``; ``objstore up`` sets them for its children
through the environment): ``--log-format text|json`` (env OBJSTORE_LOG_FORMAT) and
``--log-file FILE`` (env OBJSTORE_LOG_FILE) with ``--log-max-bytes`` (default 64 MiB) and
``LOG_BACKUPS`` old files kept (``FILE.1`` .. ``FILE.5``).

Invariants: a JSON line is one object with ``ts`` (UTC ISO-8601), ``level``, ``logger``,
``role``, ``msg`` and the record's ``fields`` (``logger.info(msg, extra={"fields": {...}})``:
the gateway's request log puts request id, operation, bucket, status, bytes and latency
there); a text line appends them as ``k=v``. Callers put no secret, signature or query
string in a message or field. When the process's stderr is the log file itself (``objstore
up`` sends the children's output there), a rollover points stdout and stderr at the new
file too, so tracebacks land beside the log lines.
"""
from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
import time
from typing import Any

LOG_FORMAT_ENV = "OBJSTORE_LOG_FORMAT"
LOG_FILE_ENV = "OBJSTORE_LOG_FILE"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
LOG_BACKUPS = 5
TEXT_FORMAT = "%(asctime)s {role} %(levelname)s %(name)s: %(message)s"


def add_log_arguments(p: argparse.ArgumentParser) -> None:
    """``--log-format``, ``--log-file``, ``--log-max-bytes``."""
    p.add_argument("--log-format", choices=("text", "json"), default=os.environ.get(LOG_FORMAT_ENV) or "text",
                   help=f"log lines as text or JSON objects (default text; env {LOG_FORMAT_ENV})")
    p.add_argument("--log-file", default=os.environ.get(LOG_FILE_ENV) or "",
                   help=f"log to this file, rotated by size, instead of stderr (env {LOG_FILE_ENV})")
    p.add_argument("--log-max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                   help=f"rotate the log file at this size; {LOG_BACKUPS} old files are kept (default 64 MiB)")


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "role": self.role, "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__(TEXT_FORMAT.format(role=role))
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        """The standard time stamp, its date and time formatted once per second (the request
        log writes a line per request)."""
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(self.default_time_format, self.converter(second))
        return self.default_msec_format % (self._stamp, record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        return text + "".join(f" {k}={v}" for k, v in fields.items()) if fields else text


class RotatingLog(logging.handlers.RotatingFileHandler):
    """A size-rotated log file that takes stdout and stderr along when they pointed at it.

    Each record is formatted once and the file's size is counted as lines are written
    (re-read from the file every ``RESYNC_EVERY`` records, as others may write to it too),
    instead of the standard handler's second formatting, two stats and a seek per record:
    the request logs write a line for every request.
    """

    RESYNC_EVERY = 256

    def __init__(self, path: str, max_bytes: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=LOG_BACKUPS, encoding="utf-8")
        self.follow_std = _same_file(2, path)
        self._size = -1  # unknown: read from the file at the next record
        self._since_sync = 0

    def doRollover(self) -> None:  # noqa: N802 - the logging API's name
        super().doRollover()
        self._size = -1
        if self.follow_std and self.stream is not None:
            for fd in (1, 2):
                os.dup2(self.stream.fileno(), fd)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if self._size < 0 or self._since_sync >= self.RESYNC_EVERY:
                self.stream.flush()
                self._size, self._since_sync = os.fstat(self.stream.fileno()).st_size, 0
            if self.maxBytes > 0 and self._size + len(msg) >= self.maxBytes:
                self.doRollover()
                self._size, self._since_sync = os.fstat(self.stream.fileno()).st_size, 0
            self.stream.write(msg)
            self.flush()
            self._size += len(msg)
            self._since_sync += 1
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def configure(role: str, fmt: str = "text", log_file: str = "", max_bytes: int = DEFAULT_MAX_BYTES,
              level: int = logging.INFO) -> None:
    """Set the root logger up for a process playing ``role`` (replacing earlier handlers)."""
    handler: logging.Handler = RotatingLog(log_file, max_bytes) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(role) if fmt == "json" else TextFormatter(role))
    # Neither format shows the process, thread or multiprocessing names: do not look them up
    # for every record (a getpid() system call and a few calls per line; the request logs
    # write a line for every request, internal calls included).
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def configure_from_args(role: str, args: argparse.Namespace) -> None:
    """:func:`configure` from the flags of :func:`add_log_arguments`."""
    configure(role, args.log_format, args.log_file, args.log_max_bytes)
