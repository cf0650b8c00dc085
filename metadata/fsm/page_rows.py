"""A ListObjects page in its compact wire form, written as JSON text straight from the records.

The ``rows`` form (``GET /v1/list?...&form=rows``; read back by
:mod:`metadata.api.page_rows`) sends what differs from entry to entry once per entry and
what many entries share once per page::

    {"bucket": name,
     "shapes": [[content_type, policy, placement, ring_epoch, delete_marker, owner, versioned], ...],
     "rows": [[key, version_id, size, etag, last_modified, shape], ...],
     "common_prefixes": [...], "is_truncated": bool, "next_marker": str | null}

``shape`` indexes ``shapes``. A row whose record carries headers, user metadata, checksums,
tags or the public-read flag has a seventh element, an object of those fields by their
``ObjectVersion`` names (at their default they are left out). A listed entry never carries
its parts list (listings need the size and ETag only).

The text is built with ``str`` formatting, not ``json.dumps`` of a dict per entry: strings
through the C escaper json itself uses (ASCII output, as ``json.dumps``), numbers as
``json.dumps`` writes them. ``json.loads`` of the text equals the page as a tree of plain
values (tested against :func:`page_dict`).
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _s  # type: ignore[attr-defined]
from typing import Any, Iterable

from metadata.fsm import records

_EXTRA_FIELDS = (("h", "headers"), ("m", "user_meta"), ("c", "checksums"), ("t", "tags"))
_SHAPE_FLAGS = records.DELETE_MARKER | records.VERSIONED


def _num(x: float) -> str:
    """``x`` as json.dumps writes it (finite floats by repr; NaN and infinities its way)."""
    return repr(x) if x - x == 0 else json.dumps(x)


def _extras(extras: dict[str, Any]) -> dict[str, Any]:
    out = {name: extras[short] for short, name in _EXTRA_FIELDS if extras.get(short)}
    if extras.get("r"):
        out["public_read"] = True
    return out


def rows_json(bucket: str, entries: Iterable[tuple[str, bytes]], atoms: records.Atoms, common_prefixes: list[str],
              is_truncated: bool, next_marker: str | None, local: dict[str, Any] | None = None) -> str:
    """The rows form of a page of ``entries`` ((key, current record) in key order) as JSON
    text; ``local`` (a ``?local=1`` read's answer) is added as its own field."""
    head_from, u16_from, head_size = records._head_from, records._u16_from, records._HEAD_SIZE
    md5, has_extras, value = records.ETAG_MD5, records.EXTRAS, atoms.value
    shapes: dict[tuple[int, int, int, int, int, int], int] = {}
    shape_text: list[str] = []
    rows: list[str] = []
    for key, rec in entries:
        size, lm, epoch, ct, policy, owner, placement, flags = head_from(rec)
        shape = (ct, policy, placement, epoch, owner, flags & _SHAPE_FLAGS)
        si = shapes.get(shape)
        if si is None:
            si = shapes[shape] = len(shape_text)
            shape_text.append(json.dumps(
                [value(ct), value(policy), list(value(placement)), epoch, bool(flags & records.DELETE_MARKER),
                 value(owner), bool(flags & records.VERSIONED)], separators=(",", ":")))
        (n,) = u16_from(rec, head_size)
        pos = head_size + 2 + n
        vid = rec[head_size + 2:pos].decode()
        if flags & md5:
            etag = f'"{rec[pos:pos + 16].hex()}"'  # hex digits: nothing to escape
            pos += 16
        else:
            (n,) = u16_from(rec, pos)
            etag = _s(rec[pos + 2:pos + 2 + n].decode())
            pos += 2 + n
        extra = ""
        if flags & has_extras:
            ex = _extras(json.loads(rec[pos:]))
            if ex:
                extra = "," + json.dumps(ex, separators=(",", ":"))
        lm_text = repr(lm) if lm - lm == 0 else _num(lm)
        rows.append(f"[{_s(key)},{_s(vid)},{size},{etag},{lm_text},{si}{extra}]")
    tail = json.dumps(common_prefixes, separators=(",", ":"))
    text = (f'{{"bucket":{_s(bucket)},"shapes":[{",".join(shape_text)}],"rows":[{",".join(rows)}],'
            f'"common_prefixes":{tail},"is_truncated":{"true" if is_truncated else "false"},'
            f'"next_marker":{"null" if next_marker is None else _s(next_marker)}')
    if local is not None:
        text += ',"local":' + json.dumps(local, separators=(",", ":"))
    return text + "}"


def page_dict(bucket: str, entries: Iterable[tuple[str, bytes]], atoms: records.Atoms, common_prefixes: list[str],
              is_truncated: bool, next_marker: str | None) -> dict[str, Any]:
    """The rows form built as plain values (the reference :func:`rows_json` is tested against)."""
    shapes: list[list[Any]] = []
    rows: list[list[Any]] = []
    for key, rec in entries:
        vid, size, etag, lm, ct, policy, placement, epoch, owner, dm, extras, versioned = records._unpack(rec, atoms)
        shape = [ct, policy, list(placement), epoch, dm, owner, versioned]
        if shape not in shapes:
            shapes.append(shape)
        row: list[Any] = [key, vid, size, etag, lm, shapes.index(shape)]
        ex = _extras(extras or {})
        if ex:
            row.append(ex)
        rows.append(row)
    return {"bucket": bucket, "shapes": shapes, "rows": rows, "common_prefixes": list(common_prefixes),
            "is_truncated": is_truncated, "next_marker": next_marker}
