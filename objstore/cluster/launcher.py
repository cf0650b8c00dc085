"""``objstore up``: a whole cluster on this machine, supervised in the foreground.

Starts the metadata service, the storage nodes and one gateway as child processes (each
runs ``python -m ops.cli <role> ...``, that is ``objstore <role>``: forked from the
launcher, which imported the services' code once, :mod:`objstore.cluster.forking`; or
exec'd with ``OBJSTORE_FORK_SERVICES=0``), supervised by :mod:`objstore.cluster.supervisor`, all at once (storage nodes
and the gateway retry until the metadata leader answers), waits for each to be healthy, writes
``<data-dir>/cluster.json`` and prints the endpoint and keys. Ctrl-C or SIGTERM stops the
children in reverse order (gateway, storage, metadata), each with SIGTERM and, after a
grace period, SIGKILL. A lock file held for the launcher's lifetime refuses a second
``objstore up`` on the same data dir.

Invariants: every child is started with the data dir's persistent cluster secret, so a
restarted cluster accepts its own nodes; secrets reach the children only through their
environment (readable by this user alone), never their command lines, which every user
of the machine can read; the launcher and its children create files with umask 077 and
the data dir is 0700, so nothing under it is readable by other users. The S3 key pair is
handed to the gateway (which registers it with the metadata service) only on the start
that created it or when it is given again; otherwise the metadata service alone decides,
so a deleted bootstrap key stays deleted across restarts. Storage node ids are stable
(``s1``..``sN``), so recorded placements stay valid across restarts even though ports
may change. The metadata nodes (``m1``..``mN``, one Raft group, 3 by default) keep their
addresses: the ones chosen on the first start are kept in ``<data-dir>/metadata/nodes.json`` and reused
(a start fails clearly if such a port is taken, or if the number of metadata nodes or the
host differs), since Raft members know each other by address. With ``--tls-dir DIR`` every
child serves HTTPS with DIR/cert.pem and DIR/key.pem and verifies the others against
DIR/ca.pem (recorded as ``tls_ca`` in ``cluster.json`` for the admin commands), and so do
the launcher's health checks; the gateway then serves S3 over HTTPS too. Every start writes
``<data-dir>/prometheus/targets.json`` naming the processes it started; with ``--prometheus``
it also runs Prometheus on them (:mod:`objstore.cluster.prometheus`), stopped first.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import ssl
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from objstore.cli_args import ACCESS_KEY_ENV, METRICS_TOKEN_ENV, SECRET_ENV, SECRET_KEY_ENV
from objstore.cluster.forking import ServiceForker
from objstore.cluster.prometheus import PrometheusMissing, prometheus_child, write_targets
from objstore.cluster.supervisor import (Child, ChildFailed, free_port, port_free, reserve_ports, stop_all,
                                         wait_all_healthy, wait_healthy)
from objstore.durable_io import atomic_write
from objstore.logs import LOG_FILE_ENV, LOG_FORMAT_ENV
from objstore.erasure.policy import check_ec_policy
from objstore.errors import ObjstoreError
from objstore.parent_watch import PARENT_PID_ENV
from objstore.space import default_reserve, full_below, human_size
from objstore.tls import base_url, client_context
from objstore.types import Policy, address_digest

ZONES = ("zone-a", "zone-b", "zone-c")
CLI_MODULE = "ops.cli"  # what each child runs: ``python -m ops.cli <role> ...`` (``objstore <role>``)


class LaunchError(Exception):
    """The cluster could not be started; the message says why."""


@dataclass(frozen=True)
class UpOptions:
    data_dir: str = "./objstore-data"
    host: str = "127.0.0.1"
    s3_port: int = 9000
    storage_nodes: int = 6
    metadata_nodes: int = 3
    default_policy: str = "replica:3"
    access_key: str | None = None
    secret_key: str | None = None
    quiet: bool = False
    gateway_args: tuple[str, ...] = ()  # more flags of ``objstore gateway`` (its slow-client limits)
    tls_dir: str = ""  # ca.pem, cert.pem and key.pem: every process serves and calls HTTPS
    metadata_args: tuple[str, ...] = ()  # more flags of ``objstore metadata`` (its liveness timers)
    storage_args: tuple[str, ...] = ()  # more flags of ``objstore storage`` (heartbeat interval, scrub pacing)
    prometheus: bool = False  # also run Prometheus (the Debian package's binary) on the cluster
    prometheus_port: int = 9090
    prometheus_interval: float = 15.0  # seconds between scrapes and rule evaluations
    metrics_token_file: str = ""  # /metrics of every process requires the bearer token in this file
    log_format: str = "text"  # or "json": every child's log lines
    storage_capacity: int = 0  # each storage node's --capacity-bytes (0: its filesystem's size)
    storage_reserve: int | None = None  # each storage node's --reserve-bytes (None: its default)
    repair_rate: float | None = None  # MB/s each storage node receives for repair (None: its default)
    reclaim_args: tuple[str, ...] = ()  # --compaction-interval/--gc-interval/--gc-grace of the storage nodes
    json_summary: bool = False  # once running, print the summary as one JSON line (other lines to stderr)


def load_or_create_keys(data_dir: Path, access_key: str | None, secret_key: str | None) -> dict[str, Any]:
    """The cluster secret and the S3 key pair, kept in ``<data-dir>/credentials.json`` (0600).

    ``keys["registered"]`` is false when the key pair is new or given again: the gateway
    must then register it (see :meth:`Cluster.mark_registered`)."""
    path = data_dir / "credentials.json"
    keys: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    keys.setdefault("cluster_secret", secrets.token_hex(32))
    if access_key and secret_key:
        keys["access_key"], keys["secret_key"], keys["registered"] = access_key, secret_key, False
    elif access_key or secret_key:
        raise LaunchError("give both --access-key and --secret-key, or neither")
    if "access_key" not in keys:
        keys["access_key"] = "OBJ" + secrets.token_hex(8).upper()
        keys["secret_key"] = secrets.token_urlsafe(30)
        keys["registered"] = False
    keys.setdefault("registered", False)
    save_keys(data_dir, keys)
    return keys


def save_keys(data_dir: Path, keys: dict[str, Any]) -> None:
    """Write ``<data-dir>/credentials.json``, created 0600 (durable_io creates files so)."""
    atomic_write(data_dir / "credentials.json", json.dumps(keys, indent=2).encode())


def space_warning(data_dir: Path, opts: UpOptions) -> str:
    """Why the storage nodes under ``data_dir`` would start ``full`` (refusing new blobs),
    or "" when the filesystem has room: they all share its free space, and each counts as
    full below twice its reserve (objstore.space)."""
    usage = shutil.disk_usage(data_dir)
    capacity = opts.storage_capacity or usage.total
    reserve = default_reserve(capacity) if opts.storage_reserve is None else opts.storage_reserve
    if usage.free >= full_below(reserve):
        return ""
    return (f"{data_dir} has {human_size(usage.free)} free, but a storage node that keeps "
            f"{human_size(reserve)} in reserve counts as full below {human_size(full_below(reserve))}: "
            f"every write will be refused. Free some space, or give the nodes a smaller reserve "
            f"with --storage-reserve BYTES.")


def lock_data_dir(data_dir: Path) -> IO:
    """Hold an exclusive lock on the data dir, or raise LaunchError naming the holder."""
    lock = open(data_dir / "objstore.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise LaunchError(f"the data dir {data_dir} is in use by {holder}; stop that cluster first") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"objstore up (pid {os.getpid()})\n")
    lock.flush()
    return lock


class Cluster:
    """The children of one ``objstore up`` and how to start and stop them."""

    def __init__(self, opts: UpOptions) -> None:
        self.opts = opts
        self.data_dir = Path(opts.data_dir).resolve()
        self.children: list[Child] = []
        self.keys: dict[str, Any] = {}
        self._lock: IO | None = None
        # --tls-dir's files by name ("ca", "cert", "key"), empty without it
        self.tls_files = {n: str(Path(opts.tls_dir, f"{n}.pem").resolve()) for n in ("ca", "cert", "key")
                          if opts.tls_dir}
        self.tls: ssl.SSLContext | None = None  # the client context of the health checks (set by start)
        self.prometheus: Child | None = None  # with --prometheus, once started
        self.forker: ServiceForker | None = None  # set by run_up: services forked, not exec'd

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", CLI_MODULE, *args]

    def child_env(self, child: Child) -> dict[str, str]:
        """The environment of ``child``: the launcher's, with the cluster secret and, for the
        gateway on a start that must register it, the S3 key pair (never on a command line)."""
        env = {k: v for k, v in os.environ.items() if k not in (SECRET_ENV, ACCESS_KEY_ENV, SECRET_KEY_ENV)}
        env[SECRET_ENV] = self.keys["cluster_secret"]
        env[PARENT_PID_ENV] = str(os.getpid())  # the child ends if this process dies (objstore.parent_watch)
        # Each child logs into its log file itself, rotating it by size (objstore.logs).
        env[LOG_FILE_ENV], env[LOG_FORMAT_ENV] = str(child.log_path), self.opts.log_format
        if self.opts.metrics_token_file:
            env[METRICS_TOKEN_ENV] = Path(self.opts.metrics_token_file).read_text().strip()
        if child.role == "gateway" and not self.keys["registered"]:
            env[ACCESS_KEY_ENV], env[SECRET_KEY_ENV] = self.keys["access_key"], self.keys["secret_key"]
        return env

    def mark_registered(self) -> None:
        """The gateway is healthy, so it has registered the key pair: later starts need not."""
        if not self.keys["registered"]:
            self.keys["registered"] = True
            save_keys(self.data_dir, self.keys)

    def _tls_argv(self) -> tuple[str, ...]:
        f = self.tls_files
        return ("--tls-cert", f["cert"], "--tls-key", f["key"], "--tls-ca", f["ca"]) if f else ()

    def _grace_argv(self) -> tuple[str, ...]:
        """The metadata nodes' --gc-grace: the storage nodes' own, so the commit guard matches."""
        args = self.opts.reclaim_args
        return tuple(args[i : i + 2]) if (i := _index(args, "--gc-grace")) >= 0 else ()

    def plan(self) -> None:
        o, d = self.opts, self.data_dir
        logs = d / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        # Ports this start binds by name are never drawn for another child.
        reserve_ports([o.s3_port, *([o.prometheus_port] if o.prometheus else [])])
        meta_addrs = metadata_addresses(d, o.host, o.metadata_nodes)
        reserve_ports(int(a.rsplit(":", 1)[1]) for a in meta_addrs)
        peers = ",".join(f"m{i + 1}={a}" for i, a in enumerate(meta_addrs))
        for i, addr in enumerate(meta_addrs):
            nid = f"m{i + 1}"
            host, port = addr.rsplit(":", 1)
            argv = self._cli("metadata", "--node-id", nid, "--data-dir", str(d / "metadata" / nid),
                             "--host", host, "--port", port, "--default-policy", o.default_policy,
                             "--peers", peers,  # a single node's pre-Raft data dir is migrated on start
                             *o.metadata_args, *self._tls_argv(), *self._grace_argv())
            self.children.append(Child("metadata", nid, addr, argv, logs / f"{nid}.log"))
        meta_list = ",".join(meta_addrs)
        for i in range(o.storage_nodes):
            nid = f"s{i + 1}"
            port = free_port(o.host)
            argv = self._cli("storage", "--node-id", nid, "--data-dir", str(d / "storage" / nid),
                             "--host", o.host, "--port", str(port),
                             "--zone", ZONES[i % len(ZONES)], "--metadata", meta_list, *o.storage_args,
                             *self._tls_argv(),
                             *(("--capacity-bytes", str(o.storage_capacity)) if o.storage_capacity else ()),
                             *(() if o.storage_reserve is None else ("--reserve-bytes", str(o.storage_reserve))),
                             *(() if o.repair_rate is None else ("--repair-rate", f"{o.repair_rate:g}")),
                             *o.reclaim_args)
            self.children.append(Child("storage", nid, f"{o.host}:{port}", argv, logs / f"{nid}.log"))
        argv = self._cli("gateway", "--id", "gw1", "--host", o.host, "--port", str(o.s3_port),
                         "--metadata", meta_list, "--default-policy", o.default_policy, *o.gateway_args,
                         *self._tls_argv())
        self.children.append(Child("gateway", "gw1", f"{o.host}:{o.s3_port}", argv, logs / "gw1.log"))

    def validate(self) -> None:
        """Refuse options that cannot make a working cluster, before anything starts."""
        o = self.opts
        try:
            policy = Policy.parse(o.default_policy)
            if policy.kind == "ec":
                check_ec_policy(policy, o.storage_nodes)
        except ObjstoreError as exc:
            raise LaunchError(exc.message) from None
        if o.storage_nodes < policy.n:
            raise LaunchError(f"--default-policy {policy} needs at least {policy.n} storage nodes, "
                              f"but --storage-nodes is {o.storage_nodes}")
        if not 1 <= o.metadata_nodes <= 9:
            raise LaunchError(f"--metadata-nodes must be between 1 and 9 (3 or 5 tolerate 1 or 2 failures), "
                              f"not {o.metadata_nodes}")
        if not 1 <= o.s3_port <= 65535:
            raise LaunchError(f"invalid --s3-port {o.s3_port}")
        if o.storage_reserve is not None and o.storage_reserve < 0:
            raise LaunchError(f"--storage-reserve must not be negative, not {o.storage_reserve}")
        if o.metrics_token_file and not os.path.isfile(o.metrics_token_file):
            raise LaunchError(f"--metrics-token-file {o.metrics_token_file} is not a file")
        missing = [p for p in self.tls_files.values() if not os.path.isfile(p)]
        if missing:
            raise LaunchError(f"--tls-dir needs ca.pem, cert.pem and key.pem; missing: {', '.join(missing)}")
        if self.tls_files:
            try:
                self.tls = client_context(self.tls_files["ca"])
            except (OSError, ssl.SSLError) as exc:
                raise LaunchError(f"cannot read {self.tls_files['ca']}: {exc}") from None

    def start(self) -> None:
        self.validate()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)  # it may have existed: it holds secrets
        self._lock = lock_data_dir(self.data_dir)
        self.keys = load_or_create_keys(self.data_dir, self.opts.access_key, self.opts.secret_key)
        self.plan()
        warning = space_warning(self.data_dir, self.opts)
        if warning:
            print(f"objstore up: warning: {warning}", file=sys.stderr, flush=True)
        if not port_free(self.opts.host, self.opts.s3_port):
            raise LaunchError(f"port {self.opts.s3_port} on {self.opts.host} is in use; choose another with --s3-port")
        # Every child at once (metadata, storage, gateway): none waits for another to start
        # serving. A storage node retries its heartbeat (its registration) until a metadata
        # leader answers, and the gateway retries storing the key pair and fetching the
        # cluster map, so the groups need not wait for each other's health.
        for c in self.children:
            c.start(self.child_env(c), forker=self.forker)
            self._say(f"  started {c.role:<8} {c.node_id:<4} {c.address}  pid {c.proc.pid}")
        try:
            wait_all_healthy(self.children, timeout=60, tls=self.tls)
        except ChildFailed as exc:
            raise LaunchError(f"{exc}; see {exc.child.log_path}") from None
        self.mark_registered()
        self._wait_registered()
        write_targets(self.data_dir, self.children, https=bool(self.tls_files))
        if self.opts.prometheus:
            self.start_prometheus()
        self.write_cluster_json()

    def start_prometheus(self) -> None:
        """Start Prometheus on the targets file and wait until it is ready."""
        o = self.opts
        token = str(Path(o.metrics_token_file).resolve()) if o.metrics_token_file else ""
        try:
            child = prometheus_child(self.data_dir, o.host, o.prometheus_port, o.prometheus_interval,
                                     self.tls_files.get("ca", ""), token)
        except PrometheusMissing as exc:
            raise LaunchError(str(exc)) from None
        if not port_free(o.host, o.prometheus_port):
            raise LaunchError(f"port {o.prometheus_port} on {o.host} is in use; choose another with --prometheus-port")
        child.start({k: v for k, v in os.environ.items()
                     if k not in (SECRET_ENV, ACCESS_KEY_ENV, SECRET_KEY_ENV, METRICS_TOKEN_ENV)},
                    end_with_parent=True)  # it does not watch this process itself
        self.prometheus = child
        self._say(f"  started prometheus      {child.address}  pid {child.proc.pid}")  # type: ignore[union-attr]
        try:
            wait_healthy(child, timeout=60, path="/-/ready")
        except ChildFailed as exc:
            raise LaunchError(f"{exc}; see {child.log_path}") from None

    def prometheus_url(self) -> str:
        return f"http://{self.prometheus.address}" if self.prometheus else ""

    def _wait_registered(self, timeout: float = 30.0) -> None:
        """Wait until the gateway's cluster map shows every storage node at the address it
        was started at now (on a restart the map first holds the previous addresses)."""
        gw = self.children[-1]
        want = {c.node_id: address_digest(c.node_id, c.address) for c in self.children if c.role == "storage"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base_url(gw.address, self.tls) + "/health", timeout=1,
                                            context=self.tls) as resp:
                    health = json.loads(resp.read())
                    seen = health.get("storage_addresses") or {}
                    if health.get("storage_nodes", 0) >= self.opts.storage_nodes and \
                            all(seen.get(nid) == digest for nid, digest in want.items()):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise LaunchError("storage nodes did not all register with the metadata service in time")

    def endpoint(self) -> str:
        """The gateway's S3 endpoint (https with --tls-dir)."""
        return base_url(f"{self.opts.host}:{self.opts.s3_port}", self.tls)

    def write_cluster_json(self) -> None:
        info = {
            "endpoint": self.endpoint(),
            "access_key": self.keys["access_key"],
            "region": "us-east-1",
            "data_dir": str(self.data_dir),
            "launcher_pid": os.getpid(),
            "processes": [
                {"role": c.role, "id": c.node_id, "address": c.address, "pid": c.proc.pid if c.proc else None,
                 "log": str(c.log_path)}
                for c in self.children
            ],
            **({"tls_ca": self.tls_files["ca"]} if self.tls_files else {}),
            **({"prometheus": {"url": self.prometheus_url(), "pid": self.prometheus.pid}} if self.prometheus else {}),
        }
        path = self.data_dir / "cluster.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, path)

    def stop(self, grace: float = 10.0) -> None:
        if self.prometheus is not None:
            self.prometheus.stop(grace)
        for role in ("gateway", "storage", "metadata"):
            stop_all([c for c in self.children if c.role == role], grace)
        path = self.data_dir / "cluster.json"
        if self._lock and path.exists():  # only the launcher that holds the data dir: a second
            info = json.loads(path.read_text())  # `up` refused on it must not mark the running one stopped
            info["stopped"] = True
            path.write_text(json.dumps(info, indent=2))
        if self._lock:
            self._lock.close()
            self._lock = None

    def _say(self, text: str) -> None:
        if not self.opts.quiet:
            print(text, flush=True, file=sys.stderr if self.opts.json_summary else sys.stdout)

    def summary(self) -> dict[str, Any]:
        """What ``up --json`` prints once running: endpoint, access key, region, data dir,
        processes (never a secret)."""
        return {"endpoint": self.endpoint(), "access_key": self.keys["access_key"], "region": "us-east-1",
                "data_dir": str(self.data_dir), "credentials": str(self.data_dir / "credentials.json"),
                "processes": [{"role": c.role, "id": c.node_id, "address": c.address} for c in self.children],
                **({"prometheus": self.prometheus_url()} if self.prometheus else {})}


def _legacy_single_node(node_dir: Path) -> bool:
    """A metadata dir written before Raft (a single node's log, no ``raft/``): only a group of
    one voter can open it (it is migrated on start)."""
    return (node_dir / "log").is_dir() and not (node_dir / "raft").exists()


def metadata_addresses(data_dir: Path, host: str, count: int) -> list[str]:
    """The metadata nodes' "host:port", chosen once and kept in ``metadata/nodes.json``.

    Raises LaunchError when the kept layout does not fit the options or a port is taken."""
    path = data_dir / "metadata" / "nodes.json"
    if path.exists():
        kept = json.loads(path.read_text())["nodes"]
        addrs = [kept[f"m{i + 1}"] for i in range(len(kept))]
        if len(addrs) != count:
            raise LaunchError(f"this data dir's metadata group has {len(addrs)} node(s) (see {path}); "
                              f"run with --metadata-nodes {len(addrs)}")
        if any(a.rsplit(":", 1)[0] != host for a in addrs):
            raise LaunchError(f"this data dir's metadata nodes listen on {addrs[0].rsplit(':', 1)[0]} (see {path}); "
                              f"run with --host {addrs[0].rsplit(':', 1)[0]}")
        if count > 1 and any(_legacy_single_node(data_dir / "metadata" / f"m{i + 1}") for i in range(count)):
            raise LaunchError("this data dir holds a single-node metadata service; run with --metadata-nodes 1")
        for i, a in enumerate(addrs):
            if not port_free(host, int(a.rsplit(":", 1)[1])):
                raise LaunchError(f"metadata node m{i + 1} must keep its address {a} (Raft peers know it), "
                                  f"but that port is in use; free it and start again")
        return addrs
    if count > 1 and _legacy_single_node(data_dir / "metadata" / "m1"):
        raise LaunchError("this data dir holds a single-node metadata service; run with --metadata-nodes 1")
    addrs: list[str] = []
    while len(addrs) < count:
        a = f"{host}:{free_port(host)}"
        if a not in addrs:
            addrs.append(a)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"v": 1, "nodes": {f"m{i + 1}": a for i, a in enumerate(addrs)}}, indent=2))
    os.replace(tmp, path)
    return addrs


def run_up(opts: UpOptions) -> int:
    """Start the cluster and supervise it until a signal; the process exit code."""
    os.umask(0o077)  # every file and folder the launcher and its children create is private
    cluster = Cluster(opts)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cluster._say(f"objstore: starting a local cluster in {cluster.data_dir}")
        cluster.forker = ServiceForker.prepare()
        cluster.start()
    except LaunchError as exc:
        print(f"objstore up: {exc}", file=sys.stderr)
        cluster.stop(grace=3)
        return 1
    except BaseException:
        cluster.stop(grace=3)
        raise
    endpoint = cluster.endpoint()
    ca_flag = f" --ca-bundle {cluster.tls_files['ca']}" if cluster.tls_files else ""
    if opts.json_summary:
        print(json.dumps(cluster.summary()), flush=True)
    print(
        "\nobjstore is running.\n"
        f"  S3 endpoint:  {endpoint}\n"
        f"  access key:   {cluster.keys['access_key']}\n"
        f"  secret key:   in {cluster.data_dir / 'credentials.json'} (never printed: output may be logged)\n"
        f"  region:       us-east-1\n"
        f"  data dir:     {cluster.data_dir}  (cluster.json, logs/, prometheus/targets.json)\n"
        + (f"  Prometheus:   {cluster.prometheus_url()}\n" if cluster.prometheus else "") + "\n"
        f"  try:  AWS_ACCESS_KEY_ID={cluster.keys['access_key']} AWS_SECRET_ACCESS_KEY=... "
        f"aws --endpoint-url {endpoint}{ca_flag} s3 ls\n"
        "Press Ctrl-C to stop.",
        flush=True, file=sys.stderr if opts.json_summary else sys.stdout,
    )
    try:
        while not stopping:
            for c in cluster.children:
                if c.exited() and not c.reported:
                    print(f"objstore: {c.name} exited with code {c.proc.returncode}; see {c.log_path}",  # type: ignore[union-attr]
                          file=sys.stderr, flush=True)
                    c.reported = True
            time.sleep(0.2)
    finally:
        said = sys.stderr if opts.json_summary else sys.stdout
        print("objstore: stopping...", flush=True, file=said)
        cluster.stop()
        print("objstore: stopped.", flush=True, file=said)
    return 0


def _index(args: tuple[str, ...], flag: str) -> int:
    return args.index(flag) if flag in args else -1
