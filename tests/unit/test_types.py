"""Records cross the wire as dicts: every field, and back to an equal record."""
from __future__ import annotations

import dataclasses

from objstore.types import ClusterMap, NodeInfo, ObjectVersion, PartRef, address_digest


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


def test_a_maps_address_digests_tell_a_restarted_nodes_new_address_from_its_old_one():
    """What `objstore up` waits for after a restart: every node it started, in the gateway's
    map, at the address it was started at now (the digest hides the address itself)."""
    old = ClusterMap(3, (NodeInfo("s1", "127.0.0.1:4001"), NodeInfo("s2", "127.0.0.1:4002")))
    new = ClusterMap(4, (NodeInfo("s1", "127.0.0.1:5001"), NodeInfo("s2", "127.0.0.1:4002")))
    want = {"s1": address_digest("s1", "127.0.0.1:5001"), "s2": address_digest("s2", "127.0.0.1:4002")}
    assert old.address_digests() != want and new.address_digests() == want
    assert "5001" not in "".join(want.values())
