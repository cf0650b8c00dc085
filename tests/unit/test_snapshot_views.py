"""A frozen state encodes the state as it was at the freeze, while the machine goes on.

The freeze copies only the keys of each bucket's index on the caller's thread; the values
are read when the snapshot is encoded (in a thread, while the machine applies commands), and
the index keeps, for each view, the versions a key had before its first change since the
freeze. Every change below (a new key, an overwrite, a delete, a delete marker that moves a
key between the live and hidden maps, a version removed by id, a marker removed) must leave
the encoded snapshot byte for byte what it was at the freeze.
"""
from __future__ import annotations

import gc
import itertools
import sys
import threading

import pytest

from metadata.api import commands as c
from metadata.fsm import snapshot
from metadata.fsm.machine import MetadataFSM
from tests.unit.test_fsm import Driver, version

KEYS = 3000


def state() -> Driver:
    d = Driver()
    d.run(c.CreateBucket("plain", "alice", "replica:3", 1.0))
    d.run(c.CreateBucket("versioned", "alice", "replica:3", 1.0))
    d.run(c.SetBucketVersioning("versioned", "Enabled"))
    for i in range(KEYS):
        d.run(c.PutObject(version(bucket="plain", key=f"k/{i:05d}", vid=f"p{i}")))
        d.run(c.PutObject(version(bucket="versioned", key=f"k/{i:05d}", vid=f"a{i}")))
        if i % 3 == 0:
            d.run(c.PutObject(version(bucket="versioned", key=f"k/{i:05d}", vid=f"b{i}")))
        if i % 5 == 0:  # a delete marker: the key is hidden
            d.run(c.DeleteObject("versioned", f"k/{i:05d}", marker_id=f"m{i}", now=2.0))
    return d


def changes(d: Driver, n: int) -> None:
    """Change ``n``-th key's neighbourhood in every way the index can change."""
    i = n % KEYS
    k = f"k/{i:05d}"
    d.run(c.PutObject(version(bucket="plain", key=k, vid=f"p{i}-again-{n}", size=99)))  # overwrite
    d.run(c.DeleteObject("plain", f"k/{(i + 1) % KEYS:05d}"))  # gone for good
    d.run(c.PutObject(version(bucket="plain", key=f"new/{n}", vid=f"n{n}")))  # a key the view lacks
    d.run(c.DeleteObject("versioned", k, marker_id=f"x{n}", now=3.0))  # live -> hidden
    if i % 5 == 0:
        d.run(c.DeleteObject("versioned", k, version_id=f"m{i}"))  # its old marker gone
    d.run(c.DeleteObject("versioned", k, version_id=f"x{n}"))  # hidden -> live again
    d.run(c.DeleteObject("versioned", k, version_id=f"a{i}"))  # a version removed by id


def test_changes_after_the_freeze_do_not_show_in_its_snapshot() -> None:
    d = state()
    expected = snapshot.snapshot_bytes(d.fsm)
    frozen = snapshot.freeze(d.fsm)
    for n in range(0, KEYS, 7):
        changes(d, n)
    d.run(c.CreateBucket("later", "bob", "replica:3", 4.0))
    assert snapshot.snapshot_bytes(d.fsm) != expected  # the machine did change
    assert b"".join(snapshot.frozen_chunks(frozen)) == expected
    assert MetadataFSM.restore(expected).snapshot() == expected


def test_changes_made_while_it_is_encoded_do_not_show() -> None:
    """Changes made at each pause of the encoder (where the event loop runs meanwhile)."""
    d = state()
    expected = snapshot.snapshot_bytes(d.fsm)
    frozen = snapshot.freeze(d.fsm)
    n = itertools.count()
    pauses = []

    def loop_runs(_: float) -> None:
        pauses.append(1)
        for _ in range(40):
            changes(d, next(n) * 13)

    assert b"".join(snapshot.frozen_chunks(frozen, pause_s=0.001, sleep=loop_runs)) == expected
    assert len(pauses) >= 4


def test_a_thread_encodes_the_frozen_state_while_this_one_changes_it() -> None:
    d = state()
    expected = snapshot.snapshot_bytes(d.fsm)
    frozen = snapshot.freeze(d.fsm)
    out: list[bytes] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        encoder = threading.Thread(target=lambda: out.append(b"".join(snapshot.frozen_chunks(frozen))))
        encoder.start()
        n = 0
        while encoder.is_alive():
            changes(d, n * 11)
            n += 1
        encoder.join()
    finally:
        sys.setswitchinterval(interval)
    assert n > 0
    assert out == [expected]


def test_a_view_lets_go_of_its_table_once_encoded_or_dropped() -> None:
    d = state()
    index = d.fsm.objects["plain"]
    b"".join(snapshot.frozen_chunks(snapshot.freeze(d.fsm)))
    changes(d, 1)
    assert index._views == []  # encoded: nothing is kept for it
    frozen = snapshot.freeze(d.fsm)
    changes(d, 2)
    assert len(index._views) == 1
    del frozen
    gc.collect()
    changes(d, 3)
    assert index._views == []  # dropped unencoded: its table went with it


def test_views_of_a_bucket_never_written_do_not_pile_up() -> None:
    d = state()
    index = d.fsm.objects["plain"]
    for _ in range(50):
        b"".join(snapshot.frozen_chunks(snapshot.freeze(d.fsm)))
    assert len(index._views) <= 1  # only the newest view's (dead) reference, until the next freeze


def test_a_view_is_read_once() -> None:
    d = state()
    view = d.fsm.objects["plain"].freeze()
    assert sum(1 for _ in view.pairs()) == KEYS
    with pytest.raises(RuntimeError, match="read already"):
        list(view.pairs())


def test_the_freeze_copies_keys_not_values() -> None:
    """What the freeze does on the caller's thread: the keys, not a lookup per key."""
    d = state()
    index = d.fsm.objects["plain"]

    class Counting(type(index.live)):  # type: ignore[misc]
        lookups = 0

        def __getitem__(self, key):  # noqa: ANN001
            Counting.lookups += 1
            return super().__getitem__(key)

    index.live = Counting(index.live)
    frozen = snapshot.freeze(d.fsm)
    assert Counting.lookups == 0
    assert frozen.objects[0].name == "plain" and frozen.objects[0].keys == tuple(index.live)
