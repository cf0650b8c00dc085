"""Parts of multipart uploads in progress on a draining node: the uploads' per-node index
(metadata.fsm.uploads), their moves (metadata.repair.rebalance.RebalanceState.plan) committed by a
RepairPlacement naming the upload, the remove guard, and garbage collection's view of a
moved part's old copy. On the pure state machine."""
from __future__ import annotations

import pytest

from metadata import membership
from metadata.api import commands as c
from metadata.api.upload_records import MIN_PART_SIZE, MultipartUpload, UploadedPart
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.references import ORPHAN, REFERENCED, blob_status
from metadata.repair.rebalance import RebalanceState
from objstore.errors import InvalidRequest
from objstore.ring import Ring
from objstore.types import NodeInfo, PartRef
from tests.unit.test_fsm import Driver
from tests.unit.test_gc_guard import vid_at
from tests.unit.test_rebalance_planner import ZONES, settle

NOW = 1_700_000_000.0


def cluster(nodes: int = 6, policy: str = "replica:3") -> Driver:
    d = Driver()
    for i in range(1, nodes + 1):
        d.run(c.RegisterNode(NodeInfo(f"n{i}", f"127.0.0.1:{7000 + i}", zone=ZONES[(i - 1) % 3])))
    d.run(c.CreateBucket("b", "alice", policy, 1.0))
    return d


def start(d: Driver, key: str = "k", uid: str = "u1", parts: int = 4, policy: str = "replica:3",
          width: int = 3) -> list[PartRef]:
    """An upload of ``parts`` parts, each placed on its ring owners (as the gateway places them)."""
    d.run(c.CreateMultipartUpload(MultipartUpload("b", key, uid, initiated=NOW, owner="alice", policy=policy)))
    ring = Ring(d.fsm.cluster_map())
    refs = []
    for n in range(1, parts + 1):
        vid = vid_at(NOW + n)
        ref = PartRef(n, vid, MIN_PART_SIZE, f"{n:032x}", tuple(ring.locate("b", vid, width)))
        d.run(c.PutPart("b", key, uid, UploadedPart(ref, NOW + n)))
        refs.append(ref)
    return refs


def index_by_scan(fsm: MetadataFSM) -> dict[str, dict[tuple[str, str, str], int]]:
    out: dict[str, dict[tuple[str, str, str], int]] = {}
    for bucket, uploads in fsm.uploads.buckets.items():
        for (key, uid), up in uploads.items():
            for p in up.parts.values():
                for n in set(p.part.placement) - {""}:
                    ups = out.setdefault(n, {})
                    ups[(bucket, key, uid)] = ups.get((bucket, key, uid), 0) + 1
    return out


def test_the_per_node_index_follows_every_part_change_and_snapshots() -> None:
    d = cluster()
    refs = start(d, parts=5)
    start(d, key="other", uid="u2", parts=2)
    assert d.fsm.uploads.by_node == index_by_scan(d.fsm) != {}
    moved = PartRef(2, vid_at(NOW + 20), MIN_PART_SIZE, "f" * 32, ("n1", "n4", "n5"))
    d.run(c.PutPart("b", "k", "u1", UploadedPart(moved, NOW + 20)))  # part 2 uploaded again elsewhere
    assert d.fsm.uploads.by_node == index_by_scan(d.fsm)
    restored = MetadataFSM.restore(d.fsm.snapshot())
    assert restored.uploads.by_node == d.fsm.uploads.by_node
    d.run(c.AbortMultipartUpload("b", "other", "u2"))
    assert d.fsm.uploads.by_node == index_by_scan(d.fsm)
    rows = [[p.number, p.etag, {}] for p in refs[:1]] + [[2, "f" * 32, {}]] + [[p.number, p.etag, {}] for p in refs[2:]]
    d.run(c.CompleteMultipartUpload("b", "k", "u1", rows, vid_at(NOW + 30), NOW + 30, {}))
    assert d.fsm.uploads.by_node == {} and d.fsm.uploads.part_count_on("n1") == 0


def test_a_part_placement_changes_only_as_expected() -> None:
    d = cluster()
    ref = start(d, parts=1)[0]
    old, new = list(ref.placement), ["n6" if n == ref.placement[0] else n for n in ref.placement]
    stale = d.run(c.RepairPlacement("b", "k", ref.version_id, 1, ["x", "y", "z"], new, upload_id="u1"))
    assert (stale.applied, stale.reason) == (False, "stale")
    gone = d.run(c.RepairPlacement("b", "k", vid_at(NOW + 9), 1, old, new, upload_id="u1"))  # not that part's blob
    assert (gone.applied, gone.reason) == (False, "deleted")
    assert d.run(c.RepairPlacement("b", "k", ref.version_id, 1, old, new, upload_id="u1")).applied
    assert d.fsm.uploads.list_parts("b", "k", "u1").parts[0].part.placement == tuple(new)
    assert d.fsm.uploads.by_node == index_by_scan(d.fsm)
    assert not d.run(c.RepairPlacement("b", "k", ref.version_id, 1, new, old, upload_id="nope")).applied


@pytest.mark.parametrize("policy,width,nodes", [("replica:3", 3, 6), ("ec:2+1", 3, 6), ("ec:4+2", 6, 8)])
def test_draining_moves_every_part_off_and_completion_lists_the_new_placement(policy, width, nodes) -> None:
    d = cluster(nodes, policy)
    refs = start(d, parts=12, policy=policy, width=width)
    node = next(n for n in (f"n{i}" for i in range(1, nodes + 1)) if d.fsm.uploads.part_count_on(n))
    on_node = d.fsm.uploads.part_count_on(node)
    d.run(c.SetNodeState(node, "draining"))
    state = RebalanceState(walk=0)
    assert not state.status(0, 0, 0.0, on_node)["balanced"]
    with pytest.raises(InvalidRequest, match=f"{on_node} part\\(s\\) of multipart uploads in progress"):
        membership.check_change(d.fsm, node, "remove")
    moves = settle(d, state, walk=False)
    assert len(moves) == on_node and all(t.upload_id == "u1" and t.target != node for t in moves)
    assert d.fsm.uploads.part_count_on(node) == 0
    assert membership.check_change(d.fsm, node, "remove") == "draining"
    parts = d.fsm.uploads.list_parts("b", "k", "u1").parts
    for before, now in zip(refs, parts):
        assert len([n for n in now.part.placement if n]) == width and node not in now.part.placement
        assert len(set(now.part.placement) - set(before.placement)) <= 1  # one copy swapped, at most
    d.run(c.CompleteMultipartUpload("b", "k", "u1", [[p.number, p.etag, {}] for p in refs],
                                    vid_at(NOW + 40), NOW + 40, {}))
    assert all(node not in p.placement for p in d.fsm.get_object("b", "k").parts)


def test_the_old_copy_of_a_moved_part_is_an_orphan_once_old_enough() -> None:
    d = cluster()
    ref = start(d, parts=1)[0]
    gone = ref.placement[0]
    spare = next(f"n{i}" for i in range(1, 7) if f"n{i}" not in ref.placement)
    new = [spare if n == gone else n for n in ref.placement]
    d.run(c.MarkCollectable(NOW + 50))
    assert blob_status(d.fsm, "b", "k", ref.version_id, gone, NOW + 2) == REFERENCED
    assert d.run(c.RepairPlacement("b", "k", ref.version_id, 1, list(ref.placement), new, NOW + 60,
                                   upload_id="u1")).applied
    assert blob_status(d.fsm, "b", "k", ref.version_id, gone, NOW + 2) == ORPHAN
    assert blob_status(d.fsm, "b", "k", ref.version_id, spare, NOW + 60) == REFERENCED
    assert blob_status(d.fsm, "b", "k", ref.version_id) == REFERENCED  # without a node: as before


@pytest.mark.parametrize("policy,width,nodes", [("replica:3", 3, 6), ("ec:2+1", 3, 6)])
def test_repair_recreates_parts_of_uploads_in_progress_a_lost_node_held(policy, width, nodes) -> None:
    """A node holding parts of an upload in progress is lost (``out``): repair plans a task
    per part it held (found through the uploads' per-node index), committed by a
    RepairPlacement naming the upload; the parts are back at full policy on holding nodes,
    and completing the upload lists the repaired placements."""
    from metadata.fsm.placement_index import survivors
    from metadata.repair.planner import plan, upload_parts_below

    d = cluster(nodes, policy)
    refs = start(d, parts=8, policy=policy, width=width)
    lost = max((f"n{i}" for i in range(1, nodes + 1)), key=d.fsm.uploads.part_count_on)
    on_lost = d.fsm.uploads.part_count_on(lost)
    assert on_lost >= 2 and plan(d.fsm) == []
    assert upload_parts_below(d.fsm) == 0
    d.run(c.SetNodeState(lost, "out"))
    assert upload_parts_below(d.fsm) == on_lost
    for _ in range(width):  # one copy per task per blob: a few rounds at most
        tasks = plan(d.fsm)
        if not tasks:
            break
        for t in tasks:
            assert t.upload_id == "u1" and t.target != lost and t.part in range(1, 9)
            out = d.run(c.RepairPlacement(t.bucket, t.key, t.version_id, t.part, list(t.expected),
                                          list(t.placement), upload_id=t.upload_id))
            assert out.applied, out
    assert plan(d.fsm) == [] and d.fsm.uploads.part_count_on(lost) == 0 and upload_parts_below(d.fsm) == 0
    parts = d.fsm.uploads.list_parts("b", "k", "u1").parts
    for p in parts:
        alive, w, _ = survivors(policy, p.part.placement, d.fsm.placements.holding)
        assert alive == w == width and lost not in p.part.placement
    d.run(c.CompleteMultipartUpload("b", "k", "u1", [[p.number, p.etag, {}] for p in refs],
                                    vid_at(NOW + 40), NOW + 40, {}))
    assert [p.placement for p in d.fsm.get_object("b", "k").parts] == [p.part.placement for p in parts]


@pytest.mark.parametrize("policy,width", [("replica:3", 3), ("ec:2+1", 3)])
def test_an_added_node_or_a_weight_change_moves_parts_of_uploads_in_progress(policy, width) -> None:
    """The part walk finds the parts an added node now owns (no node drains: the per-node
    index has nothing to say), moves only those, one copy swapped per part; a weight change
    the same; status is not balanced until they moved, and completion lists the new
    placements."""
    d = cluster(6, policy)
    start(d, parts=30, policy=policy, width=width)
    state = RebalanceState(walk=7)  # several rounds of the part walk
    assert settle(d, state) == []
    d.run(c.RegisterNode(NodeInfo("n7", "127.0.0.1:7007", zone="a")))
    ring = Ring(d.fsm.cluster_map())
    listed = [p.part for p in d.fsm.uploads.list_parts("b", "k", "u1").parts]
    before = {p.number: p.placement for p in listed}
    owned = {p.number for p in listed if "n7" in ring.locate("b", p.version_id, width)}
    assert owned
    state.plan(d.fsm, limit=0)  # the first round sees the change: not balanced yet
    assert not state.status(0, 0, 0.0)["balanced"]
    moves = settle(d, state)
    assert {t.part for t in moves} == owned and all(t.upload_id == "u1" and t.target == "n7" for t in moves)
    assert state.status(0, 0, 0.0)["balanced"] and not state.misplaced_parts
    parts = d.fsm.uploads.list_parts("b", "k", "u1").parts
    for p in parts:
        assert set(p.part.placement) == set(ring.locate("b", p.part.version_id, width))
        assert len(set(p.part.placement) - set(before[p.part.number])) == (1 if p.part.number in owned else 0)
    d.run(c.SetNodeWeight("n7", 3.0))
    more = settle(d, state)
    assert more and all(t.upload_id == "u1" and t.target == "n7" for t in more)
    ring = Ring(d.fsm.cluster_map())
    parts = d.fsm.uploads.list_parts("b", "k", "u1").parts
    assert all(set(p.part.placement) == set(ring.locate("b", p.part.version_id, width)) for p in parts)
    d.run(c.CompleteMultipartUpload("b", "k", "u1", [[p.part.number, p.part.etag, {}] for p in parts],
                                    vid_at(NOW + 40), NOW + 40, {}))
    assert [p.placement for p in d.fsm.get_object("b", "k").parts] == [p.part.placement for p in parts]


def test_a_part_below_policy_is_repaired_before_it_is_moved_off_a_draining_node() -> None:
    """As for an object's blobs: a draining node's part that also lost a copy elsewhere is
    repair's first (a copy re-created, the draining node's still counted), then moved."""
    from metadata.repair.planner import plan

    d = cluster(6)
    (part,) = start(d, parts=1)
    draining, lost, _ = part.placement
    d.run(c.SetNodeState(draining, "draining"))
    d.run(c.SetNodeState(lost, "out"))
    state = RebalanceState(walk=0)
    moves, _ = state.plan(d.fsm)
    assert moves == []  # below policy: not a move
    (fix,) = plan(d.fsm)
    assert fix.upload_id == "u1" and not fix.move and draining in fix.placement and lost not in fix.placement
    assert d.run(c.RepairPlacement("b", "k", fix.version_id, 1, list(fix.expected), list(fix.placement),
                                   upload_id="u1")).applied
    (move,) = settle(d, state, walk=False)
    assert move.move and draining not in move.placement and lost not in move.placement
    assert d.fsm.uploads.part_count_on(draining) == 0


def test_upload_parts_that_give_no_repair_task_do_not_hide_the_others() -> None:
    """A lost node's first parts give no task (here: a repair of each is in flight); with
    few parts examined per round, the next rounds resume after them, so the parts behind
    them are repaired too (each round starting at the node's first parts, they never were)."""
    from metadata.repair.part_walk import PartWalk
    from metadata.repair.planner import plan_round

    d = cluster(6)
    start(d, parts=12)
    lost = max((f"n{i}" for i in range(1, 7)), key=d.fsm.uploads.part_count_on)
    on_lost = [up.part for _, up in d.fsm.uploads.parts_on(lost)]
    assert len(on_lost) >= 5
    d.run(c.SetNodeState(lost, "out"))
    busy = {("b", "k", p.version_id, p.number) for p in on_lost[:3]}
    assert plan_round(d.fsm, busy=busy, scan=3)[0] == []  # the first three fill the round
    walk = PartWalk()
    planned: set[int] = set()
    for _ in range(len(on_lost)):
        tasks, _ = plan_round(d.fsm, busy=busy, scan=3, part_walk=walk)
        assert all(t.upload_id == "u1" and t.target != lost for t in tasks)
        planned |= {t.part for t in tasks}
    assert planned == {p.number for p in on_lost[3:]}


def test_draining_parts_that_give_no_move_do_not_stop_the_part_walk() -> None:
    """Parts on a draining node that give no move (no target with room) take at most half
    a round's scan and are resumed after where the last round stopped: every one of them is
    examined (and counted misplaced, bytes included), and the walk over all parts goes on to
    its end."""
    d = cluster(6)
    start(d, parts=12)
    draining = max((f"n{i}" for i in range(1, 7)), key=d.fsm.uploads.part_count_on)
    on_draining = {up.part.number for _, up in d.fsm.uploads.parts_on(draining)}
    assert len(on_draining) >= 5
    d.run(c.SetNodeState(draining, "draining"))
    state = RebalanceState(walk=3)
    full = {f"n{i}": 0 for i in range(1, 7)}
    for _ in range(12):
        tasks, _ = state.plan(d.fsm, free_bytes=full, scan=4)
        assert tasks == []
    assert {k[3] for k in state.misplaced_parts} == on_draining
    assert state.part_cursor is None  # the walk over every part reached its end
    st = state.status(0, 0, 0.0, draining_parts=len(on_draining))
    assert st["bytes_misplaced"] == len(on_draining) * MIN_PART_SIZE and not st["balanced"]


def test_the_part_walk_resumes_inside_an_upload_with_more_parts_than_a_round_examines() -> None:
    d = cluster(6)
    start(d, parts=10)
    state = RebalanceState(walk=100)
    state.plan(d.fsm, scan=4)
    assert state.part_cursor is not None
    for _ in range(6):
        state.plan(d.fsm, scan=4)
    assert state.part_cursor is None and state.status(0, 0, 0.0)["balanced"]


def test_the_part_walk_wraps_around_and_goes_on_when_its_upload_is_gone() -> None:
    from metadata.repair.part_walk import PartWalk

    d = cluster(6)
    start(d, uid="u1", parts=6)
    start(d, uid="u2", parts=6)
    node = max((f"n{i}" for i in range(1, 7)), key=d.fsm.uploads.part_count_on)
    every = [(info.upload_id, up.part.number) for info, up in d.fsm.uploads.parts_on(node)]
    walk = PartWalk()
    taken = []
    for _ in range(len(every) + 2):  # two at a time, around twice
        for i, (info, up) in enumerate(walk.parts(d.fsm.uploads, [node])):
            if i == 2:
                break
            taken.append((info.upload_id, up.part.number))
    assert sorted(taken[:len(every)]) == sorted(every)  # each once before any again
    assert taken[len(every):2 * len(every)] == taken[:len(every)]  # then in the same order
    walk.at = (node, ("b", "k", "u1"), max(n for u, n in every if u == "u1"))
    d.run(c.AbortMultipartUpload("b", "k", "u1"))
    first = next(walk.parts(d.fsm.uploads, [node]))
    assert (first[0].upload_id, first[1].part.number) == min((u, n) for u, n in every if u == "u2")


def test_the_part_walk_resumes_by_bisection_not_by_a_pass_over_the_uploads_before_it() -> None:
    """Resuming at a node's 30th upload looks up no upload before it (the walk used to sort
    and skip the node's uploads on every round: a cost in the uploads on the node)."""
    from metadata.repair.part_walk import PartWalk

    d = cluster(6)
    for i in range(40):
        start(d, uid=f"u{i:02d}", parts=1)
    node = max((f"n{i}" for i in range(1, 7)), key=d.fsm.uploads.part_count_on)
    held = list(d.fsm.uploads.by_node[node])
    assert len(held) >= 10 and held == sorted(held)
    at = held[len(held) // 2]
    walk = PartWalk()
    walk.at = (node, at, 1)
    looked_up: list[tuple[str, str]] = []
    bucket = d.fsm.uploads.buckets["b"]

    class Recording(dict):
        def get(self, k, default=None):  # noqa: ANN001, ANN202
            looked_up.append(k)
            return bucket.get(k, default)

    d.fsm.uploads.buckets = {"b": Recording()}
    first = next(walk.parts(d.fsm.uploads, [node]))
    assert (first[0].bucket, first[0].key, first[0].upload_id) == held[len(held) // 2 + 1]
    assert looked_up == [(at[1], at[2]), (held[len(held) // 2 + 1][1], held[len(held) // 2 + 1][2])]
