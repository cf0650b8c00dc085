"""Format versions: every on-disk and on-wire format carries its version number, and a
reader refuses, with a clear message, a version newer than it knows.

A newer version is not damage: a node that took a newer blob record, log segment or
snapshot for a torn or corrupt one would cut or set aside data that a newer objstore wrote
and acknowledged (after a downgrade, or a peer upgraded first). Readers call
:func:`check_version` before their own checks, so newer formats raise
:class:`~objstore.errors.FormatTooNew` (which no damage handler catches) and older or
garbled ones keep their existing handling.
"""
from __future__ import annotations

from objstore.errors import FormatTooNew, ObjstoreError


def check_version(what: str, found: object, known: int, where: str = "",
                  error: type[ObjstoreError] = FormatTooNew) -> None:
    """Raise ``error`` (FormatTooNew; a request decoder may prefer InvalidArgument, a 400 to
    its sender) when ``found`` is an integer version above ``known``."""
    if isinstance(found, int) and not isinstance(found, bool) and found > known:
        place = f" ({where})" if where else ""
        raise error(f"{what}{place} is in format version {found}, but this objstore reads versions up to "
                           f"{known}: it was written by a newer objstore. Run that version (or newer) here; "
                           "nothing was changed.")


def numbered_magic_version(magic: bytes, prefix: bytes) -> int | None:
    """The version in a magic like ``OSMLOG02`` (``prefix`` then decimal digits), else None."""
    digits = magic[len(prefix):]
    if magic.startswith(prefix) and digits.isdigit():
        return int(digits)
    return None
