#!/usr/bin/env bash
# A diverging run (a huge learning rate) stops with an error naming the
# replica and the epoch, and every epoch logged before stays readable.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
cat >job.ini <<'INI'
[run]
replicas = 3
output = diverged.nc
[data]
source = simple
samples = 300
[network]
layers = dense:8:relu, dense:1:linear
[training]
epochs = 50
batch_size = 30
optimizer = sgd
learning_rate = 1e6
loss = mse
[information]
epochs = all
INI
"$MPIRUN" 2 "$IPMPI" job.ini >run.out 2>run.err
status=$?
[ $status -eq 1 ] || fail "exit status $status, expected 1"
grep -Eq '^ipmpi: replica [0-9]+ diverged: its (training loss|weight [0-9]+) became (NaN|infinite) at epoch 1 ' run.err ||
    fail "no divergence message naming replica and epoch: $(cat run.err)"
[ "$(grep -c '^ipmpi: ' run.err)" -eq 1 ] || fail "message not printed exactly once"
if command -v ncdump >/dev/null; then
    ncdump -v epoch diverged.nc >dump.txt 2>&1 || fail "diverged.nc unreadable: $(cat dump.txt)"
    grep -q 'epoch = 0 ;' dump.txt || fail "epoch 0 was not kept: $(tail -3 dump.txt)"
fi
grep -q 'lower \[training\] learning_rate' run.err || fail "the advice is not the learning rate: $(cat run.err)"
# Diverged before training (weights too large to begin with): the advice is
# the init, not the learning rate.
"$MPIRUN" 2 "$IPMPI" job.ini --set network.init=truncated_normal:1e300 \
    --set training.learning_rate=0.01 --set run.output=init.nc >init.out 2>init.err
status=$?
[ $status -eq 1 ] || fail "diverging init: exit status $status, expected 1"
grep -q 'at epoch 0; the untrained network overflows: check \[network\] init' init.err ||
    fail "diverging init: $(cat init.err)"
finish
