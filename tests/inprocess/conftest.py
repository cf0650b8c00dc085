"""Fixtures of the in-process tests: a whole cluster in the test's event loop."""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.harness.cluster import InProcessCluster


@pytest.fixture
async def inproc(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    """A started cluster: metadata ``m1``, storage ``s1``..``s3`` (replica:3), gateway ``gw1``."""
    async with InProcessCluster(tmp_path / "cluster") as cluster:
        yield cluster
