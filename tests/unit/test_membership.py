"""Membership guards (add/drain/remove), the weight command, joining registration and the
ok-to-stop answer (metadata.membership), on the pure state machine."""
from __future__ import annotations

import pytest

from metadata import membership
from metadata.api import commands as c
from metadata.node_health import registration
from objstore.errors import InvalidArgument, InvalidRequest
from objstore.ring import Ring
from objstore.types import NodeInfo
from tests.unit.test_fsm import Driver, version


def cluster(nodes: int = 4, policy: str = "replica:3") -> Driver:
    d = Driver()
    for i in range(1, nodes + 1):
        d.run(c.RegisterNode(NodeInfo(f"n{i}", f"127.0.0.1:{7000 + i}")))
    d.run(c.CreateBucket("b", "alice", policy, 1.0))
    return d


def state(d: Driver, node: str) -> str:
    return d.fsm.nodes[node].state


def test_drain_refused_when_it_leaves_fewer_up_nodes_than_the_widest_policy() -> None:
    d = cluster(4)
    assert membership.check_change(d.fsm, "n1", "drain") == "up"
    d.run(c.SetNodeState("n1", "draining"))
    with pytest.raises(InvalidRequest, match="leave 2 up node.*replica:3 needs 3"):
        membership.check_change(d.fsm, "n2", "drain")
    d.run(c.CreateBucket("e", "alice", "ec:2+1", 1.0))
    with pytest.raises(InvalidRequest, match="needs 3"):
        membership.check_change(d.fsm, "n2", "remove", force=True)


def test_widest_policy_counts_erasure_width() -> None:
    d = cluster(8)
    d.run(c.CreateBucket("e", "alice", "ec:4+2", 1.0))
    assert membership.widest_policy(d.fsm) == (6, "ec:4+2")
    assert membership.widest_policy(d.fsm, "replica:7") == (7, "replica:7")


def test_drain_refused_when_the_others_lack_the_space() -> None:
    d = cluster(5)
    free = {"n2": 100, "n3": 100, "n4": 100, "n5": 100}
    assert membership.check_change(d.fsm, "n1", "drain", used_bytes={"n1": 400}, free_bytes=free) == "up"
    with pytest.raises(InvalidRequest, match="holds 401 bytes, the other up nodes have 400 bytes free"):
        membership.check_change(d.fsm, "n1", "drain", used_bytes={"n1": 401}, free_bytes=free)


def test_remove_refused_while_the_node_holds_data_unless_forced() -> None:
    d = cluster(5)
    d.run(c.PutObject(version(key="a", placement=("n1", "n2", "n3"))))
    with pytest.raises(InvalidRequest, match="holds copies of 1 key"):
        membership.check_change(d.fsm, "n1", "remove")
    assert membership.check_change(d.fsm, "n1", "remove", force=True) == "up"
    assert membership.check_change(d.fsm, "n4", "remove") == "up"  # holds nothing


def test_operations_need_the_right_starting_state() -> None:
    d = cluster(4)
    with pytest.raises(InvalidRequest, match="is up: cannot add"):
        membership.check_change(d.fsm, "n1", "add")
    d.run(c.SetNodeState("n4", "joining"))
    assert membership.check_change(d.fsm, "n4", "add") == "joining"
    with pytest.raises(InvalidArgument):
        membership.check_change(d.fsm, "n9", "drain")
    with pytest.raises(InvalidArgument):
        membership.check_change(d.fsm, "n1", "explode")


def test_guarded_state_change_is_a_no_op_when_the_state_moved_meanwhile() -> None:
    d = cluster(4)
    was = membership.check_change(d.fsm, "n1", "drain")
    d.run(c.SetNodeState("n1", "down"))  # the liveness monitor got there first
    d.run(c.SetNodeState("n1", membership.TARGET_STATE["drain"], if_state=was))
    assert state(d, "n1") == "down"


def test_set_weight_changes_the_ring_and_bumps_the_epoch() -> None:
    d = cluster(4)
    before = d.fsm.cluster_map()
    after = d.run(c.SetNodeWeight("n1", 3.0))
    assert after.epoch == before.epoch + 1 and after.node("n1").weight == 3.0
    owners = [Ring(after).locate("b", f"k{i}", 1)[0] for i in range(2000)]
    assert owners.count("n1") > 2000 * 0.35  # 3 of 6 weight units; ~50 %
    with pytest.raises(InvalidArgument):
        d.fsm.apply(d.fsm.applied_index + 1, c.SetNodeWeight("n1", 0)).raise_for_error()


def test_joining_registration_and_heartbeats_keep_the_operators_weight() -> None:
    sent = NodeInfo("a", "h:1", state="joining", weight=1.0)
    assert registration(None, sent).state == "joining"
    assert registration(None, sent, auto_add=True).state == "up"
    known = NodeInfo("a", "h:1", state="up", weight=4.0)
    assert registration(known, sent) is None  # same address and zone: the map's weight stays
    moved = registration(NodeInfo("a", "h:0", state="draining", weight=4.0), sent)
    assert moved is not None and (moved.state, moved.weight) == ("draining", 4.0)


def test_joining_nodes_are_not_in_the_ring() -> None:
    d = cluster(3)
    d.run(c.RegisterNode(NodeInfo("n4", "127.0.0.1:7004", state="joining")))
    ring = Ring(d.fsm.cluster_map())
    assert all("n4" not in ring.locate("b", f"k{i}", 3) for i in range(200))


def test_ok_to_stop_counts_blobs_that_would_fall_below_write_quorum() -> None:
    d = cluster(5)
    d.run(c.PutObject(version(key="a", placement=("n1", "n2", "n3"))))
    d.run(c.PutObject(version(key="b", placement=("n1", "n4", "n5"))))
    ok = membership.ok_to_stop(d.fsm, "n1")
    assert ok.ok and ok.keys_checked == 2  # W = 2 of 3: two copies stay
    d.run(c.SetNodeState("n2", "down"))
    no = membership.ok_to_stop(d.fsm, "n1")
    assert not no.ok and (no.blobs, no.keys, no.sample) == (1, 1, ("b/a",))
    assert not membership.ok_to_stop(d.fsm, "n1", unavailable={"n4"}).ok  # the leader's own view counts
    assert membership.ok_to_stop(d.fsm, "n3").ok is False  # n3 + down n2: only n1 left for "a"
    assert membership.ok_to_stop(d.fsm, "n5").ok  # "b" keeps n1 and n4


def test_an_operators_out_is_not_undone_by_a_heartbeat_sent_before_it() -> None:
    from tests.unit.test_liveness_monitor import cmap, elected_monitor, moves

    mon = elected_monitor()
    mon.heartbeat("a", {}, 5.0)  # its last heartbeat, just before it was killed
    assert moves(mon, cmap(a="up"), 5.2) == {}
    assert moves(mon, cmap(a="out"), 5.5) == {}  # marked out by an operator at 5.4
    assert moves(mon, cmap(a="out"), 6.0) == {}
    mon.heartbeat("a", {}, 6.5)  # it really came back
    assert moves(mon, cmap(a="out"), 6.6) == {"a": "up"}


def test_two_drains_checked_against_one_map_cannot_both_apply() -> None:
    """Both pass the up-node guard when checked at once; the command's own condition,
    decided on apply in log order, lets only the first through."""
    d = cluster(4)
    keep = membership.min_writable(d.fsm, "drain")
    assert keep == 3 and membership.min_writable(d.fsm, "add") == 0
    first = membership.check_change(d.fsm, "n1", "drain")
    second = membership.check_change(d.fsm, "n2", "drain")  # same map: passes too
    d.run(c.SetNodeState("n1", "draining", if_state=first, min_writable=keep))
    d.run(c.SetNodeState("n2", "draining", if_state=second, min_writable=keep))
    assert (state(d, "n1"), state(d, "n2")) == ("draining", "up")
    with pytest.raises(InvalidRequest, match="leave 2 up node"):
        membership.check_change(d.fsm, "n2", "drain")
    d.run(c.SetNodeState("n4", "down", min_writable=0))  # the liveness monitor is never held back
    assert state(d, "n4") == "down"
    d.run(c.SetNodeState("n1", "up", min_writable=3))  # a change that adds a writable node passes
    assert state(d, "n1") == "up"


def test_the_space_guard_counts_what_other_draining_nodes_still_hold() -> None:
    """What another draining node still has to move is the bytes still placed on it (its
    heartbeat's used bytes lag, and count copies nothing references): a second drain that
    fits once most of the first one moved is accepted."""
    d = cluster(6)
    d.run(c.PutObject(version(key="a", vid="v1", size=250, placement=("n1", "n3", "n4"))))
    d.run(c.PutObject(version(key="a2", vid="v2", size=50, placement=("n1", "n3", "n4"))))
    d.run(c.PutObject(version(key="b", vid="v3", size=200, placement=("n2", "n5", "n6"))))
    assert membership.left_to_move(d.fsm, "n1") == 300 and membership.left_to_move(d.fsm, "n2") == 200
    free = {f"n{i}": 100 for i in range(1, 7)}
    used = {"n1": 300, "n2": 200}  # as heartbeats report (and keep reporting for a while)
    assert membership.check_change(d.fsm, "n1", "drain", used_bytes=used, free_bytes=free) == "up"
    d.run(c.SetNodeState("n1", "draining"))
    with pytest.raises(InvalidRequest, match="holds 200 bytes \\(and 300 bytes of nodes still draining\\), the "
                                             "other up nodes have 400 bytes free"):
        membership.check_change(d.fsm, "n2", "drain", used_bytes=used, free_bytes=free)
    d.run(c.RepairPlacement("b", "a", "v1", 0, ["n1", "n3", "n4"], ["n5", "n3", "n4"]))  # 250 of n1's 300 moved
    assert membership.left_to_move(d.fsm, "n1") == 50 and membership.draining_with_data(d.fsm) == ["n1"]
    assert membership.check_change(d.fsm, "n2", "drain", used_bytes=used, free_bytes=free) == "up"  # 200 + 50
    d.run(c.RepairPlacement("b", "a2", "v2", 0, ["n1", "n3", "n4"], ["n6", "n3", "n4"]))  # n1 drained
    assert membership.draining_with_data(d.fsm) == [] and membership.left_to_move(d.fsm, "n1") == 0
    assert membership.check_change(d.fsm, "n2", "drain", used_bytes=used, free_bytes=free) == "up"


def test_left_to_move_counts_ec_shards_and_parts_of_uploads_in_progress() -> None:
    from tests.unit.test_upload_part_moves import start

    d = cluster(6)
    d.run(c.CreateBucket("e", "alice", "ec:4+2", 1.0))
    d.run(c.PutObject(version(bucket="e", key="x", size=1001, policy="ec:4+2",
                              placement=("n1", "n2", "n3", "n4", "n5", "n6"))))
    assert membership.left_to_move(d.fsm, "n1") == 251  # one shard: 1001 / 4, rounded up
    (part,) = start(d, parts=1, key="big", uid="u1")
    holder = part.placement[0]
    assert membership.left_to_move(d.fsm, holder) == 251 + part.size
    restored = type(d.fsm).restore(d.fsm.snapshot())
    assert restored.placements.bytes_on == d.fsm.placements.bytes_on


def test_ok_to_stop_counts_parts_of_uploads_in_progress() -> None:
    """A node whose stop would leave a part of an upload in progress below its write quorum
    is not ok to stop, with the parts and uploads counted (no object involved)."""
    from tests.unit.test_upload_part_moves import start

    d = cluster(5)
    (part,) = start(d, parts=1, key="big", uid="u1")
    a, b, _ = part.placement
    ok = membership.ok_to_stop(d.fsm, a)
    assert ok.ok and (ok.keys_checked, ok.parts_checked, ok.parts) == (0, 1, 0)  # W = 2 of 3: two copies stay
    d.run(c.SetNodeState(b, "down"))
    no = membership.ok_to_stop(d.fsm, a)
    assert not no.ok and (no.blobs, no.parts, no.uploads, no.upload_sample) == (0, 1, 1, ("b/big u1",))
    assert no.to_dict()["upload_parts_below_write_quorum"] == 1
    outside = next(f"n{i}" for i in range(1, 6) if f"n{i}" not in part.placement)
    assert membership.ok_to_stop(d.fsm, outside).ok  # holds no copy of it


def test_ok_to_stop_renders_both_answers() -> None:
    from ops.cli.nodes import render_stop

    yes = {"node": "s1", "ok": True, "blobs_below_write_quorum": 0, "keys_below_write_quorum": 0,
           "keys_checked": 4, "sample": [], "upload_parts_below_write_quorum": 0, "uploads_below_write_quorum": 0,
           "upload_parts_checked": 3, "upload_sample": []}
    assert render_stop(yes) == ("yes: stopping s1 leaves every object and upload part at its write quorum "
                                "(4 keys, 3 parts of multipart uploads in progress checked)")
    no = {**yes, "ok": False, "upload_parts_below_write_quorum": 2, "uploads_below_write_quorum": 1,
          "upload_sample": ["b/big u1"]}
    assert render_stop(no) == ("no: stopping s1 would leave 2 part(s) of 1 multipart upload(s) in progress "
                               "below their write quorum (e.g. upload b/big u1)")
    both = {**no, "blobs_below_write_quorum": 3, "keys_below_write_quorum": 2, "sample": ["b/a", "b/c"]}
    assert render_stop(both).startswith("no: stopping s1 would leave 3 blob(s) of 2 key(s) and 2 part(s) of 1 "
                                        "multipart upload(s) in progress below their write quorum (e.g. b/a, b/c, "
                                        "upload b/big u1)")


def test_the_ok_to_stop_endpoint_answers_412_for_an_upload_part_below_write_quorum() -> None:
    """``GET /v1/nodes/ok-to-stop`` on the membership routes over a local state machine:
    200 while the part keeps its write quorum, 412 (with the counts) once another holder of
    it is down; ``answer=always`` gives 200 either way."""
    import asyncio
    from types import SimpleNamespace

    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from metadata import membership_http, node_health
    from tests.unit.test_repair_service import LocalReplicator
    from tests.unit.test_upload_part_moves import start

    d = cluster(5)
    (part,) = start(d, parts=1, key="big", uid="u1")
    a, b, _ = part.placement
    rep = LocalReplicator(d)
    monitor = SimpleNamespace(settings=SimpleNamespace(node_timeout=1.0), heartbeat_ages=lambda now: {})
    app = web.Application()
    app[node_health.LIVENESS] = SimpleNamespace(monitor=monitor, clock=lambda: 0.0)
    membership_http.add_routes(app, lambda request: rep, "replica:3")

    async def go() -> list[tuple[int, dict]]:
        out = []
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
            for query in (f"node={a}", "down", f"node={a}", f"node={a}&answer=always"):
                if query == "down":
                    d.run(c.SetNodeState(b, "down"))
                    continue
                async with session.get(server.make_url(f"/v1/nodes/ok-to-stop?{query}")) as resp:
                    out.append((resp.status, await resp.json()))
        return out

    (s1, yes), (s2, no), (s3, always) = asyncio.run(go())
    assert (s1, yes["ok"], yes["upload_parts_checked"]) == (200, True, 1)
    assert (s2, no["ok"], no["upload_parts_below_write_quorum"], no["uploads_below_write_quorum"]) == (412, False, 1, 1)
    assert (s3, always["ok"]) == (200, False)
