"""The storage client's manifest walk (StorageClient.manifest_page): a page carries the
cursor of the next one; a node whose answer has no cursor at all (it predates ring-epoch
fences: it raised no fence) is refused, not read as a walk that ended after one page."""
from __future__ import annotations

from typing import Any

import pytest

from objstore.errors import ServiceUnavailable
from objstore.manifest import CommitManifest
from objstore.node.client import StorageClient

ONE_KEY = [{"bucket": "b", "key": "k", "manifests": [CommitManifest("b", "k", 7, None).to_dict()]}]


def client_answering(body: dict[str, Any]) -> StorageClient:
    client = StorageClient(None, "secret")  # type: ignore[arg-type]

    async def answer(*_: Any, **__: Any) -> tuple[int, Any]:
        return 200, body

    client._json = answer  # type: ignore[method-assign]
    return client


async def test_a_page_gives_the_cursor_of_the_next_and_an_empty_one_ends_the_walk() -> None:
    page, cursor = await client_answering({"keys": ONE_KEY, "cursor": "3"}).manifest_page("n:1", ("", ""), 1, fence=5)
    assert [(b, k, [m.commit_index for m in ms]) for b, k, ms in page] == [("b", "k", [7])]
    assert cursor == "3"
    _, cursor = await client_answering({"keys": [], "cursor": ""}).manifest_page("n:1", ("b", "k"), 1, "3", fence=5)
    assert cursor == ""


async def test_a_node_answering_without_a_cursor_is_refused_not_taken_as_walked() -> None:
    with pytest.raises(ServiceUnavailable):
        await client_answering({"keys": ONE_KEY}).manifest_page("n:1", ("", ""), 1, fence=5)
