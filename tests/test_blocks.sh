#!/usr/bin/env bash
# Forward and binning in blocks of samples (IPMPI_EVAL_BLOCK_ROWS, test
# only) on the 12-bit task: train/test split, both planes, adaptive ranges
# with relu layers, stored activations, 4 replicas.
# - Blocks depend on the layer shapes only, never the rank count: with
#   blocks of 100 rows, -np 1 and -np 2 write identical files.
# - The blocks are put together right: bin_lo/bin_hi are exactly the min
#   and max over all replicas of the stored activations, and every estimate
#   equals numpy's on those activations (tests/mi_reference.py).
# - Against one block, the numbers agree to rounding: BLAS may round a
#   product of 100 rows differently from one of 3072 (tiny shapes even use
#   other kernels), so the activations may differ in their last bits, and
#   with them loss and, rarely, a bin. Bitwise equality with one block holds
#   when the activations are equal (tests/test_blocks.c checks the binning).
. "$(dirname "$0")/lib.sh"
needs_test_hooks
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
layers = dense:10:relu, dense:7:relu, dense:5:tanh, dense:4:tanh, dense:3:tanh, dense:2:softmax
[training]
epochs = 6
batch_size = 64
learning_rate = 0.01
[information]
epochs = all
range = adaptive
on = all
[output]
activations = all
INI
"$MPIRUN" 1 "$IPMPI" --set run.output=one.nc job.ini >one.log 2>&1 ||
    fail "one block failed: $(tail -3 one.log)"
for np in 1 2; do
    IPMPI_EVAL_BLOCK_ROWS=100 "$MPIRUN" $np "$IPMPI" --set run.output=blocks$np.nc job.ini \
        >blocks$np.log 2>&1 || fail "blocks of 100, -np $np failed: $(tail -3 blocks$np.log)"
done
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same blocks1.nc blocks2.nc >same.txt ||
    fail "blocks depend on the rank count: $(cat same.txt)"
"$PY" "$IPMPI_SOURCE_ROOT/tests/mi_reference.py" blocks2.nc >reference.txt ||
    fail "estimates in blocks differ from numpy's: $(tail -5 reference.txt)"
"$PY" - one.nc blocks2.nc >compare.txt 2>&1 <<'PY' || fail "$(cat compare.txt)"
import sys
import numpy as np
from netCDF4 import Dataset

bad = 0
one, blocks = Dataset(sys.argv[1]), Dataset(sys.argv[2])
one.set_auto_mask(False)
blocks.set_auto_mask(False)
# The stored activations are what was binned: each epoch's range is their
# exact min and max over all replicas (the training plane).
for layer in range(6):
    t = blocks[f"T{layer + 1}"][:]                  # (epoch, replica, sample, unit)
    for e in range(t.shape[0]):
        lo, hi = float(t[e].min()), float(t[e].max())
        hi = lo + 1.0 if hi == lo else hi
        if blocks["bin_lo"][e, layer] != lo or blocks["bin_hi"][e, layer] != hi:
            print(f"layer {layer + 1} epoch {e}: range is not the stored min/max"); bad += 1
    a, b = one[f"T{layer + 1}"][:], t
    scale = max(1.0, float(np.abs(a).max()))
    # float32 rounding of a few products, carried through up to six layers
    if a.shape != b.shape or np.abs(a - b).max() > 1e-5 * scale:
        print(f"T{layer + 1}: activations differ by {np.abs(a - b).max()}"); bad += 1
for name in ["loss", "accuracy", "test_loss", "test_accuracy"]:
    a, b = one[name][:], blocks[name][:]
    if not np.allclose(a, b, rtol=1e-6, atol=0):
        print(f"{name} differs by more than 1e-6 relative"); bad += 1
for name in ["bin_lo", "bin_hi", "test_bin_lo", "test_bin_hi"]:
    if np.abs(one[name][:] - blocks[name][:]).max() > 1e-6:
        print(f"{name} differs beyond rounding"); bad += 1
estimates = [v for v in one.variables if v.startswith(("I_", "test_I_"))]
equal = 0
for name in estimates:
    a, b = one[name][:], blocks[name][:]
    equal += np.array_equal(a, b)
    # One sample moving to a neighbouring bin moves an estimate by ~0.003 bits.
    if np.abs(a - b).max() > 0.02:
        print(f"{name} differs by {np.abs(a - b).max()} bits"); bad += 1
print(f"{equal} of {len(estimates)} estimate variables bitwise equal to one block; problems {bad}")
sys.exit(1 if bad else 0)
PY
cat compare.txt
finish
