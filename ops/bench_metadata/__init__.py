"""``objstore bench-metadata``: measure the metadata service, beside etcd, and at scale.

The ``objstore`` command calls ``add_parser(sub)`` and then ``args.func(args)`` (``run``).
The tools talk to metadata nodes only through :class:`metadata.api.client.MetadataClient`
given a list of addresses, so they measure one node today and a replicated group
unchanged. Modules: ``discovery`` (which nodes, which secret), ``spawn`` (our own metadata
nodes and etcd members), ``workload`` (closed-loop load, records), ``systems`` (objstore
and etcd behind one surface), ``etcd`` (etcd's v3 JSON API), ``figures`` (pure
arithmetic), ``runner`` (the phases), ``report`` (table, JSON), ``scale`` (N records in
one node), ``cli`` (options).
"""
from __future__ import annotations

from ops.bench_metadata.cli import add_parser, run

__all__ = ["add_parser", "run"]
