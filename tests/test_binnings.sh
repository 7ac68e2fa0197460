#!/usr/bin/env bash
# binning = width, binning = quantile (per layer and per unit), scope =
# replica and range = whole, on 1, 2 and 4 ranks. Every variable is
# bitwise identical across rank counts; the edges the file records equal the
# ones numpy derives from the stored activations (width: k * w from
# floor(min / w) to floor(max / w) + 1 over all replicas; scope = replica:
# each replica's own min and max; quantile: the sorted values at
# (j+1) M / (bins+1) of each replica's layer or unit); the estimates equal the independent numpy
# implementation (tests/mi_reference.py); with scope = replica a replica's
# simple estimates do not change when other replicas join; and range = whole
# bins every epoch with the extremes over all epochs of an earlier adaptive
# run (pooled and per replica), whose training it repeats bit for bit.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
job() { # job BINNING-LINES REPLICAS
    cat <<INI
[run]
seed = 5
replicas = $2
[data]
source = tishby12
train_fraction = 0.75
[network]
layers = dense:10:relu, dense:7:relu, dense:5:tanh, dense:2:softmax
[training]
epochs = 6
batch_size = 64
learning_rate = 0.02
[information]
epochs = 0, 3, 6
layers = 1, 2, 4
$1
[output]
activations = 0, 3, 6
INI
}
job $'binning = width\nwidth = 0.05' 4 >width.ini
job $'range = adaptive\nscope = replica' 4 >replica.ini
job $'range = adaptive\nscope = replica' 2 >replica2.ini
job $'range = adaptive' 4 >adaptive.ini
"$MPIRUN" 2 "$IPMPI" --set run.output=adaptive.nc adaptive.ini >adaptive.log 2>&1 ||
    fail "adaptive failed: $(tail -3 adaptive.log)"
"$MPIRUN" 2 "$IPMPI" --set run.output=replica.nc replica.ini >replica.log 2>&1 ||
    fail "scope = replica failed: $(tail -3 replica.log)"
job $'range = whole\nrange_from = adaptive.nc' 4 >whole.ini
job $'range = whole\nrange_from = replica.nc\nscope = replica' 4 >wholereplica.ini
job $'binning = quantile\nbins = 6' 4 >quantile.ini
job $'binning = quantile\nquantiles = unit\nbins = 5' 4 >quantileunit.ini
for kind in width replica whole wholereplica quantile quantileunit; do
    on_1_2_4_ranks $kind
done
"$MPIRUN" 2 "$IPMPI" --set run.output=few.nc replica2.ini >few.log 2>&1 ||
    fail "2 replicas failed: $(tail -3 few.log)"
"$PY" - width2.nc replica2.nc few.nc adaptive.nc whole2.nc replica.nc wholereplica2.nc \
    quantile2.nc quantileunit2.nc \
    >edges.txt 2>&1 <<'PY' || fail "$(cat edges.txt)"
import math
import sys
import numpy as np
from netCDF4 import Dataset

bad = 0
def problem(text):
    global bad
    print(text)
    bad += 1

with Dataset(sys.argv[1]) as ds:             # width: pooled over replicas
    w = float(ds.getncattr("bin_width"))
    if ds.getncattr("binning") != "width" or w != 0.05:
        problem("width: attributes binning/bin_width")
    lo, hi = ds["bin_lo"][:], ds["bin_hi"][:]
    if ds["bin_lo"].dimensions != ("epoch", "layer"):
        problem("width: bin_lo dimensions %s" % (ds["bin_lo"].dimensions,))
    for layer in [0, 1, 3]:
        t = ds[f"T{layer + 1}"][:]
        for e in range(t.shape[0]):
            k0, k1 = math.floor(float(t[e].min()) / w), math.floor(float(t[e].max()) / w) + 1
            if lo[e, layer] != k0 * w or hi[e, layer] != k1 * w:
                problem(f"width: layer {layer + 1} epoch {e}: edges {lo[e, layer]}..{hi[e, layer]}"
                        f" != {k0 * w}..{k1 * w}")
    if not np.all(lo.mask[:, 2]):
        problem("width: the unmeasured layer 3 has edges")

with Dataset(sys.argv[2]) as ds:             # scope = replica
    if ds.getncattr("binning_scope") != "replica":
        problem("replica: attribute binning_scope")
    if ds["bin_lo"].dimensions != ("epoch", "replica", "layer"):
        problem("replica: bin_lo dimensions %s" % (ds["bin_lo"].dimensions,))
    lo, hi = ds["bin_lo"][:], ds["bin_hi"][:]
    differ = 0
    for layer in [0, 1, 3]:
        t = ds[f"T{layer + 1}"][:]           # (epoch, replica, sample, unit)
        for e in range(t.shape[0]):
            for r in range(t.shape[1]):
                a, b = float(t[e, r].min()), float(t[e, r].max())
                b = a + 1.0 if a == b else b
                if lo[e, r, layer] != a or hi[e, r, layer] != b:
                    problem(f"replica {r + 1} layer {layer + 1} epoch {e}: range "
                            f"{lo[e, r, layer]}, {hi[e, r, layer]} != {a}, {b}")
                differ += lo[e, r, layer] != lo[e, 0, layer]
    if differ == 0:
        problem("replica: every replica has the same range; the test shows nothing")
    four = ds["I_XT_simple"][:, :2, :], ds["I_TY_simple"][:, :2, :]

with Dataset(sys.argv[3]) as ds:             # the same replicas 1 and 2, alone
    two = ds["I_XT_simple"][:], ds["I_TY_simple"][:]
for a, b in zip(four, two):
    if not np.ma.allequal(a, b) or not np.array_equal(a.mask, b.mask):
        problem("replica: simple estimates of replicas 1-2 change when replicas 3-4 join")

def whole_ranges(first, second, reduce_axes):
    with Dataset(first) as a, Dataset(second) as b:
        if b.getncattr("binning") != "whole":
            problem(f"{second}: binning attribute {b.getncattr('binning')}")
        for name in ["loss", "accuracy"]:
            if not np.array_equal(a[name][:], b[name][:]):
                problem(f"{second}: {name} differs from the earlier run's: not the same training")
        for name, pick in [("bin_lo", np.ma.min), ("bin_hi", np.ma.max)]:
            want = pick(a[name][:], axis=reduce_axes)
            got = b[name][:]
            for e in range(got.shape[0]):
                if not np.ma.allequal(got[e], want) or not np.array_equal(got[e].mask, want.mask):
                    problem(f"{second}: {name} at epoch row {e}: {got[e]} != {want}")
        if np.ma.allequal(a["I_XT_pooled"][:], b["I_XT_pooled"][:]):
            problem(f"{second}: the estimates equal the adaptive run's; the test shows nothing")

whole_ranges(sys.argv[4], sys.argv[5], (0,))
whole_ranges(sys.argv[6], sys.argv[7], (0,))

def quantile_edges(values, n):
    s = np.sort(np.asarray(values, dtype=np.float32).ravel())
    return s[((np.arange(n) + 1) * len(s)) // (n + 1)]

for path, per_unit in [(sys.argv[8], False), (sys.argv[9], True)]:
    with Dataset(path) as ds:
        n = int(ds.getncattr("bins"))
        if ds.getncattr("quantiles") != ("unit" if per_unit else "layer"):
            problem(f"{path}: attribute quantiles")
        for layer in [0, 1, 3]:
            t, got = ds[f"T{layer + 1}"][:], ds[f"bin_edges{layer + 1}"][:]
            for e in range(t.shape[0]):
                for r in range(t.shape[1]):
                    want = (np.stack([quantile_edges(t[e, r][:, u], n) for u in range(t.shape[3])])
                            if per_unit else quantile_edges(t[e, r], n))
                    if not np.array_equal(np.asarray(got[e, r], np.float32), want):
                        problem(f"{path}: layer {layer + 1} epoch row {e} replica {r + 1}: "
                                f"edges {got[e, r]} != {want}")
        if not np.all(ds["bin_edges3"][:].mask):
            problem(f"{path}: the unmeasured layer 3 has edges")
print("problems", bad)
sys.exit(1 if bad else 0)
PY

# The extremes of 4 replicas are not those of 2: a whole range of another
# replica count is refused, pooled as per replica, by --check and the run.
for ini in whole.ini wholereplica.ini; do
    for mode in --check ""; do
        "$IPMPI" $mode "$ini" --set run.replicas=2 --set run.output=other.nc >other.log 2>&1
        status=$?
        [ $status -eq 2 ] && grep -q 'written by a run of 4 replicas, this run has 2' other.log ||
            fail "$ini ${mode:-run} with 2 replicas: status $status: $(tail -1 other.log)"
    done
done
finish
