"""DataLayout: the policy string a version record and a shard blob carry."""
from __future__ import annotations

import pytest

from objstore.erasure import StripeLayout
from objstore.erasure.data_layout import DEFAULT_STRIPE_SIZE, DataLayout
from objstore.errors import InvalidArgument
from objstore.node.blob import MAX_POLICY_BYTES
from objstore.types import Policy


@pytest.mark.parametrize("text", ["replica:3", "ec:4+2;stripe=1048576", "ec:4+2;stripe=65536;size=0",
                                  "ec:32+16;stripe=16777216;size=5497558138880", "replica:1;size=7"])
def test_what_str_writes_parses_back(text):
    layout = DataLayout.parse(text)
    assert str(layout) == text
    assert len(text.encode()) <= MAX_POLICY_BYTES  # fits a blob header's policy field


def test_a_plain_ec_policy_means_the_default_stripe():
    layout = DataLayout.parse("ec:4+2")
    assert layout.stripe_size == DEFAULT_STRIPE_SIZE and layout.object_size == -1
    assert layout.stripes == StripeLayout(4, 2, DEFAULT_STRIPE_SIZE)
    assert str(DataLayout.parse("replica:3")) == "replica:3" and not DataLayout.parse("replica:3").erasure_coded


def test_for_policy_and_with_size():
    layout = DataLayout.for_policy(Policy.parse("ec:6+3"), 2 * 1024 * 1024)
    assert str(layout) == "ec:6+3;stripe=2097152"
    assert str(layout.with_size(12)) == "ec:6+3;stripe=2097152;size=12"
    assert str(DataLayout.for_policy(Policy.parse("replica:2"))) == "replica:2"
    with pytest.raises(ValueError):
        DataLayout.parse("replica:2").stripes


@pytest.mark.parametrize("text", ["ec:4+2;stripe=0", "replica:3;stripe=1024", "ec:4+2;stripe=1;stripe=2",
                                  "ec:4+2;shard=1", "ec:4+2;size=-1", "ec:4+2;", "ec:4+2;size=1e3", "rs:4+2",
                                  "ec:4+2;size=\u00b2", "ec:4+2;stripe=\u0663"])
def test_malformed_layouts_are_refused(text):
    with pytest.raises(InvalidArgument):
        DataLayout.parse(text)
