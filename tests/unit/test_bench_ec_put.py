"""The interleaved ec:4+2 / replica:3 PUT benchmark's figures: medians, MB/s and the ratio."""
from __future__ import annotations

import pytest

from ops.bench_ec_put import render, summarize

MIB64 = 64 << 20


def test_summarize_takes_medians_and_the_rate_ratio():
    samples = {
        ("ec:4+2", 1): [(1.0, 0.30, 0.2, 0.03), (3.0, 0.10, 0.2, 0.01), (2.0, 0.20, 0.4, 0.02)],
        ("replica:3", 1): [(4.0, 0.25, 0.3, 0.02), (2.0, 0.15, 0.1, 0.02), (3.0, 0.35, 0.2, 0.02)],
        ("ec:4+2", 2): [(2.0, 0.2, 0.2, 0.02), (2.0, 0.2, 0.2, 0.02)],
        ("replica:3", 2): [(5.0, 0.2, 0.2, 0.02), (1.0, 0.2, 0.2, 0.02)],
    }
    one, two = summarize(samples, MIB64, [1, 2])
    assert one["ec:4+2"]["median_s"] == 2.0 and one["replica:3"]["median_s"] == 3.0
    assert one["ec:4+2"]["gateway_cpu_s"] == pytest.approx(0.20)
    assert one["replica:3"]["storage_cpu_s"] == pytest.approx(0.2)
    assert one["ec:4+2"]["client_cpu_s"] == pytest.approx(0.02)
    assert one["ec:4+2"]["mb_s"] == pytest.approx(MIB64 / 2.0 / 1e6)
    assert one["ratio"] == pytest.approx(1.5)
    assert two["replica:3"]["mb_s"] == pytest.approx(2 * MIB64 / 3.0 / 1e6)  # C objects per batch
    assert two["ratio"] == pytest.approx(1.5)


def test_render_shows_the_ratio_on_the_ec_row():
    samples = {("ec:4+2", 1): [(2.0, 0.2, 0.1, 0.02)], ("replica:3", 1): [(3.0, 0.25, 0.2, 0.02)]}
    figures = {"size": MIB64, "rounds": 1, "load_start": (9.0, 9.5, 7.0), "load": (12.0, 10.0, 8.0),
               "idle": {"gateway_cpu_per_s": 0.001, "storage_cpu_per_s": 0.02},
               "runs": summarize(samples, MIB64, [1])}
    lines = render(figures).splitlines()
    assert "load at the start 9.0, 9.5, 7.0, at the end 12.0, 10.0, 8.0" in lines[0]
    ec = next(line for line in lines if " ec:4+2 " in f" {line} ").split()
    assert ec == ["1", "ec:4+2", "2.000", "33.6", "0.200", "0.100", "0.020", "1.50x"]


def test_cpu_is_read_finer_than_scheduler_ticks():
    """A process's CPU is read to well under the 10 ms of a scheduler tick, so one 64 MiB
    object's few tens of ms are measured, not rounded to ticks."""
    import os
    import time

    import psutil

    from ops.bench_ec_put import _cpu, _own_cpu

    me = [psutil.Process(os.getpid())]
    readings = set()
    for _ in range(20):
        t = time.perf_counter()
        while time.perf_counter() - t < 0.0013:  # 1.3 ms of work between readings
            pass
        readings.add(round(_cpu(me) * 1e6) % 10_000)
    assert len(readings) > 5  # tick counts would give the same remainder (0) every time
    a = _own_cpu()
    t = time.perf_counter()
    while time.perf_counter() - t < 0.002:
        pass
    assert 0 < _own_cpu() - a < 0.01
