"""The erasure benchmark runs and prints one row per layout and stripe size."""
from __future__ import annotations

from ops import bench_erasure


def test_bench_prints_a_row_per_layout_and_stripe(capsys):
    bench_erasure.main(["--layouts", "2+1,3+2", "--stripes", "64K,100K", "--seconds", "0.01"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("zfec ") and lines[1].startswith("GIL check")
    rows = [line.split() for line in lines[3:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("2+1", "64K", "64K"), ("2+1", "100K", "64K"), ("3+2", "64K", "64K"), ("3+2", "100K", "64K"),
    ]
    assert all(float(x) > 0 for r in rows for x in r[3:])
    assert bench_erasure.parse_size("4M") == 4 << 20 and bench_erasure.parse_size("123") == 123
