#!/usr/bin/env bash
# A scaling study of one config: runs it at each rank count (with
# --oversubscribe where cores are fewer), keeps every run's log, and writes
# OUT/scaling.csv and OUT/scaling.png (speedup and efficiency against ranks,
# with the ideal line). Each run's output and checkpoint are OUT/npP.nc and
# OUT/npP.ckpt, whatever the config's [run] output and checkpoint say.
#   strong  a fixed number of replicas (--replicas R, else the config's):
#           speedup T(P0) / T(P) x P0 and efficiency speedup / P;
#   weak    R replicas per rank (--replicas R, default 1): efficiency T(P0) / T(P).
# The table printed (and the CSV) give, as rank 0 measured them: wall, train,
# forward, binning (+ counting), exchange, output, wait and other seconds;
# the bytes rank 0 sent and received in the reduces per logged epoch; the
# peak resident memory of rank 0 and of the largest rank; then the speedup and
# efficiency of each rank count against the smallest (P0), also the CSV's
# last two columns.
# usage: jobs/scaling.sh [--mode strong|weak] [--ranks "1 2 4 8"] [--replicas R]
#                        [--out DIR] CONFIG.ini [--set SECTION.KEY=VALUE]...
# env:   IPMPI (default build/ipmpi), MPIRUN_ARGS, MAX_RANKS (without --ranks:
#        1, 2, 4, ... up to it; default 32)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: jobs/scaling.sh [--mode strong|weak] [--ranks LIST] [--replicas R] [--out DIR] CONFIG.ini [--set KEY=VALUE]..."
fail() { echo "scaling.sh: $*" >&2; exit 2; }
mode=strong ranks="" replicas="" out=""
while [ $# -gt 0 ]; do
    case $1 in
        --mode | --ranks | --replicas | --out) [ $# -ge 2 ] || fail "$1 needs a value; $usage" ;;&
        --mode) mode=$2; shift 2 ;;
        --ranks) ranks=$2; shift 2 ;;
        --replicas) replicas=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || fail "$usage"
config=$1
shift
[ -f "$config" ] || fail "$config: no such file"
case $mode in strong|weak) ;; *) fail "--mode is strong or weak, not '$mode'" ;; esac
if [ -z "$ranks" ]; then
    for ((np = 1; np <= ${MAX_RANKS:-32}; np *= 2)); do ranks="$ranks $np"; done
fi
for np in $ranks; do
    [[ $np =~ ^[1-9][0-9]*$ ]] || fail "--ranks: '$np' is not a rank count (1, 2, ...)"
done
[ -z "$replicas" ] || [[ $replicas =~ ^[1-9][0-9]*$ ]] || fail "--replicas: '$replicas' is not a count"
[ "$mode" = weak ] && replicas=${replicas:-1}
ipmpi=${IPMPI:-$here/build/ipmpi}
# Strong scaling holds the replicas fixed: a config with replicas = 0 (one
# per rank) would grow them with the ranks, which is weak scaling. (A config
# --check refuses is left to the first run, whose log names the reason.)
if [ "$mode" = strong ] && [ -z "$replicas" ]; then
    in_config=$("$ipmpi" --check "$config" "$@" 2>/dev/null |
        sed -n '/^\[run\]/,/^\[/s/^replicas = //p') || true
    [ "$in_config" != 0 ] ||
        fail "strong scaling needs a fixed replica count, and $config has replicas = 0 (one per rank): give --replicas R, or --mode weak"
fi
if [ -z "$out" ]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-scaling-$mode.XXXXXX")
elif [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "scaling.sh: $out exists and is not empty; choose another --out" >&2
    exit 2
fi
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OPENBLAS_NUM_THREADS=1

# value LOG WORD: the seconds after "WORD " on the time line.
value() { sed -n "s/^time (rank 0):.* $2 \([0-9.]*\)s.*/\1/p" "$1" | tail -n 1; }

csv="$out/scaling.csv"
echo "mode,ranks,replicas,logged,wall_s,train_s,forward_s,binning_s,exchange_s,output_s,wait_s,other_s,rank0_sent_bytes_per_logged,rank0_received_bytes_per_logged,peak_mb_rank0,peak_mb_max" >"$csv"
echo "$mode scaling of $config on ranks:$ranks (cores: $(nproc)); logs, CSV and plot in $out"
printf "%5s %9s %9s %9s %9s %12s %8s %12s %12s %9s\n" ranks wall_s train_s mi_s exchange_s exchange/logged replicas sent/logged recv/logged peak_MB
for np in $ranks; do
    log="$out/np$np.log"
    set_replicas=()
    if [ "$mode" = weak ]; then
        set_replicas=(--set run.replicas=$((replicas * np)))
    elif [ -n "$replicas" ]; then
        set_replicas=(--set run.replicas=$replicas)
    fi
    if ! mpirun --oversubscribe --bind-to none ${MPIRUN_ARGS:-} -np "$np" "$ipmpi" "$config" \
        --set run.output="$out/np$np.nc" "$@" "${set_replicas[@]}" \
        --set run.checkpoint="$out/np$np.ckpt" >"$log" 2>&1; then
        echo "-np $np failed (log: $log):" >&2
        { grep '^ipmpi: ' "$log" || tail -n 5 "$log"; } >&2
        exit 1
    fi
    wall=$(sed -n 's/^done:.* wall \([0-9.]*\)s.*/\1/p' "$log")
    logged=$(sed -n 's/^done: .* \([0-9]*\) logged.*/\1/p' "$log")
    reps=$(sed -n 's/^done: .* logged, \([0-9]*\) replica.*/\1/p' "$log")
    read -r sent recv < <(sed -n 's/^exchange (rank 0.*): sent \([0-9]*\) bytes, received \([0-9]*\) bytes.*/\1 \2/p' "$log")
    read -r mem0 memmax < <(sed -n 's/^memory: peak resident \([0-9.]*\) MB on rank 0, \([0-9.]*\) MB.*/\1 \2/p' "$log")
    echo "$mode,$np,$reps,$logged,$wall,$(value "$log" train),$(value "$log" forward),$(value "$log" 'binning+tables'),$(value "$log" exchange),$(value "$log" output),$(value "$log" wait),$(value "$log" other),$sent,$recv,$mem0,$memmax" >>"$csv"
    awk -F, -v np="$np" 'END {
        printf "%5d %9.3f %9.3f %9.3f %9.3f %9.3f ms %8d %12.0f %12.0f %9.1f\n", np, $5, $6, $7 + $8,
               $9, 1000 * $9 / ($4 > 0 ? $4 : 1), $3, $13, $14, $16 }' "$csv"
done
# speedup and efficiency against the smallest rank count run (P0), as columns of the CSV
awk -F, -v OFS=, -v mode="$mode" '
    NR == FNR { if (FNR > 1 && (p0 == "" || $2 < p0)) { p0 = $2; t0 = $5 }; next }
    FNR == 1 { print $0, "speedup", "efficiency"; next }
    {
        if (mode == "strong") { s = t0 / $5 * p0; e = s / $2 }
        else { e = t0 / $5; s = e * $2 }
        print $0, sprintf("%.3f", s), sprintf("%.3f", e)
    }' "$csv" "$csv" >"$csv.tmp" && mv "$csv.tmp" "$csv"
awk -F, -v mode="$mode" 'NR > 1 {
    printf "%5d ranks: %s %6.2f, efficiency %5.2f\n", $2, mode == "strong" ? "speedup" : "scaled speedup", $17, $18
}' "$csv"
echo "mode: $mode; times are rank 0's; exchange excludes the wait for the slowest rank."
/usr/bin/python3 "$here/jobs/scaling_plot.py" "$csv" "$out/scaling.png" || echo "no plot (needs python3-matplotlib)" >&2
