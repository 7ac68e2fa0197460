#!/usr/bin/env bash
# The partitioned reduce's targets, each measured against a peer run in this
# same invocation (the machine may be shared: compare ratios, not seconds).
# "before" is commit $BEFORE (default 5eba3fa, main before the partitioned
# reduce), exported and built side by side in a temporary directory.
#  1. 2017 setup (var_u, 10-7-5-4-4-3 tanh + softmax 2, 16 replicas, batch 4096,
#     300 epochs, log:30, 50 bins, all estimators): exchange per logged epoch on
#     2 ranks against binning+tables per logged epoch on 1 rank (target <= 0.25).
#  2. the same on 2, 4, 8, 16 ranks: rank 0's exchange per logged epoch and the
#     bytes it receives (target: at most 2x from 2 to 16 ranks, bytes not growing).
#  3. wall time of the 2017 setup on 2 ranks against 1 (target <= 0.6), and the
#     quick-start job (jobs/tishby.ini, 4 replicas) on 4 ranks against 2 (<= 1).
#  4. 1024 replicas on 32 ranks (jobs/seed-experiment2.ini, 3 epochs, all
#     logged): exchange per logged epoch, before against now (target >= 10x).
# usage: bash jobs/bench_reduce.sh [BUILD_DIR]   (default build/)
# env:   TARGETS (default "1 2 3 4"), REPEAT (default 2), BEFORE (default 5eba3fa),
#        DATA (default ../shared/data/var_u.nc beside the checkout)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
targets=${TARGETS:-1 2 3 4}
repeat=${REPEAT:-2}
before_commit=${BEFORE:-5eba3fa}
data=${DATA:-$here/../shared/data/var_u.nc}
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-bench-reduce.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

run() { # run BINARY NP LOG ARGS...: each run replaces the last one's scratch output
    local bin=$1 np=$2 log=$3 fresh=()
    shift 3
    case "$("$bin" --help 2>&1)" in *--overwrite*) fresh=(--overwrite) ;; esac # $BEFORE predates it
    mpirun --oversubscribe --bind-to none --mca btl self,vader -np "$np" "$bin" "${fresh[@]}" "$@" \
        --set run.output="$work/out.nc" >"$log" 2>&1 || { echo "failed: $bin -np $np $*" >&2; tail -n 3 "$log" >&2; exit 1; }
}
# per_logged LOG WORD: WORD's seconds on the time line, in ms per logged epoch.
per_logged() {
    local s n
    s=$(sed -n "s/^time (rank 0):.* $2 \([0-9.]*\)s.*/\1/p" "$1")
    n=$(sed -n 's/^done: .* \([0-9]*\) logged.*/\1/p' "$1")
    awk -v s="$s" -v n="$n" 'BEGIN { printf "%.2f", 1000 * s / (n > 0 ? n : 1) }'
}
wall() { sed -n 's/^done:.* wall \([0-9.]*\)s.*/\1/p' "$1"; }
received() { sed -n 's/^exchange (rank 0.*received \([0-9]*\) bytes.*/\1/p' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

new="$build/ipmpi"
setup_before() {
    [ -x "$work/before/build/ipmpi" ] && return
    echo "building $before_commit in $work/before"
    mkdir -p "$work/before"
    git -C "$here" archive "$before_commit" | tar -x -C "$work/before"
    (cd "$work/before" && meson setup build --buildtype=release >/dev/null && meson compile -C build ipmpi >/dev/null)
}

cat >"$work/s2017.ini" <<INI
[run]
seed = 2017
replicas = 16
[data]
source = netcdf
path = $data
[network]
layers = dense:10:tanh, dense:7:tanh, dense:5:tanh, dense:4:tanh, dense:4:tanh, dense:3:tanh, dense:2:softmax
[training]
epochs = 300
batch_size = 4096
learning_rate = 0.0004
[information]
epochs = log:30
bins = 50
estimators = all
INI
needs_data() {
    [ -f "$data" ] && return 0
    echo "skipped: $data is absent"
    return 1
}

target1() {
    needs_data || return 0
    echo "== 1. 2017 setup: exchange per logged epoch on 2 ranks / binning+tables per logged epoch on 1 rank (target <= 0.25)"
    for i in $(seq "$repeat"); do
        run "$new" 1 "$work/t1-np1.log" "$work/s2017.ini"
        run "$new" 2 "$work/t1-np2.log" "$work/s2017.ini"
        local b1 x2
        b1=$(per_logged "$work/t1-np1.log" 'binning+tables')
        x2=$(per_logged "$work/t1-np2.log" exchange)
        echo "run $i: 1 rank binning+tables $b1 ms, 2 ranks exchange $x2 ms, ratio $(ratio "$x2" "$b1")"
    done
}

target2() {
    needs_data || return 0
    echo "== 2. 2017 setup: rank 0's exchange per logged epoch and bytes received, by ranks (target: 16 ranks <= 2x 2 ranks, bytes not growing)"
    for i in $(seq "$repeat"); do
        local x2="" r2=""
        for np in 2 4 8 16; do
            run "$new" "$np" "$work/t2-np$np.log" "$work/s2017.ini"
            local x r
            x=$(per_logged "$work/t2-np$np.log" exchange)
            r=$(received "$work/t2-np$np.log")
            x2=${x2:-$x} r2=${r2:-$r}
            echo "run $i: $np ranks: exchange $x ms ($(ratio "$x" "$x2") x 2 ranks), received $r bytes ($(ratio "$r" "$r2") x 2 ranks)"
        done
    done
}

target3() {
    echo "== 3. wall time: 2017 setup 2 ranks / 1 rank (target <= 0.6); quick-start 4 ranks / 2 ranks (target <= 1)"
    for i in $(seq "$repeat"); do
        if [ -f "$data" ]; then
            run "$new" 1 "$work/t3-np1.log" "$work/s2017.ini"
            run "$new" 2 "$work/t3-np2.log" "$work/s2017.ini"
            echo "run $i: 2017 setup wall 1 rank $(wall "$work/t3-np1.log")s, 2 ranks $(wall "$work/t3-np2.log")s, ratio $(ratio "$(wall "$work/t3-np2.log")" "$(wall "$work/t3-np1.log")")"
        fi
        run "$new" 2 "$work/t3-q2.log" "$here/jobs/tishby.ini" --set run.replicas=4
        run "$new" 4 "$work/t3-q4.log" "$here/jobs/tishby.ini" --set run.replicas=4
        echo "run $i: quick-start wall 2 ranks $(wall "$work/t3-q2.log")s, 4 ranks $(wall "$work/t3-q4.log")s, ratio $(ratio "$(wall "$work/t3-q4.log")" "$(wall "$work/t3-q2.log")")"
    done
}

target4() {
    setup_before
    echo "== 4. 1024 replicas on 32 ranks: exchange per logged epoch, $before_commit / now (target >= 10)"
    local args=("$here/jobs/seed-experiment2.ini" --set run.replicas=1024 --set training.epochs=3
                --set information.epochs=all)
    for i in $(seq "$repeat"); do
        run "$work/before/build/ipmpi" 32 "$work/t4-before.log" "${args[@]}"
        run "$new" 32 "$work/t4-now.log" "${args[@]}"
        local b n
        b=$(per_logged "$work/t4-before.log" merge)
        n=$(per_logged "$work/t4-now.log" exchange)
        echo "run $i: $before_commit merge $b ms, now exchange $n ms, ratio $(ratio "$b" "$n")x; now: $(grep '^memory' "$work/t4-now.log")"
    done
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for t in $targets; do
    "target$t"
done
