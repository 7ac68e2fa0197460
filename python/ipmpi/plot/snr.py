"""The gradients' signal and noise against epoch: snr(ds, ...) -> matplotlib Figure.

Shwartz-Ziv & Tishby (2017, Fig. 4): for each layer, the norm of the mean of
the minibatch gradients over a logged epoch (grad_mean_norm, solid) and the
norm of their standard deviation (grad_std_norm, dashed), on log-log axes.
While the mean dominates, training drifts towards lower loss; once the
spread dominates, the weights diffuse. The right panel shows their ratio,
mean / std. With several replicas each curve is the mean over replicas of
the norms. Epoch 0 (no training before it) and epochs a replica did not
train are left out."""
from .common import (STYLE, PlotError, epoch_mask, layer_colors, layer_name, np, parse_layers,
                     pyplot, run_subtitle, run_view, Selection, nanmean)

MEAN, STD = "grad_mean_norm", "grad_std_norm"


def snr(ds, layers=None, epochs=None):
    """The drift and diffusion phases of the run `ds` (from ipmpi.open_run).
    layers: '1,3-5' or a list of 1-based layers (default every layer with
    weights); epochs: 'A:B' inclusive, either side optional."""
    sel = select_snr(ds, layers, epochs)
    plt = pyplot()
    with plt.rc_context(STYLE):
        return snr_figure(plt, sel)


def gradient_norms(sel):
    """(mean, std) norms as (epochs shown, layers) arrays: the mean over replicas."""
    return (nanmean(sel.run.series[MEAN][sel.keep], axis=1),
            nanmean(sel.run.series[STD][sel.keep], axis=1))


def select_snr(ds, layers, epochs):
    run = run_view(ds)
    if not (run.has(MEAN) and run.has(STD)):
        raise PlotError(f"{run.path}: the run has no gradient norms (set [output] gradients = "
                        "true)")
    values = run.series[MEAN]
    n_layers = values.shape[-1]
    with_weights = [layer for layer in range(n_layers)
                    if np.isfinite(values[..., layer]).any()]
    keep = epoch_mask(run, epochs) & (run.epochs > 0) & np.isfinite(values).any(axis=(1, 2))
    if not keep.any():
        raise PlotError(f"{run.path}: no trained epoch with gradient norms in the range shown "
                        "(epoch 0 has none: nothing was trained before it)")
    if not with_weights:
        raise PlotError(f"{run.path}: no layer has gradient norms yet")
    return Selection(run, [], parse_layers(layers, n_layers, with_weights), keep, "")


def snr_figure(plt, sel):
    mean, std = gradient_norms(sel)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for color, layer in zip(layer_colors(len(sel.layers)), sel.layers):
        name = layer_name(sel.run, layer)
        left.plot(sel.epochs, mean[:, layer], color=color, lw=1.6, label=f"{name} mean")
        left.plot(sel.epochs, std[:, layer], color=color, lw=1.4, ls="--", label=f"{name} std")
        right.plot(sel.epochs, mean[:, layer] / std[:, layer], color=color, lw=1.5, label=name)
    units = sel.run.units.get(MEAN)
    left.set_ylabel(f"gradient norm [{units}]" if units and units != "1" else "gradient norm")
    left.set_title("norm of the mean (solid) and std (dashed) of the minibatch gradients",
                   fontsize=10)
    right.set_ylabel("mean / std")
    right.axhline(1.0, color="0.6", lw=0.8, ls=":")
    right.set_title("signal-to-noise ratio mean / std (drift: high, diffusion: low)",
                    fontsize=10)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.grid(True, which="major", color="0.92", lw=0.6)
    left.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, ncol=1)
    right.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Gradient signal and noise per layer (Shwartz-Ziv & Tishby 2017, Fig. 4)\n"
                 f"{run_subtitle(sel)}", fontsize=11)
    return fig
