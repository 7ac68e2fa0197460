"""Training and information against epoch: curves(ds, ...) -> matplotlib Figure.

Row one: loss and accuracy (train and test), mean with a band of one
standard deviation over replicas. One more row per estimator: each layer's
I(X;T) and I(T;Y), every layer in a colour of its own (a qualitative
palette) and, for the simple estimator, a band over replicas. The epoch axis
is symlog: linear in [0, 1], logarithmic above."""
from .common import (STYLE, epoch_ticks, information, layer_colors, layer_name, plane_name,
                     pyplot, run_subtitle, select, spread)


def curves(ds, estimator=None, layers=None, epochs=None, test=False):
    """Loss, accuracy and every layer's information against epoch for the run
    `ds` (from ipmpi.open_run). See ipmpi.plot for the options."""
    sel = select(ds, estimator, layers, epochs, test)
    plt = pyplot()
    with plt.rc_context(STYLE):
        return curves_figure(plt, sel)


def curves_figure(plt, sel):
    plane = plane_name(sel.run, sel.prefix)
    rows = 1 + len(sel.estimators)
    fig, axes = plt.subplots(rows, 2, figsize=(10, 2.9 * rows), sharex=True,
                             layout="constrained", squeeze=False)
    draw_metric(axes[0][0], sel, "loss")
    draw_metric(axes[0][1], sel, "accuracy")
    colors = layer_colors(len(sel.layers))
    for row, estimator in enumerate(sel.estimators, start=1):
        ixt, ity, ixt_rep, ity_rep = information(sel, estimator)
        for ax, mean, per_replica, what in ((axes[row][0], ixt, ixt_rep, "I(X;T)"),
                                            (axes[row][1], ity, ity_rep, "I(T;Y)")):
            for color, layer in zip(colors, sel.layers):
                band = None if per_replica is None else spread(per_replica[:, :, layer], 1)[1]
                draw_band(ax, sel.epochs, mean[:, layer], band, color,
                          layer_name(sel.run, layer))
            ax.set_ylabel(f"{what} [bits]")
            ax.set_title(f"{what}, {estimator} estimator, {plane} set", fontsize=10)
    # Legends beside the panels, never over the curves.
    axes[0][1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[1][1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[0][0].set_ylim(bottom=0)
    set_epoch_axis(axes, sel.epochs)
    fig.suptitle(f"Training and information curves, information on the {plane} set\n"
                 f"{run_subtitle(sel)}", fontsize=11)
    return fig


def set_epoch_axis(axes, epochs):
    from matplotlib.ticker import FixedLocator, FuncFormatter
    for ax in axes.flat:
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.4)
        ax.set_xlim(0, max(epochs.max(), 1) * 1.05)
        ax.xaxis.set_major_locator(FixedLocator(epoch_ticks(epochs)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.grid(True, which="major", color="0.92", lw=0.6)
    for ax in axes[-1]:
        ax.set_xlabel("epoch (symlog scale: linear in [0, 1], log above)")


def draw_metric(ax, sel, name):
    run = sel.run
    for prefix, color, set_name in (("", "tab:blue", "train"), ("test_", "tab:orange", "test")):
        if not run.has(prefix + name):
            continue
        mean, sd = spread(run.series[prefix + name][sel.keep], 1)
        draw_band(ax, sel.epochs, mean, sd if run.replicas > 1 else None, color, set_name)
    units = run.units.get(name)
    ax.set_ylabel(f"{name} [{units}]" if units and units != "1" else name)
    what = "mean ± sd over replicas" if run.replicas > 1 else "one replica"
    ax.set_title(f"{name} ({what})", fontsize=10)


def draw_band(ax, x, mean, sd, color, label):
    ax.plot(x, mean, color=color, lw=1.4, label=label)
    if sd is not None:
        ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.18, lw=0)
