#!/usr/bin/env python3
"""Checks on ipmpi output files, independent of the C code.

  check_run.py same A.nc B.nc ...      every variable identical (bit for bit)
  check_run.py bounds RUN.nc [--min-accuracy F]
      every estimate in [0, H_X] / [0, H_Y] and, with --min-accuracy, the
      mean training accuracy at the last epoch above F
"""
import sys

import numpy as np
from netCDF4 import Dataset

INFO_PREFIXES = ("I_XT_", "I_TY_", "test_I_XT_", "test_I_TY_")


def variables(path):
    with Dataset(path) as ds:
        ds.set_auto_mask(False)
        return {name: np.array(var[...]) for name, var in ds.variables.items()}


def same(paths):
    ref = variables(paths[0])
    bad = 0
    for other in paths[1:]:
        got = variables(other)
        if set(got) != set(ref):
            print(f"{other}: variables {sorted(set(got) ^ set(ref))} differ from {paths[0]}")
            bad += 1
            continue
        for name, values in ref.items():
            if values.dtype == object:      # strings (layer_name): compared as text
                if values.shape != got[name].shape or values.tolist() != got[name].tolist():
                    print(f"{other}: {name} differs from {paths[0]}")
                    bad += 1
                continue
            if values.shape != got[name].shape or not np.array_equal(
                    values.view(np.uint8), got[name].view(np.uint8)):
                diff = np.max(np.abs(values.astype(float) - got[name].astype(float))) \
                    if values.shape == got[name].shape else "shape"
                print(f"{other}: {name} differs from {paths[0]} (max abs diff {diff})")
                bad += 1
    print(f"compared {len(ref)} variables across {len(paths)} files: {bad} differences")
    return 1 if bad else 0


def bounds(path, min_accuracy):
    bad = 0
    with Dataset(path) as ds:
        limits = {"I_XT_": ds.H_X, "I_TY_": ds.H_Y}
        for name, var in ds.variables.items():
            for prefix, limit in limits.items():
                if name.startswith(prefix) or name.startswith("test_" + prefix):
                    if name.startswith("test_"):
                        limit = getattr(ds, "test_" + ("H_X" if "XT" in prefix else "H_Y"))
                    v = var[...]  # fill values (unmeasured layers) are masked
                    v = np.ma.getdata(v)[~np.ma.getmaskarray(v)]
                    if v.size == 0 or not np.all(np.isfinite(v)):
                        print(f"{name}: empty or not finite")
                        bad += 1
                    elif v.min() < -1e-9 or v.max() > limit + 1e-9:
                        print(f"{name}: range [{v.min()}, {v.max()}] outside [0, {limit}]")
                        bad += 1
        acc = np.array(ds.variables["accuracy"][...])
        print(f"{path}: {len(ds.dimensions['epoch'])} epochs, final mean accuracy "
              f"{acc[-1].mean():.4f}, H_X {ds.H_X:.4f}, H_Y {ds.H_Y:.4f}")
        if min_accuracy is not None and not acc[-1].mean() > min_accuracy:
            print(f"final mean accuracy {acc[-1].mean()} not above {min_accuracy}")
            bad += 1
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "same":
        return same(argv[2:])
    if len(argv) >= 3 and argv[1] == "bounds":
        min_acc = float(argv[4]) if len(argv) == 5 and argv[3] == "--min-accuracy" else None
        return bounds(argv[2], min_acc)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
