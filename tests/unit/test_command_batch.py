"""Metadata commands coalesced while one is in flight (metadata.api.command_batch), against a
fake service whose calls finish when the test says: the first command goes alone, those
that come meanwhile go in one batch call after it, each caller gets its own command's
result or error, a failed batch call fails all it carried, commands answered NotLeader are
resent alone, a service without the batch route gets single calls, waiting is bounded in
number and time."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from metadata.api.command_batch import MAX_ITEM_BYTES, CommandBatcher
from objstore.errors import ObjstoreError, ServiceUnavailable, error_from_code, raise_for_error_body


class FakeService:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []  # (path, command numbers)
        self.gates: list[asyncio.Future[Any]] = []  # one per call, finished by the test

    async def post(self, path: str, data: bytes, seconds: float) -> Any:
        body = json.loads(data)
        numbers = [c["n"] for c in body["commands"]] if path == "/v1/commands" else [body["n"]]
        gate = asyncio.get_running_loop().create_future()
        self.calls.append((path, numbers))
        self.gates.append(gate)
        return await gate

    def answer(self, i: int, value: Any = None, error: BaseException | None = None) -> None:
        if error is not None:
            self.gates[i].set_exception(error)
        else:
            self.gates[i].set_result(value)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def start(batcher: CommandBatcher, n: int) -> asyncio.Task[Any]:
    return asyncio.ensure_future(batcher.send({"n": n}))


async def test_the_first_goes_alone_and_those_meanwhile_go_together_with_their_own_results():
    svc = FakeService()
    batcher = CommandBatcher(svc.post, timeout=10.0)
    first = start(batcher, 0)
    await settle()
    rest = [start(batcher, n) for n in (1, 2, 3)]
    await settle()
    assert svc.calls == [("/v1/command", [0])]
    svc.answer(0, {"value": "zero"})
    await settle()
    assert svc.calls[1] == ("/v1/commands", [1, 2, 3])
    precondition = error_from_code("PreconditionFailed", "no").to_dict()
    svc.answer(1, {"results": [{"value": "one"}, {"error": precondition}, {"value": "three"}]})
    assert await first == {"value": "zero"}
    assert [await t for t in rest] == [{"value": "one"}, {"error": precondition}, {"value": "three"}]
    assert batcher.calls == 2


async def test_a_failed_batch_call_fails_every_command_it_carried():
    svc = FakeService()
    batcher = CommandBatcher(svc.post, timeout=10.0)
    first = start(batcher, 0)
    await settle()
    rest = [start(batcher, n) for n in (1, 2)]
    await settle()
    svc.answer(0, {"value": 0})
    await settle()
    svc.answer(1, error=ServiceUnavailable("no metadata leader answered"))
    await first
    for t in rest:
        with pytest.raises(ServiceUnavailable):
            await t


async def test_commands_answered_not_leader_in_a_batch_are_resent_alone():
    svc = FakeService()
    batcher = CommandBatcher(svc.post, timeout=10.0)
    first = start(batcher, 0)
    await settle()
    rest = [start(batcher, n) for n in (1, 2)]
    await settle()
    svc.answer(0, {"value": 0})
    await settle()
    not_leader = error_from_code("NotLeader", "lost leadership").to_dict()
    svc.answer(1, {"results": [{"value": 1}, {"error": not_leader}]})
    await settle()
    assert svc.calls[2] == ("/v1/command", [2])
    svc.answer(2, {"value": "two, resent"})
    await first
    assert [await t for t in rest] == [{"value": 1}, {"value": "two, resent"}]



async def test_a_command_answered_not_leader_once_its_deadline_passed_is_not_resent():
    """The batch call answered at the end of the seconds it was given: a command in it
    answered NotLeader has no time left, so it fails (ServiceUnavailable, as a single call
    whose deadline ran out) rather than go to the service again after its deadline."""
    svc = FakeService()
    batcher = CommandBatcher(svc.post, timeout=0.2)
    both = [start(batcher, n) for n in (1, 2)]
    await settle()
    assert svc.calls == [("/v1/commands", [1, 2])]
    await asyncio.sleep(0.25)
    not_leader = error_from_code("NotLeader", "lost leadership").to_dict()
    svc.answer(0, {"results": [{"value": 1}, {"error": not_leader}]})
    await settle()
    assert len(svc.calls) == 1, svc.calls
    assert await both[0] == {"value": 1}
    with pytest.raises(ServiceUnavailable):
        await both[1]

async def test_a_service_without_the_batch_route_gets_single_calls():
    svc = FakeService()
    batcher = CommandBatcher(svc.post, timeout=10.0)
    first = start(batcher, 0)
    await settle()
    rest = [start(batcher, n) for n in (1, 2)]
    await settle()
    svc.answer(0, {"value": 0})
    await settle()
    with pytest.raises(ObjstoreError) as missing:  # what the client makes of aiohttp's 404 page
        raise_for_error_body(404, b"404: Not Found")
    svc.answer(1, error=missing.value)
    await settle()
    assert sorted(svc.calls[2:]) == [("/v1/command", [1]), ("/v1/command", [2])]
    svc.answer(2, {"value": 1})
    svc.answer(3, {"value": 2})
    await first
    assert [await t for t in rest] == [{"value": 1}, {"value": 2}]
    # Later commands that come together still go one by one (for a while).
    more = start(batcher, 3)
    await settle()
    later = [start(batcher, n) for n in (4, 5)]
    await settle()
    svc.answer(4, {"value": 3})
    await settle()
    assert [path for path, _ in svc.calls[5:]] == ["/v1/command", "/v1/command"]
    for i in (5, 6):
        svc.answer(i, {"value": i})
    await more
    await asyncio.gather(*later)


async def test_batches_and_the_waiting_room_are_bounded():
    svc = FakeService()
    batcher = CommandBatcher(svc.post, timeout=10.0, max_batch=2, max_waiting=3)
    first = start(batcher, 0)
    await settle()
    waiting = [start(batcher, n) for n in (1, 2, 3)]
    await settle()
    over = start(batcher, 4)  # the waiting room is full: it goes alone, at once
    await settle()
    assert svc.calls == [("/v1/command", [0]), ("/v1/command", [4])]
    svc.answer(1, {"value": 4})
    svc.answer(0, {"value": 0})
    await settle()
    assert svc.calls[2] == ("/v1/commands", [1, 2])
    svc.answer(2, {"results": [{"value": 1}, {"value": 2}]})
    await settle()
    assert svc.calls[3] == ("/v1/command", [3])
    svc.answer(3, {"value": 3})
    assert [await t for t in [first, *waiting, over]] == [{"value": n} for n in (0, 1, 2, 3, 4)]


async def test_a_large_command_goes_alone():
    svc = FakeService()
    batcher = CommandBatcher(svc.post, timeout=10.0)
    first = start(batcher, 0)
    await settle()
    large = asyncio.ensure_future(batcher.send({"n": 1, "pad": "x" * MAX_ITEM_BYTES}))
    await settle()
    assert svc.calls == [("/v1/command", [0]), ("/v1/command", [1])]
    svc.answer(0, {"value": 0})
    svc.answer(1, {"value": 1})
    assert await first == {"value": 0} and await large == {"value": 1}


async def test_a_command_whose_call_does_not_start_in_time_fails_unsent():
    svc = FakeService()
    now = [0.0]
    batcher = CommandBatcher(svc.post, timeout=5.0, clock=lambda: now[0])
    first = start(batcher, 0)
    await settle()
    late = start(batcher, 1)
    await settle()
    now[0] = 6.0
    svc.answer(0, {"value": 0})
    await first
    with pytest.raises(ServiceUnavailable, match="waited over 5s"):
        await late
    assert len(svc.calls) == 1
