#!/usr/bin/env bash
# Runs one ipmpi job under Slurm, one replica per task.
# usage: sbatch --ntasks=REPLICAS --time=HH:MM:SS jobs/slurm.sh CONFIG.ini OUTDIR [--set KEY=VALUE]...
#   e.g. sbatch --ntasks=32 --time=04:00:00 jobs/slurm.sh jobs/tishby.ini runs/tishby-32
# The output goes to OUTDIR/<config name>.nc; the replica count follows --ntasks.
# Set IPMPI to the binary if it is not build/ipmpi under the submit directory.
#SBATCH --job-name=ipmpi
#SBATCH --output=ipmpi-%j.log
#SBATCH --ntasks=4
#SBATCH --time=01:00:00
set -euo pipefail
config=${1:?usage: sbatch jobs/slurm.sh CONFIG.ini OUTDIR [--set KEY=VALUE]...}
outdir=${2:?usage: sbatch jobs/slurm.sh CONFIG.ini OUTDIR [--set KEY=VALUE]...}
shift 2
ipmpi=${IPMPI:-${SLURM_SUBMIT_DIR:-$PWD}/build/ipmpi}
mkdir -p "$outdir"
name=$(basename "$config" .ini)
export OPENBLAS_NUM_THREADS=1
"$ipmpi" --check "$config" --set run.output="$outdir/$name.nc" "$@" >"$outdir/$name.effective.ini"
srun "$ipmpi" "$config" --set run.output="$outdir/$name.nc" \
    --set run.replicas="${SLURM_NTASKS:-1}" "$@"
