#!/usr/bin/env bash
# Runs one ipmpi job under PBS Pro / Torque, one replica per MPI rank, and
# resubmits itself until done when the walltime cuts it short.
# usage: qsub -l select=1:ncpus=REPLICAS:mpiprocs=REPLICAS -l walltime=HH:MM:SS \
#             -v CONFIG=jobs/tishby.ini,OUTDIR=runs/tishby jobs/pbs.sh
# The output goes to OUTDIR/<config name>.nc, the checkpoint beside it, the
# run's log to OUTDIR/<config name>.log (appended to by every job of the
# run); the replica count follows the number of MPI ranks PBS gives
# ($PBS_NODEFILE, which is also mpirun's host file: Debian's Open MPI has no
# PBS (tm) support). EXTRA may hold --set options (split at spaces).
#
# Never losing a run: every start looks at the checkpoint. When one exists
# (a resubmission, a rerun after qrerun or a node failure, your own qsub of
# the same command) the run continues from it with --restart. When none
# exists but the output does (a rerun or a crash before the first
# checkpoint), that output is moved aside to a new name
# (OUTDIR/<name>.earlier-DATE-XXXX.nc) and the run starts afresh; nothing is
# ever deleted or overwritten. RESTART=1 makes a missing checkpoint an error.
#
# Walltime: PBS sends SIGTERM, then SIGKILL kill_delay seconds later (the
# queue's kill_delay, often 10 s+: it must exceed an epoch plus one
# checkpoint; if it may not, set [run] checkpoint_every as a fallback). The
# run writes its checkpoint after the current epoch (or within 50 ms of
# short epochs) and stops with status 75; the script then submits itself
# again with the same resources. A SIGTERM that
# comes more than a minute before the walltime is a qdel, qrerun or
# preemption: the run still checkpoints, but the script does not resubmit
# (PBS reruns a rerun job itself, and it continues from the checkpoint).
#PBS -N ipmpi
#PBS -j oe
#PBS -r y
#PBS -l walltime=01:00:00
set -euo pipefail
cd "${PBS_O_WORKDIR:-$PWD}"
config=${CONFIG:?pass -v CONFIG=path/to/config.ini}
outdir=${OUTDIR:?pass -v OUTDIR=path/to/folder}
ipmpi=${IPMPI:-$PWD/build/ipmpi}
ranks=$(wc -l <"${PBS_NODEFILE:?not running under PBS}")
mkdir -p "$outdir"
name=$(basename "$config" .ini)
output=$outdir/$name.nc
log=$outdir/$name.log
export OPENBLAS_NUM_THREADS=1
# A resubmitted job reads EXTRA from the file its predecessor wrote: qsub -v
# splits its list at commas, which --set values hold (layers = 4,5).
if [ -n "${EXTRA_FILE:-}" ]; then EXTRA=$(cat "$EXTRA_FILE"); fi
# shellcheck disable=SC2206  # EXTRA is a list of options, split at spaces
# the replica count last: it follows the ranks whatever the config says
run_options=(--set run.output="$output" ${EXTRA:-} --set run.replicas="$ranks")

note() { echo "ipmpi job ${PBS_JOBID:-}: $(date '+%F %T') $*" | tee -a "$log"; }

# set_aside FILE: renames FILE to a name of its own beside it (mktemp makes
# the name unique; the mv replaces only that empty placeholder).
set_aside() {
    local file=$1 base aside
    base=$(basename "$file")
    aside=$(mktemp --suffix=".${base##*.}" \
        "$(dirname "$file")/${base%.*}.earlier-$(date +%Y%m%dT%H%M%S)-XXXX")
    mv -f -- "$file" "$aside"
    note "moved $file aside to $aside"
}

# The checkpoint the run writes: [run] checkpoint of the effective config,
# or the output path with .nc replaced by .ckpt.
checkpoint_of() {
    local path
    path=$(sed -n '/^\[run\]/,/^\[/s/^checkpoint = //p' <<<"$1")
    [ -n "$path" ] || path=${output%.nc}.ckpt
    echo "$path"
}

# The effective config, kept beside the output; a different earlier one is
# set aside rather than overwritten.
save_effective() {
    local file=$outdir/$name.effective.ini
    if [ -e "$file" ] && [ "$(cat "$file")" = "$1" ]; then return; fi
    [ -e "$file" ] && set_aside "$file"
    printf '%s\n' "$1" >"$file"
}

# check [--restart]: sets effective to the effective config, or ends the job
# with --check's status: an error in the config, a refused restart (before
# the effective config kept is replaced), or 73 when a live run holds the
# output or checkpoint (before anything of it is moved aside). --check's
# notes of an existing output or checkpoint are for people: this script
# continues such a run itself.
check() {
    local check_err status
    check_err=$(mktemp)
    effective=$("$ipmpi" --check "$config" "${run_options[@]}" "$@" 2>"$check_err") ||
        { status=$?; cat "$check_err" >&2; rm -f "$check_err"; exit $status; }
    grep -v '^ipmpi: note: ' "$check_err" >&2 || true
    rm -f "$check_err"
}
check
# a --set run.output of the job's options wins over OUTDIR's name
output=$(sed -n '/^\[run\]/,/^\[/s/^output = //p' <<<"$effective")
checkpoint=$(checkpoint_of "$effective")
restart=()
if [ -e "$checkpoint" ] || [ -e "$checkpoint.prev" ]; then
    restart=(--restart)
    check --restart
    note "continuing from $checkpoint"
elif [ "${RESTART:-0}" = 1 ]; then
    echo "ipmpi job: RESTART=1 but there is no checkpoint $checkpoint" >&2
    exit 2
else
    [ -e "$output" ] && set_aside "$output"
    note "starting $config afresh"
fi
save_effective "$effective"

# Seconds of walltime, from qstat (HH:MM:SS); 0 when unknown, also when
# qstat itself fails (no server): the run goes on without the early stop.
walltime=$({ qstat -f "$PBS_JOBID" 2>/dev/null || true; } |
    awk -F' = ' '/Resource_List.walltime/ { n = split($2, t, ":"); s = 0;
        for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }')
walltime=${walltime:-0}

# mpirun runs in the background so that the trap can fire while it runs. PBS
# may signal mpirun and the ranks itself; SIGUSR1 from here reaches the ranks
# through mpirun either way, and the ranks treat both signals alike.
term=none
on_term() {
    if [ "$walltime" -gt 0 ] && [ "$SECONDS" -ge $((walltime - 60)) ]; then
        term=walltime
        note "walltime reached: asking the run to checkpoint and stop"
    else
        term=early
        note "SIGTERM before the walltime (qdel, qrerun, preemption): checkpointing, not resubmitting"
    fi
    kill -USR1 "$launcher" 2>/dev/null || true
}
trap on_term TERM
mpirun --hostfile "$PBS_NODEFILE" -np "$ranks" -x OPENBLAS_NUM_THREADS "$ipmpi" "$config" \
    "${run_options[@]}" ${restart[@]+"${restart[@]}"} >>"$log" 2>&1 &
launcher=$!
# A trapped signal interrupts wait; wait again until mpirun has ended.
while kill -0 "$launcher" 2>/dev/null; do wait "$launcher" || true; done
status=0
wait "$launcher" || status=$?
# mpirun itself may report 1 when it got SIGTERM too; the ranks' line says
# whether they stopped with a checkpoint.
stopped=0
if [ "$status" -eq 75 ] || { [ "$term" != none ] && tail -n 50 "$log" |
    grep -q '^stopped early at epoch .*checkpoint written'; }; then
    stopped=1
fi
if [ "$stopped" = 1 ] && [ "$term" != early ]; then
    note "stopped with a checkpoint; submitting the rest as a new job"
    [ -z "${EXTRA:-}" ] || printf '%s\n' "$EXTRA" >"$outdir/$name.extra"
    # shellcheck disable=SC2046  # one -l option per requested resource
    qsub $(qstat -f "$PBS_JOBID" |
        sed -n 's/^ *Resource_List\.\(select\|nodes\|walltime\) = \(.*\)/-l \1=\2/p') \
        -v "CONFIG=$config,OUTDIR=$outdir,IPMPI=$ipmpi${EXTRA:+,EXTRA_FILE=$outdir/$name.extra}" "$0"
    exit 0
fi
exit "$status"
