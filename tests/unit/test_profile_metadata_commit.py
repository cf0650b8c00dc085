"""ops.profile_metadata_commit's runqueue figure: a process's wait for a CPU, from schedstat."""
from __future__ import annotations

import os
import sys

import pytest

from ops.profile_metadata_commit import runqueue_wait


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux's")
def test_runqueue_wait_counts_this_process_and_grows() -> None:
    before = runqueue_wait(os.getpid())
    if before is None:
        pytest.skip("this kernel keeps no schedstat")
    os.sched_yield()
    after = runqueue_wait(os.getpid())
    assert after is not None
    assert after[0] >= before[0] >= 0 and after[1] >= before[1] > 0


def test_runqueue_wait_of_a_process_that_is_gone_is_none() -> None:
    assert runqueue_wait(2 ** 22 + 12345) is None  # above the largest pid Linux hands out
