"""open_run: an ipmpi run as an xarray Dataset, also while it is being written.

The file is CF-1.10 and xarray reads it as it is: fill values are NaN,
layer and replica are 1-based coordinates (layer k is T<k>) and layer_name
("T3 dense:5:tanh") is a coordinate along layer. open_run adds what a plain
xr.open_dataset cannot: it reads a file a run still holds open, keeps only
whole records, and gives files of older ipmpi versions (without those
coordinates and fill value attributes) the same shape.
"""
import os
import shutil
import tempfile

from .deps import require
from .errors import RunError

FILL_DOUBLE = 9.969209968386869e36   # NetCDF's default fill for doubles
FILL_INT = -2147483647               # and for ints: an epoch not yet written


def open_run(path, *, load=True):
    """The run in `path` as an xarray Dataset with named layers.

    load=True (the default) reads everything into memory and closes the file
    at once, which is what a file still being written needs; load=False
    leaves the variables on disk (for large stored activations): close the
    Dataset when done.
    """
    xr = require("xarray")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise RunError(f"{path}: no such file")
    try:
        ds = _open(xr, path, load)
    except Exception as e:  # noqa: BLE001 - netCDF4 raises OSError, RuntimeError,
        # AttributeError... for a damaged file, or one caught mid-write by a run
        if not load or "HDF error" not in str(e):
            raise RunError(f"{path}: not a readable NetCDF file ({e})") from None
        # The writer's HDF5 lock, with locking enabled in this process, or a
        # write in progress: read a copy.
        ds = _open_copy(xr, path)
        ds.encoding["source"] = path    # messages name the run, not the copy
    try:
        _check_run(ds, path)
        return _complete(ds)
    except Exception:
        ds.close()
        raise


def _open(xr, path, load):
    ds = xr.open_dataset(path, engine="netcdf4")
    if not load:
        return ds
    with ds:
        return ds.load()


def _open_copy(xr, path):
    with tempfile.TemporaryDirectory(prefix="ipmpi-") as tmp:
        copy = os.path.join(tmp, os.path.basename(path))
        shutil.copyfile(path, copy)
        try:
            return _open(xr, copy, True)
        except Exception as e:  # noqa: BLE001 - as in open_run
            raise RunError(f"{path}: not readable, even as a copy ({e}); if a run is writing "
                           f"it, read it again") from None


def _check_run(ds, path):
    if "ipmpi_version" not in ds.attrs or "epoch" not in ds.variables:
        raise RunError(f"{path}: not an ipmpi run (no ipmpi_version attribute or epoch variable)")


def _complete(ds):
    """Whole records only; coordinates and NaN fills for files of older versions."""
    np = require("numpy")
    if ds.sizes.get("epoch", 0) and (ds.epoch.values == FILL_INT).any():
        ds = ds.isel(epoch=np.flatnonzero(ds.epoch.values != FILL_INT))
    # stored-activation slots of epochs not reached yet (a run stopped or still running)
    if ds.sizes.get("activation_epoch", 0) and (ds.activation_epoch.values == FILL_INT).any():
        ds = ds.isel(activation_epoch=np.flatnonzero(ds.activation_epoch.values != FILL_INT))
    for dim in ("layer", "replica"):
        if dim in ds.dims and dim not in ds.coords:
            ds = ds.assign_coords({dim: (dim, np.arange(1, ds.sizes[dim] + 1, dtype="int32"))})
    if "layer" in ds.dims and "layer_name" not in ds.variables:
        names = [f"T{k}" for k in ds.layer.values]
        ds = ds.assign_coords(layer_name=("layer", np.array(names, dtype=object)))
    for name, var in ds.data_vars.items():
        if var.dtype.kind == "f" and "_FillValue" not in var.encoding:
            ds[name] = var.where(var != FILL_DOUBLE)
    return ds
