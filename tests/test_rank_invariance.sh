#!/usr/bin/env bash
# The same config gives identical values in every variable with 1, 2 and 4
# ranks (replicas = 4), stored activations included.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
cat >job.ini <<'INI'
[run]
seed = 11
replicas = 4
[data]
source = tishby12
train_fraction = 0.75
[network]
layers = dense:10:tanh, dense:7:tanh, dense:5:relu, dense:3:sigmoid, dense:2:softmax
[training]
epochs = 12
batch_size = 64
optimizer = adam
learning_rate = 0.01
[information]
epochs = every:3
on = all
[output]
activations = 0, 12
INI
for np in 1 2 4; do
    "$MPIRUN" $np "$IPMPI" --set run.output=np$np.nc job.ini >np$np.log 2>&1 ||
        fail "-np $np failed: $(tail -3 np$np.log)"
done
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same np1.nc np2.nc np4.nc || fail "results depend on the rank count"
finish
