"""Snapshot encoding of the metadata state machine: versioned JSON lines, streamed.

Format (one JSON object per line, UTF-8, ``\\n`` terminated; JSON escapes newlines inside
strings, so lines split unambiguously):

    {"v": 1, "kind": "metadata-fsm", "applied_index": N, "epoch": E[, "gc_floor": F][, "ring_epoch": R,
     "kept_rings": [KeptRing, ...]]}
                                            (gc_floor only when not 0: see MetadataFSM)
    {"t": "node", "d": NodeInfo}            nodes by id
    {"t": "bucket", "d": Bucket}            buckets by name
    {"t": "objs", "b": bucket, "rows": [row, ...]}
                                            each bucket's versions and delete markers: keys
                                            ascending, each key's versions newest first as
                                            consecutive rows, up to ROWS_PER_LINE rows per
                                            line (rows: records.to_row)
    {"t": "cred", "d": Credential}          credentials by access key
    {"t": "session", "id": client, "floor": F, "results": [[seq, Outcome], ...]}
                                            sessions, least recently used first
    {"t": "upload", "d": MultipartUpload, "parts": [UploadedPart, ...]}
                                            multipart uploads in progress (since v2)
    {"t": "completed", "rows": [[bucket, upload id, key, version id], ...]}
                                            recently completed upload ids (since v2)
    {"t": "end", "lines": L}                L: the number of lines before this one

Versions: 2 adds the upload lines; 3 adds versioning (13-field rows carrying the
``versioned`` flag, several rows per key, delete markers, bucket versioning and tags in the
bucket line). Older snapshots still restore (:func:`restore` migrates them): their rows have
12 fields, one per key, and are the keys' null versions.

Invariants: the bytes depend only on the state (same state, same bytes), so
``snapshot(restore(s)) == s``; a stream without its ``end`` line, or with a line count
that does not match, is rejected. :func:`freeze` copies the state on the caller's thread
(fast: of the object indexes only their keys); encoding the frozen copy
(:func:`frozen_chunks`) may then run in another thread while the machine goes on applying
commands, and encodes the state as it was at the freeze (the indexes keep, for a frozen
view, the versions of each key changed since: :class:`~metadata.fsm.object_index.FrozenIndex`).
A frozen state is encoded once.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from metadata.fsm import records
from metadata.api.commands import Outcome
from metadata.fsm.machine import MetadataFSM, Session
from metadata.fsm.object_index import FrozenIndex
from metadata.fsm.uploads import UploadStore
from objstore.formats import check_version
from objstore.types import Bucket, Credential, KeptRing, NodeInfo, placement_of

SNAPSHOT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
KIND = "metadata-fsm"
ROWS_PER_LINE = 1000


class SnapshotFormatError(ValueError):
    """The snapshot stream is malformed, truncated or of an unknown version."""


def _line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class FrozenState:
    """A point-in-time copy of a machine's state, cheap to take, safe to encode in a thread.

    Records are immutable bytes and the atom table only grows, so shallow copies of the
    containers suffice: later applies to the machine do not show through.
    """

    applied_index: int
    epoch: int
    nodes: list[NodeInfo]
    buckets: list[Bucket]
    # each bucket's index as it was (metadata.fsm.object_index.FrozenIndex: keys copied,
    # values read when encoded)
    objects: list[FrozenIndex]
    credentials: list[Credential]
    sessions: list[tuple[str, int, list[tuple[int, Outcome]]]]
    atoms: records.Atoms
    uploads: tuple = ((), ())  # UploadStore.freeze()
    gc_floor: float = 0.0
    ring_epoch: int = 0
    kept_rings: tuple[KeptRing, ...] = ()


def freeze(fsm: MetadataFSM) -> FrozenState:
    """Copy the state (containers only, and of the object indexes only their keys: about
    40 ns per object on the caller's thread; the values are read when encoded)."""
    names = sorted(fsm.buckets)
    # Tuples of keys: the cyclic collector stops tracking a tuple of untracked items at its
    # first pass, so the copy costs later collections nothing.
    objects = [fsm.objects[n].freeze() for n in names]
    return FrozenState(
        applied_index=fsm.applied_index,
        epoch=fsm.epoch,
        nodes=[fsm.nodes[k] for k in sorted(fsm.nodes)],
        buckets=[fsm.buckets[n] for n in names],
        objects=objects,
        credentials=[fsm.credentials[k] for k in sorted(fsm.credentials)],
        sessions=[(cid, s.floor, list(s.results.items())) for cid, s in fsm.sessions.items()],
        atoms=fsm.atoms,
        uploads=fsm.uploads.freeze(),
        gc_floor=fsm.gc_floor,
        ring_epoch=fsm.ring_epoch,
        kept_rings=tuple(fsm.kept_rings),
    )


def _lines(st: FrozenState) -> Iterator[bytes]:
    head = {"v": SNAPSHOT_VERSION, "kind": KIND, "applied_index": st.applied_index, "epoch": st.epoch}
    if st.gc_floor:
        head["gc_floor"] = st.gc_floor
    if st.ring_epoch:
        head["ring_epoch"] = st.ring_epoch
    if st.kept_rings:
        head["kept_rings"] = [r.to_dict() for r in st.kept_rings]
    yield _line(head)
    for node in st.nodes:
        yield _line({"t": "node", "d": node.to_dict()})
    for bucket in st.buckets:
        yield _line({"t": "bucket", "d": bucket.to_dict()})
    mids: dict[tuple[int, ...], str] = {}
    for frozen in st.objects:
        # Each line is _line({"t": "objs", "b": name, "rows": [to_row(...), ...]}), written as
        # text row by row (records.row_json): the rows are most of a snapshot's encoding.
        start = '{"t":"objs","b":' + json.dumps(frozen.name, ensure_ascii=False) + ',"rows":['
        rows: list[str] = []
        atoms, row_json = st.atoms, records.row_json
        for key, value in frozen.pairs():
            for rec in (value,) if isinstance(value, bytes) else value:
                rows.append(row_json(key, rec, atoms, mids))
                if len(rows) == ROWS_PER_LINE:
                    yield (start + ",".join(rows) + "]}\n").encode()
                    rows = []
        if rows:
            yield (start + ",".join(rows) + "]}\n").encode()
    for cred in st.credentials:
        yield _line({"t": "cred", "d": cred.to_dict()})
    for client_id, floor, results in st.sessions:
        rows = [[seq, o.to_dict()] for seq, o in results]
        yield _line({"t": "session", "id": client_id, "floor": floor, "results": rows})
    for obj in UploadStore.snapshot_lines(st.uploads):
        yield _line(obj)


PAUSE_EVERY_BYTES = 64 * 1024  # of encoded lines between two pauses (a few ms of encoding)


def frozen_chunks(st: FrozenState, lines_per_chunk: int = 20, pause_s: float = 0.0,
                  sleep: Callable[[float], None] = time.sleep) -> Iterator[bytes]:
    """The snapshot of a frozen state as chunks of whole lines (may run in any thread).

    ``pause_s`` > 0: sleep that long after each PAUSE_EVERY_BYTES of encoded lines (about
    one line of ROWS_PER_LINE records, or many small lines: credentials, sessions), so that
    an encoding thread lets go of the GIL: the event loop serving requests meanwhile waits
    at most a few ms of encoding for it, rather than an interpreter switch interval each
    time, and gets it back at once when it wants it. A small state is written without a
    pause."""
    buf: list[bytes] = []
    count = 0
    since_pause = 0
    for line in _lines(st):
        buf.append(line)
        count += 1
        since_pause += len(line)
        if pause_s > 0 and since_pause >= PAUSE_EVERY_BYTES:
            sleep(pause_s)
            since_pause = 0
        if len(buf) >= lines_per_chunk:
            yield b"".join(buf)
            buf.clear()
    buf.append(_line({"t": "end", "lines": count}))
    yield b"".join(buf)


def snapshot_chunks(fsm: MetadataFSM) -> Iterator[bytes]:
    """The snapshot of the machine's current state as chunks of whole lines."""
    return frozen_chunks(freeze(fsm))


def snapshot_bytes(fsm: MetadataFSM) -> bytes:
    return b"".join(snapshot_chunks(fsm))


def restore(lines: Iterable[bytes]) -> MetadataFSM:
    """A machine rebuilt from snapshot lines; raises SnapshotFormatError."""
    fsm = MetadataFSM()
    it = iter(lines)
    try:
        head = json.loads(next(it))
    except (StopIteration, ValueError) as exc:
        raise SnapshotFormatError(f"bad snapshot header: {exc}") from None
    if isinstance(head, dict):
        check_version("a metadata snapshot", head.get("v"), SNAPSHOT_VERSION)
    if not isinstance(head, dict) or head.get("v") not in READABLE_VERSIONS or head.get("kind") != KIND:
        raise SnapshotFormatError(f"unsupported snapshot header {head!r}")
    fsm.applied_index = head["applied_index"]
    fsm.epoch = head["epoch"]
    fsm.gc_floor = float(head.get("gc_floor", 0.0))
    fsm.ring_epoch = int(head.get("ring_epoch", 0))
    fsm.kept_rings = [KeptRing.from_dict(r) for r in head.get("kept_rings", ())]
    count = 1
    versions = _VersionLoader(fsm)
    try:
        for raw in it:
            d = json.loads(raw)
            t = d["t"]
            if t == "end":
                if d["lines"] != count:
                    raise SnapshotFormatError(f"snapshot has {count} lines, its end line says {d['lines']}")
                versions.finish()
                fsm.placement = placement_of(fsm.nodes.values())
                return fsm
            count += 1
            if t == "objs":
                versions.add(d["b"], d["rows"])
            elif t == "node":
                n = NodeInfo.from_dict(d["d"])
                fsm.nodes[n.node_id] = n
            elif t == "bucket":
                b = Bucket.from_dict(d["d"])
                fsm.buckets[b.name] = b
                fsm.objects[b.name] = fsm.new_bucket_index(b.name)
            elif t == "cred":
                cred = Credential.from_dict(d["d"])
                fsm.credentials[cred.access_key] = cred
            elif t == "session":
                results = {seq: Outcome.from_dict(o) for seq, o in d["results"]}
                fsm.sessions[d["id"]] = Session(d["floor"], results)
            elif not fsm.uploads.restore_line(d):
                raise SnapshotFormatError(f"unknown snapshot line type {t!r}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SnapshotFormatError):
            raise
        raise SnapshotFormatError(f"bad snapshot line {count + 1}: {exc}") from None
    raise SnapshotFormatError("snapshot is truncated: no end line")


class _VersionLoader:
    """Rebuilds object indexes from "objs" rows: consecutive rows of one key are its
    versions, newest first (a key's rows may span lines). Keys are gathered per bucket and
    each index is built in one go at the end (:meth:`BucketIndex.load`), then the
    placement index from it: a snapshot's keys come in order, so no per-key insert."""

    def __init__(self, fsm: MetadataFSM) -> None:
        self.fsm = fsm
        self.pending: dict[str, tuple[list[str], list]] = {}  # bucket -> its keys, their values
        self.bucket: str | None = None
        self.key: str | None = None
        self.recs: list[bytes] = []

    def add(self, bucket: str, rows: list) -> None:
        if bucket not in self.fsm.objects:
            raise SnapshotFormatError(f"rows of bucket {bucket!r}, which the snapshot does not hold")
        atoms = self.fsm.atoms
        for row in rows:
            key, rec = records.from_row(row, atoms)
            if bucket != self.bucket or key != self.key:
                self.flush()
                self.bucket, self.key = bucket, key
            self.recs.append(rec)

    def flush(self) -> None:
        if self.recs:
            keys, values = self.pending.setdefault(self.bucket, ([], []))  # type: ignore[arg-type]
            keys.append(self.key)
            values.append(self.recs[0] if len(self.recs) == 1 else tuple(self.recs))
        self.bucket, self.key, self.recs = None, None, []

    def finish(self) -> None:
        """Build every bucket's index and the placement index from the gathered keys."""
        self.flush()
        for bucket, (keys, values) in self.pending.items():
            index = self.fsm.objects[bucket]
            try:
                index.load(keys, values)
            except ValueError as exc:
                raise SnapshotFormatError(str(exc)) from None
            self.fsm.placements.add_new(bucket, index.versions_from(""))
        self.pending.clear()
