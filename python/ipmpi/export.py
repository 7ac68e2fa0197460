"""ipmpi.export: a run as tidy long-form rows, one value per row.

    ipmpi.export.write_csv(ds, "run.csv")
    for row in ipmpi.export.tidy_rows(ds): ...

Columns: epoch, replica, layer, estimator, quantity, value.
  quantity   loss, accuracy, I_XT, I_TY, bin_lo, bin_hi, stop_J,
             grad_mean_norm, grad_std_norm; the test set's with a test_
             prefix (test_loss, test_I_XT, ...)
  estimator  simple, pooled, sampled (their Miller-Madow values simple_mm, ...), kde_upper
             or kde_lower for I_XT and I_TY, else empty
  replica    1-based, empty for a value of the whole ensemble (pooled,
             sampled, an ensemble stopping rule, bin ranges)
  layer      1-based (layer k is T<k>), empty for loss, accuracy and stop_J
Values that were not measured (fill values: an unmeasured layer, stop_J
between checks) have no row. Numbers are written exactly (shortest round-trip
text). Stored activations (T<k>) are not exported.
"""
import csv
import re

from .deps import require
from .files import refuse_precious

COLUMNS = ("epoch", "replica", "layer", "estimator", "quantity", "value")
_INFO = re.compile(r"^(test_)?(I_XT|I_TY)_(simple|pooled|sampled|kde_upper|kde_lower|simple_mm|"
                   r"pooled_mm|sampled_mm)$")
_OTHER = re.compile(r"^(test_)?(loss|accuracy|bin_lo|bin_hi)$|^stop_J$|^grad_(mean|std)_norm$")


def quantity_of(name):
    """(quantity, estimator) of a variable exported, or None."""
    info = _INFO.match(name)
    if info:
        return (info.group(1) or "") + info.group(2), info.group(3)
    return (name, "") if _OTHER.match(name) else None


def tidy_rows(ds):
    """Yields (epoch, replica, layer, estimator, quantity, value) for every
    value the run holds; replica and layer are None where they do not apply."""
    np = require("numpy")
    epochs = ds["epoch"].values
    for name, var in ds.data_vars.items():
        what = quantity_of(name)
        if what is None or var.dims[:1] != ("epoch",):
            continue
        quantity, estimator = what
        values = np.asarray(var.values, dtype=float)
        coords = [ds[dim].values if dim in ds.coords else np.arange(1, n + 1)
                  for dim, n in zip(var.dims[1:], values.shape[1:])]
        for index in zip(*np.nonzero(~np.isnan(values))):
            labels = dict(zip(var.dims[1:], (c[i] for c, i in zip(coords, index[1:]))))
            yield (int(epochs[index[0]]), _int(labels.get("replica")), _int(labels.get("layer")),
                   estimator, quantity, float(values[index]))


def _int(value):
    return None if value is None else int(value)


def write_csv(ds, file):
    """Writes the tidy rows, with a header, to a path or an open text file;
    returns the number of rows. A path that holds a run, a checkpoint or
    another NetCDF file (or is ds's own file) is refused: RefusedError,
    nothing written."""
    if hasattr(file, "write"):
        return _write(ds, file)
    refuse_precious(file, ds.encoding.get("source"))
    with open(file, "w", newline="", encoding="utf-8") as f:
        return _write(ds, f)


def _write(ds, f):
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for epoch, replica, layer, estimator, quantity, value in tidy_rows(ds):
        writer.writerow((epoch, "" if replica is None else replica, "" if layer is None else layer,
                         estimator, quantity, repr(value)))
        n += 1
    return n
