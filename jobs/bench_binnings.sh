#!/usr/bin/env bash
# What each binning costs at a logged epoch, against the fixed range run as
# its peer in this same invocation (the machine may be shared: compare
# ratios, not seconds). The 12-bit task, 10-7-5-4-3 ReLU + softmax 2, 4
# replicas on one rank, 200 epochs, every epoch logged. For each binning it
# prints the run's CPU seconds (user + system: a shared machine stretches
# wall time, not CPU time), its ratio to the fixed range's, and the forward
# and binning+tables wall seconds of the run's time line: the second forward
# pass of the data-driven binnings shows in forward, quantile's sort and the
# counting of more distinct patterns in binning+tables.
# usage: bash jobs/bench_binnings.sh [BUILD_DIR]   (default build/); env REPEAT (default 2)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
repeat=${REPEAT:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-bench-binnings.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
cat >"$work/job.ini" <<'INI'
[run]
seed = 3
replicas = 4
[data]
source = tishby12
[network]
layers = dense:10:relu, dense:7:relu, dense:5:relu, dense:4:relu, dense:3:relu, dense:2:softmax
[training]
epochs = 200
batch_size = 256
learning_rate = 0.001
[information]
epochs = all
INI
# name|--set arguments
cases=("range|"
       "adaptive|--set information.range=adaptive"
       "adaptive-replica|--set information.range=adaptive --set information.scope=replica"
       "width|--set information.binning=width"
       "quantile-layer|--set information.binning=quantile"
       "quantile-unit|--set information.binning=quantile --set information.quantiles=unit"
       "whole|--set information.range=whole --set information.range_from=$work/adaptive.nc")
seconds() { # seconds LOG FIELD: the field's seconds on the time line
    sed -n "s/.* $2 \([0-9.]*\)s.*/\1/p" "$1" | tail -1
}
printf '%-18s %7s %6s %10s %16s\n' binning cpu_s ratio forward_s binning_tables_s
base=
for c in "${cases[@]}"; do
    name=${c%%|*} args=${c#*|}
    best=
    for ((i = 0; i < repeat; i++)); do
        # shellcheck disable=SC2086
        /usr/bin/time -f '%U %S' -o "$work/$name.time" "$build/ipmpi" --overwrite $args \
            --set run.output="$work/$name.nc" "$work/job.ini" >"$work/$name.log" 2>&1
        cpu=$(awk '{ print $1 + $2 }' "$work/$name.time")
        if [ -z "$best" ] || awk -v s="$cpu" -v m="$best" 'BEGIN { exit !(s < m) }'; then
            best=$cpu
            bf=$(seconds "$work/$name.log" forward) bb=$(seconds "$work/$name.log" binning+tables)
        fi
    done
    base=${base:-$best}
    printf '%-18s %7.2f %6.2f %10s %16s\n' "$name" "$best" \
        "$(awk -v s="$best" -v b="$base" 'BEGIN { print s / b }')" "$bf" "$bb"
done
