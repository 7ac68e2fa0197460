#!/usr/bin/env bash
# [information] on = whole: one plane over the training and test samples
# together. On 1, 2 and 4 ranks every variable is identical; the stored
# activations and sample ids cover all 4096 samples (training ones first);
# H(X) is the whole set's 12 bits; the estimates equal the independent numpy
# implementation on those activations (tests/mi_reference.py), with a fixed
# and an adaptive range; and training and test losses are those of a run
# measuring the planes apart (on = all), which trains the same networks.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
job() { # job ON RANGE
    cat <<INI
[run]
seed = 9
replicas = 4
[data]
source = tishby12
train_fraction = 0.75
[network]
layers = dense:8:tanh, dense:5:relu, dense:2:softmax
[training]
epochs = 4
batch_size = 64
learning_rate = 0.02
[information]
epochs = 0, 2, 4
on = $1
range = $2
[output]
activations = 0, 4
INI
}
job whole '-1, 1' >whole.ini
job whole adaptive >wholeadaptive.ini
job all '-1, 1' >apart.ini
for kind in whole wholeadaptive; do
    on_1_2_4_ranks $kind
done
"$MPIRUN" 2 "$IPMPI" --set run.output=apart.nc apart.ini >apart.log 2>&1 ||
    fail "on = all failed: $(tail -3 apart.log)"
"$PY" - whole2.nc apart.nc >facts.txt 2>&1 <<'PY' || fail "$(cat facts.txt)"
import sys
import numpy as np
from netCDF4 import Dataset

bad = 0
with Dataset(sys.argv[1]) as w, Dataset(sys.argv[2]) as a:
    if not w.getncattr("information_on").startswith("whole"):
        print("no information_on attribute"); bad += 1
    if len(w.dimensions["sample"]) != 4096 or float(w.getncattr("H_X")) != 12.0:
        print("samples", len(w.dimensions["sample"]), "H_X", w.getncattr("H_X")); bad += 1
    if len(np.unique(w["sample_x_id"][:])) != 4096:
        print("x ids of the whole set are not 4096 distinct"); bad += 1
    if "test_I_XT_pooled" in w.variables:
        print("a separate test plane was written"); bad += 1
    for name in ["loss", "accuracy", "test_loss", "test_accuracy"]:
        if not np.array_equal(w[name][:], a[name][:]):
            print(name, "differs from the run measuring the planes apart"); bad += 1
    if np.ma.allequal(w["I_XT_pooled"][:], a["I_XT_pooled"][:]):
        print("whole estimates equal the training plane's: the test shows nothing"); bad += 1
print("problems", bad)
sys.exit(1 if bad else 0)
PY
finish
