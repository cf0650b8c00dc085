"""Bucket policies and canned ACLs are metadata: they survive a restart of the metadata
service, whether replayed from the log or restored from a snapshot."""
from __future__ import annotations

import json

import pytest

from metadata.api.client import MetadataClient
from objstore.errors import MalformedPolicy
from tests.integration.test_metadata_service import SECRET, Server, free_port, ver

pytestmark = pytest.mark.integration

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::site/*"}]})


@pytest.mark.parametrize("snapshot_every", ["10000", "3"], ids=["log-replay", "snapshot"])
async def test_policy_and_acls_survive_a_restart(tmp_path, snapshot_every):
    srv = Server(tmp_path / "m1", free_port(), "--snapshot-every", snapshot_every).start()
    cl = MetadataClient([srv.address], SECRET)
    try:
        await cl.create_bucket("site", "alice", "replica:3", 3.0)
        await cl.put_bucket_policy("site", POLICY)
        with pytest.raises(MalformedPolicy):
            await cl.put_bucket_policy("site", POLICY.replace("Allow", "Deny"))
        await cl.set_bucket_public_read("site", True)
        await cl.put_object(ver("site", "pub"))
        await cl.put_object(ver("site", "priv"))
        await cl.set_object_public_read("site", "pub", True)
        for i in range(6):  # enough commands after them for a snapshot to cover them
            await cl.put_object(ver("site", f"filler-{i}"))
    finally:
        await cl.close()
    assert srv.stop() == 0
    assert bool(list((tmp_path / "m1").rglob("snap-*.snap"))) is (snapshot_every == "3")
    srv = Server(tmp_path / "m1", srv.port).start()
    cl = MetadataClient([srv.address], SECRET)
    try:
        b = await cl.get_bucket("site")
        assert b.access_policy == POLICY and b.public_read
        assert (await cl.get_object("site", "pub")).public_read
        assert not (await cl.get_object("site", "priv")).public_read
    finally:
        await cl.close()
        srv.stop()
