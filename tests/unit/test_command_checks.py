"""The field checks of commands and records (check_types) against their plain definition."""
from __future__ import annotations

import dataclasses

import pytest

from metadata.api import commands as c
from objstore.errors import InvalidArgument
from objstore.types import NodeInfo, ObjectVersion

STRS = ["", "k", "caf\u00e9", "\u2603 snow", "\ud800", "a\udfff", 5, None, True, b"k"]
INTS = [0, 7, -1, True, False, 1.5, "1", None]
FLOATS = [0, 1.5, -2, True, "1.0", None]
BOOLS = [True, False, 0, 1, "true", None]
DICTS = [{}, {"a": "b"}, {"\u00fc": "\u00e9"}, {"a": "\ud800"}, {"\udc00": "x"}, {"a": 1}, {1: "a"}, [], None]
TUPLES = [(), ("a", "b"), ("\u00e9",), ("a", "\ud800"), ("a", 1), ["a"], None]
VALUES = {"str": STRS, "int": INTS, "float": FLOATS, "bool": BOOLS, "dict[str, str]": DICTS, "tuple[str, ...]": TUPLES}


def _reference_ok(t: str, value: object) -> bool:
    """The checks as defined: one field at a time."""
    def utf8(v: object) -> bool:
        if not isinstance(v, str):
            return False
        try:
            v.encode()
        except UnicodeEncodeError:
            return False
        return True
    if t == "str":
        return utf8(value)
    if t == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "bool":
        return isinstance(value, bool)
    if t == "dict[str, str]":
        return isinstance(value, dict) and all(utf8(k) and utf8(v) for k, v in value.items())
    return isinstance(value, tuple) and all(utf8(v) for v in value)


def _annotation(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")


GOOD = {
    ObjectVersion: ObjectVersion(bucket="b", key="k", version_id="v", size=1, etag="e", last_modified=1.0),
    NodeInfo: NodeInfo("n1", "h:1"),
    c.PutObject: c.PutObject(ObjectVersion(bucket="b", key="k", version_id="v", size=1, etag="e", last_modified=1.0)),
    c.SetBucketTags: c.SetBucketTags("b", {"a": "b"}),
    c.DeleteObject: c.DeleteObject("b", "k"),
    c.MarkCollectable: c.MarkCollectable(1.0),
}


@pytest.mark.parametrize("cls", list(GOOD), ids=lambda cls: cls.__name__)
def test_each_field_is_checked_as_its_annotation_says(cls):
    good = GOOD[cls]
    c.check_types(good)
    checked = 0
    for f in dataclasses.fields(cls):
        t = _annotation(f)
        for value in VALUES.get(t, ()):
            bad = dataclasses.replace(good, **{f.name: value})
            checked += 1
            if _reference_ok(t, value):
                c.check_types(bad)
            else:
                with pytest.raises(InvalidArgument, match=f"field {f.name} of {cls.__name__}"):
                    c.check_types(bad)
    assert checked > 0


def test_a_record_with_several_bad_fields_names_the_first():
    good = GOOD[ObjectVersion]
    with pytest.raises(InvalidArgument, match="field key of ObjectVersion"):
        c.check_types(dataclasses.replace(good, key="\ud800", etag=5))
