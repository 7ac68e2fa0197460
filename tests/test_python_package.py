#!/usr/bin/python3
"""The Python package as users install it: meson install (into a DESTDIR)
and pip install ./python (into a venv that sees Debian's packages), after
which `python3 -c "import ipmpi; ipmpi.open_run(RUN)"`, ipmpi-plot and
ipmpi-export work; the tidy CSV holds every value of the run and nothing
else; python3 -m ipmpi export does the same; and a Python without the
packages it needs is told so in one line."""
import csv
import fcntl
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ipmpi_runs import BUILD, PACKAGE, Checks, run_ipmpi, needs, workdir, write_config  # noqa: E402

needs("numpy", "netCDF4", "xarray")
import netCDF4  # noqa: E402
import numpy as np  # noqa: E402

t = Checks("test_python_package")
IMPORT = "import ipmpi, sys; ds = ipmpi.open_run(sys.argv[1]); print(ipmpi.__file__, ds.sizes['layer'])"


def run(command, cwd, env=None, timeout=300):
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment.update(env or {})
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=environment,
                          timeout=timeout)


def installed_by_meson(directory):
    """meson install into DIRECTORY/dest; returns (site directory, bin directory)."""
    dest = os.path.join(directory, "dest")
    done = run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", dest],
               cwd=directory)
    t.check(done.returncode == 0, f"meson install: {done.stdout[-300:]}{done.stderr[-300:]}")
    listing = json.loads(run(["meson", "introspect", BUILD, "--installed"], cwd=directory).stdout)
    init = next(v for k, v in listing.items() if k.endswith("python/ipmpi/__init__.py"))
    bindir = os.path.dirname(next(v for k, v in listing.items() if k.endswith("/ipmpi-plot")))
    return os.path.dirname(os.path.dirname(dest + init)), dest + bindir


def check_meson_install(directory, run_path):
    site, bindir = installed_by_meson(directory)
    got = run([sys.executable, "-c", IMPORT, run_path], cwd=directory, env={"PYTHONPATH": site})
    t.check(got.returncode == 0 and got.stdout.startswith(site),
            f"import ipmpi after meson install: {got.stdout}{got.stderr[-400:]}")
    version = run([sys.executable, "-c", "import ipmpi; print(ipmpi.__version__)"],
                  cwd=directory, env={"PYTHONPATH": site}).stdout.strip()
    with netCDF4.Dataset(run_path) as raw:
        t.check(version == raw.ipmpi_version, f"installed version {version!r}, "
                f"the run's ipmpi {raw.ipmpi_version!r}")
    figure = os.path.join(directory, "meson.png")
    plot = run([os.path.join(bindir, "ipmpi-plot"), run_path, "-o", figure], cwd=directory)
    t.check(plot.returncode == 0 and os.path.getsize(figure) > 0,
            f"installed ipmpi-plot: {plot.stderr[-300:]}")
    export = run([os.path.join(bindir, "ipmpi-export"), run_path, "-o",
                  os.path.join(directory, "meson.csv")], cwd=directory)
    t.check(export.returncode == 0, f"installed ipmpi-export: {export.stderr[-300:]}")


def check_pip_install(directory, run_path):
    """pip install ./python into a venv with the system's packages: the
    build needs no package index (in-tree backend), nor do the dependencies."""
    venv = os.path.join(directory, "venv")
    made = run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv],
               cwd=directory)
    has_pip = run([sys.executable, "-c", "import pip"], cwd=directory).returncode == 0
    if made.returncode != 0 or not has_pip:
        print(f"skipped pip install: no venv or pip in {sys.executable} ({made.stderr[-200:]})")
        return
    python = os.path.join(venv, "bin", "python")
    pip = run([python, "-m", "pip", "install", "--no-index", "--disable-pip-version-check",
               PACKAGE], cwd=directory)
    t.check(pip.returncode == 0, f"pip install ./python: {pip.stdout[-400:]}{pip.stderr[-400:]}")
    got = run([python, "-c", IMPORT, run_path], cwd=directory)
    t.check(got.returncode == 0 and got.stdout.startswith(venv),
            f"import ipmpi after pip install: {got.stdout}{got.stderr[-400:]}")
    out = os.path.join(directory, "pip.csv")
    export = run([os.path.join(venv, "bin", "ipmpi-export"), run_path, "--csv", "-o", out],
                 cwd=directory)
    t.check(export.returncode == 0 and "rows" in export.stdout,
            f"pip's ipmpi-export: {export.stdout}{export.stderr[-300:]}")
    leftovers = glob.glob(os.path.join(PACKAGE, "build")) + glob.glob(os.path.join(PACKAGE, "*.egg-info"))
    t.check(not leftovers, f"pip left {leftovers} in the source tree")


def expected_rows(path):
    """Every value of the run as the CSV should hold it, read with netCDF4."""
    rows = set()
    with netCDF4.Dataset(path) as raw:
        raw.set_auto_mask(False)
        epochs = raw["epoch"][:]
        for name, var in raw.variables.items():
            dims = var.dimensions
            if dims[:1] != ("epoch",) or name == "epoch":
                continue
            quantity, _, estimator = name.rpartition("_") if "I_" in name else (name, "", "")
            values = var[:]
            for index in np.ndindex(values.shape):
                value = values[index]
                if value == netCDF4.default_fillvals["f8"]:
                    continue
                where = dict(zip(dims[1:], (i + 1 for i in index[1:])))
                rows.add((str(epochs[index[0]]), str(where.get("replica", "")),
                          str(where.get("layer", "")), estimator, quantity, repr(float(value))))
    return rows


def check_csv(path, csv_path):
    with open(csv_path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [tuple(row) for row in reader]
    t.check(header == ["epoch", "replica", "layer", "estimator", "quantity", "value"],
            f"CSV header {header}")
    want = expected_rows(path)
    t.check(len(rows) == len(set(rows)), "duplicate CSV rows")
    t.check(set(rows) == want, f"CSV rows differ from the file: {len(set(rows) - want)} extra, "
            f"{len(want - set(rows))} missing, e.g. {sorted(set(rows) ^ want)[:3]}")
    t.check(not any(r[2] == "1" for r in rows if r[4].endswith(("I_XT", "I_TY"))),
            "rows for the unmeasured layer 1")
    t.check({r[4] for r in rows} >= {"loss", "accuracy", "I_XT", "I_TY", "test_loss", "test_I_TY"},
            f"quantities {sorted({r[4] for r in rows})}")
    pooled = [r for r in rows if r[3] == "pooled"]
    t.check(pooled and all(r[1] == "" for r in pooled), "pooled rows carry a replica")


def check_module_and_errors(directory, run_path):
    out = os.path.join(directory, "module.csv")
    module = run([sys.executable, "-m", "ipmpi", "export", run_path, "--csv", "-o", out],
                 cwd=directory, env={"PYTHONPATH": PACKAGE})
    t.check(module.returncode == 0, f"python3 -m ipmpi export: {module.stderr[-300:]}")
    check_csv(run_path, out)
    bare = run([sys.executable, "-S", os.path.join(BUILD, "ipmpi-export"), run_path], cwd=directory)
    said = bare.stderr.strip().splitlines()
    t.check(bare.returncode == 1 and len(said) == 1 and said[0].startswith("ipmpi-export: ")
            and "cannot import numpy" in said[0] and "Traceback" not in bare.stderr,
            f"ipmpi-export without numpy: status {bare.returncode}, {bare.stderr[-300:]}")
    missing = run([os.path.join(BUILD, "ipmpi-export"), os.path.join(directory, "none.nc")],
                  cwd=directory)
    t.check(missing.returncode == 1 and missing.stderr.startswith("ipmpi-export: ")
            and "no such file" in missing.stderr, f"missing run: {missing.stderr[-200:]}")
    # stdout's reader leaving early (| head -1) is no error: status 0, silent.
    # The pipe holds 4 KiB, less than the CSV, so the writer meets its closed end.
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment["PYTHONPATH"] = PACKAGE
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ (Linux)
    piped = subprocess.Popen([sys.executable, "-m", "ipmpi", "export", run_path, "-o", "-"],
                             cwd=directory, stdout=write_end, stderr=subprocess.PIPE,
                             env=environment)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()
    status, err = piped.wait(timeout=300), piped.stderr.read()
    piped.stderr.close()
    t.check(os.path.getsize(out) > 4096 and first.startswith(b"epoch,") and status == 0
            and not err, f"export | head -1: status {status}, {err[-300:]!r}")
    check_nothing_precious_replaced(directory, run_path)
    check_damaged_run(directory, run_path)


def check_nothing_precious_replaced(directory, run_path):
    """-o naming the run (directly or through a link), another NetCDF file or
    a checkpoint is refused in one line, and the file stays as it was."""
    with open(run_path, "rb") as f:
        before = f.read()
    link = os.path.join(directory, "link.png")
    os.symlink(run_path, link)
    checkpoint = run_path[:-3] + ".ckpt"
    for tool, out in (("ipmpi-export", run_path), ("ipmpi-plot", link),
                      ("ipmpi-export", checkpoint)):
        keep = open(out, "rb").read()
        done = run([os.path.join(BUILD, tool), run_path, "-o", out], cwd=directory)
        said = done.stderr.strip().splitlines()
        t.check(done.returncode == 1 and len(said) == 1 and "refusing" in said[0] + " refusing"
                and ("is the run being read" in said[0] or "refusing to replace" in said[0]),
                f"{tool} -o {os.path.basename(out)}: status {done.returncode}, {done.stderr[-300:]}")
        t.check(open(out, "rb").read() == keep, f"{tool} -o {os.path.basename(out)} changed it")
    # The library's own writers refuse alike (RefusedError), nothing written.
    library = f"""
import sys
sys.path.insert(0, {PACKAGE!r})
import ipmpi, matplotlib
matplotlib.use("Agg")
ds = ipmpi.open_run({run_path!r})
for write, out in ((lambda out: ipmpi.export.write_csv(ds, out), {run_path!r}),
                   (lambda out: ipmpi.export.write_csv(ds, out), {checkpoint!r}),
                   (lambda out: ipmpi.plot.save(ipmpi.plot.plane(ds), out), {link!r})):
    try:
        write(out)
        print("written", out)
    except ipmpi.RefusedError as e:
        print("refused", e)
"""
    keep = {out: open(out, "rb").read() for out in (checkpoint, link)}
    done = run([sys.executable, "-c", library], cwd=directory)
    said = done.stdout.strip().splitlines()
    t.check(done.returncode == 0 and len(said) == 3 and all(s.startswith("refused") for s in said),
            f"library writers: status {done.returncode}, {done.stdout[-300:]}{done.stderr[-300:]}")
    for out, data in keep.items():
        t.check(open(out, "rb").read() == data, f"a library writer changed {os.path.basename(out)}")
    with open(run_path, "rb") as f:
        t.check(f.read() == before, "the run changed")
    os.remove(link)


def check_damaged_run(directory, run_path):
    """A file with damaged HDF5 metadata is a one-line error, not a traceback."""
    damaged = os.path.join(directory, "damaged.nc")
    data = bytearray(open(run_path, "rb").read())
    for at in range(len(data) // 3, len(data) // 3 + 3000):
        data[at] = 0xA5
    open(damaged, "wb").write(bytes(data))
    for tool in ("ipmpi-export", "ipmpi-plot"):
        done = run([os.path.join(BUILD, tool), damaged, "-o",
                    os.path.join(directory, "d.png" if tool == "ipmpi-plot" else "d.csv")],
                   cwd=directory)
        t.check(done.returncode == 1 and "Traceback" not in done.stderr
                and done.stderr.startswith(f"{tool}: "),
                f"{tool} on a damaged file: status {done.returncode}, {done.stderr[-300:]}")


def main():
    with workdir() as directory:
        config = write_config(directory, output="x.nc", layers="2, 3, 4")
        done = run_ipmpi(directory, config, ranks=2)
        if not t.check(done.returncode == 0, f"run failed: {done.stderr[-300:]}"):
            t.finish()
        run_path = os.path.join(directory, "x.nc")
        check_module_and_errors(directory, run_path)
        check_meson_install(directory, run_path)
        check_csv(run_path, os.path.join(directory, "meson.csv"))
        check_pip_install(directory, run_path)
    t.finish()


main()
