"""How every admin command answers: aligned tables, ``--json``, errors and exit codes.

Exit codes, the same for every command:
  0  done (for ``status``: the cluster is healthy)
  1  the cluster was found but the operation failed or it could not be reached (for
     ``status``: the cluster is degraded; 2 when no metadata leader answers)
  2  the command line cannot work as given (no cluster found, a malformed argument)
  130  interrupted (Ctrl-C)

Errors go to stderr as ``objstore <command>: <what happened>; <what to do>``; results go
to stdout, as a table or text, or with ``--json`` as one JSON document.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

OK = 0
FAILED = 1
USAGE = 2
INTERRUPTED = 130


class CommandError(Exception):
    """A command cannot complete: the message says why and what to do; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def add_json_argument(p: argparse.ArgumentParser) -> None:
    """``--json``: print the result as one JSON document instead of text."""
    p.add_argument("--json", action="store_true", help="print JSON")


def table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first one the header) as left-aligned columns two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def human_size(n: float | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 MiB``; ``-`` for unknown."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def emit(args: argparse.Namespace, result: Any, render: Callable[[Any], str]) -> None:
    """Print ``result``: as JSON with ``--json``, else as ``render(result)``."""
    print(json.dumps(result, indent=2) if getattr(args, "json", False) else render(result))


def fail(command: str, message: str) -> None:
    """Print an error line for ``objstore <command>`` to stderr."""
    print(f"objstore {command}: {message}", file=sys.stderr, flush=True)
