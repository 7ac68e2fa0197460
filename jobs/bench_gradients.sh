#!/usr/bin/env bash
# What [output] gradients costs: training time per epoch with every epoch
# logged (so every epoch's minibatch gradients are gathered) against the same
# run with gradients = false, both in this invocation, alternated REPEAT times
# (the machine may be shared: compare ratios, not seconds). Epochs that are
# not logged gather nothing, so this is the worst case.
#  1. jobs/tishby.ini's network (12-10-7-5-4-3-2, batch 64), 4 replicas on one
#     rank (side by side in vector lanes);
#  2. the same with 1 replica (trained alone);
#  3. a wide net, 12-256-128-10 on the 12-bit task, batch 32, 1 replica (most
#     weights per sample of the three).
# On a shared machine the time ratio may drown in noise; with INSTRUCTIONS=1
# (needs valgrind) each case also counts the instructions executed inside
# training (callgrind, ipm_ensemble_train_epoch only) over INSTRUCTION_EPOCHS
# epochs, on and off: a figure that does not depend on the load (valgrind is
# some 50 times slower: minutes per case; INSTRUCTION_EPOCHS=1 for a quick one).
# usage: bash jobs/bench_gradients.sh [BUILD_DIR]   (default build/)
# env:   REPEAT (default 3), EPOCHS (default 200), INSTRUCTIONS (default 0),
#        INSTRUCTION_EPOCHS (default 10)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
repeat=${REPEAT:-3}
epochs=${EPOCHS:-200}
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-bench-gradients.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

# train_ms ARGS...: the run's training milliseconds per epoch.
train_ms() {
    "$build/ipmpi" --overwrite --set run.output="$work/out.nc" --set information.epochs=every:1 \
        --set training.epochs="$epochs" "$@" >"$work/log" 2>&1 ||
        { echo "failed: ipmpi $*" >&2; tail -n 3 "$work/log" >&2; exit 1; }
    sed -n 's/^time (rank 0):.* (\([0-9.]*\) ms\/epoch).*/\1/p' "$work/log"
}

# train_instructions ARGS...: instructions executed inside training (callgrind).
train_instructions() {
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        --toggle-collect=ipm_ensemble_train_epoch "$build/ipmpi" --overwrite \
        --set run.output="$work/out.nc" --set information.epochs=every:1 \
        --set training.epochs="${INSTRUCTION_EPOCHS:-10}" "$@" >"$work/cg.log" 2>&1 ||
        { echo "failed under valgrind: ipmpi $*" >&2; tail -n 3 "$work/cg.log" >&2; exit 1; }
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\)/\1/p' "$work/cg.log"
}

# compare NAME ARGS...: the median over REPEAT of on/off, each pair run back to back.
compare() {
    local name=$1 ratios=() on off
    shift
    for _ in $(seq "$repeat"); do
        on=$(train_ms "$@" --set output.gradients=true)
        off=$(train_ms "$@" --set output.gradients=false)
        ratios+=("$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }')")
        printf '  %s: on %s ms/epoch, off %s ms/epoch\n' "$name" "$on" "$off"
    done
    printf '%s: on/off train time per epoch, median of %d: %s\n' "$name" "$repeat" \
        "$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
    [ "${INSTRUCTIONS:-0}" = 1 ] || return 0
    on=$(train_instructions "$@" --set output.gradients=true)
    off=$(train_instructions "$@" --set output.gradients=false)
    printf '%s: instructions in training, on %s, off %s, on/off %s\n' "$name" "$on" "$off" \
        "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.4f", a / b }')"
}

tishby="$here/jobs/tishby.ini"
compare "tishby net, 4 replicas side by side" "$tishby" --set run.replicas=4 --set training.batch_size=64
compare "tishby net, 1 replica" "$tishby" --set run.replicas=1 --set training.batch_size=64
cat >"$work/wide.ini" <<'INI'
[run]
replicas = 1
[data]
source = tishby12
[network]
layers = dense:256:relu, dense:128:relu, dense:10:softmax
[training]
batch_size = 32
[information]
layers = 3
INI
epochs=$((epochs / 4)) # a wide epoch costs ~30 small ones
compare "wide net 12-256-128-10, 1 replica" "$work/wide.ini"
