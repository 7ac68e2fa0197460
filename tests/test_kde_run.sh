#!/usr/bin/env bash
# The kde and miller_madow estimators in a run:
# - the KDE bounds in the file equal tests/kde_reference.py's plain numpy
#   Kolchinsky-Tracey bounds on the stored activations, to 1e-9 bits (1e-9
#   relative above 1), and the Miller-Madow values tests/mi_reference.py's
#   numpy ones to 1e-9 bits;
# - every estimate, kde included, is bitwise the same on 1, 2 and 4 ranks
#   (4 ranks for 3 replicas: one rank holds none) and with either reduce.
#   Miller-Madow adds integer cell counts, so that follows from the plug-in
#   estimates. The KDE sums are floating point, but over fixed blocks of
#   pairs in a fixed order whoever computes them (src/parallel/kde.h), so
#   they too agree in every bit; the issue allowed 1e-12 bits, the test
#   prints the largest difference and demands 0;
# - kde alone gives the bounds of the run with every estimator;
# - --check counts kde's kept activations and workspace in the memory bound.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
cat >job.ini <<'INI'
[run]
seed = 3
replicas = 3
[data]
source = complicated
samples = 400
train_fraction = 0.8
[network]
layers = dense:8:tanh, dense:5:relu, dense:3:tanh, dense:2:softmax
[training]
epochs = 20
batch_size = 40
learning_rate = 0.01
[information]
epochs = 0, 5, 20
layers = 1, 2, 4
estimators = all, kde, miller_madow
on = all
[output]
activations = 0, 20
INI
for np in 1 2 4; do
    "$MPIRUN" "$np" "$IPMPI" job.ini --set run.output=r$np.nc >r$np.log 2>&1 ||
        fail "run on $np ranks failed: $(tail -3 r$np.log)"
done
"$MPIRUN" 2 "$IPMPI" job.ini --set run.output=tree.nc --set run.reduce=tree >tree.log 2>&1 ||
    fail "tree run failed: $(tail -3 tree.log)"
"$MPIRUN" 2 "$IPMPI" job.ini --set run.output=kde.nc --set information.estimators=kde \
    >kde.log 2>&1 || fail "kde-only run failed: $(tail -3 kde.log)"
grep -q "kde [0-9.]*s" r1.log || fail "the time line does not report kde: $(grep '^time' r1.log)"

"$PY" "$IPMPI_SOURCE_ROOT/tests/kde_reference.py" --run r1.nc || fail "KDE bounds disagree with numpy"
"$PY" "$IPMPI_SOURCE_ROOT/tests/mi_reference.py" r1.nc || fail "Miller-Madow disagrees with numpy"

"$PY" - <<'PY' || fail "estimates differ across rank counts or reduces"
import sys
import netCDF4
import numpy as np

def values(path, names=None):
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        return {k: v[:].copy() for k, v in ds.variables.items()
                if ("I_XT" in k or "I_TY" in k) and (names is None or k in names)}

base = values("r1.nc")
want = {p + n for p in ("", "test_") for n in
        ("I_XT_kde_upper", "I_XT_kde_lower", "I_TY_kde_upper", "I_TY_kde_lower",
         "I_XT_simple_mm", "I_TY_simple_mm", "I_XT_pooled_mm", "I_TY_pooled_mm",
         "I_XT_sampled_mm", "I_TY_sampled_mm")}
bad = sorted(want - set(base))
if bad:
    sys.exit(f"missing variables {bad}")
failed = False
for other in ("r2.nc", "r4.nc", "tree.nc"):
    for name, v in values(other).items():
        if not np.array_equal(v, base[name]):
            print(f"{other}: {name} differs from 1 rank by {np.max(np.abs(v - base[name])):.3g}")
            failed = True
    kde = [n for n in base if "kde" in n]
    print(f"{other}: largest KDE difference from 1 rank "
          f"{max(float(np.max(np.abs(values(other)[n] - base[n]))) for n in kde):.3g} bits")
for name, v in values("kde.nc").items():
    if not np.array_equal(v, base[name]):
        print(f"kde alone: {name} differs")
        failed = True
mm, plain = base["I_XT_pooled_mm"], base["I_XT_pooled"]
if not (mm[:, [0, 1, 3]] > plain[:, [0, 1, 3]]).any():
    print("Miller-Madow never moved I_XT_pooled")
    failed = True
sys.exit(1 if failed else 0)
PY

# 60000 samples: the count tables alone need about 6 MB here, with kde's
# kept activations and workspace about 34 MB (linear in the samples).
"$IPMPI" --check job.ini --set data.samples=60000 --set information.max_table_mb=20 \
    >check.log 2>&1 && fail "--check passed a bound too small for kde at 60000 samples"
grep -q "max_table_mb = 20: the count tables and kde's activations may need up to" check.log ||
    fail "--check does not name kde's activations: $(tail -2 check.log)"
"$IPMPI" --check job.ini --set data.samples=60000 --set information.max_table_mb=20 \
    --set information.estimators=all >check1.log 2>&1 ||
    fail "--check refused the same bound without kde: $(tail -2 check1.log)"
"$IPMPI" --check job.ini --set data.samples=60000 >check2.log 2>&1 ||
    fail "--check refused 60000 samples with kde: $(tail -2 check2.log)"
finish
