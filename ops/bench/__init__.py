"""``objstore bench``: measure an S3 endpoint (objstore's gateway or any other).

The ``objstore`` command calls ``add_parser(sub)`` to register the subcommand and then
``args.func(args)``, which is ``run``. The pieces: ``s3client`` (aiohttp requests, signed
by :mod:`gateway.auth.sign`), ``loadgen`` (closed-loop workers, payloads, checks), ``monitor``
(gateway RSS and cluster CPU via cluster.json and psutil), ``stats`` and ``results``
(pure figures), ``report`` (table and progress text), ``runner`` (one run end to end).
"""
from __future__ import annotations

from ops.bench.cli import add_parser, run

__all__ = ["add_parser", "run"]
