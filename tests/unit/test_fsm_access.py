"""Bucket policies and canned ACLs in the metadata state machine: commands, snapshots,
and records from before either existed."""
from __future__ import annotations

import json

import pytest

from metadata.api import commands as c
from metadata.fsm.machine import MetadataFSM
from objstore.errors import MalformedPolicy, MethodNotAllowed, NoSuchBucket, NoSuchKey
from tests.unit.test_fsm import Driver
from tests.unit.test_fsm_versioning import ETAG_A, d, obj, put, vid  # noqa: F401 (fixture)

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]})
DENY = POLICY.replace('"Allow"', '"Deny"')


def test_policy_is_stored_replaced_and_removed(d):
    d.run(c.SetBucketPolicy("b", POLICY))
    assert d.fsm.get_bucket("b").access_policy == POLICY
    d.run(c.SetBucketPolicy("b", ""))
    assert d.fsm.get_bucket("b").access_policy == ""


def test_malformed_policy_is_refused_and_nothing_stored(d):
    d.run(c.SetBucketPolicy("b", POLICY))
    with pytest.raises(MalformedPolicy):
        d.run(c.SetBucketPolicy("b", DENY))
    assert d.fsm.get_bucket("b").access_policy == POLICY
    with pytest.raises(MalformedPolicy):
        d.run(c.SetBucketPolicy("b", POLICY.replace("arn:aws:s3:::b/", "arn:aws:s3:::other/")))
    with pytest.raises(NoSuchBucket):
        d.run(c.SetBucketPolicy("nope", POLICY))


def test_bucket_and_object_acls(d):
    d.run(c.SetBucketAcl("b", True))
    assert d.fsm.get_bucket("b").public_read
    d.run(c.SetBucketAcl("b", False))
    assert not d.fsm.get_bucket("b").public_read
    put(d, obj())
    d.run(c.SetObjectAcl("b", "k", True))
    assert d.fsm.get_object("b", "k").public_read
    assert d.fsm.get_object("b", "k").etag == ETAG_A  # only the flag changed
    d.run(c.SetObjectAcl("b", "k", False))
    assert not d.fsm.get_object("b", "k").public_read
    with pytest.raises(NoSuchKey):
        d.run(c.SetObjectAcl("b", "missing", True))


def test_object_acl_by_version_id_and_a_new_version_starts_private(d):
    d.run(c.SetBucketVersioning("b", "Enabled"))
    put(d, obj(n=1, public_read=True))
    put(d, obj(n=2))
    assert not d.fsm.get_object("b", "k").public_read
    assert d.fsm.get_object("b", "k", vid(1)).public_read
    d.run(c.SetObjectAcl("b", "k", False, version_id=vid(1)))
    assert not d.fsm.get_object("b", "k", vid(1)).public_read
    d.run(c.DeleteObject("b", "k", marker_id=vid(3), now=1700000100.0))
    with pytest.raises(MethodNotAllowed):
        d.run(c.SetObjectAcl("b", "k", True, version_id=vid(3)))


def test_policy_and_acls_survive_a_snapshot(d):
    d.run(c.SetBucketPolicy("b", POLICY))
    d.run(c.SetBucketAcl("b", True))
    put(d, obj(public_read=True))
    put(d, obj(key="private"))
    snap = d.fsm.snapshot()
    r = MetadataFSM.restore(snap)
    assert r.snapshot() == snap
    assert r.get_bucket("b") == d.fsm.get_bucket("b")
    assert r.get_object("b", "k").public_read and not r.get_object("b", "private").public_read


def test_snapshot_from_before_access_control_restores_private():
    old = "\n".join(json.dumps(x) for x in [
        {"v": 3, "kind": "metadata-fsm", "applied_index": 4, "epoch": 0},
        {"t": "bucket", "d": {"name": "b", "owner": "alice", "created": 1.0, "policy": "replica:3",
                              "consistency": "strong", "versioning": "", "tags": {}}},
        {"t": "objs", "b": "b", "rows": [["k", vid(1), 1, ETAG_A, 1700000001.0, "binary/octet-stream",
                                          "replica:3", ["n1", "n2"], 0, "alice", False, None, False]]},
        {"t": "end", "lines": 3},
    ]).encode() + b"\n"
    fsm = MetadataFSM.restore(old)
    b = fsm.get_bucket("b")
    assert b.access_policy == "" and not b.public_read
    assert not fsm.get_object("b", "k").public_read
    d = Driver(fsm)
    d.run(c.SetObjectAcl("b", "k", True))
    assert d.fsm.get_object("b", "k").public_read
