#!/usr/bin/env bash
# range = adaptive with a choice of measured layers. With 4 replicas on 1, 2
# and 4 ranks every variable is identical; bin_lo/bin_hi equal the min and
# max over all replicas of the stored activations (computed here in numpy,
# serially); unmeasured layers hold fill values; and the pooled estimate of
# a measured layer equals an independent numpy estimate binned with those
# ranges (tests/mi_reference.py).
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
cat >job.ini <<'INI'
[run]
seed = 5
replicas = 4
[data]
source = tishby12
train_fraction = 0.75
[network]
layers = dense:10:relu, dense:7:relu, dense:5:tanh, dense:2:softmax
[training]
epochs = 6
batch_size = 64
learning_rate = 0.01
[information]
epochs = all
range = adaptive
layers = 1, 2, 4
on = all
[output]
activations = all
INI
for np in 1 2 4; do
    "$MPIRUN" $np "$IPMPI" --set run.output=np$np.nc job.ini >np$np.log 2>&1 ||
        fail "-np $np failed: $(tail -3 np$np.log)"
done
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same np1.nc np2.nc np4.nc >same.txt ||
    fail "adaptive ranges depend on the rank count: $(cat same.txt)"
"$PY" - np2.nc >ranges.txt 2>&1 <<'PY' || fail "$(cat ranges.txt)"
import sys
import numpy as np
from netCDF4 import Dataset

bad = 0
with Dataset(sys.argv[1]) as ds:
    if ds.getncattr("binning") != "adaptive" or "range_lo" in ds.ncattrs():
        print("global attributes do not say adaptive"); bad += 1
    measured = ds["layer_measured"][:].tolist()
    if measured != [1, 1, 0, 1]:
        print("layer_measured", measured); bad += 1
    lo, hi = ds["bin_lo"][:], ds["bin_hi"][:]
    for name in ["I_XT_pooled", "I_TY_sampled", "bin_lo", "test_bin_hi"]:
        v = ds[name][:]
        if not np.all(v.mask[:, 2]) or np.any(v.mask[:, [0, 1, 3]]):
            print(name, ": fill values are not exactly the unmeasured layer 3"); bad += 1
    if not np.all(ds["I_XT_simple"][:].mask[:, :, 2]):
        print("I_XT_simple of layer 3 is not a fill value"); bad += 1
    for layer in [0, 1, 3]:
        t = ds[f"T{layer + 1}"][:]          # (epoch, replica, sample, unit)
        for e in range(t.shape[0]):
            want_lo, want_hi = float(t[e].min()), float(t[e].max())
            if want_hi == want_lo:
                want_hi = want_lo + 1.0
            if lo[e, layer] != want_lo or hi[e, layer] != want_hi:
                print(f"layer {layer + 1} epoch {e}: range {lo[e, layer]}, {hi[e, layer]}"
                      f" != {want_lo}, {want_hi}"); bad += 1
print("problems", bad)
sys.exit(1 if bad else 0)
PY
"$PY" "$IPMPI_SOURCE_ROOT/tests/mi_reference.py" np2.nc >reference.txt ||
    fail "estimates with adaptive ranges differ from numpy: $(tail -5 reference.txt)"
finish
