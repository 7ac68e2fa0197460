#!/usr/bin/env bash
# Runs one config at -np 1, 2, 4, ... up to MAX_RANKS (default 32; with
# --oversubscribe where cores are fewer) and prints wall, training, MI
# (forward + binning + tables) and merge time per rank count, as rank 0
# measured them, with wall time's ratio to the one-rank run and merge time's
# to the two-rank run (one rank merges nothing).
# usage: jobs/scaling.sh CONFIG.ini [--set SECTION.KEY=VALUE]...
# env:   IPMPI (default build/ipmpi), MAX_RANKS (default 32), MPIRUN_ARGS
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
config=${1:?usage: jobs/scaling.sh CONFIG.ini [--set KEY=VALUE]...}
shift
ipmpi=${IPMPI:-$here/build/ipmpi}
max_ranks=${MAX_RANKS:-32}
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-scaling.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OPENBLAS_NUM_THREADS=1

seconds() { sed -n "s/.* $2 \([0-9.]*\)s.*/\1/p" "$1" | tail -n 1; }

printf "%5s %9s %9s %9s %9s %12s %9s %9s\n" ranks wall_s train_s mi_s merge_s merge/logged wall_x1 merge_x2
base_wall="" base_merge=""
for ((np = 1; np <= max_ranks; np *= 2)); do
    log="$work/np$np.log"
    if ! mpirun --oversubscribe --bind-to none ${MPIRUN_ARGS:-} -np "$np" "$ipmpi" "$config" \
        --set run.output="$work/np$np.nc" "$@" >"$log" 2>&1; then
        echo "-np $np failed:" >&2
        tail -n 5 "$log" >&2
        exit 1
    fi
    wall=$(sed -n 's/.*wall \([0-9.]*\)s.*/\1/p' "$log")
    logged=$(sed -n 's/^done: .* \([0-9]*\) logged.*/\1/p' "$log")
    train=$(seconds "$log" train)
    mi=$(awk -v f="$(seconds "$log" forward)" -v b="$(seconds "$log" 'binning+tables')" 'BEGIN { print f + b }')
    merge=$(seconds "$log" merge)
    base_wall=${base_wall:-$wall}
    [ "$np" -lt 2 ] || base_merge=${base_merge:-$merge}
    awk -v np="$np" -v w="$wall" -v t="$train" -v mi="$mi" -v m="$merge" -v n="$logged" \
        -v w1="$base_wall" -v m1="$base_merge" 'BEGIN {
        printf "%5d %9.3f %9.3f %9.3f %9.3f %9.3f ms %9.2f %9.2f\n", np, w, t, mi, m,
               1000 * m / (n > 0 ? n : 1), w / w1, (m1 > 0 ? m / m1 : 0) }'
done
echo "cores: $(nproc); times are rank 0's; merge includes waiting for the slowest rank."
