"""Multipart uploads in progress: the part of the metadata state machine that holds them.

:class:`UploadStore` is pure and deterministic like the rest of the state machine
(:class:`metadata.fsm.machine.MetadataFSM` owns one and snapshots it). Every command method either
changes the state and returns its result, or raises an ObjstoreError and changes nothing.

Invariants:
- An upload is keyed by (bucket, key, upload id); per bucket they sit in a SortedDict on
  ``(key, upload_id)``, the order ListMultipartUploads returns them in (upload ids are
  time-ordered HLC ids, so uploads of one key list oldest first).
- Each part number (1..10000) of an upload holds at most one part; uploading it again
  returns the replaced part, whose blobs are then garbage.
- Completing validates, atomically: the parts listed are in strictly ascending order
  (InvalidPartOrder), each was uploaded with that ETag (InvalidPart), every one but the last
  is at least 5 MiB (EntityTooSmall). The object's ETag is ``md5(md5_1 || ... || md5_n)-n``
  over the binary part MD5s. The upload then disappears; the parts it did not list are
  returned as garbage. No data moves: the object's record lists the parts' blobs.
- A completed upload id is remembered (the newest ``MAX_COMPLETED``): completing it again
  succeeds without change while its object is still the key's current version, as a
  retried CompleteMultipartUpload does on S3; otherwise NoSuchUpload.
- Derived, never snapshotted (rebuilt as uploads load): ``by_node[n][(bucket, key, upload
  id)]`` is the number of that upload's parts placed on node ``n`` (a node with none is
  absent), kept on every part change, so draining and removing a node find the parts of
  uploads in progress on it without a scan. A part moves with ``set_part_placement``
  (conditional, as RepairPlacement for a version's blobs).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from typing import Any, Callable, Iterable, Iterator

from sortedcontainers import SortedDict

from metadata.fsm import part_codec
from metadata.api.upload_records import (
    MAX_PART_SIZE, MIN_PART_SIZE, CompletedUpload, MultipartUpload, PartList,
    PartsPage, UploadedPart, UploadsPage,
)
from objstore.errors import (
    AccessDenied, BadDigest, EntityTooLarge, EntityTooSmall, InvalidArgument, InvalidPart, InvalidPartOrder,
    InvalidRequest, MalformedXML, NoSuchUpload,
)
from objstore.listing import prefix_successor, rollup
from objstore.repair_records import RepairOutcome
from objstore.s3rules import checksum_type_for
from objstore.types import Bucket, ObjectVersion, PartRef

MAX_COMPLETED = 10_000
MAX_OBJECT_SIZE = 5 * 1024**4
_DIGEST_SIZES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
_CRCS = ("crc32", "crc32c", "crc64nvme")


def _crt() -> Any:
    """awscrt's checksums, imported on first use: loading its native library costs a
    metadata process ~0.15 CPU-s at start, and only multipart uploads with CRCs need it."""
    from awscrt import checksums
    return checksums


class _Upload:
    __slots__ = ("info", "parts")

    def __init__(self, info: MultipartUpload, parts: dict[int, UploadedPart] | None = None) -> None:
        self.info = info
        self.parts: dict[int, UploadedPart] = parts if parts is not None else {}


def multipart_etag(md5s: list[str]) -> str:
    """S3's ETag of a multipart object from its parts' hex MD5s: ``md5(concat)-n``."""
    return hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest() + f"-{len(md5s)}"


def object_checksum(algorithm: str, ctype: str, parts: list[PartRef]) -> str | None:
    """The object's checksum from its parts' (COMPOSITE: ``<digest of digests>-n``;
    FULL_OBJECT: the CRC of the whole object); None when a part has none."""
    if algorithm not in _DIGEST_SIZES or not parts:
        return None
    size = _DIGEST_SIZES[algorithm]
    raws = [_decode_b64(p.checksums.get(algorithm, "")) for p in parts]
    if any(r is None or len(r) != size for r in raws):
        return None
    if ctype == "FULL_OBJECT":
        crc = int.from_bytes(raws[0], "big")
        for raw, p in zip(raws[1:], parts[1:]):
            crc = getattr(_crt(), f"combine_{algorithm}")(crc, int.from_bytes(raw, "big"), p.size)
        return base64.b64encode(crc.to_bytes(size, "big")).decode()
    joined = b"".join(raws)
    if algorithm in _CRCS:
        digest = getattr(_crt(), algorithm)(joined, 0).to_bytes(size, "big")
    else:
        digest = hashlib.new(algorithm, joined).digest()
    return base64.b64encode(digest).decode() + f"-{len(parts)}"


def _requested_parts(raw: Any) -> list[tuple[int, str, dict[str, str]]]:
    """The Complete request's [number, etag, checksums] rows, type-checked."""
    if not isinstance(raw, list) or not raw:
        raise MalformedXML("The XML you provided was not well-formed or did not validate against our published schema.")
    out = []
    for row in raw:
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], int) and not isinstance(row[0], bool)
                and isinstance(row[1], str) and isinstance(row[2], dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in row[2].items())):
            raise InvalidArgument("malformed parts list")
        out.append((row[0], row[1].strip().strip('"'), row[2]))
    return out


def _check_upload_fields(u: MultipartUpload) -> None:
    names = ("bucket", "key", "upload_id", "owner", "content_type", "policy", "checksum_algorithm", "checksum_type")
    for name in names:
        if not isinstance(getattr(u, name), str):
            raise InvalidArgument(f"field {name} of the upload has the wrong type")
    if not u.key or not u.upload_id or len(u.upload_id) > 256:
        raise InvalidArgument("an upload needs a key and an upload id of at most 256 characters")
    if isinstance(u.initiated, bool) or not isinstance(u.initiated, (int, float)):
        raise InvalidArgument("invalid initiation time")
    for d in (u.headers, u.user_meta, u.tags):
        if not isinstance(d, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in d.items()):
            raise InvalidArgument("headers and user metadata must map strings to strings")
    if u.checksum_algorithm and u.checksum_algorithm not in _DIGEST_SIZES:
        raise InvalidArgument(f"unknown checksum algorithm {u.checksum_algorithm!r}")
    checksum_type_for(u.checksum_algorithm, u.checksum_type)


class UploadStore:
    """The uploads in progress, and the ids of recently completed ones."""

    def __init__(self) -> None:
        self.buckets: dict[str, SortedDict] = {}
        self.completed: dict[tuple[str, str], tuple[str, str]] = {}  # (bucket, id) -> (key, version id)
        # derived: see the module docstring; sorted, so a part walk resumes by bisection
        self.by_node: dict[str, SortedDict] = {}

    def _count(self, info: MultipartUpload, parts: Iterable[PartRef], delta: int) -> None:
        """Add ``delta`` to ``by_node`` for each node each of ``parts`` is placed on."""
        k = (info.bucket, info.key, info.upload_id)
        for part in parts:
            for n in set(part.placement) - {""}:
                ups = self.by_node.get(n)
                if ups is None:
                    ups = self.by_node[n] = SortedDict()
                left = ups.get(k, 0) + delta
                if left > 0:
                    ups[k] = left
                else:
                    ups.pop(k, None)
                    if not ups:
                        del self.by_node[n]

    # --- commands ---------------------------------------------------------------------------

    def create(self, upload: MultipartUpload, bucket: Bucket) -> MultipartUpload:
        """Start an upload in ``bucket`` (the caller checked it exists)."""
        _check_upload_fields(upload)
        if upload.owner and upload.owner != bucket.owner:
            raise AccessDenied(BucketName=bucket.name)
        index = self.buckets.setdefault(upload.bucket, SortedDict())
        if (upload.key, upload.upload_id) in index or (upload.bucket, upload.upload_id) in self.completed:
            raise InvalidRequest(f"upload id {upload.upload_id} is already in use")
        index[(upload.key, upload.upload_id)] = _Upload(upload)
        return upload

    def put_part(self, bucket: str, key: str, upload_id: str, part: UploadedPart) -> PartRef | None:
        """Record an uploaded part; returns the part it replaced (garbage) or None."""
        up = self._get(bucket, key, upload_id)
        if not isinstance(part, UploadedPart) or isinstance(part.last_modified, bool) \
                or not isinstance(part.last_modified, (int, float)):
            raise InvalidArgument("malformed part")
        part_codec.check_part(part.part)
        if part.part.size > MAX_PART_SIZE:
            raise EntityTooLarge(ProposedSize=part.part.size, MaxSizeAllowed=MAX_PART_SIZE)
        old = up.parts.get(part.part.number)
        up.parts[part.part.number] = part
        self._count(up.info, [old.part] if old is not None else [], -1)
        self._count(up.info, [part.part], 1)
        return None if old is None or old.part.version_id == part.part.version_id else old.part

    def abort(self, bucket: str, key: str, upload_id: str) -> PartList:
        """Remove an upload; returns its parts (garbage). Raises NoSuchUpload."""
        up = self._get(bucket, key, upload_id)
        del self.buckets[bucket][(key, upload_id)]
        self._count(up.info, (p.part for p in up.parts.values()), -1)
        return PartList(tuple(up.parts[n].part for n in sorted(up.parts)))

    def complete(
        self, bucket: str, key: str, upload_id: str, requested: Any, version_id: str, last_modified: float,
        expected_checksums: dict[str, str],
        put: Callable[[ObjectVersion], tuple[ObjectVersion | None, str, str]],
        current: Callable[[str, str], ObjectVersion | None],
    ) -> CompletedUpload:
        """Validate and complete an upload: ``put`` commits the new version (the same path
        as PutObject, with its conditions) and returns (the version it replaced, the version
        id S3 names it by, "null" unless the bucket is versioned, and the bucket's versioning
        state); it may raise, leaving the upload as it was. ``current`` is the key's current
        version (for a replayed completion)."""
        up = self.buckets.get(bucket, {}).get((key, upload_id))
        if up is None:
            done = self.completed.get((bucket, upload_id))
            if done is not None and done[0] == key:
                cur = current(bucket, key)
                if cur is not None and cur.version_id == done[1]:
                    return CompletedUpload(dataclasses.replace(cur, parts=()), replayed=True)
            raise NoSuchUpload(UploadId=upload_id)
        wanted = _requested_parts(requested)
        for (a, _, _), (b, _, _) in zip(wanted, wanted[1:]):
            if b <= a:
                raise InvalidPartOrder(UploadId=upload_id)
        info = up.info
        alg = info.checksum_algorithm
        chosen: list[PartRef] = []
        for number, etag, sums in wanted:
            have = up.parts.get(number)
            if have is None or have.part.etag != etag:
                raise InvalidPart(UploadId=upload_id, PartNumber=number, ETag=etag)
            for name, value in sums.items():
                if have.part.checksums.get(name.lower()) != value:
                    raise InvalidPart(f"The {name.upper()} you specified for part {number} did not match what we "
                                      "received.", UploadId=upload_id, PartNumber=number)
            chosen.append(have.part)
        for p in chosen[:-1]:
            if p.size < MIN_PART_SIZE:
                raise EntityTooSmall(ProposedSize=p.size, MinSizeAllowed=MIN_PART_SIZE, PartNumber=p.number,
                                     ETag=p.etag)
        total = sum(p.size for p in chosen)
        if total > MAX_OBJECT_SIZE:
            raise EntityTooLarge(ProposedSize=total, MaxSizeAllowed=MAX_OBJECT_SIZE)
        checksums: dict[str, str] = {}
        value = object_checksum(alg, info.checksum_type, chosen)
        if value is not None:
            checksums[alg] = value
        want = expected_checksums.get(alg) if isinstance(expected_checksums, dict) else None
        if info.checksum_type == "FULL_OBJECT" and want is not None and want != value:
            raise BadDigest(f"The {alg.upper()} you specified did not match the calculated checksum.")
        version = ObjectVersion(
            bucket=bucket, key=key, version_id=version_id, size=total,
            etag=multipart_etag([p.etag for p in chosen]), last_modified=last_modified,
            content_type=info.content_type, headers=info.headers, user_meta=info.user_meta, policy=info.policy,
            checksums=checksums, owner=info.owner, parts=tuple(chosen), tags=dict(info.tags),
        )
        previous, s3_version_id, versioning = put(version)
        listed = {p.number for p in chosen}
        del self.buckets[bucket][(key, upload_id)]
        self._count(info, (p.part for p in up.parts.values()), -1)
        self.completed[(bucket, upload_id)] = (key, version.version_id)
        while len(self.completed) > MAX_COMPLETED:
            del self.completed[next(iter(self.completed))]
        unused = tuple(up.parts[n].part for n in sorted(up.parts) if n not in listed)
        # The answer leaves out the new version's parts list (up to 10,000 entries): the
        # caller needs its ETag, size and checksums; the index has the parts.
        return CompletedUpload(dataclasses.replace(version, parts=()), previous, unused, versioning=versioning,
                               s3_version_id=s3_version_id)

    def drop_bucket(self, bucket: str) -> PartList:
        """Forget a deleted bucket and discard its uploads in progress; returns their parts
        (garbage)."""
        uploads = self.buckets.pop(bucket, None) or {}
        for up in uploads.values():
            self._count(up.info, (p.part for p in up.parts.values()), -1)
        for k in [k for k in self.completed if k[0] == bucket]:
            del self.completed[k]
        return PartList(tuple(up.parts[n].part for up in uploads.values() for n in sorted(up.parts)))

    def set_part_placement(self, bucket: str, key: str, upload_id: str, number: int, version_id: str,
                           expected: tuple[str, ...], placement: tuple[str, ...]) -> RepairOutcome:
        """Part ``number`` (blob ``version_id``) of an upload in progress is now on
        ``placement``, only if its placement is exactly ``expected``; otherwise nothing
        changes ("deleted": the upload or that part of it is gone or replaced; "stale")."""
        up = self.buckets.get(bucket, {}).get((key, upload_id))
        have = up.parts.get(number) if up is not None else None
        if up is None or have is None or have.part.version_id != version_id:
            return RepairOutcome(False, "deleted")
        if have.part.placement != expected:
            return RepairOutcome(False, "stale")
        moved = dataclasses.replace(have.part, placement=placement)
        up.parts[number] = dataclasses.replace(have, part=moved)
        self._count(up.info, [have.part], -1)
        self._count(up.info, [moved], 1)
        return RepairOutcome(True)

    # --- reads ------------------------------------------------------------------------------

    def parts_on(self, node_id: str) -> Iterator[tuple[MultipartUpload, UploadedPart]]:
        """(upload, part) of each part of an upload in progress placed on ``node_id``. Do
        not apply commands while iterating."""
        for bucket, key, upload_id in self.by_node.get(node_id, {}):
            up = self.buckets[bucket][(key, upload_id)]
            for n in sorted(up.parts):
                if node_id in up.parts[n].part.placement:
                    yield up.info, up.parts[n]

    def part_count_on(self, node_id: str) -> int:
        """Parts of uploads in progress placed on ``node_id``."""
        return sum(self.by_node.get(node_id, {}).values())

    def _get(self, bucket: str, key: str, upload_id: str) -> _Upload:
        up = self.buckets.get(bucket, {}).get((key, upload_id))
        if up is None:
            raise NoSuchUpload(UploadId=upload_id)
        return up

    def has_uploads(self, bucket: str) -> bool:
        return bool(self.buckets.get(bucket))

    def count(self) -> int:
        return sum(len(d) for d in self.buckets.values())

    def bucket_count(self, bucket: str) -> int:
        """Uploads in progress in ``bucket``."""
        return len(self.buckets.get(bucket, ()))

    def get(self, bucket: str, key: str, upload_id: str) -> MultipartUpload:
        """Raises NoSuchUpload."""
        return self._get(bucket, key, upload_id).info

    def list_parts(self, bucket: str, key: str, upload_id: str, marker: int = 0, max_parts: int = 1000) -> PartsPage:
        """Parts numbered above ``marker``, at most ``max_parts``; raises NoSuchUpload."""
        up = self._get(bucket, key, upload_id)
        numbers = sorted(n for n in up.parts if n > marker)
        page = numbers[: max(max_parts, 0)]
        truncated = len(numbers) > len(page)
        return PartsPage(up.info, tuple(up.parts[n] for n in page), truncated, page[-1] if page else 0)

    def list_uploads(
        self, bucket: str, prefix: str = "", delimiter: str | None = None, key_marker: str | None = None,
        upload_id_marker: str | None = None, max_uploads: int = 1000,
    ) -> UploadsPage:
        """One page of ListMultipartUploads (S3 semantics: a common prefix counts as one; the
        upload id marker applies only with a key marker)."""
        index = self.buckets.get(bucket) or SortedDict()
        if max_uploads <= 0:
            return UploadsPage((), (), False, None, None)
        start, skip = (prefix, ""), None
        if key_marker:
            if upload_id_marker:
                start, skip = max(start, (key_marker, upload_id_marker)), (key_marker, upload_id_marker)
            else:
                start = max(start, (key_marker + "\x00", ""))
            cp = rollup(key_marker, prefix, delimiter) if key_marker.startswith(prefix) else None
            if cp is not None:
                nxt = prefix_successor(cp)
                if nxt is None:
                    return UploadsPage((), (), False, None, None)
                start = max(start, (nxt, ""))
        uploads: list[MultipartUpload] = []
        prefixes: list[str] = []
        last: tuple[str, str | None] | None = None
        truncated = False
        it: Iterator | None = iter(index.irange(minimum=start))
        while it is not None:
            cursor, it = it, None
            for k in cursor:
                if k == skip:
                    continue
                if not k[0].startswith(prefix):
                    break
                if len(uploads) + len(prefixes) == max_uploads:
                    truncated = True
                    break
                cp = rollup(k[0], prefix, delimiter)
                if cp is None:
                    uploads.append(index[k].info)
                    last = k
                    continue
                prefixes.append(cp)
                last = (cp, None)
                nxt = prefix_successor(cp)
                if nxt is not None:
                    it = iter(index.irange(minimum=(nxt, "")))
                break
        if not truncated:
            return UploadsPage(tuple(uploads), tuple(prefixes), False, None, None)
        assert last is not None
        return UploadsPage(tuple(uploads), tuple(prefixes), True, last[0], last[1])

    def stale(self, before: float, limit: int = 1000) -> list[MultipartUpload]:
        """Uploads initiated before ``before`` (any bucket), at most ``limit``."""
        out: list[MultipartUpload] = []
        for name in sorted(self.buckets):
            for up in self.buckets[name].values():
                if up.info.initiated < before:
                    out.append(up.info)
                    if len(out) >= limit:
                        return out
        return out

    # --- snapshots --------------------------------------------------------------------------

    def freeze(self) -> tuple[list[tuple[MultipartUpload, list[UploadedPart]]], list[list[str]]]:
        """A point-in-time copy (records are immutable: copying the containers suffices)."""
        uploads = [
            (up.info, [up.parts[n] for n in sorted(up.parts)])
            for name in sorted(self.buckets) for up in self.buckets[name].values()
        ]
        return uploads, [[b, u, k, v] for (b, u), (k, v) in self.completed.items()]

    @staticmethod
    def snapshot_lines(frozen: tuple[list, list[list[str]]]) -> Iterator[dict[str, Any]]:
        """The snapshot lines of a frozen copy: one per upload, then the completed ids."""
        uploads, completed = frozen
        for info, parts in uploads:
            yield {"t": "upload", "d": info.to_dict(), "parts": [p.to_dict() for p in parts]}
        for i in range(0, len(completed), 1000):
            yield {"t": "completed", "rows": completed[i : i + 1000]}

    def restore_line(self, d: dict[str, Any]) -> bool:
        """Apply one snapshot line; False if it is not an upload line."""
        if d["t"] == "upload":
            info = MultipartUpload.from_dict(d["d"])
            parts = {p.part.number: p for p in (UploadedPart.from_dict(x) for x in d["parts"])}
            self.buckets.setdefault(info.bucket, SortedDict())[(info.key, info.upload_id)] = _Upload(info, parts)
            self._count(info, (p.part for p in parts.values()), 1)
            return True
        if d["t"] == "completed":
            for b, u, k, v in d["rows"]:
                self.completed[(b, u)] = (k, v)
            return True
        return False


def _decode_b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
