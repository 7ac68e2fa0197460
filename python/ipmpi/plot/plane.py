"""The information plane of a run: plane(ds, ...) -> matplotlib Figure."""
from .common import (COLOR_BY, EPOCH_CMAP, STYLE, STYLES, PlotError, epoch_norm, epoch_ticks,
                     information, layer_colors, layer_marker, layer_name, np, plane_name,
                     pyplot, run_subtitle, select)
from .labels import freeze_layout, label_layers


def plane(ds, estimator=None, layers=None, epochs=None, test=False, color_by="epoch",
          style="trajectories"):
    """The information plane of the run `ds` (from ipmpi.open_run): one panel
    per estimator shown. See ipmpi.plot for the options."""
    if style not in STYLES:
        raise PlotError(f"style {style!r}: use one of {', '.join(STYLES)}")
    if color_by not in COLOR_BY:
        raise PlotError(f"color_by {color_by!r}: use one of {', '.join(COLOR_BY)}")
    if style == "epochs" and color_by != "epoch":
        raise PlotError("style epochs colours each epoch's line by its epoch: use color_by "
                        "epoch (--color-by epoch)")
    sel = select(ds, estimator, layers, epochs, test)
    plt = pyplot()
    with plt.rc_context(STYLE):
        return plane_figure(plt, sel, color_by, style)


def plane_figure(plt, sel, color_by, style):
    n = len(sel.estimators)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n + 1.0, 4.8), sharex=True, sharey=True,
                             layout="constrained", squeeze=False)
    axes = axes[0].tolist()
    norm = epoch_norm(sel.epochs) if color_by == "epoch" else None
    draw = draw_epoch_lines if style == "epochs" else draw_trajectories
    ends = [draw(ax, sel, estimator, norm) for ax, estimator in zip(axes, sel.estimators)]
    set_plane_limits(axes, sel.run, sel.prefix)
    for ax, estimator in zip(axes, sel.estimators):
        ax.set_xlabel("I(X;T) [bits]")
        if n > 1:
            ax.set_title(f"{estimator} estimator")
    axes[0].set_ylabel("I(T;Y) [bits]")
    if norm is not None:
        epoch_colorbar(fig, plt, norm, axes, sel.epochs)
    layer_legend(axes[0], sel, color_by, ncol=3)
    which = f"{sel.estimators[0]} estimator" if n == 1 else "estimators compared"
    fig.suptitle(f"Information plane, {plane_name(sel.run, sel.prefix)} set, {which}\n"
                 f"{run_subtitle(sel)}",
                 fontsize=11)
    freeze_layout(fig)          # names are placed in display coordinates: fix them first
    names = {layer: layer_name(sel.run, layer) for layer in sel.layers}
    for ax, layer_ends in zip(axes, ends):
        label_layers(ax, names, layer_ends)
    return fig


def draw_trajectories(ax, sel, estimator, norm):
    """One trajectory per layer; returns [(layer, last point)]."""
    ixt, ity, ixt_rep, ity_rep = information(sel, estimator)
    colors = layer_colors(len(sel.layers))
    ends = []
    for i, layer in enumerate(sel.layers):
        if ixt_rep is not None:
            for r in range(ixt_rep.shape[1]):
                ax.plot(ixt_rep[:, r, layer], ity_rep[:, r, layer], color="0.55", lw=0.5,
                        alpha=0.3, zorder=1)
        x, y = ixt[:, layer], ity[:, layer]
        if norm is None:        # colour by layer
            ax.plot(x, y, color=colors[i], lw=1.3, zorder=2)
            ax.scatter(x, y, color=colors[i], s=9, marker=layer_marker(i), edgecolors="none",
                       zorder=3)
        else:
            ax.plot(x, y, color="0.35", lw=0.7, alpha=0.7, zorder=2)
            ax.scatter(x, y, c=sel.epochs, cmap=EPOCH_CMAP, norm=norm, s=16,
                       marker=layer_marker(i), edgecolors="none", zorder=3)
        end = last_point(x, y)
        if end is not None:
            ends.append((layer, end))
    return ends


def draw_epoch_lines(ax, sel, estimator, norm):
    """The paper's figure: the layers of each epoch joined by one line,
    coloured by the epoch; returns [(layer, point at the last epoch)]."""
    from matplotlib.collections import LineCollection
    ixt, ity, _, _ = information(sel, estimator)
    x, y = ixt[:, sel.layers], ity[:, sel.layers]          # (epochs, layers shown)
    segments = [np.column_stack([x[e], y[e]]) for e in range(x.shape[0])]
    segments = [s[np.isfinite(s).all(axis=1)] for s in segments]
    cmap = pyplot().get_cmap(EPOCH_CMAP)
    lines = LineCollection(segments, colors=cmap(norm(sel.epochs)), linewidths=0.6, alpha=0.5,
                           zorder=2)
    ax.add_collection(lines)
    ends = []
    for i, layer in enumerate(sel.layers):
        ax.scatter(x[:, i], y[:, i], c=sel.epochs, cmap=EPOCH_CMAP, norm=norm, s=14,
                   marker=layer_marker(i), edgecolors="none", zorder=3)
        end = last_point(x[:, i], y[:, i])
        if end is not None:
            ends.append((layer, end))
    return ends


def layer_legend(ax, sel, color_by, ncol):
    """Names every layer with its marker (and colour) below the plane, outside the data."""
    from matplotlib.lines import Line2D
    colors = layer_colors(len(sel.layers))
    handles = [Line2D([], [], marker=layer_marker(i), ls="-", lw=1.0, ms=5,
                      color=colors[i] if color_by == "layer" else "0.3",
                      label=layer_name(sel.run, layer))
               for i, layer in enumerate(sel.layers)]
    if "simple" in sel.estimators and sel.run.replicas > 1:
        handles.append(Line2D([], [], color="0.55", lw=0.8, alpha=0.6, label="single replicas"))
    # Below the panel and no wider than it (wider would squeeze the panel).
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.14), frameon=False,
              ncol=min(ncol, len(handles)), handlelength=1.6, columnspacing=1.2)


def epoch_colorbar(fig, plt, norm, axes, epochs):
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=EPOCH_CMAP)
    bar = fig.colorbar(mappable, ax=axes, pad=0.02, aspect=30)
    ticks = epoch_ticks(epochs)
    bar.set_ticks(ticks, labels=[str(t) for t in ticks])
    bar.minorticks_off()
    bar.set_label("epoch (log scale)")


def last_point(x, y):
    written = np.flatnonzero(~(np.isnan(x) | np.isnan(y)))
    return None if written.size == 0 else (x[written[-1]], y[written[-1]])


def set_plane_limits(axes, run, prefix):
    """The plane's bounds, 0 <= I(X;T) <= H(X) and 0 <= I(T;Y) <= H(Y) (the
    axes are shared): dotted lines, named outside the data, on the top edge
    (H(X)) and the right edge of the last panel (H(Y))."""
    h_x = float(run.attrs.get(f"{prefix}H_X", np.nan))
    h_y = float(run.attrs.get(f"{prefix}H_Y", np.nan))
    if np.isfinite(h_x) and h_x > 0:
        axes[0].set_xlim(0, h_x * 1.04)
    if np.isfinite(h_y) and h_y > 0:
        axes[0].set_ylim(0, h_y * 1.06)
    for i, ax in enumerate(axes):
        if np.isfinite(h_x):
            ax.axvline(h_x, color="0.6", ls=":", lw=0.9, zorder=0)
            bound_tick(ax.secondary_xaxis("top"), "x", h_x, "H(X)")
        if np.isfinite(h_y):
            ax.axhline(h_y, color="0.6", ls=":", lw=0.9, zorder=0)
            if i == len(axes) - 1:
                bound_tick(ax.secondary_yaxis("right"), "y", h_y, "H(Y)")


def bound_tick(axis, which, value, name):
    """One named tick on a secondary axis, without its spine."""
    (axis.set_xticks if which == "x" else axis.set_yticks)([value], labels=[name])
    axis.tick_params(length=0, pad=2, labelsize=8, labelcolor="0.45")
    for spine in axis.spines.values():
        spine.set_visible(False)
