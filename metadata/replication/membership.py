"""Membership operations run on the leader: add (learner first, then voter), remove,
and leadership transfer.

Also :func:`hand_over_for`, the leader's answer to a follower that lost entries.

Adding ``id=host:port``: the node (started empty with ``--join``) is appended as a
learner with its address in the change's context, so every member learns where it is;
once its log matches the leader's commit index as of that moment, it is promoted to
voter. One change at a time (the core refuses a second while one is uncommitted; we
retry such refusals for a few seconds). Each step waits until the change is applied on
the leader. Every operation is idempotent: adding a voter or removing a non-member says
so without changing anything.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from metadata.raft import ConfChange, ConfChangeType, Role
from metadata.replication.driver import LeaderBusy, RaftReplicator
from objstore.errors import InvalidArgument, ServiceUnavailable

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
LOST_NOTICE_MEMORY = 15.0  # seconds a follower that reported lost entries counts as recovering


async def _retrying(rep: RaftReplicator, step: Callable[[], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + RETRY_SECONDS
    while True:
        try:
            await step()
            return
        except LeaderBusy:
            if loop.time() >= end:
                raise
            await asyncio.sleep(rep.settings.tick_seconds * 2)


def _require_leader(rep: RaftReplicator) -> None:
    if not rep.is_leader():
        raise rep.not_leader()


def _check_id(node_id: str) -> None:
    if not node_id or "=" in node_id or "," in node_id or "/" in node_id:
        raise InvalidArgument(f"invalid metadata node id {node_id!r}")


async def add_member(rep: RaftReplicator, node_id: str, address: str, catch_up_timeout: float = 120.0
                     ) -> dict[str, Any]:
    """Add ``node_id`` at ``address`` as a learner, wait for it to catch up, promote it."""
    _check_id(node_id)
    host, _, port = address.rpartition(":")
    # ASCII digits only (str.isdigit() takes '²'), and a port TCP has: the address goes into
    # the Raft configuration, and every member calls it.
    if not host or not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) <= 65535):
        raise InvalidArgument(f"invalid address {address!r}: expected host:port")
    _require_leader(rep)
    conf = rep.node.conf_state
    if node_id in conf.voters:
        return {"node": node_id, "result": "already a voter"}
    ctx = address.encode()
    if node_id not in conf.learners:
        await _retrying(rep, lambda: rep.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, node_id, ctx)))
    target = rep.node.log.committed

    def caught_up() -> bool:
        pr = rep.node.status().progress.get(node_id)
        return rep.node.role is not Role.LEADER or (pr is not None and pr["match"] >= target)

    if not await rep.wait_until(caught_up, catch_up_timeout):
        raise ServiceUnavailable(f"{node_id} did not catch up within {catch_up_timeout:g}s; it stays a learner "
                                 "(check that it runs with --join and is reachable, then add it again)")
    _require_leader(rep)
    await _retrying(rep, lambda: rep.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, node_id, ctx)))
    return {"node": node_id, "result": "added as a voter", "address": address}


async def remove_member(rep: RaftReplicator, node_id: str) -> dict[str, Any]:
    """Remove a voter or learner (the leader itself included: it then steps down)."""
    _check_id(node_id)
    _require_leader(rep)
    if node_id not in rep.node.conf_state.members():
        return {"node": node_id, "result": "not a member"}
    await _retrying(rep, lambda: rep.propose_conf_change(ConfChange(ConfChangeType.REMOVE, node_id)))
    return {"node": node_id, "result": "removed"}


async def transfer_leader(rep: RaftReplicator, node_id: str, timeout: float | None = None) -> dict[str, Any]:
    """Hand leadership to voter ``node_id``; returns once it leads (or raises 503)."""
    _check_id(node_id)
    _require_leader(rep)
    if node_id == rep.id:
        return {"node": node_id, "result": "already the leader"}
    rep.transfer_leadership(node_id)  # raises InvalidArgument for a non-voter
    limit = timeout or rep.settings.tick_seconds * rep.settings.election_ticks * 3
    if not await rep.wait_until(lambda: rep.node.lead == node_id, limit):
        raise ServiceUnavailable(f"leadership did not move to {node_id} within {limit:g}s; retry")
    return {"node": node_id, "result": "leader", "address": rep.addresses.get(node_id)}


def hand_over_for(rep: RaftReplicator, frm: str, last_index: int) -> str:
    """``frm`` (recovering from a damaged log) says its log ends at ``last_index``, below
    what this leader believes it holds. The core never lowers that belief, so hand
    leadership to another active voter: a new leader probes every follower's log afresh.
    Followers that reported lost entries recently are no candidates (they would refuse to
    campaign). Returns the target, or "" when there is none: then ``frm`` waits, unable to
    catch up until a trusted voter can lead (safe, possibly unavailable)."""
    now = time.monotonic()
    rep.lost_notices[frm] = now
    st = rep.node.status()
    if rep.node.role is not Role.LEADER or st.progress.get(frm, {}).get("match", 0) <= last_index:
        return ""
    recovering = {pid for pid, t in rep.lost_notices.items() if now - t < LOST_NOTICE_MEMORY}
    candidates = [(p["match"], pid) for pid, p in st.progress.items()
                  if pid != rep.id and pid not in recovering and pid in st.conf_state.voters
                  and p.get("recent_active")]
    if not candidates:
        return ""
    target = max(candidates)[1]
    log.warning("raft node %s: %s lost entries after %d; handing leadership to %s", rep.id, frm, last_index, target)
    rep.transfer_leadership(target)
    return target
