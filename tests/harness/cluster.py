"""A whole cluster in the test's process: one metadata node, N storage nodes, one gateway.

Each server is built by its own application factory (``metadata.app.create_app``,
``objstore.node.app.create_app``, ``gateway.app.create_app``) and served by an aiohttp
``AppRunner`` on a free 127.0.0.1 port, all in the test's event loop. Storage nodes
register with the metadata service themselves (their config names it, as ``objstore up``
does) and advertise the address of a :class:`~tests.harness.link.Link` in front of them,
so every byte the gateway exchanges with a node passes a relay the test controls.

Faults, per :class:`StorageNode`:

- ``await node.down()``: the node stops (its connections reset, its port refuses);
  ``await node.up()`` starts it again on the same data dir and advertised address.
- ``node.slow(seconds)``: every chunk to and from the node waits ``seconds`` first.
- ``node.stall()``: the node takes and sends nothing more, but keeps its connections
  open (a paused process); ``node.resume()`` lets it go on.
- ``node.corrupt(marker)``: flip a byte of the stored blob whose bytes hold ``marker``,
  in the file on the node's disk.

Invariants: ``start`` returns only when the gateway's cluster map lists every storage node;
``stop`` (also after a failed start) stops everything that was started, gateway first.
Only the gateway's S3 API and the harness's own metadata client are used to look inside.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp
import boto3
from aiohttp import web
from botocore.config import Config

from gateway.app import HANDLER_ARGS
from gateway.app import create_app as create_gateway
from gateway.context import CTX_KEY, GatewayContext
from metadata.api.client import MetadataClient
from metadata.app import create_app as create_metadata
from objstore.cluster.launcher import ZONES
from objstore.config import GatewayConfig, MetadataConfig, StorageConfig
from objstore.errors import ObjstoreError
from objstore.node.app import create_app as create_storage, site as storage_site
from objstore.node.reclaim import COMPACTOR, GC
from tests.cluster_harness import TEST_RESERVE_BYTES, free_port
from tests.harness.disk import files_holding, flip
from tests.harness.eventually import eventually_async
from tests.harness.link import Link

SECRET = "in-process-cluster-secret"
ACCESS_KEY = "INPROCESSKEY0001"
SECRET_KEY = "in-process-secret-key/0001"
HOST = "127.0.0.1"


class Server:
    """One aiohttp application served on 127.0.0.1 (port 0: any free port)."""

    def __init__(self, app: web.Application, port: int = 0, site: Callable[..., web.TCPSite] = web.TCPSite,
                 **handler_args: Any) -> None:
        self.app = app
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True,
                                    **handler_args)
        self.port = port
        self.site = site  # how the app listens (a storage node's: objstore.node.app.site)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    async def start(self) -> "Server":
        await self.runner.setup()
        site = self.site(self.runner, HOST, self.port, reuse_address=True)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()


class StorageNode:
    """A storage node and the link in front of it, with its fault switches."""

    def __init__(self, node_id: str, data_dir: Path, zone: str, metadata: str, heartbeat_interval: float = 1.0,
                 gc_grace: float = 3600.0, segment_bytes: int = 256 * 1024 * 1024, **config: Any) -> None:
        self.node_id = node_id
        self.heartbeat_interval = heartbeat_interval
        self.gc_grace = gc_grace
        self.segment_bytes = segment_bytes
        self.config = {"reserve_bytes": TEST_RESERVE_BYTES, **config}  # more StorageConfig fields (capacity_bytes)
        self.data_dir = data_dir
        self.zone = zone
        self.metadata = metadata
        self.server: Server | None = None
        # While the node is down its link is cut too; port 1 (refused) is never asked for.
        self.link = Link(lambda: self.server.address if self.server else f"{HOST}:1")

    @property
    def address(self) -> str:
        """Where the cluster reaches this node (its link)."""
        return self.link.address

    @property
    def running(self) -> bool:
        return self.server is not None

    async def up(self) -> None:
        await self.link.start()
        cfg = StorageConfig(node_id=self.node_id, data_dir=str(self.data_dir), secret=SECRET, host=HOST,
                            zone=self.zone, metadata=(self.metadata,), advertise=self.link.address,
                            heartbeat_interval=self.heartbeat_interval,
                            gc_grace=self.gc_grace, gc_interval=0, compaction_interval=0,  # tests run the passes
                            segment_bytes=self.segment_bytes, **self.config)
        self.server = await Server(create_storage(cfg), site=storage_site).start()

    async def down(self) -> None:
        """Stop the node: open connections reset, new ones refused, its store closed."""
        self.link.cut()
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    def slow(self, seconds: float) -> None:
        """Delay every chunk to and from the node by ``seconds`` (0: full speed)."""
        self.link.delay = seconds

    def stall(self) -> None:
        """Pause the node: nothing reaches it or leaves it, connections stay open."""
        self.link.stall()

    def resume(self) -> None:
        self.link.resume()

    def corrupt(self, marker: bytes, skip: int = 5) -> Path:
        """Flip the byte ``skip`` bytes after ``marker`` in the node's stored copy; its file."""
        found = files_holding(self.data_dir, marker)
        assert len(found) == 1, f"{self.node_id} holds {len(found)} copies of the marker: {found}"
        path, offset = found[0]
        flip(path, offset + skip)
        return path

    async def close(self) -> None:
        await self.down()
        await self.link.close()


class InProcessCluster:
    """Metadata node ``m1``, storage nodes ``s1``..``sN``, gateway ``gw1`` under ``base``."""

    def __init__(self, base: Path, storage_nodes: int = 3, default_policy: str = "replica:3",
                 gc_grace: float = 3600.0, segment_bytes: int = 256 * 1024 * 1024, *,
                 node_timeout: float = 10.0, down_after: float = 600.0, heartbeat_interval: float = 1.0,
                 gateway: dict[str, Any] | None = None, storage: dict[str, dict[str, Any]] | None = None) -> None:
        """``gc_grace``/``segment_bytes``: the storage nodes' (their GC and compaction loops are
        off: tests run the passes); ``node_timeout``/``down_after``: the metadata node's
        liveness timers; ``heartbeat_interval``: the storage nodes'; ``gateway``: more
        GatewayConfig fields; ``storage``: node id -> more StorageConfig fields."""
        self.base = Path(base)
        self.gc_grace = gc_grace
        self.default_policy = default_policy
        self.liveness = {"node_timeout": node_timeout, "down_after": down_after}
        self.gateway_config = gateway or {}
        self.metadata: Server | None = None
        self.gateway: Server | None = None
        self.meta_address = f"{HOST}:{free_port()}"
        self.nodes = {
            f"s{i + 1}": StorageNode(f"s{i + 1}", self.base / "storage" / f"s{i + 1}", ZONES[i % len(ZONES)],
                                     self.meta_address, heartbeat_interval, gc_grace, segment_bytes,
                                     **(storage or {}).get(f"s{i + 1}", {}))
            for i in range(storage_nodes)
        }
        self.meta = MetadataClient([self.meta_address], SECRET, client_id="harness")
        self.s3_client: Any = None
        self.started_in = 0.0

    @property
    def endpoint(self) -> str:
        assert self.gateway is not None
        return f"http://{self.gateway.address}"

    @property
    def ctx(self) -> GatewayContext:
        assert self.gateway is not None
        return self.gateway.app[CTX_KEY]

    async def start(self, timeout: float = 30.0) -> "InProcessCluster":
        began = time.monotonic()
        try:
            port = int(self.meta_address.rsplit(":", 1)[1])
            cfg = MetadataConfig(node_id="m1", data_dir=str(self.base / "metadata" / "m1"), secret=SECRET,
                                 host=HOST, port=port, default_policy=self.default_policy, gc_grace=self.gc_grace,
                                 **self.liveness)
            self.metadata = await Server(create_metadata(cfg), port).start()
            await asyncio.gather(*(n.up() for n in self.nodes.values()))
            gcfg = GatewayConfig(gateway_id="gw1", secret=SECRET, metadata=(self.meta_address,), host=HOST, port=0,
                                 default_policy=self.default_policy, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                 **self.gateway_config)
            self.gateway = await Server(create_gateway(gcfg), **HANDLER_ARGS).start()

            last_error: list[BaseException] = []

            async def gateway_sees_every_node() -> bool:
                try:
                    await self.ctx.topology.refresh()
                except (ObjstoreError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                    last_error[:] = [exc]  # the metadata service may still be electing itself
                    return False
                return len(self.ctx.topology.map.nodes) == len(self.nodes)

            await eventually_async(gateway_sees_every_node, timeout,
                                   message=lambda: f"every storage node to register (last error: {last_error})")
        except BaseException:
            await self.stop()
            raise
        self.s3_client = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        self.started_in = time.monotonic() - began
        return self

    async def collect_garbage(self) -> int:
        """One garbage-collection pass on every running storage node; blobs deleted."""
        return sum([await n.server.app[GC].collect_once() for n in self.nodes.values() if n.server is not None])

    async def compact(self) -> int:
        """One compaction round on every running storage node; bytes reclaimed."""
        return sum([await n.server.app[COMPACTOR].compact_once() for n in self.nodes.values() if n.server is not None])

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None
        for n in self.nodes.values():
            await n.close()
        await self.meta.close()
        if self.metadata is not None:
            await self.metadata.stop()
            self.metadata = None

    async def __aenter__(self) -> "InProcessCluster":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def s3(self, operation: str, **params: Any) -> Any:
        """One boto3 S3 call (``s3_client.<operation>(**params)``), run off the event loop."""
        return await asyncio.to_thread(getattr(self.s3_client, operation), **params)

    async def replicas(self, bucket: str, key: str) -> list[StorageNode]:
        """The nodes holding an object's blob, in placement order (the order reads try)."""
        version = await self.meta.get_object(bucket, key)
        return [self.nodes[i] for i in version.placement]
