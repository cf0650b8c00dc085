"""A new metadata node asks the group to add it: one command to join a running cluster.

A node started with ``join`` (empty data dir) whose own ``id=host:port`` is among its
``peers`` asks the other peers (their leader, following NotLeader redirects) to add it at
that address (:func:`metadata.replication.membership.add_member`: learner, then voter once
caught up), retrying until the group answers. Without its own entry in ``peers`` it waits
to be added by ``objstore metadata add`` as before.

Invariants: adding is idempotent on the leader (an existing voter is left as it is), so a
restart with the same config asks again harmlessly; the task never raises: it logs and
retries until it is answered or cancelled.
"""
from __future__ import annotations

import asyncio
import logging

from metadata.api.client import MetadataClient
from metadata.replication.driver import parse_peers
from objstore.config import MetadataConfig
from objstore.tls import client_context

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
CHANGE_TIMEOUT = 180.0  # a learner may take a while to catch up before it is promoted


def self_address(cfg: MetadataConfig) -> str | None:
    """The address this node asks to be added at, or None when it should not ask."""
    if not cfg.join:
        return None
    return parse_peers(cfg.peers).get(cfg.node_id)


async def ask_to_join(cfg: MetadataConfig, address: str) -> None:
    """Ask the other peers to add this node at ``address`` until one answers."""
    others = [a for nid, a in parse_peers(cfg.peers).items() if nid != cfg.node_id]
    if not others:
        return
    tls = client_context(cfg.tls_ca)
    while True:
        try:
            async with MetadataClient(others, cfg.secret, client_id=f"join-{cfg.node_id}", deadline=CHANGE_TIMEOUT,
                                      attempt_timeout=CHANGE_TIMEOUT, tls=tls) as client:
                result = await client.change_membership("add", cfg.node_id, address)
            log.info("joined the metadata group at %s: %s", address, result.get("result", result))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the group may be unreachable or busy: ask again
            log.info("asking to join the metadata group at %s: %s", address, exc)
            await asyncio.sleep(RETRY_SECONDS)
