"""GroupCommitter: records that one burst makes a hop or two apart go in one batch (one
write and fsync), and each caller gets its own record's outcome."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from objstore.commit_thread import CommitThread
from objstore.node.group_commit import GroupCommitter


class FakeSegments:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def append_batch(self, records: list, next_seq) -> list[str]:  # noqa: ANN001
        self.batches.append([r.name for r in records])
        return [f"at-{r.name}" for r in records]


@pytest.mark.parametrize("gather_ticks, batches", [(2, [["r0", "r1", "r2"]]), (0, [["r0"], ["r1", "r2"]])])
async def test_a_burst_goes_in_one_batch(gather_ticks: int, batches: list[list[str]]) -> None:
    segments = FakeSegments()
    thread = CommitThread("t-commit")
    committed: list[str] = []
    gc = GroupCommitter(segments, lambda: 1, thread, lambda rec, res: committed.append(rec.name))  # type: ignore[arg-type]
    gc.gather_ticks = gather_ticks
    gc.start()

    async def writer(i: int) -> str:
        for _ in range(i):  # requests read in successive polls reach the store a hop apart
            await asyncio.sleep(0)
        return await gc.submit(SimpleNamespace(name=f"r{i}", body=b"x" * 10))  # type: ignore[arg-type]

    try:
        results = await asyncio.gather(*(writer(i) for i in range(3)))
    finally:
        await gc.close()
        thread.shutdown()
    assert results == ["at-r0", "at-r1", "at-r2"]
    assert sorted(committed) == ["r0", "r1", "r2"]
    assert segments.batches == batches


def _record(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, body=b"x" * 10)


async def test_a_failing_batch_observer_neither_hangs_callers_nor_stops_the_committer() -> None:
    segments = FakeSegments()
    thread = CommitThread("t-commit")
    committed: list[str] = []

    def observer(records: int, seconds: float) -> None:
        raise RuntimeError("metrics broke")

    gc = GroupCommitter(segments, lambda: 1, thread, lambda rec, res: committed.append(rec.name),  # type: ignore[arg-type]
                        on_batch=observer)
    gc.start()
    try:
        # The records are durable: their callers get their outcome, and later records still commit.
        assert await asyncio.wait_for(gc.submit(_record("r0")), 2) == "at-r0"  # type: ignore[arg-type]
        assert await asyncio.wait_for(gc.submit(_record("r1")), 2) == "at-r1"  # type: ignore[arg-type]
    finally:
        await gc.close()
        thread.shutdown()
    assert committed == ["r0", "r1"]


async def test_records_queued_when_the_committer_is_cancelled_fail_rather_than_hang() -> None:
    from objstore.errors import ServiceUnavailable

    thread = CommitThread("t-commit")
    gc = GroupCommitter(FakeSegments(), lambda: 1, thread, lambda rec, res: None)  # type: ignore[arg-type]
    gc.start()
    await asyncio.sleep(0)  # the committer waits for a record
    waiting = asyncio.ensure_future(gc.submit(_record("r0")))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # queued; the committer lets the loop run before taking it
    gc._task.cancel()  # type: ignore[union-attr]
    try:
        with pytest.raises(ServiceUnavailable):
            await asyncio.wait_for(waiting, 2)
        with pytest.raises(ServiceUnavailable):  # and nothing more is queued for nobody to take
            await asyncio.wait_for(gc.submit(_record("r1")), 2)  # type: ignore[arg-type]
    finally:
        thread.shutdown()


class GatedSegments(FakeSegments):
    """Appends wait (on the commit thread) until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.gate = threading.Event()

    def append_batch(self, records: list, next_seq) -> list[str]:  # noqa: ANN001
        self.gate.wait(5)
        return super().append_batch(records, next_seq)


async def test_callers_that_go_away_leave_the_batch_and_its_other_callers_alone() -> None:
    segments = GatedSegments()
    thread = CommitThread("t-commit")
    committed: list[str] = []
    gc = GroupCommitter(segments, lambda: 1, thread, lambda rec, res: committed.append(rec.name))  # type: ignore[arg-type]
    gc.gather_ticks = 0
    gc.start()
    try:
        await asyncio.sleep(0)
        first = asyncio.ensure_future(gc.submit(_record("r0")))  # type: ignore[arg-type]
        for _ in range(3):
            await asyncio.sleep(0)  # r0's batch is being written; the next ones queue behind it
        gone = asyncio.ensure_future(gc.submit(_record("r1")))  # type: ignore[arg-type]
        many_gone = asyncio.ensure_future(gc.submit_many([_record("r2"), _record("r3")]))  # type: ignore[list-item]
        many = asyncio.ensure_future(gc.submit_many([_record("r4"), _record("r5")]))  # type: ignore[list-item]
        stays = asyncio.ensure_future(gc.submit(_record("r6")))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        gone.cancel()
        many_gone.cancel()
        segments.gate.set()
        assert await asyncio.wait_for(first, 2) == "at-r0"
        assert await asyncio.wait_for(many, 2) == ["at-r4", "at-r5"]
        assert await asyncio.wait_for(stays, 2) == "at-r6"
        for task in (gone, many_gone):
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        await gc.close()
        thread.shutdown()
    # Every record was made durable and installed, those of the callers that went away too,
    # and the ones queued together went in one batch.
    assert committed == ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
    assert segments.batches == [["r0"], ["r1", "r2", "r3", "r4", "r5", "r6"]]
