"""The errors ipmpi raises for problems a user can act on; each message is
one line naming the file or option."""


class RunError(Exception):
    """A file that cannot be read as an ipmpi run."""


class PlotError(ValueError):
    """A figure the run cannot give (an estimator it did not compute, a layer it did not measure...)."""


class RefusedError(ValueError):
    """A write that would replace a run, a checkpoint or another NetCDF file."""
