"""S3 tag sets: the limits S3 enforces, checked by the gateway and again by the state machine.

A tag set is a ``dict[str, str]`` (insertion order kept, so it reads back as written).
Limits (S3's): at most 10 tags on an object and 50 on a bucket; a key is 1 to 128
characters, a value 0 to 256; keys are unique; the ``aws:`` prefix is reserved. Any
violation raises ``InvalidTag`` (HTTP 400).
"""
from __future__ import annotations

from typing import Iterable

from objstore.errors import InvalidTag

MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256


def tag_set(pairs: Iterable[tuple[str, str]], limit: int = MAX_OBJECT_TAGS) -> dict[str, str]:
    """A validated tag set from (key, value) pairs; raises InvalidTag (duplicates included)."""
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise InvalidTag("Cannot provide multiple Tags with the same key", TagKey=key)
        tags[key] = value
    validate(tags, limit)
    return tags


def validate(tags: dict[str, str], limit: int = MAX_OBJECT_TAGS) -> None:
    """Raise InvalidTag unless ``tags`` is within S3's limits."""
    if len(tags) > limit:
        what = "Object" if limit == MAX_OBJECT_TAGS else "Bucket"
        raise InvalidTag(f"{what} tags cannot be greater than {limit}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidTag("Tag keys and values must be strings")
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidTag("The TagValue you have provided is invalid", TagKey=key, TagValue=value)
        if key.lower().startswith("aws:"):
            raise InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)
