"""Service children forked from a launcher that imported the services' code once.

A service started as ``python -m ops.cli <role> ...`` spends 0.5–1.2 s of CPU importing
aiohttp, uvloop, prometheus_client and its own application before it serves; ``objstore
up`` starts ten of them at once, so a cluster's start was mostly imports, done ten times
over on a small machine. :class:`ServiceForker` imports the three services' modules once
in the launcher (about 0.7 s) and forks each service child from it. The child then runs
exactly what ``python -m ops.cli <role> ...`` runs — :func:`ops.cli.main.main` with the
same arguments — with the environment, log file, session and process title that command
would have had: its ``/proc/<pid>/cmdline`` reads as that command line, so ``ps``,
``pkill -f`` and the benchmark's role check see what they saw before.

Invariants:
- A fork happens only from a process with one thread (:meth:`ServiceForker.prepare`
  refuses otherwise, and the caller starts children by exec as before), and only for
  ``<python> -m ops.cli <storage|metadata|gateway> ...``; anything else is exec'd.
- The child never returns into the launcher's code: it ends with ``os._exit`` and the
  service's exit code, after flushing its streams and logging (what an exec'd service's
  interpreter would do at exit). File descriptors other than 0–2 are closed in it, as
  ``Popen(close_fds=True)`` closes them, and every object alive at the fork is moved to
  the collector's permanent generation first, so no inherited file object is ever
  finalized in the child (which could close a descriptor number the service has reused).
- Signals are blocked from just before the fork until the child has reset the dispositions
  the launcher set (to Python's defaults; ignored ones stay ignored, as across exec), so a
  SIGTERM sent at once is not lost to the launcher's handler; a title longer than the
  launcher's argument and environment memory would be cut, so such a child is exec'd;
  ``random``'s module-level generator and the internal-call nonces are drawn anew in a
  forked child (Python's and :mod:`objstore.internal_auth`'s fork hooks).
- :class:`ForkedProcess` is the part of ``subprocess.Popen`` that
  :class:`~objstore.cluster.supervisor.Child` uses (pid, poll, wait, signals, returncode).

``OBJSTORE_FORK_SERVICES=0`` in the launcher's environment starts every child by exec, as
does a machine without ``setproctitle``.
"""
from __future__ import annotations

import gc
import importlib
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Mapping, NoReturn, Sequence

from objstore.tls import skip_system_trust_store

FORK_ENV = "OBJSTORE_FORK_SERVICES"
CLI_MODULE = "ops.cli"
SERVICE_MODULES = ("gateway.app", "metadata.app", "objstore.node.app")
SERVICE_ROLES = ("storage", "metadata", "gateway")
# Signals whose disposition the launcher may have changed (SIGINT back to Python's handler).
_RESET = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)


class ForkedProcess:
    """A forked child, waited for as ``subprocess.Popen`` waits for an exec'd one."""

    def __init__(self, pid: int, args: Sequence[str]) -> None:
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = 255
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            while self.poll() is None:
                try:
                    _, status = os.waitpid(self.pid, 0)
                except ChildProcessError:
                    self.returncode = 255 if self.returncode is None else self.returncode
                else:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            delay = min(delay * 2, left, 0.05)
            time.sleep(delay)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never signal a pid that was reaped (and may be reused)
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def service_argv(argv: Sequence[str]) -> bool:
    """Whether ``argv`` is ``<this python> -m ops.cli <service role> ...``."""
    return (len(argv) >= 4 and argv[0] == sys.executable and argv[1] == "-m" and argv[2] == CLI_MODULE
            and argv[3] in SERVICE_ROLES)


class ServiceForker:
    """Forks service children from this process (see the module docstring)."""

    @classmethod
    def prepare(cls, env: Mapping[str, str] | None = None) -> "ServiceForker | None":
        """Import the services' modules here and return a forker; None (start children by
        exec) when ``OBJSTORE_FORK_SERVICES=0``, setproctitle is missing, or this process
        runs more than one thread."""
        env = os.environ if env is None else env
        if env.get(FORK_ENV, "1") == "0" or threading.active_count() != 1:
            return None
        try:
            importlib.import_module("setproctitle")  # before any change to the environment
        except ImportError:
            return None
        # As a service does before importing aiohttp (its default TLS contexts then load no
        # system CA bundle); the launcher's own variable is put back afterwards.
        saved = os.environ.get("SSL_CERT_FILE")
        skip_system_trust_store()
        try:
            for name in ("ops.cli.main", "ops.cli.services", *SERVICE_MODULES):
                importlib.import_module(name)
        finally:
            if saved is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = saved
        return cls() if threading.active_count() == 1 else None

    def fork(self, argv: Sequence[str], env: Mapping[str, str], log_file: IO) -> ForkedProcess | None:
        """Start ``argv`` (a :func:`service_argv`) as a forked child logging to ``log_file``;
        None (the caller execs it) when this process now runs more than one thread."""
        if not service_argv(argv):
            raise ValueError(f"not a service command line: {argv[:4]}")
        if threading.active_count() != 1:
            return None
        args, child_env, log_fd = list(argv), dict(env), log_file.fileno()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing buffered here is written twice
        # Signals that arrive between the fork and the child's own handlers wait for them
        # (the launcher's handlers would only set a flag in the child's copy of it).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _RESET)
        gc.freeze()
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    _run_child(args, child_env, log_fd, blocked)
                finally:
                    os._exit(1)  # never back into the launcher's code
        finally:  # in this process (also when the fork failed): its collector and signals back
            gc.unfreeze()
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return ForkedProcess(pid, args)


def _run_child(argv: list[str], env: dict[str, str], log_fd: int, mask: set[signal.Signals]) -> NoReturn:
    code = 1
    try:
        os.setsid()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, _max_fd())
        for sig in _RESET:  # as exec does: handled signals back to their defaults, ignored ones stay
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        import setproctitle
        title = " ".join(argv)
        setproctitle.setproctitle(title)  # first: it takes the memory of the launcher's environment
        if not _title_fits(title):
            # Too long for the launcher's argument and environment memory: a truncated
            # command line would hide the process from ps and pkill -f. Exec it instead.
            os.execve(argv[0], argv, env)
        os.environ.clear()
        os.environ.update(env)
        # PYTHONUNBUFFERED's streams: every write reaches the log at once.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", write_through=True)
        cli = importlib.import_module(CLI_MODULE)  # loaded already (prepare): the shared core names no app
        sys.argv = [str(Path(cli.__file__).with_name("__main__.py")), *argv[3:]]
        code = importlib.import_module(f"{CLI_MODULE}.main").main(argv[3:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported as an exec'd interpreter would, then the exit
        traceback.print_exc()
        code = 1
    finally:
        try:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF if isinstance(code, int) else 1)


def _title_fits(title: str) -> bool:
    """Whether ``/proc/self/cmdline`` now reads as ``title`` whole."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            shown = f.read().rstrip(b"\0").replace(b"\0", b" ")
    except OSError:
        return True  # nowhere to check: keep the title as set
    return shown == title.encode()


def _max_fd() -> int:
    try:
        return max(int(os.sysconf("SC_OPEN_MAX")), 256)
    except (ValueError, OSError):
        return 65536
