"""The degraded-read benchmark's report: one row per policy, shares of healthy as percents."""
from __future__ import annotations

from ops.bench_ec_degraded import render


def test_render_shows_every_figure_per_policy():
    figures = {"large_size": 64 << 20, "large_count": 4, "small_size": 4096, "small_concurrency": 32,
               "killed": ["s1", "s2"], "policies": {
                   "replica:3": {"large_put_mb_s": 119.1, "large_get_mb_s": 595.6, "degraded_get_mb_s": 500.0,
                                 "degraded_share": 500.0 / 595.6, "small_put_ops_s": 315.2, "small_get_ops_s": 476.0,
                                 "disk_per_byte": 3.0004, "errors": 0, "degraded_errors": 0},
                   "ec:4+2": {"large_put_mb_s": 122.8, "large_get_mb_s": None, "errors": 1}}}
    text = render(figures)
    assert "killed (SIGKILL): s1, s2" in text
    replica = next(line for line in text.splitlines() if line.startswith("replica:3")).split()
    assert replica == ["replica:3", "119.1", "595.6", "500.0", "84%", "315", "476", "3.0004", "0"]
    ec = next(line for line in text.splitlines() if line.startswith("ec:4+2")).split()
    assert ec == ["ec:4+2", "122.8", "-", "-", "-", "-", "-", "-", "1"]
