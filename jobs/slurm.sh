#!/usr/bin/env bash
# Runs one ipmpi job under Slurm, one replica per task, and resubmits itself
# until done when the time limit cuts it short.
# usage: sbatch --ntasks=REPLICAS --time=HH:MM:SS jobs/slurm.sh CONFIG.ini OUTDIR [--set KEY=VALUE]...
#   e.g. sbatch --ntasks=32 --time=04:00:00 jobs/slurm.sh jobs/tishby.ini runs/tishby-32
# The output goes to OUTDIR/<config name>.nc, the checkpoint beside it; the
# replica count follows --ntasks. Set IPMPI to the binary if it is not
# build/ipmpi under the submit directory.
#
# Never losing a run: every start looks at the checkpoint. When one exists
# (a resubmission, a requeue, a node failure, your own sbatch of the same
# command) the run continues from it with --restart. When none exists but
# the output does (a requeue or a crash before the first checkpoint), that
# output is moved aside to a new name (OUTDIR/<name>.earlier-DATE-XXXX.nc)
# and the run starts afresh; nothing is ever deleted or overwritten.
# Passing --restart yourself makes a missing checkpoint an error.
#
# Time limit: five minutes before it, Slurm sends this script SIGUSR1
# (--signal below; B: signals the batch shell only), which it passes on to
# the run: the run writes its checkpoint after the current epoch (or
# within 50 ms of short epochs) and exits with
# status 75, and the script submits itself again (same tasks, time,
# partition, account, QOS and arguments) to continue. Keep the 300 s above
# the time a checkpoint takes; Slurm may send the signal up to a minute
# early. Other sbatch options given on the command line are not carried
# over: put them in #SBATCH lines of your copy of this script.
# `scancel --signal=USR1 JOBID` stops the run the same way at once.
# Requeue, cancel, preemption, the time limit itself: Slurm sends SIGTERM to
# the ranks (which checkpoint on it, as on SIGUSR1) and to this script, which
# has no trap for it and so ends without resubmitting; a requeued job
# restarts from the checkpoint by itself. The log (ipmpi-JOBID.log) is
# appended to, so a requeue keeps what the earlier attempt wrote.
#
# MPI launch: Debian's Open MPI has no Slurm PMI-1/PMI-2 support, so srun
# with Slurm's default MpiDefault=none fails in MPI_Init ("OMPI was not built
# with SLURM's PMI support"). It does speak PMIx, and Debian's slurm-wlm
# ships the mpi/pmix plugin, so the script launches with srun --mpi=pmix
# (SLURM_MPI_TYPE=pmix) unless SLURM_MPI_TYPE is set already (e.g. pmi2 for
# an MPI built against Slurm's PMI-2). `srun --mpi=list` shows what a
# cluster offers; Open MPI's mpirun inside the allocation works too.
#SBATCH --job-name=ipmpi
#SBATCH --output=ipmpi-%j.log
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --ntasks=4
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@300
set -euo pipefail
usage="usage: sbatch jobs/slurm.sh CONFIG.ini OUTDIR [--set KEY=VALUE]..."
config=${1:?$usage}
outdir=${2:?$usage}
shift 2
need_checkpoint=0
options=()
for a in "$@"; do
    if [ "$a" = --restart ]; then need_checkpoint=1; else options+=("$a"); fi
done
ipmpi=${IPMPI:-${SLURM_SUBMIT_DIR:-$PWD}/build/ipmpi}
tasks=${SLURM_NTASKS:-1}
name=$(basename "$config" .ini)
output=$outdir/$name.nc
# the replica count last: it follows the tasks whatever the config says
run_options=(--set run.output="$output" ${options[@]+"${options[@]}"} --set run.replicas="$tasks")
export OPENBLAS_NUM_THREADS=1
export SLURM_MPI_TYPE=${SLURM_MPI_TYPE:-pmix}

note() { echo "ipmpi job ${SLURM_JOB_ID:-}: $(date '+%F %T') $*"; }

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

mkdir -p "$outdir"
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
elif [ "$need_checkpoint" = 1 ]; then
    echo "ipmpi job: --restart given but there is no checkpoint $checkpoint" >&2
    exit 2
else
    [ -e "$output" ] && set_aside "$output"
    note "starting $config afresh"
fi
save_effective "$effective"

# resubmit: queues this script again with the same arguments; the new job
# finds the checkpoint and continues from it.
resubmit() {
    local more=()
    [ -n "${SLURM_JOB_ACCOUNT:-}" ] && more+=(--account="$SLURM_JOB_ACCOUNT")
    [ -n "${SLURM_JOB_QOS:-}" ] && more+=(--qos="$SLURM_JOB_QOS")
    sbatch --job-name="${SLURM_JOB_NAME:-ipmpi}" --partition="$SLURM_JOB_PARTITION" \
        --ntasks="$tasks" --time="$(squeue -h -j "$SLURM_JOB_ID" -o %l)" --chdir="$PWD" \
        ${more[@]+"${more[@]}"} "$0" "$config" "$outdir" ${options[@]+"${options[@]}"}
}

# Passing the stop on: srun forwards SIGUSR1 to every task. It is sent again
# every 10 s until srun ends, in case the first one came while srun was
# still setting the tasks up.
stop_requested=0
step=
passer=
pass_stop_on() {
    [ -n "$step" ] && [ -z "$passer" ] || return 0
    while kill -USR1 "$step" 2>/dev/null; do sleep 10; done &
    passer=$!
}
on_time_limit() {
    stop_requested=1
    note "time limit near: asking the run to checkpoint and stop"
    pass_stop_on
}
trap on_time_limit USR1

# srun runs in the background so that the trap can fire while it runs (bash
# defers traps until a foreground command ends).
srun "$ipmpi" "$config" "${run_options[@]}" ${restart[@]+"${restart[@]}"} &
step=$!
[ "$stop_requested" = 0 ] || pass_stop_on
# A trapped signal interrupts wait; wait again until the step has ended.
while kill -0 "$step" 2>/dev/null; do wait "$step" || true; done
status=0
wait "$step" || status=$?
[ -z "$passer" ] || kill "$passer" 2>/dev/null || true
# 75: stopped with a checkpoint. 138 (128 + SIGUSR1): a rank got the signal
# before ipmpi could take it (in MPI_Init), when it had written nothing yet.
if [ "$status" -eq 75 ] || { [ "$stop_requested" = 1 ] && [ "$status" -eq 138 ]; }; then
    note "stopped (status $status); submitting the rest as a new job"
    if ! resubmit; then
        note "could not resubmit: run the same sbatch command again to continue"
        exit 75
    fi
    exit 0
fi
exit "$status"
