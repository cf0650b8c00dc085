"""Raft replication of the metadata service: the asyncio driver around :mod:`metadata.raft`.

Modules: ``driver`` (:class:`RaftReplicator`, the :class:`~metadata.service.Replicator` of a
Raft member: the loop, proposals, ReadIndex reads, applying, snapshots), ``storage``
(the durable Storage over :class:`metadata.storage.log.DiskLog`), ``recovery`` (bootstrap,
recovery and distrust on start), ``salvage`` (cutting a damaged log), ``files`` (hard
state, the recovering marker, the snapshot format), ``membership`` (add / remove /
transfer on the leader), ``http`` (the Raft and admin routes; the commands that call
them live in ``ops/cli/metadata_admin.py``). The network side is
:mod:`metadata.replication.transport`.
"""
