#!/usr/bin/python3
"""The output as users open it, xr.open_dataset(run): CF Conventions, fill
values as NaN (an unmeasured layer), 1-based layer and replica coordinates
with layer_name (sel(layer=3) is T3), units, short long_names (xarray's own
plot shows its label whole), ISO 8601 history lines, and, after a restart
with --set training.epochs=..., the restarted run's config with the earlier
one kept."""
import datetime
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ipmpi_runs import PACKAGE, Checks, run_ipmpi, needs, workdir, write_config  # noqa: E402

needs("numpy", "netCDF4", "xarray", "matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import netCDF4  # noqa: E402
import numpy as np  # noqa: E402
import signal  # noqa: E402
import xarray as xr  # noqa: E402

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (.*)$")
t = Checks("test_xarray")


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def history_lines(text, since):
    """The history's texts after their stamps, checking each stamp's form and time."""
    texts, previous = [], since
    for line in text.split("\n"):
        found = STAMP.match(line)
        if not t.check(found, f"history line without an ISO 8601 UTC stamp: {line!r}"):
            continue
        when = datetime.datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
        t.check(previous <= when <= utc_now(), f"history stamp {when} not between {previous} "
                "and now")
        previous = when
        texts.append(found.group(2))
    return texts


def check_schema(path, started):
    with netCDF4.Dataset(path) as raw:
        raw.set_auto_mask(False)
        t.check(raw.Conventions == "CF-1.10", f"Conventions = {raw.Conventions!r}")
        for name, var in raw.variables.items():
            attrs = var.ncattrs()
            if var.dtype is not str and var.dtype.kind == "f":
                fill = netCDF4.default_fillvals["f8" if var.dtype.itemsize == 8 else "f4"]
                t.check("_FillValue" in attrs and var.getncattr("_FillValue") == np.array(
                    fill, var.dtype), f"{name}: no _FillValue {fill}")
            if name != "layer_name":
                t.check("units" in attrs, f"{name}: no units")
            t.check("long_name" in attrs and len(var.long_name) <= 24,
                    f"{name}: long_name missing or long: {getattr(var, 'long_name', None)!r}")
            t.check("description" in attrs, f"{name}: no description")
        t.check(raw["loss"].units == "nats" and raw["accuracy"].units == "1"
                and raw["I_XT_pooled"].units == "bits" and raw["epoch"].units == "1",
                "units of loss, accuracy, I_XT_pooled, epoch")
        raw_t3 = raw["I_XT_pooled"][:, 2]          # the file's third layer column
        version = raw.ipmpi_version
        texts = history_lines(raw.history, started)
    t.check(texts == [f"created by ipmpi {version} on 2 ranks"], f"history {texts}")
    return raw_t3


def check_as_users_open_it(path, raw_t3):
    ds = xr.open_dataset(path)
    t.check(list(ds.layer.values) == [1, 2, 3, 4], f"layer coordinate {ds.layer.values}")
    t.check(list(ds.replica.values) == [1, 2], f"replica coordinate {ds.replica.values}")
    t.check(list(ds.layer_name.values) == ["T1 dense:6:tanh", "T2 dense:4:tanh",
                                            "T3 dense:3:tanh", "T4 dense:2:softmax"],
            f"layer_name {list(ds.layer_name.values)}")
    t.check("layer_name" in ds.I_XT_pooled.coords, "layer_name is not a coordinate of I_XT_pooled")
    unmeasured = ds.I_XT_pooled.sel(layer=1)
    t.check(bool(unmeasured.isnull().all()), f"I_XT_pooled.sel(layer=1) is not NaN: "
            f"{unmeasured.values[:3]}")
    t.check(bool(ds.I_XT_simple.sel(layer=1).isnull().all()) and
            bool(ds.test_I_TY_sampled.sel(layer=1).isnull().all()), "other estimates of layer 1")
    t3 = ds.I_XT_pooled.sel(layer=3)
    t.check(str(t3.layer_name.values) == "T3 dense:3:tanh", f"sel(layer=3) is {t3.layer_name.values}")
    t.check(np.array_equal(t3.values, raw_t3) and np.isfinite(t3.values).all(),
            "sel(layer=3) is not the file's T3 column")
    t.check(ds.I_XT_simple.sel(layer=2, replica=2).shape == (13,), "sel(layer=2, replica=2)")
    check_more_estimators(ds)
    check_default_plot(t3)
    ds.close()


def check_more_estimators(ds):
    """kde and miller_madow: every plane's variables, NaN where unmeasured, in bits."""
    for plane in ("", "test_"):
        for name in ("I_XT_kde_upper", "I_XT_kde_lower", "I_TY_kde_upper", "I_TY_kde_lower",
                     "I_XT_simple_mm", "I_TY_pooled_mm", "I_XT_sampled_mm"):
            v = ds.get(plane + name)
            if not t.check(v is not None, f"{plane + name} missing"):
                continue
            t.check(v.attrs.get("units") == "bits", f"{plane + name} units {v.attrs.get('units')}")
            t.check(bool(v.sel(layer=1).isnull().all()), f"{plane + name} of unmeasured layer 1")
            t.check(bool(np.isfinite(v.sel(layer=[2, 3, 4]).values).all()),
                    f"{plane + name} not finite where measured")
    upper, lower = ds.I_XT_kde_upper.sel(layer=3), ds.I_XT_kde_lower.sel(layer=3)
    t.check(bool((lower <= upper + 1e-12).all()), "I_XT_kde_lower above I_XT_kde_upper")
    t.check(ds.attrs.get("kde_variance") == 1e-3, f"kde_variance {ds.attrs.get('kde_variance')}")


def check_default_plot(t3):
    """xarray's own plot of one layer: y label long_name [units], shown whole."""
    fig = plt.figure(figsize=(6.4, 4.8))
    t3.plot()
    ax = fig.axes[0]
    fig.canvas.draw()
    label = ax.yaxis.label
    t.check(label.get_text() == "I(X;T) pooled [bits]", f"y label {label.get_text()!r}")
    box, whole = label.get_window_extent(), fig.bbox
    t.check(box.y0 >= whole.y0 and box.y1 <= whole.y1 and box.x0 >= whole.x0,
            f"the y label is clipped: {box} outside {whole}")
    t.check("layer = 3" in ax.get_title() and "T3" in ax.get_title(), f"title {ax.get_title()!r}")
    plt.close(fig)


def check_restart(directory):
    """10 epochs with checkpoints every 5, then --restart from the one at
    epoch 5 (.prev) with --set training.epochs=16: config says 16, config_1
    keeps the first; the history names the checkpoint's epoch (5), not the
    last record the checkpoint counts (epoch 0)."""
    config = write_config(directory, "restart.ini", output="restart.nc", epochs=10, log="every:7",
                          extra="[run]\ncheckpoint_every = 5\n")
    started = utc_now()
    first = run_ipmpi(directory, config)
    t.check(first.returncode == 0, f"10-epoch run failed: {first.stdout[-300:]}{first.stderr[-300:]}")
    checkpoint = os.path.join(directory, "restart.ckpt")
    os.replace(checkpoint + ".prev", checkpoint)
    again = run_ipmpi(directory, config, "--restart", "--set", "training.epochs=16", ranks=2)
    t.check(again.returncode == 0, f"restart failed: {again.stdout[-300:]}{again.stderr[-300:]}")
    t.check("resuming after epoch 5 " in again.stdout, f"restart said {again.stdout[:200]!r}")
    ds = xr.open_dataset(os.path.join(directory, "restart.nc"))
    t.check(list(ds.epoch.values)[:2] == [0, 7] and ds.epoch.values[-1] == 16,
            f"epochs after the restart {ds.epoch.values}")
    t.check("epochs = 16" in ds.attrs["config"], "config does not record epochs = 16")
    t.check("epochs = 10" in ds.attrs.get("config_1", ""), "config_1 does not keep epochs = 10")
    t.check("config_2" not in ds.attrs, "a config_2 after one change")
    t.check(ds.attrs["ranks"] == 2, f"ranks = {ds.attrs['ranks']} after a restart on 2")
    version = ds.attrs["ipmpi_version"]
    texts = history_lines(ds.attrs["history"], started)
    t.check(texts == [f"created by ipmpi {version} on 1 rank",
                      f"restarted by ipmpi {version} on 2 ranks after epoch 5 with another "
                      f"config (the earlier one is kept as config_1)"], f"history {texts}")
    ds.close()


def check_unreached_activation_slots(directory):
    """A run stopped before its later activation epochs: open_run keeps the
    stored slots only (the others' epoch is NetCDF's int fill)."""
    config = write_config(directory, "slots.ini", output="slots.nc", epochs=200000,
                          log="every:50000", extra="[output]\nactivations = 0, 150000\n")
    run = run_ipmpi(directory, config, background=True)
    for line in run.stdout:
        if line.startswith("epoch"):
            break
    run.send_signal(signal.SIGUSR1)     # mpirun passes it on: checkpoint and stop
    run.communicate(timeout=120)
    t.check(run.returncode == 75, f"the stopped run's status {run.returncode}")
    sys.path.insert(0, PACKAGE)
    import ipmpi    # the package, as users open a run with it
    ds = ipmpi.open_run(os.path.join(directory, "slots.nc"))
    t.check(list(ds.activation_epoch.values) == [0], f"slots {ds.activation_epoch.values}")
    t.check(ds["T1"].sizes["activation_epoch"] == 1, f"T1 {ds['T1'].sizes}")


def main():
    with workdir() as directory:
        started = utc_now()
        config = write_config(directory, layers="2, 3, 4", extra="[output]\nactivations = 0, 12\n")
        done = run_ipmpi(directory, config, "--set", "information.estimators=all, kde, miller_madow",
                         ranks=2)
        if not t.check(done.returncode == 0, f"run failed: {done.stdout[-300:]}{done.stderr[-300:]}"):
            t.finish()
        path = os.path.join(directory, "run.nc")
        raw_t3 = check_schema(path, started)
        check_as_users_open_it(path, raw_t3)
        check_restart(directory)
        check_unreached_activation_slots(directory)
    t.finish()


main()
