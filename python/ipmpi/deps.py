"""The third-party modules ipmpi uses, imported with a clear error.

ipmpi needs Debian's numpy, netCDF4, xarray and matplotlib (python3-numpy,
python3-netcdf4, python3-xarray, python3-matplotlib). A Python that lacks one
gets MissingDependency, which names the module, this Python and the
packages, instead of a traceback.
"""
import importlib
import sys

PACKAGES = {"numpy": "python3-numpy", "netCDF4": "python3-netcdf4",
            "xarray": "python3-xarray", "matplotlib": "python3-matplotlib"}


class MissingDependency(ImportError):
    """A module ipmpi needs cannot be imported by this Python."""


def require(name):
    """The module `name`, or MissingDependency saying what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise MissingDependency(
            f"this Python ({sys.executable}) cannot import {name} ({e}); ipmpi needs numpy, "
            f"netCDF4, xarray and matplotlib: on Debian run /usr/bin/python3, with "
            f"apt-get install {' '.join(PACKAGES.values())}") from None


def require_all(*names):
    """Imports every module named (all of PACKAGES by default), failing at the first missing."""
    for name in names or tuple(PACKAGES):
        require(name)
