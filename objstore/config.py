"""Configuration of each process role, as frozen dataclasses validated at start-up.

A config comes from command-line flags or from a file (``--config FILE``): TOML (the
deployment format, ``ops/deploy/``), or JSON when the name ends in ``.json``, whose keys are
the field names; flags given on the command line override the file.

Invariants: secrets never come from a TOML config file (``secret``, ``secret_key`` there
are refused): the cluster secret comes from the flag or environment, or from the file a
``secret_file`` key (or ``--secret-file``) names, which must not be readable by group or
others; an explicit secret overrides the secret file.
"""
from __future__ import annotations

import dataclasses
import json
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from objstore.errors import InvalidArgument
from objstore.tls import check_pair
from objstore.types import Policy

T = TypeVar("T")


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"invalid port {port}")


@dataclass(frozen=True)
class NodeConfig:
    """What every node process (storage, metadata) has: its id, data dir, the cluster
    secret, and where it listens. Its fields come first in each node's config."""

    node_id: str
    data_dir: str
    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    # TLS (see objstore.tls): serve HTTPS with tls_cert/tls_key (both or neither); call other
    # services over HTTPS, verifying them against the CA bundle tls_ca, when it is given.
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    metrics_token: str = ""  # when set, /metrics requires "Authorization: Bearer <it>"


@dataclass(frozen=True)
class StorageConfig(NodeConfig):
    zone: str = "zone-a"
    weight: float = 1.0
    capacity_bytes: int = 0  # 0: the size of the data dir's filesystem
    reserve_bytes: int = -1  # free space writes must leave (for deletes); -1: min(5% of capacity, 1 GiB)
    metadata: tuple[str, ...] = ()  # "host:port" of metadata nodes, to register with
    advertise: str = ""  # "host:port" other processes reach this node at (default host:port)
    heartbeat_interval: float = 1.0  # seconds between heartbeats to the metadata leader
    scrub_rate: float = 20.0  # MB/s (10^6 bytes) the scrubber reads at
    scrub_interval: float = 86400.0  # seconds from one scrub pass's start to the next one's
    repair_rate: float = 20.0  # MB/s this node receives for repair (0: it does no repair)
    # Reclaiming space (objstore.node.compaction, objstore.node.gc); 0 turns a loop off.
    compaction_interval: float = 60.0  # seconds between compaction checks
    compaction_rate: float = 64.0  # MB/s (10^6 bytes) of live records compaction copies (0: no limit)
    compaction_threshold: float = 0.5  # sealed segments less live than this fraction are rewritten
    gc_interval: float = 600.0  # seconds between garbage-collection passes
    gc_grace: float = 3600.0  # an unreferenced blob younger than this is never collected
    segment_bytes: int = 256 * 1024 * 1024  # size at which a segment file is sealed
    join: bool = False  # register as "joining" (outside the ring) until `objstore node add`
    rebalance_rate: float = 20.0  # MB/s this node receives for rebalancing moves (with repair on)

    def validate(self) -> "StorageConfig":
        _check_port(self.port)
        if self.heartbeat_interval <= 0:
            raise InvalidArgument("heartbeat_interval must be positive")
        if not self.scrub_rate > 0 or not self.scrub_interval >= 0:
            raise InvalidArgument("scrub rate must be positive and the scrub interval not negative")
        if min(self.compaction_interval, self.gc_interval) < 0 or self.gc_grace <= 0 or self.segment_bytes < 4096:
            raise InvalidArgument("intervals must be >= 0, gc_grace > 0 and segment_bytes >= 4096")
        if not self.node_id or "/" in self.node_id:
            raise InvalidArgument(f"invalid node id {self.node_id!r}")
        if self.weight <= 0:
            raise InvalidArgument("weight must be positive")
        if self.capacity_bytes < 0 or self.reserve_bytes < -1:
            raise InvalidArgument("capacity_bytes and reserve_bytes must not be negative")
        if self.compaction_rate < 0 or not 0 < self.compaction_threshold <= 1:
            raise InvalidArgument("--compaction-rate must not be negative (MB/s) and --compaction-threshold "
                                  "must be in (0, 1]")
        if self.rebalance_rate <= 0:
            raise InvalidArgument("--rebalance-rate must be positive (MB/s)")
        if self.repair_rate < 0:
            raise InvalidArgument("repair rate must not be negative")
        check_pair(self.tls_cert, self.tls_key)
        return self


@dataclass(frozen=True)
class MetadataConfig(NodeConfig):
    peers: tuple[str, ...] = ()  # "id=host:port" of every metadata node, this one included
    default_policy: str = "replica:3"
    snapshot_every: int = 10000  # log entries between snapshots
    # Raft (used when peers are given or the node joins): start empty and wait to be added
    # by the leader (`objstore metadata add`) instead of bootstrapping a new cluster.
    join: bool = False
    enable_fault_injection: bool = False  # POST /debug/partition and stale-read switch, tests only
    tick_ms: int = 50  # one Raft tick
    election_ticks: int = 12  # election timeout: randomized in [1, 2) times this many ticks
    heartbeat_ticks: int = 2
    log_segment_bytes: int = 64 * 1024 * 1024
    # Liveness (metadata.liveness): a storage node silent for node_timeout seconds is marked
    # down; one down for down_after seconds is marked out (its copies are re-created).
    node_timeout: float = 10.0
    down_after: float = 600.0
    # Storage nodes collect unreferenced blobs older than this; commits of versions or parts
    # whose id is older than half of it are refused (metadata.gc_http). 0: no guard, no GC.
    gc_grace: float = 3600.0
    auto_add: bool = False  # storage nodes started with --join enter the ring at once
    # Lease reads (docs/architecture.md, "Lease reads"): strong reads without a heartbeat
    # round while the leader holds a lease; every member of the group must agree.
    lease_reads: bool = True

    def validate(self) -> "MetadataConfig":
        _check_port(self.port)
        if self.node_timeout <= 0 or self.down_after <= 0:
            raise InvalidArgument("node_timeout and down_after must be positive")
        if self.gc_grace < 0:
            raise InvalidArgument("gc_grace must be >= 0")
        Policy.parse(self.default_policy)
        ids = []
        for p in self.peers:
            nid, sep, addr = p.partition("=")
            if not sep or not nid or ":" not in addr:
                raise InvalidArgument(f"invalid peer {p!r}: expected id=host:port")
            ids.append(nid)
        if self.peers and not self.join and self.node_id not in ids:
            raise InvalidArgument(f"--peers must include this node ({self.node_id}) unless it joins with --join")
        if self.tick_ms <= 0 or not 1 <= self.heartbeat_ticks < self.election_ticks:
            raise InvalidArgument("need tick_ms > 0 and 1 <= heartbeat_ticks < election_ticks")
        if self.snapshot_every < 1 or self.log_segment_bytes < 1024:
            raise InvalidArgument("snapshot_every must be positive and log_segment_bytes at least 1024")
        check_pair(self.tls_cert, self.tls_key)
        return self


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: str
    secret: str  # the cluster secret, for internal requests
    metadata: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 9000
    region: str = "us-east-1"
    default_policy: str = "replica:3"
    max_object_size: int = 5 * 1024**4  # 5 TiB
    max_skew_seconds: int = 900
    virtual_host_suffixes: tuple[str, ...] = ("localhost",)
    # Bootstrap S3 credentials, written to the metadata service at start if missing.
    access_key: str = ""
    secret_key: str = ""
    # Multipart uploads initiated longer ago than this are aborted (checked every sweep).
    upload_expiry_seconds: float = 7 * 86400
    upload_sweep_seconds: float = 3600
    # Slow clients: a request body that stalls this long, or arrives on average slower than
    # body_min_rate bytes/s once it has taken that long, is cut (RequestTimeout); a
    # connection waiting for (the rest of) a request's headers is closed after
    # header_timeout_seconds; requests beyond max_concurrent_requests get 503 SlowDown.
    body_stall_seconds: float = 60.0
    body_min_rate: float = 1024.0
    header_timeout_seconds: float = 30.0
    max_concurrent_requests: int = 1024
    # Paused or stalled storage nodes: a write waits at most straggler_timeout_seconds for
    # a node once W acknowledged (or for a node taking nothing while W others keep up);
    # a read abandons a replica or shard that sends nothing for read_stall_seconds.
    straggler_timeout_seconds: float = 2.0
    read_stall_seconds: float = 2.0
    # Where neither bound applies (a write below W acknowledgements waits for the rest, the
    # last replica or shard left to read is waited on), a storage node that sends nothing
    # for storage_timeout_seconds fails the call.
    storage_timeout_seconds: float = 30.0
    # A storage node that failed a request (or was abandoned as a straggler) gets no new
    # blobs from this gateway, and is read last, for suspect_seconds.
    suspect_seconds: float = 5.0
    # S3 over HTTPS: a PEM certificate (chain) and its private key; both or neither.
    tls_cert: str = ""
    tls_key: str = ""
    # Internal calls (metadata, storage nodes) over HTTPS, verified against this CA bundle.
    tls_ca: str = ""
    metrics_token: str = ""  # when set, /metrics requires "Authorization: Bearer <it>"
    bucket_metrics: bool = False  # a bucket label on objstore_s3_bucket_requests_total
    # Seconds one metadata call may take, retries across nodes included (each try gets half):
    # a gateway cut off from the metadata majority answers 503 within about this long.
    metadata_timeout_seconds: float = 3.0
    # Tests only: a wall clock this many seconds off the machine's (honoured only with
    # enable_fault_injection), so gateways on one machine can run seconds apart.
    enable_fault_injection: bool = False
    clock_offset_seconds: float = 0.0
    # Without a metadata majority: cached cluster map, credentials and bucket records are
    # used for up to stale_window_seconds past their expiry (quorum/one reads keep working);
    # a metadata call (strong reads, writes) fails after metadata_timeout_seconds.
    stale_window_seconds: float = 300.0

    def validate(self) -> "GatewayConfig":
        _check_port(self.port)
        Policy.parse(self.default_policy)
        if not self.metadata:
            raise InvalidArgument("the gateway needs at least one metadata address")
        if self.upload_expiry_seconds <= 0 or self.upload_sweep_seconds <= 0:
            raise InvalidArgument("upload_expiry_seconds and upload_sweep_seconds must be positive")
        if self.body_stall_seconds <= 0 or self.header_timeout_seconds <= 0 or self.body_min_rate < 0:
            raise InvalidArgument("body_stall_seconds and header_timeout_seconds must be positive, "
                                  "body_min_rate not negative")
        if self.max_concurrent_requests < 1:
            raise InvalidArgument("max_concurrent_requests must be at least 1")
        if self.stale_window_seconds < 0:
            raise InvalidArgument("stale_window_seconds may not be negative")
        if self.straggler_timeout_seconds <= 0 or self.read_stall_seconds <= 0 or self.suspect_seconds <= 0:
            raise InvalidArgument("straggler_timeout_seconds, read_stall_seconds and suspect_seconds must be positive")
        if self.metadata_timeout_seconds <= 0:
            raise InvalidArgument("metadata_timeout_seconds must be positive")
        if self.storage_timeout_seconds <= 0:
            raise InvalidArgument("storage_timeout_seconds must be positive")
        if self.clock_offset_seconds and not self.enable_fault_injection:
            raise InvalidArgument("clock_offset_seconds is for tests: it needs enable_fault_injection")
        check_pair(self.tls_cert, self.tls_key)
        return self


SECRET_KEYS = ("secret", "secret_key")  # never in a TOML config file


def read_config_file(file: str) -> dict[str, Any]:
    """The keys of a config file: TOML, or JSON when its name ends in ``.json``. Raises
    InvalidArgument for a file that cannot be read or parsed, or a TOML file with a secret."""
    try:
        text = Path(file).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the config file {file}: {exc.strerror}") from None
    try:
        values = json.loads(text) if file.endswith(".json") else tomllib.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"the config file {file} is not valid {'JSON' if file.endswith('.json') else 'TOML'}: "
                              f"{exc}") from None
    found = [k for k in SECRET_KEYS if k in values and not file.endswith(".json")]
    if found:
        raise InvalidArgument(f"{file} holds {', '.join(found)}: secrets do not belong in a config file; give the "
                              "cluster secret by environment (OBJSTORE_CLUSTER_SECRET) or a secret_file (mode 0600)")
    return values


def read_secret_file(path: str) -> str:
    """The secret in ``path`` (surrounding whitespace stripped); raises InvalidArgument when
    it is missing, empty, or readable by group or others."""
    try:
        mode = os.stat(path).st_mode
        secret = Path(path).read_text().strip()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the secret file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidArgument(f"the secret file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                              f"chmod 600 {path}")
    if not secret:
        raise InvalidArgument(f"the secret file {path} is empty")
    return secret


def load(cls: type[T], file: str | None, overrides: dict[str, Any]) -> T:
    """Build ``cls`` from an optional config file, then ``overrides`` (None values ignored).
    A ``secret_file`` (in the file or the overrides) supplies ``secret`` when none is given."""
    values: dict[str, Any] = {}
    if file:
        values.update(read_config_file(file))
    values.update({k: v for k, v in overrides.items() if v is not None})
    secret_file = values.pop("secret_file", None)
    if secret_file and not values.get("secret"):
        values["secret"] = read_secret_file(secret_file)
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - set(names)
    if unknown:
        raise InvalidArgument(f"unknown config keys: {', '.join(sorted(unknown))}")
    for k, v in list(values.items()):
        if isinstance(v, list):
            values[k] = tuple(v)
    missing = [f.name for f in names.values()
               if f.name not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise InvalidArgument("missing required settings: " + ", ".join(f"--{m.replace('_', '-')}" for m in missing))
    cfg = cls(**values)
    return cfg.validate()  # type: ignore[attr-defined]


__all__ = ["NodeConfig", "StorageConfig", "MetadataConfig", "GatewayConfig", "load", "read_config_file",
           "read_secret_file", "field"]
