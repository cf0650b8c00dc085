"""Raft replication of the metadata service: the asyncio driver around :mod:`metadata.raft`.

Modules: ``replicator`` (the :class:`Replicator` interface the HTTP layer calls),
``driver`` (:class:`RaftReplicator`, its implementation for a group of any size, a single
node included: the loop, proposals, ReadIndex reads, applying, snapshots), ``reads``
(pending ReadIndex rounds), ``membership`` (add / remove /
transfer on the leader), ``http`` (the Raft and admin routes; the commands that call
them live in ``ops/cli/metadata_admin.py``). The network side is
:mod:`metadata.replication.transport`. The durable state (log, hard state, snapshots,
recovery, migration of old layouts) is :mod:`metadata.storage`.
"""
