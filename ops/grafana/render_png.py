"""Draw the dashboard's panels as one PNG from a Prometheus's query results (for the README).

    python -m ops.grafana.render_png --prometheus http://127.0.0.1:9090 --minutes 5 --out docs/dashboard.png

Needs matplotlib, which objstore does not depend on: ``pip install matplotlib`` first. Each
time-series panel of ``ops/grafana/objstore.json`` becomes one small chart of its targets
over the last ``--minutes`` (range queries at a few seconds' step; ``$__rate_interval``
becomes ``--rate``); stat and table panels are left out. Panels with no data are drawn
empty with "no data" (metrics other parts export, until they run).
"""
from __future__ import annotations

import argparse
import json
import math
import time
import urllib.parse
import urllib.request
from typing import Any

from ops.grafana.dashboard import build


def range_query(prom: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    qs = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{qs}", timeout=30) as resp:
        return json.loads(resp.read())["data"]["result"]


def legend(fmt: str, labels: dict[str, str]) -> str:
    for k, v in labels.items():
        fmt = fmt.replace("{{" + k + "}}", v)
    return fmt


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prometheus", required=True)
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--rate", default="30s")
    p.add_argument("--out", default="docs/dashboard.png")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [x for x in build()["panels"] if x["type"] == "timeseries"]
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 5, rows * 3), squeeze=False)
    end = time.time()
    start = end - args.minutes * 60
    step = max(1.0, (end - start) / 200)
    for ax, panel in zip(axes.flat, panels):
        ax.set_title(panel["title"], fontsize=9)
        ax.tick_params(labelsize=7)
        drawn = 0
        for t in panel["targets"]:
            expr = t["expr"].replace("$__rate_interval", args.rate)
            for series in range_query(args.prometheus, expr, start, end, step)[:8]:
                xs = [float(v[0]) - end for v in series["values"]]
                ys = [float(v[1]) for v in series["values"]]
                ax.plot(xs, ys, linewidth=1, label=legend(t["legendFormat"], series["metric"])[:28])
                drawn += 1
        if drawn:
            ax.legend(fontsize=6, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_xlabel(f"seconds (unit: {panel['fieldConfig']['defaults']['unit']})", fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("objstore dashboard panels (from Prometheus query results)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
