"""`objstore status` decides its exit code from what it collected: healthy, degraded."""
from __future__ import annotations

import asyncio

from ops.cli.status import DEGRADED, add_scrub, assess
from ops.cli.output import OK


def status(*nodes: tuple[str, str, bool], **meta) -> dict:
    return {"metadata": meta, "nodes": [{"node_id": n, "state": s, "reachable": r} for n, s, r in nodes]}


def test_every_node_up_and_reachable_is_healthy():
    assert assess(status(("s1", "up", True), ("s2", "up", True))) == (OK, [])


def test_a_node_down_or_unreachable_is_degraded():
    code, problems = assess(status(("s1", "up", True), ("s2", "down", False), ("s3", "up", False)))
    assert code == DEGRADED
    assert problems == ["storage node s2 is down", "storage node s3 is unreachable"]


def test_an_unreachable_metadata_member_is_degraded():
    code, problems = assess(status(("s1", "up", True), members_reachable={"m1": True, "m2": False}))
    assert code == DEGRADED and problems == ["metadata node m2 is unreachable"]


def test_removed_nodes_do_not_count_and_objects_below_policy_do():
    assert assess(status(("s1", "up", True), ("s9", "removed", False))) == (OK, [])
    code, problems = assess(status(("s1", "up", True), objects_below_policy=3))
    assert code == DEGRADED and problems == ["3 objects are below their data policy"]


def test_a_node_that_does_not_answer_shows_the_scrub_progress_of_its_last_heartbeat():
    class Storage:
        async def scrub_status(self, address: str) -> dict:
            if address == "stalled":
                raise TimeoutError
            return {"node_id": "s1", "corrupt_found": 0}

    st = {"nodes": [{"node_id": "s1", "address": "a", "reachable": True},
                    {"node_id": "s2", "address": "stalled", "reachable": True},
                    {"node_id": "s3", "address": "gone", "reachable": False}]}
    heartbeat = {"s2": {"node_id": "s2", "corrupt_found": 4}, "s3": None}
    asyncio.run(add_scrub(st, Storage(), heartbeat))
    assert [n["scrub"] for n in st["nodes"]] == [{"node_id": "s1", "corrupt_found": 0},
                                                 {"node_id": "s2", "corrupt_found": 4}, None]


def test_a_full_node_is_named_with_its_free_space_and_its_reserve():
    st = status(("s1", "full", True), ("s2", "full", False))
    st["nodes"][0].update(free_bytes=1900 * 1024**2, reserve_bytes=1024**3)
    code, problems = assess(st)
    assert code == DEGRADED
    assert problems == ["storage node s1 is full: 1.9 GiB free, below twice its 1.0 GiB reserve (--reserve-bytes)",
                        "storage node s2 is full"]  # its figures unknown: the plain line
