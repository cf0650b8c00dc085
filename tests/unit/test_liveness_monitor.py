"""The leader's liveness monitor (metadata.liveness), driven by a fake clock: every
transition, the grace a new leader gives, the full/up hysteresis, and the states it never
touches."""
from __future__ import annotations

import asyncio

import pytest

from metadata.liveness import GIB, LivenessMonitor, LivenessSettings, heartbeat_interval, reserve_bytes, space_state
from metadata.node_health import EpochWatch, registration, wait_query
from objstore.errors import InvalidArgument
from objstore.types import ClusterMap, NodeInfo

T, D = 10.0, 600.0
ROOMY = {"capacity_bytes": 1000 * GIB, "used_bytes": 10 * GIB, "free_bytes": 990 * GIB, "blob_count": 5}


def cmap(**states: str) -> ClusterMap:
    return ClusterMap(1, tuple(NodeInfo(nid, f"h:{i}", state=st) for i, (nid, st) in enumerate(sorted(states.items()))))


def moves(mon: LivenessMonitor, m: ClusterMap, now: float) -> dict[str, str]:
    return {t.node_id: t.to_state for t in mon.transitions(m, now)}


def elected_monitor(at: float = 0.0) -> LivenessMonitor:
    mon = LivenessMonitor(LivenessSettings(T, D))
    mon.elected(at)
    return mon


def test_up_goes_down_after_the_timeout_without_heartbeats_and_not_before() -> None:
    mon = elected_monitor()
    mon.heartbeat("a", ROOMY, 1.0)
    mon.heartbeat("b", ROOMY, 1.0)
    m = cmap(a="up", b="up")
    assert moves(mon, m, 10.9) == {}
    mon.heartbeat("b", ROOMY, 10.0)
    assert moves(mon, m, 11.0) == {"a": "down"}
    t = mon.transitions(m, 11.0)[0]
    assert (t.from_state, t.to_state) == ("up", "down") and "no heartbeat" in t.reason


def test_a_new_leader_gives_every_node_a_full_timeout_from_its_election() -> None:
    mon = elected_monitor(at=100.0)  # it has heard from nobody yet
    m = cmap(a="up", b="full")
    assert moves(mon, m, 109.9) == {}
    assert moves(mon, m, 110.0) == {"a": "down", "b": "down"}
    # Electing again forgets what the earlier term heard: history does not carry over.
    mon.heartbeat("a", ROOMY, 111.0)
    mon.elected(200.0)
    assert moves(mon, m, 205.0) == {}
    assert mon.health(m, 205.0)[0]["heartbeat_age"] is None


def test_down_comes_back_up_on_a_heartbeat() -> None:
    mon = elected_monitor()
    m = cmap(a="down")
    assert moves(mon, m, 5.0) == {}
    mon.heartbeat("a", ROOMY, 6.0)
    assert moves(mon, m, 6.1) == {"a": "up"}


def test_down_goes_out_after_down_after_counted_from_when_this_leader_saw_it_down() -> None:
    mon = elected_monitor()
    m = cmap(a="down")
    assert moves(mon, m, 1.0) == {}  # first seen down at 1.0
    assert moves(mon, m, 1.0 + D - 0.1) == {}
    assert moves(mon, m, 1.0 + D) == {"a": "out"}
    # A node seen up, then down, counts its time down from when the map said down.
    mon = elected_monitor()
    mon.heartbeat("b", ROOMY, 0.0)
    assert moves(mon, cmap(b="up"), 50.0) == {"b": "down"}
    assert moves(mon, cmap(b="down"), 51.0) == {}
    assert moves(mon, cmap(b="down"), 51.0 + D - 1) == {}
    assert moves(mon, cmap(b="down"), 51.0 + D) == {"b": "out"}


def test_out_comes_back_up_when_it_heartbeats_again() -> None:
    mon = elected_monitor()
    m = cmap(a="out")
    assert moves(mon, m, 5000.0) == {}  # silent out nodes stay out
    mon.heartbeat("a", ROOMY, 5001.0)
    assert moves(mon, m, 5001.5) == {"a": "up"}


def test_full_below_twice_the_reserve_and_up_again_only_past_three_times() -> None:
    """The node admits blobs only while they leave the reserve free, so writes never take
    it below the reserve: the leader calls it full one reserve above that."""
    mon = elected_monitor()
    m_up, m_full = cmap(a="up"), cmap(a="full")
    cap = 100 * GIB  # reserve min(5 GiB, 1 GiB) = 1 GiB
    mon.heartbeat("a", {"capacity_bytes": cap, "free_bytes": 2 * GIB - 1}, 1.0)  # above the reserve itself
    assert moves(mon, m_up, 1.0) == {"a": "full"}
    mon.heartbeat("a", {"capacity_bytes": cap, "free_bytes": 2 * GIB + 10}, 2.0)  # above 2x, not 3x
    assert moves(mon, m_full, 2.0) == {}
    assert moves(mon, m_up, 2.0) == {}  # an up node with that much room stays up
    mon.heartbeat("a", {"capacity_bytes": cap, "free_bytes": 3 * GIB + 1}, 3.0)
    assert moves(mon, m_full, 3.0) == {"a": "up"}


def test_the_reserve_is_the_nodes_own_or_five_percent_capped_at_one_gib() -> None:
    assert reserve_bytes({"capacity_bytes": 1000}) == 50
    assert reserve_bytes({"capacity_bytes": 1000 * GIB}) == GIB
    assert reserve_bytes({"capacity_bytes": 1000, "reserve_bytes": 7}) == 7
    assert reserve_bytes({}) is None and reserve_bytes({"capacity_bytes": 0}) is None
    assert space_state({"free_bytes": 0}, "up") == "up"  # capacity unknown: never full
    assert space_state({"capacity_bytes": 1000, "free_bytes": 10}, "down") == "full"


@pytest.mark.parametrize("stats, reserve, state", [
    ({"capacity_bytes": float("inf"), "free_bytes": 10}, None, "up"),
    ({"capacity_bytes": float("nan"), "free_bytes": 10}, None, "up"),
    ({"capacity_bytes": 1000, "reserve_bytes": float("inf"), "free_bytes": 10}, 50, "full"),
    ({"capacity_bytes": 1000, "reserve_bytes": float("nan"), "free_bytes": 10}, 50, "full"),
    ({"capacity_bytes": 1000, "free_bytes": float("nan")}, 50, "up"),
])
def test_a_heartbeat_figure_that_is_not_finite_counts_as_unknown(stats: dict, reserve: int | None,
                                                                 state: str) -> None:
    """A heartbeat body is JSON, which Python reads with Infinity and NaN: such a figure is
    unknown (a reserve falls back to the capacity's default; without one the node's space
    state is left as it is), and the leader's round still moves every other node (it raised
    OverflowError or ValueError, for every node, before)."""
    assert reserve_bytes(stats) == reserve
    assert space_state(stats, "up") == state
    mon = elected_monitor()
    mon.heartbeat("a", stats, T)
    assert moves(mon, cmap(a="up", b="up"), T + 1.0) == {"b": "down", **({"a": state} if state != "up" else {})}


def test_a_down_or_out_node_returning_without_room_comes_back_full() -> None:
    mon = elected_monitor()
    mon.heartbeat("a", {"capacity_bytes": 1000, "free_bytes": 10}, 1.0)
    mon.heartbeat("b", {"capacity_bytes": 1000, "free_bytes": 10}, 1.0)
    assert moves(mon, cmap(a="down", b="out"), 1.0) == {"a": "full", "b": "full"}


def test_full_nodes_go_down_when_silent() -> None:
    mon = elected_monitor()
    mon.heartbeat("a", {"capacity_bytes": 1000, "free_bytes": 10}, 0.0)
    assert moves(mon, cmap(a="full"), T) == {"a": "down"}


@pytest.mark.parametrize("state", ["joining", "draining", "removed"])
def test_operator_states_are_never_touched(state: str) -> None:
    mon = elected_monitor()
    m = cmap(a=state)
    assert moves(mon, m, 10 * D) == {}  # silent for ever
    mon.heartbeat("a", {"capacity_bytes": 1000, "free_bytes": 1}, 10 * D)
    assert moves(mon, m, 10 * D) == {}  # alive and out of space


def test_tables_are_bounded_and_forget_nodes_that_left_the_map() -> None:
    mon = LivenessMonitor(LivenessSettings(T, D), max_nodes=2)
    mon.elected(0.0)
    assert mon.heartbeat("a", ROOMY, 1.0) and mon.heartbeat("b", ROOMY, 1.0)
    assert not mon.heartbeat("c", ROOMY, 1.0)
    assert mon.heartbeat("a", ROOMY, 2.0)  # a known node is always recorded
    mon.transitions(cmap(a="up"), 3.0)  # b left the map
    assert mon.heartbeat("c", ROOMY, 3.0)


def test_health_rows_carry_state_age_and_stats() -> None:
    mon = elected_monitor()
    mon.heartbeat("a", {**ROOMY, "scrub": {"passes": 1}}, 1.0)
    rows = mon.health(cmap(a="up", b="down"), 3.5)
    assert rows[0] == {"node_id": "a", "state": "up", "heartbeat_age": 2.5, "capacity_bytes": ROOMY["capacity_bytes"],
                       "used_bytes": ROOMY["used_bytes"], "free_bytes": ROOMY["free_bytes"], "blob_count": 5,
                       "scrub": {"passes": 1}}
    assert rows[1]["heartbeat_age"] is None and rows[1]["free_bytes"] is None


def test_heartbeats_register_new_or_moved_nodes_only() -> None:
    sent = NodeInfo("a", "h:1", zone="z1", capacity_bytes=5)
    assert registration(None, sent) == sent
    assert registration(NodeInfo("a", "h:1", zone="z1", state="down", capacity_bytes=9), sent) is None
    moved = registration(NodeInfo("a", "h:0", zone="z1", state="draining"), sent)
    assert moved is not None and moved.address == "h:1" and moved.state == "draining"


def test_long_poll_query() -> None:
    assert wait_query({}) is None
    assert wait_query({"wait_epoch": "4", "timeout": "2.5"}) == (4, 2.5)
    assert wait_query({"wait_epoch": "4", "timeout": "999"}) == (4, 60.0)
    for bad in ({"wait_epoch": "x"}, {"wait_epoch": "-1"}, {"wait_epoch": "1", "timeout": "nan"}):
        with pytest.raises(InvalidArgument):
            wait_query(bad)


async def test_closing_the_epoch_watch_answers_the_waiting_long_polls_at_once() -> None:
    """A stopping metadata node closes its watch: a long poll left by a gateway that went
    first ends with the map it has, instead of holding the shutdown for its grace."""
    watch = EpochWatch(lambda: 5)
    waiting = asyncio.ensure_future(watch.wait_above(5, 3600.0))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiting.done() and watch.waiting == 1
    watch.close()
    for _ in range(3):
        await asyncio.sleep(0)
    assert waiting.done() and waiting.result() is False and watch.waiting == 0
    assert await watch.wait_above(5, 3600.0) is False  # a poll arriving while it stops
    assert await watch.wait_above(4, 3600.0) is True  # the epoch already moved past


def test_heartbeat_interval_fits_the_timeout() -> None:
    assert heartbeat_interval(10.0) == 1.0 and heartbeat_interval(1.0) == 0.25


@pytest.mark.parametrize("state", ["down", "out"])
def test_a_heartbeat_from_before_the_node_was_marked_down_or_out_does_not_bring_it_back(state: str) -> None:
    mon = elected_monitor()
    mon.heartbeat("a", ROOMY, 100.0)
    # An operator marks it out (or it went down) at 101, while its last heartbeat is 1 s old.
    assert moves(mon, cmap(a=state), 101.0) == {}
    assert moves(mon, cmap(a=state), 105.0) == {}
    mon.heartbeat("a", ROOMY, 106.0)  # a heartbeat sent after that brings it back
    assert moves(mon, cmap(a=state), 106.5) == {"a": "up"}
