#!/usr/bin/env bash
# Runs one ipmpi job under PBS Pro / Torque, one replica per MPI rank, and
# resubmits itself until done when the walltime cuts it short.
# usage: qsub -l select=1:ncpus=REPLICAS:mpiprocs=REPLICAS -l walltime=HH:MM:SS \
#             -v CONFIG=jobs/tishby.ini,OUTDIR=runs/tishby jobs/pbs.sh
# The output goes to OUTDIR/<config name>.nc, the checkpoint beside it, the
# run's log to OUTDIR/<config name>.log; the replica count follows the number
# of MPI ranks PBS gives ($PBS_NODEFILE). EXTRA may hold --set options.
# At the walltime PBS sends SIGTERM, then SIGKILL kill_delay seconds later
# (the queue's kill_delay, often 10 s+: it must exceed an epoch plus one
# checkpoint; if it may not, set [run] checkpoint_every as a fallback). The
# run writes its checkpoint at the next epoch and stops with status 75; the
# script then submits itself again with RESTART=1 and the same resources.
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
restart=
[ "${RESTART:-0}" = 1 ] && restart=--restart
# shellcheck disable=SC2086  # EXTRA is a list of options
"$ipmpi" --check "$config" --set run.output="$outdir/$name.nc" ${EXTRA:-} >"$outdir/$name.effective.ini"

# mpirun runs in the background so that the trap can fire while it runs. PBS
# may signal mpirun and the ranks itself; SIGUSR1 from here reaches the ranks
# through mpirun either way, and the ranks treat both signals alike.
stopping=0
forward_stop() {
    stopping=1
    echo "ipmpi job: walltime reached, asking the run to checkpoint and stop"
    kill -USR1 "$launcher" 2>/dev/null || true
}
trap forward_stop TERM
# shellcheck disable=SC2086
mpirun -np "$ranks" -x OPENBLAS_NUM_THREADS "$ipmpi" "$config" \
    --set run.output="$outdir/$name.nc" --set run.replicas="$ranks" ${EXTRA:-} $restart \
    >>"$outdir/$name.log" 2>&1 &
launcher=$!
# A trapped signal interrupts wait; wait again until mpirun has ended.
while kill -0 "$launcher" 2>/dev/null; do wait "$launcher" || true; done
status=0
wait "$launcher" || status=$?
# mpirun itself may report 1 when it got SIGTERM too; the ranks' line says
# whether they stopped with a checkpoint.
if [ "$status" -eq 75 ] || { [ "$stopping" = 1 ] && tail -n 50 "$outdir/$name.log" |
    grep -q '^stopped early at epoch .*checkpoint written'; }; then
    echo "ipmpi job: stopped with a checkpoint; resubmitting with RESTART=1"
    # shellcheck disable=SC2046  # one -l option per requested resource
    qsub $(qstat -f "$PBS_JOBID" |
        sed -n 's/^ *Resource_List\.\(select\|nodes\|walltime\) = \(.*\)/-l \1=\2/p') \
        -v "CONFIG=$config,OUTDIR=$outdir,RESTART=1,IPMPI=$ipmpi${EXTRA:+,EXTRA=$EXTRA}" "$0"
    exit 0
fi
exit "$status"
