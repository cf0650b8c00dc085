"""The client of the metadata service, used by gateways, storage nodes and admin commands.

Invariants:
- Every state change is a command carrying this client's id, a fresh sequence number and
  ``ack`` (the lowest sequence number still awaiting an answer), so a command retried after
  a lost response is applied once and returns the first outcome. The id is the given
  ``client_id`` plus a random incarnation (``<client_id>/<incarnation>``), so a restarted
  process that reuses its name starts a fresh session instead of colliding with the
  sequence numbers of its previous life.
- A call is retried across the known addresses on connection errors, timeouts and
  ``ServiceUnavailable``; a ``NotLeader`` answer redirects to ``extra["leader"]`` when it
  names one (remembered for later calls). When no node gives an answer before the
  deadline (no leader with a majority behind it) the call raises
  :class:`~objstore.errors.ServiceUnavailable`. Reads any member serves (listings at
  ``one``) ask every member at once and take the first answer. Errors that are answers (NoSuchBucket,
  BucketAlreadyExists, AccessDenied, ...) are raised as they come, without retry.
- Names and keys go in JSON bodies or as percent-encoded query values; the signed path is
  exactly the path sent.
"""
from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from typing import Any, Sequence

import aiohttp
from yarl import URL

from metadata.api import command_batch, lookup_batch
from metadata.api import commands as c
from metadata.api.hot_paths import served_by_front
from metadata.api.commands import Outcome, command_to_dict
from metadata.api.page_rows import ROWS_FORM, read_page
from metadata.api.results import DeleteResult, LocalRead, ObjectLookup, VersionListResult, WriteResult
from metadata.api.upload_records import PartList
from objstore import internal_auth
from objstore.errors import NotLeader, ServiceUnavailable, raise_for_error_body
from objstore.hlc import HLC
from objstore.internal_http import HttpPool
from objstore.percent import quote_part
from objstore.tls import base_url, request_ssl
from objstore.repair_records import DamageReport
from objstore.types import Bucket, ClusterMap, Credential, ListResult, NodeInfo, ObjectVersion


def _addr(a: str) -> str:
    for scheme in ("http://", "https://"):
        if a.startswith(scheme):
            a = a[len(scheme) :]
    return a.rstrip("/")


def path_with_query(path: str, query: dict[str, Any] | None = None) -> str:
    """``path?k=v&...`` with every key and value fully percent-encoded (None values dropped)."""
    items = [(k, v) for k, v in (query or {}).items() if v is not None]
    if not items:
        return path
    return path + "?" + "&".join(f"{quote_part(str(k))}={quote_part(str(v))}" for k, v in items)


class MetadataClient:
    """Talks to the metadata nodes at ``addresses`` ("host:port")."""

    def __init__(
        self,
        addresses: Sequence[str],
        secret: str,
        session: aiohttp.ClientSession | None = None,
        client_id: str | None = None,
        *,
        deadline: float = 10.0,
        attempt_timeout: float = 5.0,
        incarnation: str | None = None,
        tls: ssl.SSLContext | None = None,
        pool: HttpPool | None = None,
    ) -> None:
        """``tls``: a client context (:func:`objstore.tls.client_context`) to call the nodes
        over HTTPS, verified by it; None calls them over plain HTTP. ``pool``: calls go through
        it (:mod:`objstore.internal_http`, built with the same TLS context) instead of the
        aiohttp session; only the calls the nodes' lean front serves
        (:mod:`metadata.api.hot_paths`), so that no pooled connection is handed to aiohttp's
        server."""
        if not addresses:
            raise ValueError("MetadataClient needs at least one address")
        self.addresses = [_addr(a) for a in addresses]
        self.secret = secret
        self.client_id = f"{client_id or 'client'}/{incarnation or uuid.uuid4().hex[:16]}"
        # Ids for delete markers when the caller gives none (unique per client instance).
        self._hlc = HLC(re.sub(r"[^0-9A-Za-z._-]", "-", self.client_id)[-64:])
        self.deadline = deadline
        self.attempt_timeout = attempt_timeout
        self.tls = tls
        self._session = session
        self._own_session = session is None
        self._pool = pool
        self._preferred = 0
        self._next_seq = 1
        self._outstanding: set[int] = set()
        # Commands coalesced while one is in flight (metadata.api.command_batch), unless turned off.
        # Each call through them is given what is left of its oldest item's deadline.
        self._commands = command_batch.CommandBatcher(
            lambda path, data, seconds: self._call("POST", path, raw=data, deadline=seconds),
            timeout=deadline) if command_batch.enabled() else None
        # Strong version lookups coalesced likewise (metadata.api.lookup_batch), unless turned off.
        self._lookups = lookup_batch.LookupBatcher(
            lambda path, query, seconds: self._call("GET", path, query, deadline=seconds),
            lambda path, data, seconds: self._call("POST", path, raw=data, deadline=seconds),
            timeout=deadline) if lookup_batch.enabled() else None

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> "MetadataClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- transport -------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    def _prefer(self, address: str) -> None:
        address = _addr(address)
        if address not in self.addresses:
            self.addresses.append(address)
        self._preferred = self.addresses.index(address)

    async def _call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                    *, wait: float = 0.0, raw: bytes | None = None, deadline: float | None = None) -> Any:
        """One request, retried across nodes until an answer or the deadline (both extended
        by ``wait`` seconds, for a long poll the server may hold that long). ``raw``: the
        body already encoded as JSON (instead of ``body``). ``deadline``: seconds for this
        call instead of the client's (a coalesced call gets what is left of its items')."""
        loop = asyncio.get_running_loop()
        path_qs = path_with_query(path, query)
        data = raw if raw is not None else None if body is None else json.dumps(body, ensure_ascii=False).encode()
        end = loop.time() + (self.deadline if deadline is None else deadline) + wait
        last: str = "no attempt made"
        attempt = 0
        redirects = 0
        while True:
            remaining = end - loop.time()
            if remaining <= 0:
                raise ServiceUnavailable(f"no metadata leader answered within {self.deadline:g}s ({last})")
            addr = self.addresses[self._preferred]
            timeout = min(self.attempt_timeout + wait, remaining)
            try:
                return await self._attempt(addr, method, path_qs, data, timeout)
            except NotLeader as err:
                last = f"{addr}: not the leader"
                leader = err.extra.get("leader")
                # Follow the redirect at once, but not forever: nodes with stale views may
                # point at each other during an election; then back off like any failure.
                if leader and _addr(str(leader)) != addr and redirects < 2 * len(self.addresses):
                    redirects += 1
                    self._prefer(str(leader))
                    continue
            except ServiceUnavailable as err:
                last = f"{addr}: {err.message}"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                # A last try the deadline cut short says less than the failure before it (a
                # refused certificate, a refused connection): keep that one.
                if not (isinstance(exc, asyncio.TimeoutError) and timeout < self.attempt_timeout + wait and attempt):
                    last = f"{addr}: {type(exc).__name__} {exc}"
            # Try the next node; after a full round, back off a little.
            self._preferred = (self._preferred + 1) % len(self.addresses)
            attempt += 1
            if attempt % len(self.addresses) == 0:
                pause = min(0.05 * 2 ** (attempt // len(self.addresses) - 1), 1.0)
                await asyncio.sleep(min(pause, max(0.0, end - loop.time())))

    async def _attempt(self, addr: str, method: str, path_qs: str, data: bytes | None, timeout: float) -> Any:
        """One signed request to the member at ``addr``; its JSON answer or its error raised."""
        headers = internal_auth.headers(self.secret, method, path_qs, body=data, target=addr)
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._pool is not None and served_by_front(method, path_qs.partition("?")[0], len(data or b"")):
            answer = await self._pool.request(method, addr, path_qs, headers, data, timeout=timeout)
            status, raw = answer.status, answer.body
        else:
            url = URL(base_url(addr, self.tls) + path_qs, encoded=True)
            async with self._http().request(method, url, data=data, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=timeout),
                                             ssl=request_ssl(self.tls)) as resp:
                status, raw = resp.status, await resp.read()
        raise_for_error_body(status, raw)
        return json.loads(raw)

    async def _first_answer(self, path: str, query: dict[str, Any]) -> Any:
        """GET ``path`` from every known member at once, for a read any member serves from
        its own state: the first answer (or error that is an answer) wins, so members cut off
        or down cost nothing while one is reachable. ServiceUnavailable when none answers
        within the deadline."""
        path_qs = path_with_query(path, query)
        tasks = [asyncio.ensure_future(self._attempt(a, "GET", path_qs, None, self.deadline)) for a in self.addresses]
        failures: list[str] = []
        try:
            for done in asyncio.as_completed(tasks):
                try:
                    return await done
                except (ServiceUnavailable, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    failures.append(f"{type(exc).__name__} {exc}")
        finally:
            for t in tasks:
                t.cancel()
        raise ServiceUnavailable(f"no metadata member answered within {self.deadline:g}s ({'; '.join(failures)})")

    async def _command(self, cmd: c.Command) -> Any:
        """Propose ``cmd`` with a session; returns its typed result or raises its error."""
        seq = self._next_seq
        self._next_seq += 1
        self._outstanding.add(seq)
        try:
            cmd = cmd.with_session(self.client_id, seq, min(self._outstanding))
            if self._commands is not None:
                d = await self._commands.send(command_to_dict(cmd))
            else:
                d = await self._call("POST", "/v1/command", body=command_to_dict(cmd))
        finally:
            self._outstanding.discard(seq)
        return Outcome.from_dict(d).result(type(cmd))

    # --- buckets ---------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner: str, policy: str, created: float, write_quorum: int = 0,
                            consistency: str = "strong") -> Bucket:
        """Raises BucketAlreadyOwnedByYou, BucketAlreadyExists, InvalidArgument (policy, quorum,
        consistency)."""
        return await self._command(c.CreateBucket(name, owner, policy, created, consistency=consistency,
                                                  write_quorum=write_quorum))

    async def set_bucket_consistency(self, name: str, level: str) -> Bucket:
        """A bucket's default read consistency: "strong", "quorum" or "one". Raises
        NoSuchBucket, InvalidArgument."""
        return await self._command(c.SetBucketConsistency(name, level))

    async def delete_bucket(self, name: str) -> PartList:
        """Delete a bucket, discarding its uploads in progress; returns their parts (to
        garbage-collect). Raises NoSuchBucket, BucketNotEmpty."""
        return await self._command(c.DeleteBucket(name, discard_uploads=True))

    async def get_bucket(self, name: str) -> Bucket:
        """Raises NoSuchBucket."""
        d = await self._call("GET", "/v1/bucket", {"name": name})
        return Bucket.from_dict(d["bucket"])

    async def list_buckets(self, owner: str | None = None) -> list[Bucket]:
        d = await self._call("GET", "/v1/buckets", {"owner": owner})
        return [Bucket.from_dict(b) for b in d["buckets"]]

    # --- objects ---------------------------------------------------------------------------

    async def put_version(
        self, version: ObjectVersion, *, if_match: str | None = None, if_none_match: bool = False,
    ) -> WriteResult:
        """Commit ``version`` as its key's current version (a new version or the null version,
        by the bucket's versioning). ``if_none_match``: only if the key has no current object;
        ``if_match``: only if the current object's ETag matches. The conditions are checked
        atomically with the write. Raises NoSuchBucket, AccessDenied, PreconditionFailed,
        NoSuchKey (``if_match`` without a current object), InvalidTag."""
        return await self._command(c.PutObject(version, if_match=if_match or "", if_none_match=if_none_match))

    async def put_object(
        self, version: ObjectVersion, *, if_match: str | None = None, if_none_match: bool = False,
    ) -> ObjectVersion | None:
        """:meth:`put_version`, returning only the version the write replaced (garbage)."""
        return (await self.put_version(version, if_match=if_match, if_none_match=if_none_match)).replaced

    async def get_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectVersion:
        """The current version, or the one named by ``version_id`` (S3's form, "null"
        included). Raises NoSuchBucket, NoSuchKey (also for a current delete marker),
        NoSuchVersion, MethodNotAllowed (a delete marker asked for by id)."""
        return (await self.lookup_object(bucket, key, version_id)).version

    async def lookup_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectLookup:
        """:meth:`get_object` plus the bucket's versioning state; raises as it does."""
        if self._lookups is not None:
            d = await self._lookups.lookup(bucket, key, version_id)
        else:
            d = await self._call("GET", "/v1/object", {"bucket": bucket, "key": key, "version_id": version_id})
        return ObjectLookup.from_dict(d)

    async def delete_version(
        self, bucket: str, key: str, version_id: str | None = None, *, marker_id: str | None = None,
        now: float | None = None,
    ) -> DeleteResult:
        """S3 DeleteObject: remove version ``version_id``, or (None) drop the key in an
        unversioned bucket / add a delete marker ``marker_id`` (default: a fresh id) at
        ``now`` in a versioned one. Raises NoSuchBucket; a missing key is no error."""
        return await self._command(c.DeleteObject(
            bucket, key, version_id=version_id or "", marker_id=marker_id or self._hlc.next(),
            now=time.time() if now is None else now,
        ))

    async def delete_object(self, bucket: str, key: str) -> ObjectVersion | None:
        """:meth:`delete_version` without a version id, returning only the version dropped
        (None if none was: nothing there, or a delete marker was added)."""
        return (await self.delete_version(bucket, key)).removed

    async def list_object_versions(
        self, bucket: str, prefix: str = "", delimiter: str | None = None, key_marker: str | None = None,
        version_id_marker: str | None = None, max_keys: int = 1000,
    ) -> VersionListResult:
        """One page of ListObjectVersions. Raises NoSuchBucket."""
        q = {"bucket": bucket, "prefix": prefix, "delimiter": delimiter, "key_marker": key_marker,
             "version_id_marker": version_id_marker, "max_keys": max_keys}
        return VersionListResult.from_dict(await self._call("GET", "/v1/versions", q))

    async def set_bucket_versioning(self, name: str, status: str) -> Bucket:
        """Status "Enabled" or "Suspended". Raises NoSuchBucket, InvalidArgument."""
        return await self._command(c.SetBucketVersioning(name, status))

    async def put_object_tags(
        self, bucket: str, key: str, tags: dict[str, str], version_id: str | None = None,
    ) -> WriteResult:
        """Replace the tags of a version (None: the current one; ``{}`` removes them).
        Raises NoSuchBucket, NoSuchKey, NoSuchVersion, MethodNotAllowed, InvalidTag."""
        return await self._command(c.SetObjectTags(bucket, key, dict(tags), version_id=version_id or ""))

    async def put_bucket_tags(self, name: str, tags: dict[str, str]) -> None:
        """Replace a bucket's tags (``{}`` removes them). Raises NoSuchBucket, InvalidTag."""
        await self._command(c.SetBucketTags(name, dict(tags)))

    async def put_bucket_policy(self, name: str, policy: str) -> None:
        """Replace a bucket's policy (JSON text; "" removes it). Raises NoSuchBucket,
        MalformedPolicy."""
        await self._command(c.SetBucketPolicy(name, policy))

    async def set_bucket_public_read(self, name: str, public_read: bool) -> None:
        """Set a bucket's canned ACL to public-read (True) or private. Raises NoSuchBucket."""
        await self._command(c.SetBucketAcl(name, public_read))

    async def set_object_public_read(
        self, bucket: str, key: str, public_read: bool, version_id: str | None = None,
    ) -> WriteResult:
        """Set a version's canned ACL (None: the current one) to public-read (True) or
        private. Raises NoSuchBucket, NoSuchKey, NoSuchVersion, MethodNotAllowed."""
        return await self._command(c.SetObjectAcl(bucket, key, public_read, version_id=version_id or ""))

    async def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, max_keys: int = 1000,
    ) -> ListResult:
        """One page of S3 listing (objstore.listing semantics). Raises NoSuchBucket."""
        q = {"bucket": bucket, "prefix": prefix, "delimiter": delimiter, "start_after": start_after,
             "max_keys": max_keys, "form": ROWS_FORM}
        return read_page(await self._call("GET", "/v1/list", q))

    async def list_objects_local(
        self, bucket: str, prefix: str = "", delimiter: str | None = None,
        start_after: str | None = None, max_keys: int = 1000,
    ) -> tuple[ListResult, LocalRead]:
        """:meth:`list_objects` answered by the first member to answer (all are asked at once),
        from its own state (follower included; possibly stale), with its indexes."""
        q = {"bucket": bucket, "prefix": prefix, "delimiter": delimiter, "start_after": start_after,
             "max_keys": max_keys, "local": 1, "form": ROWS_FORM}
        d = await self._first_answer("/v1/list", q)
        return read_page(d), LocalRead.from_dict(d["local"])

    async def list_object_versions_local(
        self, bucket: str, prefix: str = "", delimiter: str | None = None, key_marker: str | None = None,
        version_id_marker: str | None = None, max_keys: int = 1000,
    ) -> tuple[VersionListResult, LocalRead]:
        """:meth:`list_object_versions` from the first member reached (see :meth:`list_objects_local`)."""
        q = {"bucket": bucket, "prefix": prefix, "delimiter": delimiter, "key_marker": key_marker,
             "version_id_marker": version_id_marker, "max_keys": max_keys, "local": 1}
        d = await self._first_answer("/v1/versions", q)
        return VersionListResult.from_dict(d), LocalRead.from_dict(d["local"])

    # --- cluster map -----------------------------------------------------------------------

    async def register_node(self, node: NodeInfo) -> ClusterMap:
        return await self._command(c.RegisterNode(node))

    async def set_node_state(self, node_id: str, state: str) -> ClusterMap:
        """Raises InvalidArgument for an unknown node or state."""
        return await self._command(c.SetNodeState(node_id, state))

    async def hand_over_rings(self, ring_epoch: int) -> ClusterMap:
        """Drop the kept rings older than the one that came into effect at ``ring_epoch``
        (:class:`metadata.api.commands.HandOverRings`)."""
        return await self._command(c.HandOverRings(ring_epoch))

    async def get_cluster_map(self) -> ClusterMap:
        return ClusterMap.from_dict((await self._call("GET", "/v1/cluster"))["cluster_map"])

    async def wait_cluster_map(self, after_epoch: int, timeout: float) -> ClusterMap:
        """The cluster map once its epoch exceeds ``after_epoch``, or after ``timeout``
        seconds unchanged (a long poll the leader holds)."""
        q = {"wait_epoch": after_epoch, "timeout": timeout}
        return ClusterMap.from_dict((await self._call("GET", "/v1/cluster", q, wait=timeout))["cluster_map"])

    async def heartbeat(self, node: NodeInfo, stats: dict[str, Any]) -> dict[str, Any]:
        """One storage-node heartbeat as a node sends it (``{"epoch", "state"}``): registers
        an unknown node through Raft and refreshes the leader's liveness view."""
        return await self._call("POST", "/v1/nodes/heartbeat", body={"node": node.to_dict(), "stats": stats})

    async def node_health(self) -> dict[str, Any]:
        """The leader's view of every storage node: ``{"epoch", "nodes": [{"node_id",
        "state", "heartbeat_age", "capacity_bytes", "used_bytes", "free_bytes",
        "blob_count", "scrub"}]}``."""
        return await self._call("GET", "/v1/nodes/health")

    # --- credentials -----------------------------------------------------------------------

    async def put_credential(self, cred: Credential) -> None:
        await self._command(c.PutCredential(cred))

    async def get_credential(self, access_key: str) -> Credential | None:
        d = (await self._call("GET", "/v1/credential", {"access_key": access_key}))["credential"]
        return None if d is None else Credential.from_dict(d)

    async def delete_credential(self, access_key: str) -> None:
        await self._command(c.DeleteCredential(access_key))

    async def list_credentials(self) -> list[Credential]:
        return [Credential.from_dict(x) for x in (await self._call("GET", "/v1/credentials"))["credentials"]]

    # --- status ----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """Node id, role/leader, term, commit/applied index, log size, snapshot index, counts."""
        return await self._call("GET", "/v1/status")

    async def change_membership(self, op: str, node_id: str, address: str | None = None) -> dict[str, Any]:
        """Raft membership on the leader: ``op`` "add" (``address`` "host:port"; the node
        joins as a learner and is promoted once caught up), "remove" or "transfer"
        (leadership). Idempotent. Raises InvalidArgument, ServiceUnavailable."""
        body: dict[str, Any] = {"op": op, "id": node_id}
        if address is not None:
            body["address"] = address
        return await self._call("POST", "/v1/raft/members", body=body)

    # --- repair ----------------------------------------------------------------------------

    async def report_damage(self, reports: Sequence[DamageReport]) -> int:
        """Report copies found missing or corrupt (the leader verifies each before dropping
        it); returns how many it accepted."""
        body = {"reports": [r.to_dict() for r in reports]}
        return int((await self._call("POST", "/v1/repair/report", body=body))["accepted"])

    async def list_nodes(self) -> dict[str, Any]:
        """Every storage node: the leader's health row plus ``keys`` placed on it, and the
        widest policy in use (``widest_policy``, ``needed`` nodes)."""
        return await self._call("GET", "/v1/nodes")

    async def change_node(self, node_id: str, op: str, force: bool = False) -> dict[str, Any]:
        """``op`` is add, drain or remove (see metadata.membership); InvalidRequest when refused."""
        return await self._call("POST", "/v1/nodes/change", body={"node": node_id, "op": op, "force": force})

    async def set_node_weight(self, node_id: str, weight: float) -> dict[str, Any]:
        return await self._call("POST", "/v1/nodes/weight", body={"node": node_id, "weight": weight})

    async def ok_to_stop(self, node_id: str) -> dict[str, Any]:
        """Whether stopping ``node_id`` now leaves every blob at its write quorum (``ok``)."""
        return await self._call("GET", "/v1/nodes/ok-to-stop", {"node": node_id, "answer": "always"})

    async def rebalance_status(self) -> dict[str, Any]:
        """Objects and bytes misplaced, moves queued and in flight, moved so far, rate, ETA."""
        return await self._call("GET", "/v1/rebalance/status")

    async def repair_status(self) -> dict[str, Any]:
        """Objects and bytes below policy, tasks queued and in flight, repaired so far, rate, ETA."""
        return await self._call("GET", "/v1/repair/status")
