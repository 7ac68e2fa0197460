"""ipmpi.plot: figures of an ipmpi run, drawn from the Dataset open_run returns.

    fig = ipmpi.plot.plane(ds)                    # the information plane
    fig = ipmpi.plot.plane(ds, style="epochs")    # the paper's: one line per epoch across the layers
    fig = ipmpi.plot.plane(ds, color_by="layer")  # one colour per layer
    fig = ipmpi.plot.curves(ds)                   # loss, accuracy, I(X;T), I(T;Y) against epoch
    fig = ipmpi.plot.snr(ds)                      # gradient mean and std norms: drift and diffusion
    ipmpi.plot.save(fig, "run.pdf")

The plane: x = I(X;T), y = I(T;Y), bounded by H(X) and H(Y) (dotted).
  style="trajectories" (default): one trajectory per layer across the logged
    epochs; with color_by="epoch" (default) its points are coloured by epoch on a
    logarithmic scale, as in Shwartz-Ziv & Tishby (2017), and every layer has a
    marker of its own; with color_by="layer" every layer has a colour of its own.
  style="epochs": the layers of one logged epoch joined by a line coloured by
    the epoch, each layer's point with its marker (the paper's figure).
The simple estimator is drawn as the mean over replicas, over faint
per-replica traces. Each layer is named at its last point where the name
covers no data, and in the legend below the plane.

Options everywhere: estimator ("pooled", "sampled", "simple", "kde_upper",
"kde_lower", "pooled_mm", "sampled_mm", "simple_mm", "all"; default the first
of those the run has), layers ("1,3-5" or a list of 1-based layers;
default every measured layer), epochs ("A:B", inclusive, or (A, B), either
side None), test (the held-out plane). Problems the user can act on raise
PlotError with a one-line message.
"""
from .common import PlotError, save  # noqa: F401
from .curves import curves  # noqa: F401
from .plane import plane  # noqa: F401
from .snr import snr  # noqa: F401

__all__ = ["plane", "curves", "snr", "save", "PlotError"]
