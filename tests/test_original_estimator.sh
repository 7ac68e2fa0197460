#!/usr/bin/env bash
# ipmpi's simple and pooled estimates equal what the original IDNNs estimator
# (re-implemented in jobs/baseline_original_mi.py) computes from the same
# stored activations, on data with repeated x (so H(T|X) is really counted).
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
# 400 samples of only 32 distinct 5-bit inputs, labels with noise.
"$PY" - <<'PY'
import numpy as np
from netCDF4 import Dataset
rng = np.random.default_rng(4)
x = rng.integers(0, 2, size=(400, 5)).astype(np.uint8)
y = ((x.sum(axis=1) + rng.normal(0, 0.7, 400)) > 2.5).astype(np.int32)
with Dataset("repeated.nc", "w") as ds:
    ds.createDimension("sample", 400)
    ds.createDimension("feature", 5)
    ds.createVariable("X", "u1", ("sample", "feature"))[:] = x
    ds.createVariable("y", "i4", ("sample",))[:] = y
PY
cat >job.ini <<'INI'
[run]
seed = 9
replicas = 3
output = run.nc
[data]
source = netcdf
path = repeated.nc
[network]
layers = dense:6:tanh, dense:4:tanh, dense:2:softmax
[training]
epochs = 30
batch_size = 40
learning_rate = 0.01
[information]
epochs = 0, 5, 30
bins = 12
range = -1, 1
[output]
activations = 0, 5, 30
INI
"$MPIRUN" 2 "$IPMPI" job.ini >run.log 2>&1 || fail "run failed: $(tail -3 run.log)"
"$PY" "$IPMPI_SOURCE_ROOT/jobs/baseline_original_mi.py" --compare run.nc || fail "differs from the original estimator"
finish
