"""ipmpi: read, plot and export the NetCDF runs of ipmpi.

    import ipmpi
    ds = ipmpi.open_run("tishby.nc")     # an xarray Dataset, layers named T1..TL
    ds.I_XT_pooled.sel(layer=3)          # T3's I(X;T), pooled estimator, in bits
    fig = ipmpi.plot.plane(ds)           # the information plane (a matplotlib Figure)
    ipmpi.export.write_csv(ds, "tishby.csv")   # tidy long-form CSV

A run being written can be read: HDF5 locks a file while a writer has it
open, and readers in other processes fail ("NetCDF: HDF error") unless the
environment variable HDF5_USE_FILE_LOCKING is FALSE when HDF5 opens its first
file in the process. Importing ipmpi sets it (unless it is set already), so
import ipmpi before opening any NetCDF-4 or HDF5 file; open_run also falls
back to reading a copy when the lock is in force anyway.
"""
import os

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

from .deps import MissingDependency  # noqa: E402
from .errors import PlotError, RefusedError, RunError  # noqa: E402
from .run import open_run  # noqa: E402
from .version import __version__  # noqa: E402

__all__ = ["open_run", "RunError", "PlotError", "RefusedError", "MissingDependency", "plot",
           "export", "__version__"]


def __getattr__(name):
    # ipmpi.plot and ipmpi.export load on first use: matplotlib takes a second to import.
    if name in ("plot", "export"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
