"""Snapshot encoding of the metadata state machine: versioned JSON lines, streamed.

Format (one JSON object per line, UTF-8, ``\\n`` terminated; JSON escapes newlines inside
strings, so lines split unambiguously):

    {"v": 1, "kind": "metadata-fsm", "applied_index": N, "epoch": E}
    {"t": "node", "d": NodeInfo}            nodes by id
    {"t": "bucket", "d": Bucket}            buckets by name
    {"t": "objs", "b": bucket, "rows": [row, ...]}
                                            each bucket's current versions in key order, up
                                            to ROWS_PER_LINE per line (rows: records.to_row)
    {"t": "cred", "d": Credential}          credentials by access key
    {"t": "session", "id": client, "floor": F, "results": [[seq, Outcome], ...]}
                                            sessions, least recently used first
    {"t": "end", "lines": L}                L: the number of lines before this one

Invariants: the bytes depend only on the state (same state, same bytes), so
``snapshot(restore(s)) == s``; a stream without its ``end`` line, or with a line count
that does not match, is rejected. Producing the chunks walks live state: nothing may be
applied to the machine until the iterator is exhausted or dropped.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from sortedcontainers import SortedDict

from metadata import records
from metadata.commands import Outcome
from metadata.fsm import MetadataFSM, Session
from objstore.types import Bucket, Credential, NodeInfo

SNAPSHOT_VERSION = 1
KIND = "metadata-fsm"
ROWS_PER_LINE = 1000


class SnapshotFormatError(ValueError):
    """The snapshot stream is malformed, truncated or of an unknown version."""


def _line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _lines(fsm: MetadataFSM) -> Iterator[bytes]:
    yield _line({"v": SNAPSHOT_VERSION, "kind": KIND, "applied_index": fsm.applied_index, "epoch": fsm.epoch})
    for node_id in sorted(fsm.nodes):
        yield _line({"t": "node", "d": fsm.nodes[node_id].to_dict()})
    for name in sorted(fsm.buckets):
        yield _line({"t": "bucket", "d": fsm.buckets[name].to_dict()})
    for name in sorted(fsm.buckets):
        rows: list[list[Any]] = []
        for key, rec in fsm.objects[name].items():
            rows.append(records.to_row(key, rec, fsm.atoms))
            if len(rows) == ROWS_PER_LINE:
                yield _line({"t": "objs", "b": name, "rows": rows})
                rows = []
        if rows:
            yield _line({"t": "objs", "b": name, "rows": rows})
    for ak in sorted(fsm.credentials):
        yield _line({"t": "cred", "d": fsm.credentials[ak].to_dict()})
    for client_id, s in fsm.sessions.items():
        results = [[seq, o.to_dict()] for seq, o in s.results.items()]
        yield _line({"t": "session", "id": client_id, "floor": s.floor, "results": results})


def snapshot_chunks(fsm: MetadataFSM, lines_per_chunk: int = 20) -> Iterator[bytes]:
    """The snapshot as a stream of chunks of whole lines."""
    buf: list[bytes] = []
    count = 0
    for line in _lines(fsm):
        buf.append(line)
        count += 1
        if len(buf) >= lines_per_chunk:
            yield b"".join(buf)
            buf.clear()
    buf.append(_line({"t": "end", "lines": count}))
    yield b"".join(buf)


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
    if not isinstance(head, dict) or head.get("v") != SNAPSHOT_VERSION or head.get("kind") != KIND:
        raise SnapshotFormatError(f"unsupported snapshot header {head!r}")
    fsm.applied_index = head["applied_index"]
    fsm.epoch = head["epoch"]
    count = 1
    try:
        for raw in it:
            d = json.loads(raw)
            t = d["t"]
            if t == "end":
                if d["lines"] != count:
                    raise SnapshotFormatError(f"snapshot has {count} lines, its end line says {d['lines']}")
                return fsm
            count += 1
            if t == "objs":
                index = fsm.objects[d["b"]]
                for row in d["rows"]:
                    key, rec = records.from_row(row, fsm.atoms)
                    index[key] = rec
            elif t == "node":
                n = NodeInfo.from_dict(d["d"])
                fsm.nodes[n.node_id] = n
            elif t == "bucket":
                b = Bucket.from_dict(d["d"])
                fsm.buckets[b.name] = b
                fsm.objects[b.name] = SortedDict()
            elif t == "cred":
                cred = Credential.from_dict(d["d"])
                fsm.credentials[cred.access_key] = cred
            elif t == "session":
                results = {seq: Outcome.from_dict(o) for seq, o in d["results"]}
                fsm.sessions[d["id"]] = Session(d["floor"], results)
            else:
                raise SnapshotFormatError(f"unknown snapshot line type {t!r}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SnapshotFormatError):
            raise
        raise SnapshotFormatError(f"bad snapshot line {count + 1}: {exc}") from None
    raise SnapshotFormatError("snapshot is truncated: no end line")
