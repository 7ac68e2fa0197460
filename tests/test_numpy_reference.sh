#!/usr/bin/env bash
# An independent numpy implementation recomputes simple and pooled MI from
# the stored activations and matches ipmpi to 1e-9 bits.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
cat >job.ini <<'INI'
[run]
seed = 5
replicas = 3
output = ref.nc
[data]
source = complicated
samples = 600
[network]
layers = dense:8:tanh, dense:5:tanh, dense:3:tanh, dense:2:softmax
[training]
epochs = 40
batch_size = 50
learning_rate = 0.01
[information]
epochs = 0, 1, 10, 40
bins = 20
range = -1, 1
[output]
activations = 0, 10, 40
INI
"$MPIRUN" 2 "$IPMPI" job.ini >run.log 2>&1 || fail "run failed: $(tail -3 run.log)"
"$PY" "$IPMPI_SOURCE_ROOT/tests/mi_reference.py" ref.nc || fail "numpy reference disagrees"
finish
