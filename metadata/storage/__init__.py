"""Durable state of a metadata node, one layout for a group of any size (a single node is
a group of one voter), under ``<node dir>/raft/``.

Modules: ``log`` and ``log_format`` (the durable log, group commit, torn-tail recovery),
``snapshot_store`` (snapshot files), ``files`` (hard state, the recovering marker, the Raft
snapshot format), ``raft_storage`` (:class:`DiskRaftStorage`, the Raft core's Storage over
them), ``salvage`` (cutting a damaged log), ``recovery`` (find, plan, carry out on start),
``migrate`` (the pre-Raft single-node layout into a one-voter group). Every write goes
through :mod:`objstore.durable_io`: written fully or failed, never half-acknowledged.
"""
