#!/usr/bin/python3
"""The figures' promises, checked on the drawn figures of a real run: no
layer name covers a data point or line (checked against the run's values,
not the drawing code's own list), every layer has its own marker when points
are coloured by epoch and its own clearly different colour otherwise, the
curves' layer colours are far apart, the paper's style draws one line per
epoch, and the legend sits outside the plane."""
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ipmpi_runs import PACKAGE, Checks, run_ipmpi, needs, workdir, write_config  # noqa: E402

needs("numpy", "netCDF4", "xarray", "matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.text  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, PACKAGE)
import ipmpi  # noqa: E402
from ipmpi.plot.labels import LABEL_GID  # noqa: E402

t = Checks("test_plot_style")
SIX_LAYERS = "dense:10:tanh, dense:7:tanh, dense:5:tanh, dense:4:tanh, dense:3:tanh, dense:2:softmax"


def segment_hits_box(p, q, box):
    """Liang-Barsky: whether segment p-q meets the rectangle."""
    t0, t1 = 0.0, 1.0
    d = q - p
    for delta, low, high, start in ((d[0], box.x0, box.x1, p[0]), (d[1], box.y0, box.y1, p[1])):
        if delta == 0:
            if start < low or start > high:
                return False
            continue
        a, b = (low - start) / delta, (high - start) / delta
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 > t1:
            return False
    return True


def data_polylines(ds, estimator, style, layers):
    """The run's values as the style draws them: polylines in data
    coordinates (a single point is a polyline too)."""
    ixt = ds[f"I_XT_{estimator}"].values
    ity = ds[f"I_TY_{estimator}"].values
    lines = []
    if estimator == "simple":
        if style == "trajectories":     # faint per-replica traces
            lines += [np.column_stack([ixt[:, r, l], ity[:, r, l]])
                      for r in range(ixt.shape[1]) for l in layers]
        ixt, ity = np.nanmean(ixt, axis=1), np.nanmean(ity, axis=1)
    if style == "epochs":               # one line per epoch across the layers, the points alone
        lines += [np.column_stack([ixt[e, layers], ity[e, layers]]) for e in range(ixt.shape[0])]
        lines += [np.column_stack([ixt[e:e + 1, l], ity[e:e + 1, l]])
                  for e in range(ixt.shape[0]) for l in layers]
    else:                               # one trajectory per layer
        lines += [np.column_stack([ixt[:, l], ity[:, l]]) for l in layers]
    return lines


def check_labels_clear(fig, ds, estimators, style, what):
    fig.canvas.draw()
    layers = [l for l in range(ds.sizes["layer"]) if ds.layer_measured.values[l]]
    named = 0
    for ax, estimator in zip(fig.axes, estimators):
        lines = [ax.transData.transform(xy) for xy in data_polylines(ds, estimator, style, layers)]
        for text in [x for x in ax.texts if x.get_gid() == LABEL_GID]:
            named += 1
            renderer = fig.canvas.get_renderer()
            text.update_positions(renderer)
            box = matplotlib.text.Text.get_window_extent(text, renderer)   # not its leader line
            for xy in lines:
                inside = ((xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1)
                          & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1))
                hit = inside.any() or any(segment_hits_box(xy[i], xy[i + 1], box)
                                          for i in range(len(xy) - 1))
                if not t.check(not hit, f"{what}: the name {text.get_text()!r} covers data"):
                    break
        legend = ax.get_legend()
        if legend is not None and ax is fig.axes[0]:
            t.check(not legend.get_window_extent().overlaps(ax.get_window_extent()),
                    f"{what}: the legend overlaps the plane")
    t.check(named >= len(estimators), f"{what}: only {named} layer names placed")


def check_plane_styles(ds):
    for style, color_by, estimator in (("trajectories", "epoch", None),
                                       ("trajectories", "layer", None),
                                       ("trajectories", "epoch", "simple"),
                                       ("epochs", "epoch", "all")):
        fig = ipmpi.plot.plane(ds, estimator=estimator, style=style, color_by=color_by)
        shown = ["pooled", "sampled", "simple"] if estimator == "all" else [estimator or "pooled"]
        what = f"plane style={style} color_by={color_by} estimator={estimator}"
        check_labels_clear(fig, ds, shown, style, what)
        check_layers_told_apart(fig.axes[0], color_by, what)
        if style == "epochs":
            lines = [c for c in fig.axes[0].collections if type(c).__name__ == "LineCollection"]
            t.check(len(lines) == 1 and len(lines[0].get_paths()) == ds.sizes["epoch"],
                    f"{what}: not one line per epoch")
        matplotlib.pyplot.close(fig)


def check_layers_told_apart(ax, color_by, what):
    points = [c for c in ax.collections if type(c).__name__ == "PathCollection"]
    markers = [tuple(np.round(c.get_paths()[0].vertices, 3).ravel()) for c in points]
    t.check(len(points) == 6 and len(set(markers)) == 6, f"{what}: {len(set(markers))} distinct "
            f"markers for {len(points)} layers")
    if color_by == "layer":
        colors = [tuple(c.get_facecolor()[0][:3]) for c in points]
        t.check(min_distance(colors) > 0.25, f"{what}: layer colours too close: {colors}")
    else:
        t.check(all(c.get_array() is not None and len(np.unique(c.get_array())) > 10
                    for c in points), f"{what}: points not coloured by epoch")


def min_distance(colors):
    return min(np.linalg.norm(np.subtract(a, b)) for a, b in itertools.combinations(colors, 2))


def check_curves(ds):
    fig = ipmpi.plot.curves(ds)
    ax = fig.axes[2]                 # I(X;T), one line per layer
    colors = [matplotlib.colors.to_rgb(line.get_color()) for line in ax.lines]
    t.check(len(colors) == 6 and min_distance(colors) > 0.25,
            f"curves: layer colours too close ({min_distance(colors):.2f}): {colors}")
    t.check(fig.axes[0].get_ylabel() == "loss [nats]", f"loss label {fig.axes[0].get_ylabel()!r}")
    matplotlib.pyplot.close(fig)


def main():
    with workdir() as directory:
        config = write_config(directory, epochs=300, log="log:40", net=SIX_LAYERS)
        done = run_ipmpi(directory, config, ranks=2)
        if not t.check(done.returncode == 0, f"run failed: {done.stderr[-300:]}"):
            t.finish()
        ds = ipmpi.open_run(os.path.join(directory, "run.nc"))
        check_plane_styles(ds)
        check_curves(ds)
    t.finish()


main()
