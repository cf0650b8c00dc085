"""The layout a new blob gets from its bucket's policy and its size (``stored_layout``)."""
from __future__ import annotations

from gateway.datapath.write import LARGE_EC_OBJECT, SMALL_EC_OBJECT, stored_layout
from objstore.types import Policy

EC42 = Policy.parse("ec:4+2")


def test_large_ec_objects_get_4_mib_stripes_and_smaller_ones_and_parts_1_mib():
    assert str(stored_layout(EC42, LARGE_EC_OBJECT)) == "ec:4+2;stripe=4194304"
    assert str(stored_layout(EC42, 5 * 1024**3)) == "ec:4+2;stripe=4194304"
    assert str(stored_layout(EC42, LARGE_EC_OBJECT - 1)) == "ec:4+2;stripe=1048576"
    assert str(stored_layout(EC42, SMALL_EC_OBJECT)) == "ec:4+2;stripe=1048576"
    assert str(stored_layout(EC42, SMALL_EC_OBJECT - 1)) == "replica:3"
    # a multipart part is coded with the stripe its upload's policy implies, whatever its size
    assert str(stored_layout(EC42, 64 * 1024**2, part=True)) == "ec:4+2;stripe=1048576"
    assert str(stored_layout(EC42, 10, part=True)) == "ec:4+2;stripe=1048576"
    # other K: a 4 MiB stripe's data shards would not be the body's 1 MiB chunks
    assert str(stored_layout(Policy.parse("ec:2+1"), 64 * 1024**2)) == "ec:2+1;stripe=1048576"
    assert str(stored_layout(Policy.parse("ec:8+3"), 64 * 1024**2)) == "ec:8+3;stripe=1048576"
    assert str(stored_layout(Policy.parse("ec:4+1"), 64 * 1024**2)) == "ec:4+1;stripe=4194304"
    r3 = Policy.parse("replica:3")
    assert str(stored_layout(r3, 64 * 1024**2)) == "replica:3"
