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
echo "== 2. 12-bit task (4096 samples, 12-10-7-5-4-3-2), 8 replicas, 200 epochs, MI every 5 epochs"
IPMPI="$build/ipmpi" MAX_RANKS=$max_ranks MPIRUN_ARGS="--mca btl self,vader" bash "$here/jobs/scaling.sh" \
    "$here/jobs/tishby.ini" --set run.replicas=8 --set training.epochs=200 --set information.epochs=every:5 |
    tee "$work/scaling.txt"
awk '$1 == 1 { printf "12-bit, one rank, 8 replicas: training %.4f ms per epoch, information %.4f ms per logged epoch and layer\n", 1000 * $3 / 200, 1000 * ($4 + $5) / 41 / 6 }' "$work/scaling.txt"

echo
echo "== 3. the same, one rank: information time per logged epoch when only layer k is measured"
echo "layer  width  forward+binning+tables+merge (ms per logged epoch)"
for k in 1 2 3 4 5 6; do
    run 1 "$work/layer$k.log" "$here/jobs/tishby.ini" --set run.output="$work/layer$k.nc" \
        --set run.replicas=8 --set training.epochs=200 --set information.epochs=every:5 \
        --set information.layers=$k
    width=$(echo "10 7 5 4 3 2" | cut -d' ' -f$k)
    sed -n 's/.*forward \([0-9.]*\)s  binning+tables \([0-9.]*\)s  merge \([0-9.]*\)s.*/\1 \2 \3/p' \
        "$work/layer$k.log" | awk -v k=$k -v w="$width" '{ printf "%5d  %5d  %8.3f\n", k, w, 1000 * ($1 + $2 + $3) / 41 }'
done
