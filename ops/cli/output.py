"""How every admin command answers: tables, colour, ``--json``, progress bars, errors, exit codes.

The one home of presentation for ``ops/cli`` and ``ops/bench`` (plain ANSI escape codes, no
dependency). Exit codes, the same for every command:
  0  done (for ``status``: the cluster is healthy)
  1  the operation failed, or a check found a problem (for ``status``: the cluster is
     degraded: a node down, objects below policy)
  2  unavailable or unusable as given: no cluster found, the metadata service did not
     answer, no metadata leader, a malformed argument
  130  interrupted (Ctrl-C; a ``--watch`` view ends with 0 instead; a benchmark also
       on SIGTERM: :func:`run_stoppable`)

Invariants:
- Results go to stdout, as text or, with ``--json``, as one JSON document (a ``--watch``
  view with ``--json`` prints one document per line). Errors go to stderr as
  ``objstore <command>: <what happened>; <what to do>``. Progress goes to stderr, and only
  when stderr is a terminal.
- Escape codes appear only on a terminal: :func:`paint` colours only inside
  :func:`colour` (``emit`` turns it on when stdout is a terminal and ``NO_COLOR`` is unset),
  and a :class:`ProgressBar` draws only on a terminal. Piped output is plain text.
- Column widths count visible characters, so coloured cells stay aligned.

:func:`table`, :func:`bar_line`, :func:`eta_text` and :class:`RateMeter` are pure (the
meter takes the time as an argument).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import re
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Collection, Iterator, Sequence, TextIO, TypeVar

from objstore.space import human_size  # noqa: F401  (re-exported: the admin commands format sizes with it)

OK = 0
FAILED = 1
USAGE = 2
UNAVAILABLE = 2
INTERRUPTED = 130


class CommandError(Exception):
    """A command cannot complete: the message says why and what to do; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


T = TypeVar("T")


def run_stoppable(main: Awaitable[T]) -> T:
    """``asyncio.run(main)``, with SIGTERM cancelling ``main`` as Ctrl-C does: its
    ``finally`` blocks stop what it started and remove its temporary data, then
    KeyboardInterrupt is raised (the command answers 130). For commands that start
    processes of their own (the benchmarks), so a ``kill`` or a timeout leaves nothing
    behind."""
    async def stoppable() -> T:
        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        stopped: list[bool] = []

        def stop() -> None:
            stopped.append(True)
            task.cancel()  # type: ignore[union-attr]

        loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            return await main
        except asyncio.CancelledError:
            if stopped:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(stoppable())


def add_json_argument(p: argparse.ArgumentParser) -> None:
    """``--json``: print the result as one JSON document instead of text."""
    p.add_argument("--json", action="store_true", help="print JSON")


# --- colour ---------------------------------------------------------------------------------

_COLOUR = contextvars.ContextVar("objstore_cli_colour", default=False)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36"}
# The colour of a state word wherever it shows (node states, roles, health, has-blob answers).
STATE_STYLES = {
    "up": "green", "healthy": "green", "leader": "green", "yes": "green", "ok": "green", "voter": "green",
    "idle": "green", "waiting": "green",
    "full": "yellow", "joining": "yellow", "draining": "yellow", "degraded": "yellow", "candidate": "yellow",
    "learner": "yellow", "scrubbing": "cyan", "recovering": "yellow",
    "down": "red", "out": "red", "unreachable": "red", "unavailable": "red", "no": "red", "failed": "red",
    "removed": "dim",
}


def colour_wanted(stream: TextIO) -> bool:
    """Whether to colour what goes to ``stream``: a terminal, ``NO_COLOR`` unset, ``TERM`` not dumb."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


@contextlib.contextmanager
def colour(on: bool) -> Iterator[None]:
    """Within the block, :func:`paint` colours (``on``) or returns text unchanged."""
    token = _COLOUR.set(on)
    try:
        yield
    finally:
        _COLOUR.reset(token)


def paint(text: str, style: str | None) -> str:
    """``text`` in ``style`` ("red", "bold green", ...) when colouring is on, else unchanged."""
    if not style or not _COLOUR.get():
        return text
    codes = ";".join(STYLES[s] for s in style.split())
    return f"\x1b[{codes}m{text}\x1b[0m"


def state(word: str) -> str:
    """A state word (its first word decides: ``down (unreachable)`` is red) painted by STATE_STYLES."""
    first = word.split(" ", 1)[0]
    style = "red" if "unreachable" in word else STATE_STYLES.get(first)
    return paint(word, style)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def visible_len(text: str) -> int:
    return len(strip_ansi(text))


# --- tables and figures ---------------------------------------------------------------------

def table(rows: Sequence[Sequence[str]], right: Collection[int] = (), rule: bool = False) -> str:
    """``rows`` (the first one the header, bold on a terminal) as aligned columns two spaces
    apart; columns in ``right`` are right-aligned (numbers); ``rule`` puts dashes under the
    header. Cells may be painted: widths count visible characters."""
    widths = [max(visible_len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(r: Sequence[str]) -> str:
        cells = []
        for i, (c, w) in enumerate(zip(r, widths)):
            pad = " " * (w - visible_len(c))
            cells.append(pad + c if i in right else c + pad)
        return "  ".join(cells).rstrip()

    head = [paint(c, "bold") for c in rows[0]]
    out = [line(head)] + (["  ".join("-" * w for w in widths)] if rule else [])
    return "\n".join(out + [line(r) for r in rows[1:]])


def eta_text(seconds: float | None) -> str:
    """Time left for people: ``0m42s``, ``2h05m``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def emit(args: argparse.Namespace, result: Any, render: Callable[[Any], str], out: TextIO | None = None) -> None:
    """Print ``result`` to ``out`` (stdout): as JSON with ``--json``, else as ``render(result)``,
    coloured when ``out`` is a terminal."""
    out = out or sys.stdout
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2), file=out, flush=True)
        return
    with colour(colour_wanted(out)):
        text = render(result)
    print(text, file=out, flush=True)


def fail(command: str, message: str) -> None:
    """Print an error line for ``objstore <command>`` to stderr."""
    print(f"objstore {command}: {message}", file=sys.stderr, flush=True)


# --- progress -------------------------------------------------------------------------------

BAR_WIDTH = 30


def bar_line(done: float, total: float | None, rate: float | None, unit: Callable[[float], str] = human_size,
             label: str = "", extra: str = "", width: int = BAR_WIDTH, fraction: float | None = None,
             eta: float | None = None) -> str:
    """``label [#####.....]  50.0%  done of total  rate/s  ETA 0m05s  extra``. The bar shows
    ``fraction`` (default done/total; none when both are unknown); ETA is ``eta``, else what
    is left at ``rate`` (``-`` when unknown). ``unit`` formats amounts (bytes by default)."""
    parts = [label] if label else []
    if fraction is None and total:
        fraction = done / total
    if fraction is not None:
        ratio = min(max(fraction, 0.0), 1.0)
        filled = int(round(width * ratio))
        parts.append(f"[{paint('#' * filled, 'green')}{paint('.' * (width - filled), 'dim')}] {100 * ratio:5.1f}%")
    parts.append(f"{unit(done)} of {unit(total)}" if total else unit(done))
    if eta is None and total and rate:
        eta = max(total - done, 0) / rate
    parts.append(f"{unit(rate)}/s" if rate is not None else "-/s")
    parts.append(f"ETA {eta_text(eta)}")
    if extra:
        parts.append(extra)
    return "  ".join(parts)


class RateMeter:
    """The rate of a growing count over the last ``window`` seconds (None until two samples
    ``window`` apart or at least ``min_span`` apart exist)."""

    def __init__(self, window: float = 10.0, min_span: float = 0.5) -> None:
        self.window, self.min_span = window, min_span
        self._samples: deque[tuple[float, float]] = deque(maxlen=1024)

    def add(self, now: float, done: float) -> float | None:
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        t0, d0 = self._samples[0]
        span = now - t0
        return (done - d0) / span if span >= self.min_span else None


class ProgressBar:
    """A progress line redrawn in place on ``out`` (stderr), only when ``out`` is a terminal.

    ``update(done, total)`` redraws at most every ``min_interval`` seconds; the rate is the
    caller's when given, else measured over the last 10 s. ``close()`` (or leaving the
    ``with`` block) erases the line so what follows starts on a clean line."""

    def __init__(self, out: TextIO | None = None, label: str = "", unit: Callable[[float], str] = human_size,
                 clock: Callable[[], float] = time.monotonic, min_interval: float = 0.1,
                 enabled: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.label, self.unit, self.clock, self.min_interval = label, unit, clock, min_interval
        isatty = getattr(self.out, "isatty", None)
        self.enabled = bool(isatty and isatty()) if enabled is None else enabled
        self.meter = RateMeter()
        self._drawn_at: float | None = None
        self._colour = colour_wanted(self.out)

    def update(self, done: float, total: float | None = None, rate: float | None = None, extra: str = "",
               fraction: float | None = None, eta: float | None = None) -> None:
        """Redraw with ``done`` of ``total`` (see :func:`bar_line` for the rest)."""
        now = self.clock()
        measured = self.meter.add(now, done)
        if not self.enabled or (self._drawn_at is not None and now - self._drawn_at < self.min_interval):
            return
        with colour(self._colour):
            line = bar_line(done, total, rate if rate is not None else measured, self.unit, self.label, extra,
                            fraction=fraction, eta=eta)
        self.out.write("\r\x1b[K" + line)
        self.out.flush()
        self._drawn_at = now

    def close(self) -> None:
        if self.enabled and self._drawn_at is not None:
            self.out.write("\r\x1b[K")
            self.out.flush()
        self._drawn_at = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Status = dict[str, Any]


@dataclass(frozen=True)
class Step:
    """Where a long operation stands, for its progress bar: see :func:`bar_line`."""

    done: float
    total: float | None
    rate: float | None = None
    extra: str = ""


def watch_until(st: Status, get: Callable[[], Status], finished: Callable[[Status], bool],
                step: Callable[[Status], Step], interval: float, bar: ProgressBar,
                sleep: Callable[[float], None] = time.sleep) -> Status:
    """Poll ``get()`` every ``interval`` seconds (at least 0.1) until ``finished(status)``,
    drawing ``step(status)`` on ``bar``; the last status. For every ``... status --watch`` of
    a long operation (repair; rebalance and drain can use it too)."""
    with bar:
        while not finished(st):
            s = step(st)
            bar.update(s.done, s.total, s.rate, extra=s.extra)
            sleep(max(interval, 0.1))
            st = get()
    return st


def count_unit(n: float) -> str:
    """Amounts that are counts (objects, operations): ``1234``."""
    return f"{n:.0f}"
