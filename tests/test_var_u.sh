#!/usr/bin/env bash
# The original 12-bit task (research use only; skipped when absent): the
# network fits and every estimate lies in [0, H(X)] and [0, H(Y)].
. "$(dirname "$0")/lib.sh"
needs_python
DATA=${IPMPI_VAR_U:-$IPMPI_SOURCE_ROOT/../shared/data/var_u.nc}
if [ ! -r "$DATA" ]; then
    echo "skipped: $DATA not present"
    exit 77
fi
cd "$WORK"
cat >job.ini <<INI
[run]
seed = 3
replicas = 2
output = var_u.nc
[data]
source = netcdf
path = $DATA
[network]
layers = dense:10:tanh, dense:7:tanh, dense:5:tanh, dense:4:tanh, dense:3:tanh, dense:2:softmax
[training]
epochs = 600
batch_size = 128
optimizer = adam
learning_rate = 0.003
[information]
epochs = log:20
INI
"$MPIRUN" 2 "$IPMPI" job.ini >run.log 2>&1 || fail "run failed: $(tail -3 run.log)"
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" bounds var_u.nc --min-accuracy 0.9 || fail "bounds or accuracy"
finish
