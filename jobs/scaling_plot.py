#!/usr/bin/python3
"""Speedup and efficiency against ranks from jobs/scaling.sh's CSV (its columns speedup and
efficiency), with the ideal lines. strong: speedup T(P0)/T(P) x P0, efficiency speedup/P;
weak: efficiency T(P0)/T(P) and the scaled speedup P x efficiency. P0 is the smallest rank
count run.
usage: scaling_plot.py scaling.csv scaling.png"""
import csv
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path, png):
    rows = sorted(csv.DictReader(open(path)), key=lambda r: int(r["ranks"]))
    if not rows:
        sys.exit(f"{path}: no runs")
    mode = rows[0]["mode"]
    ranks = [int(r["ranks"]) for r in rows]
    speedup = [float(r["speedup"]) for r in rows]
    efficiency = [float(r["efficiency"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ranks, speedup, "o-", label="measured")
    a.plot(ranks, ranks, "k--", label="ideal")
    a.set(xscale="log", yscale="log", xlabel="ranks",
          ylabel="speedup" if mode == "strong" else "scaled speedup",
          title=f"{mode} scaling, {rows[0]['replicas']}{' replicas' if mode == 'strong' else ' replicas at P0'}")
    b.plot(ranks, efficiency, "o-", label="measured")
    b.axhline(1.0, color="k", ls="--", label="ideal")
    b.set(xscale="log", xlabel="ranks", ylabel="efficiency", ylim=(0, 1.2), title="efficiency")
    a.set_yticks(ranks, [str(p) for p in ranks])
    a.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    for ax in (a, b):
        ax.set_xticks(ranks, [str(p) for p in ranks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    print(f"wrote {png}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
