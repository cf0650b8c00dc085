"""Reads any metadata member serves from its own state (listings at ``one``) ask every
member at once, so a member that never answers (cut off by a partition, paused) does not use
up the deadline before a reachable one is asked."""
from __future__ import annotations

import socket

from metadata.api.client import MetadataClient
from tests.harness.cluster import SECRET, InProcessCluster


async def test_a_listing_at_one_is_answered_while_another_member_never_answers(inproc: InProcessCluster):
    await inproc.s3("create_bucket", Bucket="local")
    await inproc.s3("put_object", Bucket="local", Key="k", Body=b"x")
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        addresses = [f"127.0.0.1:{silent.getsockname()[1]}", inproc.meta_address]
        # Asked one after the other, the silent member would use up the whole deadline.
        async with MetadataClient(addresses, SECRET, deadline=2.0, attempt_timeout=2.0) as meta:
            page, local = await meta.list_objects_local("local")
            versions, _ = await meta.list_object_versions_local("local")
        assert [v.key for v in page.contents] == ["k"] and local.applied_index > 0
        assert len(versions.versions) == 1
    finally:
        silent.close()
