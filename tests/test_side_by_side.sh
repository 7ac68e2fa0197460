#!/usr/bin/env bash
# Replicas side by side: 11 replicas give identical values in every
# variable on 1 rank (groups of 6 and 5 in vector lanes), 3 ranks (groups
# of 4 and 4, and 3 replicas one by one) and 11 ranks (every replica
# alone), with adaptive bins (the forward pass runs twice per logged
# epoch), a test plane and stored activations.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
cat >job.ini <<'INI'
[run]
seed = 5
replicas = 11
[data]
source = tishby12
train_fraction = 0.8
[network]
layers = dense:10:tanh, dense:7:tanh, dense:5:sigmoid, dense:4:relu, dense:2:softmax
[training]
epochs = 6
batch_size = 100
optimizer = adam
learning_rate = 0.01
[information]
epochs = every:3
range = adaptive
on = all
[output]
activations = 6
INI
for np in 1 3 11; do
    "$MPIRUN" $np "$IPMPI" --set run.output=np$np.nc job.ini >np$np.log 2>&1 ||
        fail "-np $np failed: $(tail -3 np$np.log)"
done
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same np1.nc np3.nc np11.nc >same.txt ||
    fail "results depend on which replicas share a rank: $(cat same.txt)"
finish
