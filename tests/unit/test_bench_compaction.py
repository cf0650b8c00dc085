"""The compaction benchmark runs and prints its rates and the bytes reclaimed."""
from __future__ import annotations

from ops import bench_compaction


def test_bench_prints_rates_and_reclaimed_bytes(capsys, tmp_path):
    assert bench_compaction.main(["--mb", "1", "--blob-kb", "4", "--segment-mb", "1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("scanned MB/s ") and float(out[1].split()[-1]) > 0
    assert out[2].startswith("copied MB/s ")
    reclaimed = int(out[3].split()[1])
    before, after = (int(x) for x in out[3].split("disk ")[1].replace(" bytes", "").split(" -> "))
    assert reclaimed > 0 and after == before - reclaimed
