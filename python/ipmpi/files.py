"""Files a figure or a CSV must never replace: runs and checkpoints. Every
writer of the package (the library's save and write_csv, the command-line
tools) asks refuse_precious first."""

import os

from .errors import RefusedError

PRECIOUS_MAGIC = {b"\x89HDF": "a NetCDF-4 file", b"CDF\x01": "a NetCDF file",
                  b"CDF\x02": "a NetCDF file", b"CDF\x05": "a NetCDF file",
                  b"IPMPICK1": "an ipmpi checkpoint"}


def refuse_precious(out, run=None):
    """RefusedError when writing the path `out` would replace the run being
    read (`run`, when given), or any NetCDF file or checkpoint, through a
    link too: nothing is written then."""
    if out == "-" or not os.path.exists(out):
        return
    if run is not None and os.path.exists(run) and os.path.samefile(out, run):
        raise RefusedError(f"{out}: is the run being read; choose another output")
    try:
        with open(out, "rb") as f:
            head = f.read(8)
    except OSError:
        return      # not readable: the write reports it
    for magic, what in PRECIOUS_MAGIC.items():
        if head.startswith(magic):
            raise RefusedError(f"{out}: is {what}; refusing to replace it (choose another output)")
