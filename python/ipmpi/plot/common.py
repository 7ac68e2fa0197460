"""What the figures share: the run's arrays, the user's selection, colours,
markers, the epoch scale, and saving."""
from dataclasses import dataclass, field

from ..deps import require
from ..errors import PlotError
from ..files import refuse_precious
from ..estimators import ESTIMATORS

np = require("numpy")

STYLES = ("trajectories", "epochs")
COLOR_BY = ("epoch", "layer")
LAYER_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
EPOCH_CMAP = "viridis"
PNG_DPI = 150

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
}


def pyplot():
    """matplotlib.pyplot, imported on first use (it takes a second)."""
    require("matplotlib")
    import matplotlib.pyplot as plt
    return plt


@dataclass
class Run:
    """The arrays a figure needs, NaN where nothing was written."""
    path: str
    epochs: np.ndarray                      # (E,) logged epochs
    layer_width: list                       # (L,)
    measured: list                          # 0-based layers with estimates
    replicas: int
    ranks: int
    attrs: dict                             # global attributes
    series: dict = field(default_factory=dict)  # name -> (E, ...) float array
    units: dict = field(default_factory=dict)   # name -> units attribute

    def has(self, name):
        return name in self.series

    def estimators(self, prefix):
        return [e for e in ESTIMATORS
                if self.has(f"{prefix}I_XT_{e}") and self.has(f"{prefix}I_TY_{e}")]


def run_view(ds):
    """The Run of a Dataset from open_run."""
    epochs = np.asarray(ds["epoch"].values)
    if epochs.size == 0:
        raise PlotError(f"{source(ds)}: the run has no logged epochs yet (0 records)")
    series = {name: np.asarray(var.values, dtype=float) for name, var in ds.data_vars.items()
              if var.dims[:1] == ("epoch",)}
    widths = [int(w) for w in ds["layer_width"].values] if "layer_width" in ds else []
    measured = ([i for i, m in enumerate(ds["layer_measured"].values) if m]
                if "layer_measured" in ds else list(range(len(widths))))
    return Run(path=source(ds), epochs=epochs.astype(int), layer_width=widths, measured=measured,
               replicas=int(ds.attrs.get("replicas", 0)), ranks=int(ds.attrs.get("ranks", 0)),
               attrs=dict(ds.attrs), series=series,
               units={name: ds[name].attrs.get("units") for name in series})


def source(ds):
    return ds.encoding.get("source", "the run")


def plane_name(run, prefix):
    """The samples a plane's estimates are of, for titles: test, train, or
    with [information] on = whole the two sets together."""
    if prefix:
        return "test"
    if str(run.attrs.get("information_on", "")).startswith("whole"):
        return "whole (train + test)"
    return "train"


# ---------------------------------------------------------------- selections

def parse_layers(spec, n_layers, measured):
    """'1,3-5' or [1, 3, 4, 5] -> sorted 0-based indices; None -> every measured layer."""
    if spec is None:
        return [layer for layer in measured if layer < n_layers]
    text = spec if isinstance(spec, str) else ",".join(str(k) for k in spec)
    chosen = set()
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise PlotError(f"--layers {text}: expected a list like 1,3-5") from None
        if first > last:
            raise PlotError(f"--layers {text}: a range goes upwards ({last}-{first})")
        if first < 1 or last > n_layers:
            raise PlotError(f"--layers {text}: the run has layers 1..{n_layers}")
        chosen.update(range(first - 1, last))
    missing = [layer + 1 for layer in sorted(chosen) if layer not in measured]
    if missing:
        raise PlotError(f"--layers {text}: layer(s) {missing} were not measured "
                        f"([information] layers of the run)")
    return sorted(chosen)


def parse_epochs(spec):
    """'A:B', 'A:', ':B' or (A, B) -> (lo, hi) inclusive, None for an open side."""
    if spec is None:
        return None, None
    if not isinstance(spec, str):
        lo, hi = spec
        return lo, hi
    lo, sep, hi = spec.partition(":")
    try:
        if not sep:
            raise ValueError
        return (int(lo) if lo.strip() else None, int(hi) if hi.strip() else None)
    except ValueError:
        raise PlotError(f"--epochs {spec}: expected A:B, A: or :B (inclusive)") from None


def epoch_mask(run, spec):
    lo, hi = parse_epochs(spec)
    keep = np.ones(run.epochs.shape, dtype=bool)
    if lo is not None:
        keep &= run.epochs >= lo
    if hi is not None:
        keep &= run.epochs <= hi
    if not keep.any():
        raise PlotError(f"no logged epoch in the range --epochs {spec} "
                        f"(the run has {run.epochs.min()}..{run.epochs.max()})")
    return keep


def choose_estimators(run, requested, prefix):
    plane = "test" if prefix else "train"
    present = run.estimators(prefix)
    if prefix and not present:
        raise PlotError(f"{run.path}: the run has no test plane (set [information] on = test or "
                        f"all and a train_fraction below 1)")
    if not present:
        raise PlotError(f"{run.path}: no information estimates on the {plane} plane")
    if requested is None:
        return present[:1]          # pooled if present, else sampled, simple, kde_upper
    if requested == "all":
        return present
    if requested not in present:
        raise PlotError(f"{run.path}: the run did not compute the {requested} estimator "
                        f"on the {plane} plane (it has: {', '.join(present)})")
    return [requested]


@dataclass
class Selection:
    """What one figure shows."""
    run: Run
    estimators: list
    layers: list          # 0-based
    keep: np.ndarray      # (E,) bool: the epochs shown
    prefix: str           # "" or "test_"

    @property
    def epochs(self):
        return self.run.epochs[self.keep]


def select(ds, estimator, layers, epochs, test):
    run = run_view(ds)
    prefix = "test_" if test else ""
    if estimator not in (None, "all") + ESTIMATORS:
        raise PlotError(f"estimator {estimator!r}: use one of {', '.join(ESTIMATORS)} or all")
    chosen = choose_estimators(run, estimator, prefix)
    n_layers = run.series[f"{prefix}I_XT_{chosen[0]}"].shape[-1]
    return Selection(run, chosen, parse_layers(layers, n_layers, run.measured),
                     epoch_mask(run, epochs), prefix)


# ---------------------------------------------------------------- shared drawing helpers

def layer_name(run, layer):
    if layer < len(run.layer_width):
        return f"T{layer + 1} ({run.layer_width[layer]})"
    return f"T{layer + 1}"


def layer_colors(n):
    """n colours that are told apart at a glance: a qualitative palette."""
    cmap = pyplot().get_cmap("tab10" if n <= 10 else "tab20")
    if n <= 20:
        return [cmap(i) for i in range(n)]
    turbo = pyplot().get_cmap("turbo")
    return [turbo(0.05 + 0.9 * i / (n - 1)) for i in range(n)]


def layer_marker(i):
    return LAYER_MARKERS[i % len(LAYER_MARKERS)]


def epoch_norm(epochs):
    # Symmetric log: epoch 0 keeps a colour while 1..10..100 are evenly spread.
    from matplotlib.colors import SymLogNorm
    return SymLogNorm(linthresh=1.0, linscale=0.4, vmin=0, vmax=max(float(epochs.max()), 1.0),
                      base=10)


def epoch_ticks(epochs):
    """0, 1, 10, 100, ... up to the last epoch shown."""
    top = max(int(epochs.max()), 1)
    return [0] + [10 ** k for k in range(len(str(top)))]


def information(sel, estimator):
    """(I_XT, I_TY) as (epochs, layers) means and, for simple, (epochs, replicas, layers) traces."""
    run, keep, prefix = sel.run, sel.keep, sel.prefix
    ixt = run.series[f"{prefix}I_XT_{estimator}"][keep]
    ity = run.series[f"{prefix}I_TY_{estimator}"][keep]
    if ixt.ndim == 2:           # (epochs, layers): one value per layer, no replicas
        return ixt, ity, None, None
    if ixt.shape[1] == 1:       # one replica: no spread to show
        return ixt[:, 0], ity[:, 0], None, None
    return nanmean(ixt, axis=1), nanmean(ity, axis=1), ixt, ity


def nanmean(values, axis):
    # A row that is all NaN (an unmeasured layer) stays NaN without a RuntimeWarning.
    count = np.sum(~np.isnan(values), axis=axis)
    total = np.nansum(values, axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def spread(values, axis):
    """(mean, sd) over replicas, NaN-aware."""
    mean = nanmean(values, axis)
    var = nanmean((values - np.expand_dims(mean, axis)) ** 2, axis)
    return mean, np.sqrt(var)


def run_subtitle(sel):
    run, shown = sel.run, sel.epochs
    ranks = f" on {run.ranks} rank{'s' if run.ranks != 1 else ''}" if run.ranks else ""
    return (f"{run.replicas} replica{'s' if run.replicas != 1 else ''}{ranks}, "
            f"epochs {shown.min()}–{shown.max()} ({shown.size} logged)")


def save(fig, path, dpi=PNG_DPI):
    """Writes the figure (format from the extension) tight around its content.
    A path that holds a run, a checkpoint or another NetCDF file is refused:
    RefusedError, nothing written."""
    refuse_precious(path)
    with pyplot().rc_context(STYLE):
        fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.05)

