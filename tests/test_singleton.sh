#!/usr/bin/env bash
# A process started without mpirun or srun is one rank that runs alone: Open
# MPI starts no launcher daemon (orted) for it unless the environment asks for
# one, and its results are those of mpirun -np 1.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
JOB="$IPMPI_SOURCE_ROOT/jobs/tishby.ini"

# children_of_run NAME [VAR=VALUE...]: starts a long singleton run with the
# given environment, lists its child processes' names in NAME.children once
# it trains (MPI_Init is over then), and stops it with SIGTERM.
children_of_run() {
    local name=$1 pid
    shift
    env "$@" "$IPMPI" "$JOB" --set run.output=$name.nc --set run.replicas=1 \
        --set training.epochs=1000000 --set information.epochs=0 >$name.log 2>&1 &
    pid=$!
    for _ in $(seq 400); do
        grep -q '^epoch' $name.log && break
        sleep 0.05
    done
    grep -q '^epoch' $name.log || fail "$name: no progress line in 20 s: $(tail -3 $name.log)"
    ps -o comm= --ppid $pid >$name.children
    kill -TERM $pid
    wait $pid
    [ $? -eq 75 ] || fail "$name: SIGTERM should stop with status 75: $(tail -3 $name.log)"
}

children_of_run alone
grep -q orted alone.children && fail "a singleton run started orted: $(cat alone.children)"
# What the user's environment says wins: asked for, the daemon is there.
children_of_run daemon OMPI_MCA_ess_singleton_isolated=0
grep -q orted daemon.children || fail "OMPI_MCA_ess_singleton_isolated=0 was overridden: no orted"

"$IPMPI" "$JOB" --set run.output=single.nc --set run.replicas=2 --set training.epochs=60 \
    >single.log 2>&1 || fail "singleton run failed: $(tail -3 single.log)"
"$MPIRUN" 1 "$IPMPI" "$JOB" --set run.output=mpirun.nc --set run.replicas=2 \
    --set training.epochs=60 >mpirun.log 2>&1 || fail "mpirun -np 1 failed: $(tail -3 mpirun.log)"
if "$PY" -c 'import numpy, netCDF4' 2>/dev/null; then
    "$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same single.nc mpirun.nc >same.txt 2>&1 ||
        fail "singleton and mpirun -np 1 differ: $(cat same.txt)"
fi
finish
