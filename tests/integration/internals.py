"""A test's view of a cluster's internal APIs: version records from the metadata service
and blob presence on the storage nodes (for checks that blobs come and go as they should)."""
from __future__ import annotations

import asyncio
import json

import aiohttp

from metadata.api.client import MetadataClient
from metadata.api.upload_client import UploadClient
from objstore.node.client import StorageClient
from objstore.types import ObjectVersion, PartRef
from tests.harness.eventually import eventually


class ClusterInternals:
    def __init__(self, cluster) -> None:
        self.secret = json.loads((cluster.data_dir / "credentials.json").read_text())["cluster_secret"]
        self.meta_addrs = [p["address"] for p in cluster.processes("metadata")]
        self.nodes = {p["id"]: p["address"] for p in cluster.processes("storage")}

    def _run(self, fn):
        async def go():
            async with aiohttp.ClientSession() as session:
                meta = MetadataClient(self.meta_addrs, self.secret, session=session, client_id="test")
                return await fn(meta, StorageClient(session, self.secret))
        return asyncio.run(go())

    def version(self, bucket: str, key: str, version_id: str | None = None) -> ObjectVersion:
        return self._run(lambda m, s: m.get_object(bucket, key, version_id))

    def parts(self, bucket: str, key: str, upload_id: str) -> list[PartRef]:
        page = self._run(lambda m, s: UploadClient(m).list_parts(bucket, key, upload_id))
        return [p.part for p in page.parts]

    def blobs_present(self, refs) -> int:
        """How many of the (version id, placement) blobs are still on their nodes."""
        async def count(m, s):
            found = await asyncio.gather(*(s.head_blob(self.nodes[n], vid, 0) for vid, pl in refs for n in pl))
            return sum(f is not None for f in found)
        return self._run(count)

    def present(self, v: ObjectVersion) -> int:
        """How many of a version's blobs are still on their nodes."""
        return self.blobs_present(v.blob_refs())

    def wait_gone(self, v: ObjectVersion, timeout: float = 15.0) -> None:
        eventually(lambda: not self.present(v), timeout,
                   message=f"the blobs of {v.key} {v.version_id} to go")
