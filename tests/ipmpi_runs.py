"""Shared by the Python tests: make ipmpi runs, check with a count of failures,
and skip (exit 77) when a module is missing.

The tests run with /usr/bin/python3 (meson test sets IPMPI_PYTHON) and read
the outputs as users do, with Debian's xarray and netCDF4."""
import importlib
import os
import subprocess
import sys
import tempfile

SOURCE = os.environ.get("IPMPI_SOURCE_ROOT", os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
IPMPI = os.environ.get("IPMPI", os.path.join(SOURCE, "build", "ipmpi"))
BUILD = os.path.dirname(IPMPI)
MPIRUN = os.path.join(SOURCE, "tests", "mpirun.sh")
PACKAGE = os.path.join(SOURCE, "python")

SMALL_RUN = """
[run]
seed = 3
replicas = 2
output = {output}
[data]
source = tishby12
train_fraction = 0.8
[network]
layers = {net}
[training]
epochs = {epochs}
batch_size = 128
[information]
epochs = {log}
layers = {layers}
estimators = simple, pooled, sampled
on = all
"""


def needs(*modules):
    """Exits 77 (skipped) when this Python lacks one of the modules."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            print(f"skipped: {sys.executable} lacks {name} ({e})")
            sys.exit(77)


def workdir():
    return tempfile.TemporaryDirectory(prefix="ipmpi-pytest-")


def write_config(directory, name="job.ini", *, output="run.nc", epochs=12, log="all",
                 layers="all", net="dense:6:tanh, dense:4:tanh, dense:3:tanh, dense:2:softmax",
                 extra=""):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(SMALL_RUN.format(output=output, epochs=epochs, log=log, layers=layers, net=net)
                + extra)
    return path


def run_ipmpi(directory, *args, ranks=1, background=False):
    """Runs ipmpi ARGS in directory on `ranks` ranks; returns the CompletedProcess
    (or the Popen, in the background)."""
    command = [MPIRUN, str(ranks), IPMPI, *args]
    if background:
        return subprocess.Popen(command, cwd=directory, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=300)


class Checks:
    """Counts failed checks; the test exits 1 when any failed."""

    def __init__(self, name):
        self.name = name
        self.failures = 0

    def check(self, ok, what):
        if not ok:
            print(f"FAIL: {what}", file=sys.stderr)
            self.failures += 1
        return ok

    def finish(self):
        print(f"{self.name}: " + ("all checks passed" if not self.failures
                                  else f"{self.failures} check(s) failed"))
        sys.exit(1 if self.failures else 0)
