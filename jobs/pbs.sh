#!/usr/bin/env bash
# Runs one ipmpi job under PBS Pro / Torque, one replica per MPI rank.
# usage: qsub -l select=1:ncpus=REPLICAS:mpiprocs=REPLICAS -l walltime=HH:MM:SS \
#             -v CONFIG=jobs/tishby.ini,OUTDIR=runs/tishby jobs/pbs.sh
# The output goes to OUTDIR/<config name>.nc; the replica count follows the
# number of MPI ranks PBS gives ($PBS_NODEFILE). EXTRA may hold --set options.
#PBS -N ipmpi
#PBS -j oe
#PBS -l walltime=01:00:00
set -euo pipefail
cd "${PBS_O_WORKDIR:-$PWD}"
config=${CONFIG:?pass -v CONFIG=path/to/config.ini}
outdir=${OUTDIR:?pass -v OUTDIR=path/to/folder}
ipmpi=${IPMPI:-$PWD/build/ipmpi}
ranks=$(wc -l <"${PBS_NODEFILE:?not running under PBS}")
mkdir -p "$outdir"
name=$(basename "$config" .ini)
export OPENBLAS_NUM_THREADS=1
# shellcheck disable=SC2086  # EXTRA is a list of options
"$ipmpi" --check "$config" --set run.output="$outdir/$name.nc" ${EXTRA:-} >"$outdir/$name.effective.ini"
mpirun -np "$ranks" -x OPENBLAS_NUM_THREADS "$ipmpi" "$config" \
    --set run.output="$outdir/$name.nc" --set run.replicas="$ranks" ${EXTRA:-}
