"""A service's ``main`` ends, after its clean stop, with the heap frozen
(objstore.process_exit): the process's finalization then skips collecting it, which was
most of a storage node's or gateway's SIGTERM-to-exit time."""
from __future__ import annotations

import gc
import os
from typing import Any, Iterator

import pytest


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()  # other tests (a metadata node's heap.settle) may have frozen objects
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        yield
    finally:
        gc.unfreeze()
        os.umask(umask)


async def _served(*_: Any, **__: Any) -> None:
    return None


def test_a_storage_node_main_freezes_the_heap_after_its_stop(unfrozen, monkeypatch) -> None:
    from objstore.config import StorageConfig
    from objstore.node import app

    monkeypatch.setattr(app, "serve", _served)
    app.main(StorageConfig(node_id="s1", data_dir="/nonexistent", secret="x" * 32))
    assert gc.get_freeze_count() > 0


def test_a_metadata_node_main_freezes_the_heap_after_its_stop(unfrozen, monkeypatch) -> None:
    from metadata import app

    monkeypatch.setattr(app, "serve", _served)
    app.main(object())  # type: ignore[arg-type]
    assert gc.get_freeze_count() > 0


def test_a_gateway_main_freezes_the_heap_after_its_stop(unfrozen, monkeypatch) -> None:
    from gateway import app

    monkeypatch.setattr(app, "create_app", lambda *a: None)
    monkeypatch.setattr(app, "wall_clock", lambda cfg: None)
    monkeypatch.setattr(app, "server_context", lambda *a: None)
    monkeypatch.setattr(app, "clear_text_warning", lambda *a: "")
    monkeypatch.setattr(app.web, "run_app", lambda *a, **k: None)

    class Cfg:
        host, port, header_timeout_seconds = "127.0.0.1", 0, 5.0
        tls_cert = tls_key = ""

    app.main(Cfg())  # type: ignore[arg-type]
    assert gc.get_freeze_count() > 0
