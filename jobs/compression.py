#!/usr/bin/python3
"""compression.py: how much each layer compresses, and the planes side by side.

    jobs/compression.py RUN.nc [RUN.nc ...] [--estimator NAME ...] [-o debate.png]

For every run and estimator: each layer's I(X;T) (the replica mean where the
estimator is per replica) at its peak, at the end, and the compression, the
fall from the peak to the lowest value after it, in bits. With -o, one
column per run and one row per estimator, each panel the information plane
of the replica-mean trajectories coloured by epoch.

Estimator names are the output's variable suffixes: simple, pooled, sampled,
kde_upper, kde_lower, simple_mm, ...; the default is every one both runs
have, among simple and kde_upper.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from ipmpi import RefusedError, RunError, open_run  # noqa: E402  (this checkout's package)
from ipmpi.files import refuse_precious  # noqa: E402

DEFAULT_ESTIMATORS = ("simple", "kde_upper")


def replica_mean(var):
    return var.mean("replica") if "replica" in var.dims else var


def trajectory(ds, estimator):
    """(epochs, I(X;T), I(T;Y)) as arrays epoch x layer, replica means."""
    ixt = replica_mean(ds["I_XT_" + estimator])
    ity = replica_mean(ds["I_TY_" + estimator])
    return ds.epoch.values, ixt.transpose("epoch", "layer").values, \
        ity.transpose("epoch", "layer").values


def compression(values):
    """Peak, end and the fall from the peak to the lowest value after it."""
    import numpy as np
    if np.all(np.isnan(values)):
        return None
    k = int(np.nanargmax(values))
    return values[k], values[~np.isnan(values)][-1], values[k] - np.nanmin(values[k:]), k


def report(path, ds, estimator):
    epochs, ixt, _ = trajectory(ds, estimator)
    names = ds.layer_name.values if "layer_name" in ds.coords else ds.layer.values
    print(f"{os.path.basename(path)}  {estimator}: I(X;T) in bits (replica mean)")
    print(f"  {'layer':<22} {'peak':>7} {'at epoch':>9} {'end':>7} {'compression':>12}")
    for j, name in enumerate(names):
        c = compression(ixt[:, j])
        if c is not None:
            peak, end, fall, k = c
            print(f"  {str(name):<22} {peak:7.3f} {epochs[k]:9d} {end:7.3f} {fall:12.3f}")


def figure(runs, estimators, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm
    fig, axes = plt.subplots(len(estimators), len(runs), squeeze=False,
                             figsize=(4.8 * len(runs), 4.2 * len(estimators)),
                             layout="constrained")
    norm = None
    for col, (path, ds) in enumerate(runs):
        for row, estimator in enumerate(estimators):
            ax = axes[row][col]
            epochs, ixt, ity = trajectory(ds, estimator)
            norm = LogNorm(vmin=max(1, epochs[epochs > 0].min()), vmax=epochs.max())
            shown = np.maximum(epochs, 1)
            for j in range(ixt.shape[1]):
                ax.plot(ixt[:, j], ity[:, j], color="0.6", lw=0.6, zorder=1)
                points = ax.scatter(ixt[:, j], ity[:, j], c=shown, cmap="viridis", norm=norm,
                                    s=9, zorder=2)
            ax.set_title(f"{os.path.splitext(os.path.basename(path))[0]}: {estimator}",
                         fontsize=10)
            ax.set_xlabel("I(X;T) [bits]")
            ax.set_ylabel("I(T;Y) [bits]")
    fig.colorbar(points, ax=axes, label="epoch", shrink=0.8)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--estimator", action="append", dest="estimators")
    ap.add_argument("-o", dest="out")
    args = ap.parse_args()
    if args.out:  # a figure never replaces a run or a checkpoint (a link to one included)
        refuse_precious(args.out)
    runs = [(path, open_run(path)) for path in args.runs]
    estimators = args.estimators or [e for e in DEFAULT_ESTIMATORS
                                     if all("I_XT_" + e in ds for _, ds in runs)]
    if not estimators:
        sys.exit("compression.py: the runs share none of the estimators "
                 + ", ".join(DEFAULT_ESTIMATORS) + " (choose with --estimator)")
    for path, ds in runs:
        for estimator in estimators:
            if "I_XT_" + estimator not in ds:
                sys.exit(f"compression.py: {path} has no I_XT_{estimator}")
            report(path, ds, estimator)
    if args.out:
        figure(runs, estimators, args.out)


if __name__ == "__main__":
    try:
        main()
    except (RunError, RefusedError, OSError) as e:
        sys.exit(f"compression.py: {e}")
