#!/usr/bin/env bash
# A run stopped by SIGUSR1 and continued with --restart (on another rank
# count, from the .prev checkpoint after a corrupted one) ends with the same
# NetCDF variables, bit for bit, as the run never stopped. Checkpoints of
# another config, or none at all, are refused with one message and status 2.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
cat >job.ini <<'INI'
[run]
replicas = 4
output = run.nc
[data]
source = tishby12
[network]
layers = dense:10:tanh, dense:7:tanh, dense:5:tanh, dense:4:tanh, dense:3:tanh, dense:2:softmax
[training]
epochs = 200
batch_size = 32
# a full pass: the run lasts long enough (about 1.5 s here) that a signal
# sent at epoch 10 lands before its end even on a loaded machine
batches_per_epoch = 128
[information]
epochs = every:10
INI

# stop_at_signal NP LINE [ARGS...]: runs job.ini on NP ranks and sends mpirun
# SIGUSR1 once the progress line of epoch LINE appears; the run stops at the
# next epoch boundary, wherever that is. Sets $stopped_at.
stop_at_signal() {
    local np=$1 line=$2
    shift 2
    rm -f stop.out
    # No timeout wrapper: the signal must reach mpirun, which forwards it.
    "$MPIRUN" "$np" "$IPMPI" job.ini "$@" >stop.out 2>stop.err &
    local pid=$! i
    for i in $(seq 1 3000); do
        grep -Eq "^epoch +$line/" stop.out 2>/dev/null && break
        sleep 0.01
    done
    kill -USR1 "$pid"
    wait "$pid"
    local status=$?
    [ $status -eq 75 ] || fail "stopped run: exit status $status, expected 75: $(tail -3 stop.err)"
    stopped_at=$(sed -n 's/^stopped early at epoch \([0-9]*\) on signal SIGUSR1: checkpoint written to run.ckpt; resubmit with --restart$/\1/p' stop.out)
    [ -n "$stopped_at" ] || fail "no 'stopped early' line: $(tail -2 stop.out)"
    [ "$(grep -c '^stopped early' stop.out)" -eq 1 ] || fail "'stopped early' not printed once"
    grep -q 'epoch 200/200' stop.out && fail "the run did not stop early (signal came too late?)"
}

# restart NP [ARGS...]: continues job.ini from its checkpoint on NP ranks.
restart() {
    local np=$1
    shift
    timeout 300 "$MPIRUN" "$np" "$IPMPI" job.ini --restart "$@" >restart.out 2>restart.err
}

same_as_straight() { # same_as_straight WHAT
    "$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same straight.nc run.nc >same.txt ||
        fail "$1: output differs from the uninterrupted run: $(cat same.txt)"
}

"$MPIRUN" 2 "$IPMPI" job.ini --set run.output=straight.nc >straight.out 2>&1 ||
    fail "straight run failed: $(tail -3 straight.out)"
[ -s straight.ckpt ] || fail "no checkpoint written beside straight.nc at the end"

# Same rank count before and after.
stop_at_signal 2 10
restart 2 || fail "restart on 2 ranks failed: $(cat restart.err)"
grep -q "^resuming after epoch $stopped_at from run.ckpt" restart.out ||
    fail "no 'resuming' line: $(head -2 restart.out)"
grep -q '^done: 200 epochs' restart.out || fail "restarted run did not finish: $(tail -2 restart.out)"
same_as_straight "2 ranks, stopped at epoch $stopped_at"

# 4 ranks before, 2 after, periodic checkpoints every 30 epochs (not dividing
# 200), and the newest checkpoint corrupted: .prev (an older epoch) is used,
# the records logged since are rewritten, and the result is still the same.
rm -f run.nc run.ckpt run.ckpt.prev
stop_at_signal 4 40 --set run.checkpoint_every=30
[ -s run.ckpt.prev ] || fail "no run.ckpt.prev after periodic checkpoints"
cp run.ckpt good.ckpt
"$PY" - <<'PY'
with open("run.ckpt", "r+b") as f:
    f.seek(200)
    byte = f.read(1)
    f.seek(200)
    f.write(bytes([byte[0] ^ 0x01]))
PY
restart 2 --set run.checkpoint_every=30 || fail "restart from .prev failed: $(cat restart.err)"
grep -q '^checkpoint refused (.*checksum.*): using run.ckpt.prev$' restart.out ||
    fail "no message that .prev was used: $(head -2 restart.out)"
same_as_straight "4 then 2 ranks, from .prev"

# Another config is refused, naming the key; so is a missing checkpoint.
cp good.ckpt run.ckpt
rm -f run.ckpt.prev
restart 2 --set training.learning_rate=0.01
status=$?
[ $status -eq 2 ] || fail "other config: exit status $status, expected 2"
grep -q 'learning_rate' restart.err || fail "other config: message lacks the key: $(cat restart.err)"
[ "$(grep -c '^ipmpi: ' restart.err)" -eq 1 ] || fail "other config: message not printed once"
restart 2 --set run.checkpoint=nowhere.ckpt
status=$?
[ $status -eq 2 ] || fail "missing checkpoint: exit status $status, expected 2"
grep -q 'nowhere.ckpt' restart.err || fail "missing checkpoint: message lacks the path: $(cat restart.err)"
[ "$(grep -c '^ipmpi: ' restart.err)" -eq 1 ] || fail "missing checkpoint: message not printed once"
finish
