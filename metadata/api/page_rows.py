"""Reading a ListObjects page in the compact rows form (written by :mod:`metadata.fsm.page_rows`).

A client asks for it with ``form=rows``; a node that does not know the form answers with
``ListResult.to_dict``'s form instead, so :func:`read_page` takes either.
"""
from __future__ import annotations

from typing import Any

from objstore.types import ListResult, ObjectVersion

ROWS_FORM = "rows"  # the value of the ``form`` query parameter asking for it


def read_page(d: dict[str, Any]) -> ListResult:
    """The page in ``d`` (rows form, or ``ListResult.to_dict``'s form)."""
    if "rows" not in d:
        return ListResult.from_dict(d)
    bucket = d["bucket"]
    shapes = [(ct, policy, tuple(placement), epoch, bool(dm), owner, bool(versioned))
              for ct, policy, placement, epoch, dm, owner, versioned, *_ in d["shapes"]]
    contents = []
    append = contents.append
    for row in d["rows"]:
        key, vid, size, etag, lm, si = row[:6]
        ct, policy, placement, epoch, dm, owner, versioned = shapes[si]
        if len(row) == 6:
            append(ObjectVersion(bucket, key, vid, size, etag, lm, ct, {}, {}, policy, placement, epoch, {}, dm,
                                 owner, (), {}, versioned, False))
            continue
        ex = row[6]
        append(ObjectVersion(bucket, key, vid, size, etag, lm, ct, dict(ex.get("headers", {})),
                             dict(ex.get("user_meta", {})), policy, placement, epoch, dict(ex.get("checksums", {})),
                             dm, owner, (), dict(ex.get("tags", {})), versioned, bool(ex.get("public_read", False))))
    return ListResult(tuple(contents), tuple(d["common_prefixes"]), d["is_truncated"], d["next_marker"])
