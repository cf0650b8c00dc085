"""The opt-in CPU profile of a service process (``OBJSTORE_PROFILE=<role>:<dir>``)."""
from __future__ import annotations

import os
import pstats

from objstore.profiling import PROFILE_ENV, profile_target, run_profiled


def test_only_the_named_role_is_profiled_and_only_with_a_folder():
    assert profile_target("gateway", {PROFILE_ENV: "gateway:/tmp/p"}) == "/tmp/p"
    assert profile_target("storage", {PROFILE_ENV: "gateway:/tmp/p"}) is None
    assert profile_target("gateway", {PROFILE_ENV: "gateway"}) is None
    assert profile_target("gateway", {PROFILE_ENV: "gateway:"}) is None
    assert profile_target("gateway", {}) is None


def test_a_profiled_run_writes_its_profile_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, f"gateway:{tmp_path}")

    def work() -> None:
        sum(i * i for i in range(10_000))

    run_profiled("gateway", work)
    written = tmp_path / f"gateway-{os.getpid()}.prof"
    names = {name for (_file, _line, name) in pstats.Stats(str(written)).stats}
    assert "work" in names


def test_an_unprofiled_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, f"storage:{tmp_path}")
    ran = []
    run_profiled("gateway", lambda: ran.append(1))
    assert ran == [1] and not list(tmp_path.iterdir())
