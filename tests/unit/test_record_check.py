"""Planning a scrub pass, pure: the order of records, the pieces each thread call checks."""
from __future__ import annotations

from objstore.node.blob import KIND_BLOB, BlobHeader, record_length
from objstore.node.index import Entry, Location
from objstore.node.record_check import CHUNK, batches, chunk_bytes, plan_pass

SEG1, SEG2 = "segments/seg-00000001.dat", "segments/seg-00000002.dat"


def entry(file: str, offset: int = 0, length: int = 100, size: int = 1) -> Entry:
    return Entry(BlobHeader(KIND_BLOB, "v", 0, "b", "k", "replica:3", size, 64, 0.0), 0, 0, 1,
                 Location(file, offset, 10, length))


def test_chunk_bytes_add_up_to_the_record() -> None:
    for size in (0, 1, 64, 65, 1000):
        hlen = len(entry("f", size=size).header.encode())
        e = entry("f", length=record_length(hlen, size, 64), size=size)
        e = Entry(e.header, 0, 0, 1, Location("f", 0, hlen, e.location.length))
        n = e.header.n_blocks
        parts = [chunk_bytes(e, f, min(n - 1, f + 2)) for f in range(0, max(n, 1), 3)]
        assert sum(parts) == e.location.length


def test_small_segment_records_are_batched_by_file_up_to_a_chunk() -> None:
    es = [entry(SEG1, length=400_000), entry(SEG1, length=400_000), entry(SEG1, length=400_000),
          entry(SEG2, length=1000), entry("blobs/ab/v.0.1.blob", length=1000), entry(SEG2, length=CHUNK + 1),
          entry(SEG2, length=10), entry(SEG2, length=10)]
    assert [len(b) for b in batches(es)] == [2, 1, 1, 1, 1, 2]
    assert [e for b in batches(es) for e in b] == es


async def test_a_pass_goes_in_file_and_offset_order() -> None:
    es = [entry(SEG2, 500), entry("blobs/ab/x.0.9.blob", 0), entry(SEG1, 900), entry(SEG2, 0), entry(SEG1, 100)]
    ordered, total = await plan_pass(es, step=2)
    assert [(e.location.file[-5:], e.location.offset) for e in ordered] == [
        (".blob", 0), ("1.dat", 100), ("1.dat", 900), ("2.dat", 0), ("2.dat", 500)]
    assert total == 500
