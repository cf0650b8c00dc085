"""Per-bucket write quorums: which W a policy allows, the W a blob is written with, the
bucket record keeping it (and loading without it), and the state machine refusing W = K."""
from __future__ import annotations

import pytest

from gateway.datapath.write import stored_layout, write_quorum
from gateway.handlers.bucket import requested_write_quorum
from metadata.api import commands as c
from tests.unit.test_fsm import Driver
from objstore.errors import InvalidArgument
from objstore.types import Bucket, Policy

EC42 = Policy.parse("ec:4+2")


@pytest.mark.parametrize("text, allowed", [("ec:4+2", (5, 6)), ("replica:3", (1, 2, 3)), ("ec:2+1", (3,))])
def test_allowed_write_quorums(text, allowed):
    policy = Policy.parse(text)
    for w in range(0, policy.n + 3):
        if w in allowed:
            assert policy.check_write_quorum(w) == w
        else:
            with pytest.raises(InvalidArgument):
                policy.check_write_quorum(w)


def test_w_equal_k_is_refused_naming_the_rule():
    with pytest.raises(InvalidArgument) as err:
        EC42.check_write_quorum(4)
    assert "K+1 = 5" in err.value.message and "no redundancy" in err.value.message


def test_the_header_is_parsed_and_checked():
    assert requested_write_quorum(None, EC42) == 0
    assert requested_write_quorum("6", EC42) == 6
    for bad in ("", "x", "-1", "4", "1000000", "\u00b2", "\u0666", "\uff16"):  # '²' made int() raise; '٦' was 6
        with pytest.raises(InvalidArgument):
            requested_write_quorum(bad, EC42)


def test_the_quorum_a_blob_is_written_with():
    big, small = stored_layout(EC42, 10 << 20), stored_layout(EC42, 1000)
    assert small.policy == Policy("replica", 3)
    assert write_quorum(EC42, 0, big) == 5 and write_quorum(EC42, 6, big) == 6 and write_quorum(EC42, 5, big) == 5
    # A small object as replica:3 may miss as many nodes as a coded one: W=6 -> 3, W=5 -> 2.
    assert write_quorum(EC42, 0, small) == 2 and write_quorum(EC42, 5, small) == 2 and write_quorum(EC42, 6, small) == 3
    r3 = Policy.parse("replica:3")
    assert write_quorum(r3, 0, stored_layout(r3, 5)) == 2 and write_quorum(r3, 3, stored_layout(r3, 5)) == 3
    assert write_quorum(r3, 1, stored_layout(r3, 5)) == 1


def test_a_bucket_record_without_a_write_quorum_loads_with_the_default():
    old = {"name": "b", "owner": "o", "created": 1.0, "policy": "ec:4+2"}
    assert Bucket.from_dict(old).write_quorum == 0
    b = Bucket("b", "o", 1.0, "ec:4+2", write_quorum=6)
    assert Bucket.from_dict(b.to_dict()) == b


def test_the_state_machine_keeps_the_quorum_and_refuses_w_equal_k():
    sm = Driver()
    assert sm.run(c.CreateBucket("b", "o", "ec:4+2", 1.0, write_quorum=6)).write_quorum == 6
    with pytest.raises(InvalidArgument, match="no redundancy"):
        sm.run(c.CreateBucket("b2", "o", "ec:4+2", 1.0, write_quorum=4))
    # A command logged before the field existed decodes with the default.
    old = c.command_from_dict({"v": c.COMMAND_VERSION, "type": "CreateBucket",
                               "args": {"name": "b3", "owner": "o", "policy": "ec:4+2", "created": 1.0}})
    assert sm.run(old).write_quorum == 0
