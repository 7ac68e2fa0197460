#!/usr/bin/env bash
# Performance figures, each against a baseline measured in this same
# invocation on this machine:
#  1. the seed report's Experiment 2 (jobs/seed-experiment2.ini) end to end on
#     one core, against the original Python estimator (jobs/baseline_original_mi.py)
#     on the same activations;
#  2. the 12-bit task: training time per epoch, information time per logged
#     epoch and layer (forward + binning + tables + merge), and merge time by
#     rank count, against the one-rank run.
# usage: bash jobs/benchmark.sh [BUILD_DIR]   (default build/; ranks up to $MAX_RANKS, default 8)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
max_ranks=${MAX_RANKS:-8}
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
run() { # run NP LOG ARGS...: one ipmpi run, its summary kept in LOG
    local np=$1 log=$2
    shift 2
    mpirun --oversubscribe --bind-to none --mca btl self,vader -np "$np" "$build/ipmpi" "$@" >"$log"
}
field() { # field LOG NAME: seconds after "NAME " on the time line
    sed -n "s/.* $2 \([0-9.]*\)s.*/\1/p" "$1" | tail -n 1
}
wall() { sed -n 's/.*wall \([0-9.]*\)s.*/\1/p' "$1" | tail -n 1; }

echo "== 1. seed Experiment 2: 5 replicas, N = 1000, 6 layers, 50 bins, MI at each of 1000 epochs, 1 rank"
run 1 "$work/s2.log" "$here/jobs/seed-experiment2.ini" --set run.output="$work/s2.nc"
s2_wall=$(wall "$work/s2.log")
grep '^time' "$work/s2.log"
run 1 "$work/s2act.log" "$here/jobs/seed-experiment2.ini" --set run.output="$work/s2act.nc" \
    --set training.epochs=20 --set output.activations=all
baseline=$(/usr/bin/python3 "$here/jobs/baseline_original_mi.py" "$work/s2act.nc" 21 |
           sed -n 's/.*: \([0-9.]*\) ms per epoch/\1/p')
awk -v w="$s2_wall" -v b="$baseline" 'BEGIN {
    ms = 1000 * w / 1000
    printf "ipmpi end to end:              %8.3f ms per epoch (wall %.2fs / 1000 epochs)\n", ms, w
    printf "original estimator, MI only:   %8.3f ms per epoch\n", b
    printf "ratio (original MI / ipmpi all): %6.0fx\n", b / ms }'

echo
echo "== 2. 12-bit task (4096 samples, 12-10-7-5-4-3-2), 4 replicas, 200 epochs, MI every 5 epochs"
printf "%6s %10s %14s %22s %16s %10s\n" ranks wall_s "train_ms/ep" "info_ms/logged/layer" "merge_ms/logged" "merge_x1"
merge1=""
for np in 1 2 4 8 16 32; do
    [ "$np" -le "$max_ranks" ] || break
    log="$work/t$np.log"
    run "$np" "$log" "$here/jobs/tishby.ini" --set run.output="$work/t$np.nc" --set run.replicas=4 \
        --set training.epochs=200 --set information.epochs=every:5
    logged=$(sed -n 's/.* \([0-9]*\) logged.*/\1/p' "$log")
    train=$(field "$log" train); fwd=$(field "$log" forward)
    bin=$(field "$log" 'binning+tables'); merge=$(field "$log" merge)
    [ -n "$merge1" ] || merge1=$merge
    awk -v np="$np" -v w="$(wall "$log")" -v t="$train" -v f="$fwd" -v b="$bin" -v m="$merge" \
        -v n="$logged" -v m1="$merge1" 'BEGIN {
        printf "%6d %10.3f %14.4f %22.4f %16.4f %10.2f\n", np, w, 1000 * t / 200,
               1000 * (f + b + m) / n / 6, 1000 * m / n, (m1 > 0 ? m / m1 : 0) }'
done
echo "(times are rank 0's; with more ranks than cores the ranks share 2 cores, so merge"
echo " time includes waiting for the slowest rank)"
