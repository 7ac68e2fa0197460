#!/usr/bin/python3
"""The gradient norms of a run ([output] gradients): grad_mean_norm and
grad_std_norm as xarray reads them (dims epoch, replica, layer; units,
long_name, _FillValue, layer_name attached), the fill value at epoch 0
(NaN in xarray) and finite
after, written for layers whose information is not measured; bitwise the
same on 1, 2 and 4 ranks (4 replicas: side by side in vector lanes on one
rank, alone on four); gathering them changes no other value, and
gradients = false leaves them out. A restart may switch them off (later
records NaN), and is refused by name when it asks for them in a file
written without them. ipmpi-plot --snr writes a PNG, and the
figure's lines are the file's values (mean over replicas, epoch 0 left out)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ipmpi_runs import BUILD, PACKAGE, Checks, run_ipmpi, needs, workdir, write_config  # noqa: E402

needs("numpy", "netCDF4", "xarray", "matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import netCDF4  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

NAMES = ("grad_mean_norm", "grad_std_norm")
t = Checks("test_gradient_norms")


def raw(path):
    """Every variable of the file, fill values as they are stored."""
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        return {name: np.array(var[...]) for name, var in ds.variables.items()
                if var.dtype is not str}


def check_schema(path):
    with netCDF4.Dataset(path) as ds:
        for name in NAMES:
            if not t.check(name in ds.variables, f"{path}: no {name}"):
                continue
            var = ds.variables[name]
            t.check(var.dimensions == ("epoch", "replica", "layer"),
                    f"{name}: dimensions {var.dimensions}")
            t.check(var.units == "nats", f"{name}: units {var.units!r} (cross-entropy: nats)")
            t.check(var.long_name.startswith("gradient"), f"{name}: long_name {var.long_name!r}")
            t.check(var._FillValue == netCDF4.default_fillvals["f8"], f"{name}: _FillValue")
            t.check(var.coordinates == "layer_name", f"{name}: coordinates attribute")
            var.set_auto_mask(False)
            t.check(np.all(var[0] == netCDF4.default_fillvals["f8"]),
                    f"{name} at epoch 0 (nothing trained) is not the fill value: {var[0]}")


def check_values(path, layers):
    ds = xr.open_dataset(path)
    for name in NAMES:
        v = ds[name]
        t.check(v.dims == ("epoch", "replica", "layer") and "layer_name" in v.coords,
                f"{name} as xarray reads it: dims {v.dims}, coords {list(v.coords)}")
        t.check(bool(v.sel(epoch=0).isnull().all()), f"{name} at epoch 0 (nothing trained): "
                "not NaN")
        later = v.sel(epoch=slice(1, None)).values
        t.check(later.shape[0] > 0 and np.isfinite(later).all() and (later > 0).all(),
                f"{name} after epoch 0: not finite and positive everywhere: {later}")
        t.check(v.sizes["layer"] == layers, f"{name}: {v.sizes['layer']} layers")
    mean = ds.grad_mean_norm.sel(layer=2, replica=1).values
    t.check(mean.shape == (ds.sizes["epoch"],), "sel(layer=2, replica=1) is one series")
    ds.close()


def check_snr_plot(directory, path):
    """The command line writes a PNG; the figure's lines are the file's values."""
    out = os.path.join(directory, "snr.png")
    done = subprocess.run([sys.executable, os.path.join(BUILD, "ipmpi-plot"), path, "--snr",
                           "-o", out], capture_output=True, text=True)
    t.check(done.returncode == 0, f"ipmpi-plot --snr failed: {done.stderr}")
    with open(out, "rb") as f:
        t.check(f.read(8) == b"\x89PNG\r\n\x1a\n", "ipmpi-plot --snr did not write a PNG")
    sys.path.insert(0, PACKAGE)
    import ipmpi
    values = raw(path)
    epochs = values["epoch"]
    shown = epochs > 0
    fig = ipmpi.plot.snr(ipmpi.open_run(path))
    left, right = fig.axes[:2]
    t.check(left.get_xscale() == "log" and left.get_yscale() == "log", "not on log-log axes")
    lines = left.get_lines()
    n_layers = values["grad_mean_norm"].shape[2]
    t.check(len(lines) == 2 * n_layers, f"{len(lines)} lines for {n_layers} layers")
    for layer in range(n_layers):
        mean = values["grad_mean_norm"][shown, :, layer].mean(axis=1)
        std = values["grad_std_norm"][shown, :, layer].mean(axis=1)
        for line, want, what in ((lines[2 * layer], mean, "mean"),
                                 (lines[2 * layer + 1], std, "std")):
            t.check(np.array_equal(line.get_xdata(), epochs[shown]),
                    f"layer {layer + 1} {what}: plotted epochs {line.get_xdata()}")
            t.check(np.allclose(line.get_ydata(), want, rtol=1e-15, atol=0),
                    f"layer {layer + 1} {what}: plotted {line.get_ydata()}, file {want}")
        t.check(np.allclose(right.get_lines()[layer].get_ydata(), mean / std, rtol=1e-14),
                f"layer {layer + 1}: ratio plotted is not mean / std")
    bad = subprocess.run([sys.executable, os.path.join(BUILD, "ipmpi-plot"), path, "--snr",
                          "--test", "-o", out + ".x.png"], capture_output=True, text=True)
    t.check(bad.returncode == 1 and bad.stderr.count("\n") == 1 and "--snr" in bad.stderr,
            f"--snr --test: want one line and status 1, got {bad.returncode}: {bad.stderr}")


def check_restarts(d, config, straight):
    """Switching gradients at a restart after epoch 3 of 6."""
    common = ("--set", "run.replicas=4")
    done = run_ipmpi(d, config, *common, "--set", "run.output=off_then.nc", "--set",
                     "output.gradients=false", "--set", "training.epochs=3")
    t.check(done.returncode == 0, f"first half without gradients: {done.stdout[-400:]}")
    done = run_ipmpi(d, config, *common, "--set", "run.output=off_then.nc", "--restart")
    t.check(done.returncode != 0 and "grad_mean_norm" in done.stdout + done.stderr,
            f"a restart asking for gradients in a file without them: status {done.returncode}, "
            f"{done.stdout[-300:]}{done.stderr[-300:]}")
    done = run_ipmpi(d, config, *common, "--set", "run.output=off_then.nc", "--restart",
                     "--set", "output.gradients=false")
    t.check(done.returncode == 0, f"the restart without gradients: {done.stdout[-400:]}")
    done = run_ipmpi(d, config, *common, "--set", "run.output=on_then.nc", "--set",
                     "training.epochs=3")
    t.check(done.returncode == 0, f"first half with gradients: {done.stdout[-400:]}")
    done = run_ipmpi(d, config, *common, "--set", "run.output=on_then.nc", "--restart",
                     "--set", "output.gradients=false")
    t.check(done.returncode == 0, f"switched off at the restart: {done.stdout[-400:]}")
    with netCDF4.Dataset(os.path.join(d, "on_then.nc")) as ds:
        ds.set_auto_mask(False)
        epochs = np.array(ds["epoch"][:])
        for name in NAMES:
            got, want = np.array(ds[name][:]), straight[name]
            early = epochs <= 3
            t.check(got.shape == want.shape and got[early].tobytes() == want[early].tobytes(),
                    f"{name} before the restart differs from the straight run")
            t.check(np.all(got[~early] == netCDF4.default_fillvals["f8"]),
                    f"{name} after switching off at the restart: {got[~early]}")


def main():
    with workdir() as d:
        config = write_config(d, epochs=6, log="all", layers="2, 4",
                              extra="[output]\ngradients = true\n")
        for ranks in (1, 2, 4):
            done = run_ipmpi(d, config, "--set", "run.replicas=4", "--set",
                             f"run.output=np{ranks}.nc", ranks=ranks)
            t.check(done.returncode == 0, f"-np {ranks}: {done.stdout[-400:]}")
        check_schema(os.path.join(d, "np1.nc"))
        check_values(os.path.join(d, "np1.nc"), layers=4)
        one = raw(os.path.join(d, "np1.nc"))
        for ranks in (2, 4):
            other = raw(os.path.join(d, f"np{ranks}.nc"))
            for name in NAMES:
                t.check(name in other and one[name].tobytes() == other[name].tobytes(),
                        f"{name}: -np {ranks} differs from -np 1")
        done = run_ipmpi(d, config, "--set", "run.replicas=4", "--set", "output.gradients=false",
                         "--set", "run.output=off.nc", ranks=2)
        t.check(done.returncode == 0, f"gradients = false: {done.stdout[-400:]}")
        off = raw(os.path.join(d, "off.nc"))
        t.check(not any(name in off for name in NAMES), "gradients = false wrote gradient norms")
        for name, values in off.items():
            t.check(values.tobytes() == one[name].tobytes(),
                    f"{name} changes when the gradients are gathered")
        check_snr_plot(d, os.path.join(d, "np1.nc"))
        check_restarts(d, config, one)
    t.finish()


if __name__ == "__main__":
    main()
