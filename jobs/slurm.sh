#!/usr/bin/env bash
# Runs one ipmpi job under Slurm, one replica per task, and resubmits itself
# until done when the time limit cuts it short.
# usage: sbatch --ntasks=REPLICAS --time=HH:MM:SS jobs/slurm.sh CONFIG.ini OUTDIR [--set KEY=VALUE]...
#   e.g. sbatch --ntasks=32 --time=04:00:00 jobs/slurm.sh jobs/tishby.ini runs/tishby-32
# The output goes to OUTDIR/<config name>.nc, the checkpoint beside it; the
# replica count follows --ntasks. Five minutes before the time limit Slurm
# sends this script SIGUSR1 (--signal below), which it passes to the run: the
# run writes its checkpoint at the next epoch and exits with status 75, and
# the script submits itself again with --restart (same tasks, time and
# arguments) to continue. Keep the 300 s above the time a checkpoint takes.
# Set IPMPI to the binary if it is not build/ipmpi under the submit directory.
#SBATCH --job-name=ipmpi
#SBATCH --output=ipmpi-%j.log
#SBATCH --ntasks=4
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@300
set -euo pipefail
usage="usage: sbatch jobs/slurm.sh CONFIG.ini OUTDIR [--set KEY=VALUE]..."
config=${1:?$usage}
outdir=${2:?$usage}
shift 2
restart=()
options=()
for a in "$@"; do
    if [ "$a" = --restart ]; then restart=(--restart); else options+=("$a"); fi
done
ipmpi=${IPMPI:-${SLURM_SUBMIT_DIR:-$PWD}/build/ipmpi}
mkdir -p "$outdir"
name=$(basename "$config" .ini)
export OPENBLAS_NUM_THREADS=1
run_options=(--set run.output="$outdir/$name.nc" ${options[@]+"${options[@]}"})
"$ipmpi" --check "$config" "${run_options[@]}" >"$outdir/$name.effective.ini"

# srun runs in the background so that the trap can fire while it runs (bash
# defers traps until a foreground command ends).
forward_stop() {
    echo "ipmpi job: time limit near, asking the run to checkpoint and stop"
    scancel --signal=USR1 "$SLURM_JOB_ID" 2>/dev/null || kill -USR1 "$step" 2>/dev/null || true
}
trap forward_stop USR1
srun "$ipmpi" "$config" "${run_options[@]}" --set run.replicas="${SLURM_NTASKS:-1}" \
    ${restart[@]+"${restart[@]}"} &
step=$!
# A trapped signal interrupts wait; wait again until the step has ended.
while kill -0 "$step" 2>/dev/null; do wait "$step" || true; done
status=0
wait "$step" || status=$?
if [ "$status" -eq 75 ]; then
    limit=$(squeue -h -j "$SLURM_JOB_ID" -o %l)
    echo "ipmpi job: stopped with a checkpoint; resubmitting with --restart"
    sbatch --ntasks="${SLURM_NTASKS:-1}" --time="$limit" --chdir="${SLURM_SUBMIT_DIR:-$PWD}" \
        "$0" "$config" "$outdir" ${options[@]+"${options[@]}"} --restart
    exit 0
fi
exit "$status"
