"""Records cross the wire as dicts: every field, and back to an equal record."""
from __future__ import annotations

import dataclasses

from objstore.types import ObjectVersion, PartRef


def test_object_version_dict_has_every_field_and_round_trips():
    v = ObjectVersion("b", "k/ü", "v1", 10, "etag", 1.5, content_type="text/plain", headers={"cache-control": "x"},
                      user_meta={"m": "1"}, policy="replica:2", placement=("s1", "s2"), ring_epoch=4,
                      checksums={"crc32": "AAAAAA=="}, delete_marker=False, owner="alice",
                      parts=(PartRef(1, "p1", 5, "e1", ("s3",), {"crc32": "x"}),), tags={"t": "v"}, versioned=True)
    d = v.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(ObjectVersion)}
    assert ObjectVersion.from_dict(d) == v
    # The dict is a copy: changing it leaves the frozen record alone.
    d["headers"]["cache-control"] = "changed"
    assert v.headers["cache-control"] == "x"
