#!/usr/bin/env bash
# jobs/slurm.sh under a real Slurm (Debian's slurm-wlm with munge), on a
# one-node cluster for this machine that the test configures and starts
# itself. Three interrupted runs of one job, at the same time:
#   limit:   --time=1 --signal=B:USR1@58: the time-limit signal stops the
#            run with a checkpoint and the job resubmits itself until done;
#   requeue: `scontrol requeue` of the first job: the requeued job continues
#            from the checkpoint the ranks wrote on SIGTERM;
#   signal:  `scancel --signal=USR1` of the first job, whose output folder
#            holds an output left by an earlier attempt (and no checkpoint):
#            that file is moved aside untouched, and the job resubmits itself.
# Each final NetCDF file must hold, bit for bit, the variables of the same
# config run straight through (without Slurm), and every job log must still
# begin with what it held when the job was interrupted (nothing truncated).
# Installs slurm-wlm and munge when missing (as root); skips (77) only when
# they cannot be had or the daemons do not start. Stops only the daemons it
# started, by their PIDs.
. "$(dirname "$0")/lib.sh"
needs_python
JOB="$IPMPI_SOURCE_ROOT/jobs/slurm.sh"
CONFIG="$IPMPI_SOURCE_ROOT/jobs/tishby.ini"
# About 8 s on two free cores, several times the 6 s before the time-limit
# signal comes; three jobs and the straight run share the machine.
EPOCHS=12000
SETS=(--set "training.epochs=$EPOCHS" --set information.epochs=log:100)
DEADLINE=$((SECONDS + 420))
cd "$WORK" || exit 1

skip() {
    echo "skipped: $*"
    exit 77
}

# ---- the cluster ----------------------------------------------------------

install_slurm() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
        command -v munged >/dev/null && command -v sbatch >/dev/null && return 0
    [ "$(id -u)" -eq 0 ] || skip "slurm-wlm and munge are not installed (and not root to install them)"
    echo "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends slurm-wlm munge >apt.log 2>&1 ||
        { apt-get update >>apt.log 2>&1 &&
            apt-get install -y --no-install-recommends slurm-wlm munge >>apt.log 2>&1; } ||
        skip "cannot install slurm-wlm and munge: $(tail -2 apt.log)"
}

free_ports() {
    "$PY" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
}

# One node with 8 CPUs (more than the machine has, so that the three jobs run
# at once), no cgroups (proctrack/linuxproc, task/none: nothing to delegate in
# a container), and the default MpiDefault=none that jobs/slurm.sh must cope
# with. Short waits: requeued jobs start after cred_expire, pending jobs are
# looked at every second, SIGKILL follows SIGTERM after 10 s.
write_config() {
    local ports host
    read -ra ports < <(free_ports)
    host=$(hostname -s)
    mkdir -p slurm/state slurm/spool
    cat >slurm/slurm.conf <<EOF
ClusterName=ipmpitest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports[0]}
SlurmdPort=${ports[1]}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/slurm/munge.socket,cred_expire=5
StateSaveLocation=$WORK/slurm/state
SlurmdSpoolDir=$WORK/slurm/spool
SlurmctldPidFile=$WORK/slurm/slurmctld.pid
SlurmdPidFile=$WORK/slurm/slurmd.pid
SlurmctldLogFile=$WORK/slurm/slurmctld.log
SlurmdLogFile=$WORK/slurm/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$WORK/slurm/slurm.conf
}

# retry TRIES COMMAND...: runs COMMAND every 0.2 s until it succeeds, at most TRIES times.
retry() {
    local tries=$1
    shift
    for _ in $(seq 1 "$tries"); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

live_pidfile() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
node_idle() { [ "$(sinfo -h -o %t 2>/dev/null)" = idle ]; }
no_jobs() { [ -z "$(squeue -h -o %i 2>/dev/null)" ]; }
ended() { ! kill -0 "$1" 2>/dev/null; }

daemons=()
# start_daemon PIDFILE COMMAND...: runs a daemon that forks; skips if it does not come up.
start_daemon() {
    local pidfile=$1 name=$2
    shift
    "$@" >"slurm/$name.out" 2>&1
    retry 50 live_pidfile "$pidfile" || skip "$name did not start: $(tail -3 "slurm/$name".*)"
    daemons+=("$(cat "$pidfile")")
}

start_daemons() {
    head -c 1024 /dev/urandom >slurm/munge.key && chmod 400 slurm/munge.key
    start_daemon slurm/munged.pid munged --force --socket="$WORK/slurm/munge.socket" \
        --key-file="$WORK/slurm/munge.key" --pid-file="$WORK/slurm/munged.pid" \
        --log-file="$WORK/slurm/munged.log" --seed-file="$WORK/slurm/munged.seed"
    ctld_started=$EPOCHREALTIME
    start_daemon slurm/slurmctld.pid slurmctld -f "$SLURM_CONF" -i
    start_daemon slurm/slurmd.pid slurmd -f "$SLURM_CONF"
    retry 100 node_idle ||
        skip "the node did not come up: $(sinfo 2>&1; tail -3 slurm/slurmctld.log slurm/slurmd.log)"
}

# Cancels every job of this private cluster, waits for them to end (their
# slurmstepd outlives slurmd), then stops the daemons this test started.
cleanup() {
    [ -n "${straight:-}" ] && kill "$straight" 2>/dev/null
    if [ ${#daemons[@]} -gt 0 ] && [ -n "${SLURM_CONF:-}" ]; then
        # shellcheck disable=SC2046  # one argument per job
        scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null
        retry 100 no_jobs
    fi
    local pid
    for pid in $(printf '%s\n' "${daemons[@]}" | tac); do
        kill "$pid" 2>/dev/null
        retry 50 ended "$pid" || kill -KILL "$pid"
    done
    rm -rf "$WORK"
}

# ---- jobs -----------------------------------------------------------------

past_deadline() { [ "$SECONDS" -ge "$DEADLINE" ]; }

state() { squeue -h -t all -j "$1" -o %T 2>/dev/null; }

# wait_for_line JOB REGEX: waits until the job's log holds a line matching REGEX.
wait_for_line() {
    until grep -Eq "$2" "ipmpi-$1.log" 2>/dev/null; do
        past_deadline && { fail "job $1: no line /$2/ in time: $(tail -3 "ipmpi-$1.log" 2>&1)"; return 1; }
        sleep 0.2
    done
}

# finish_chain JOB: waits for JOB and the jobs it resubmitted, whose IDs it
# puts into chain, and checks that each log still begins with the job's first
# line; returns 1 (after fail) if one did not complete.
finish_chain() {
    local id=$1 s
    chain=()
    while [ -n "$id" ]; do
        until s=$(state "$id"); [[ $s =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|PREEMPTED|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)$ ]]; do
            past_deadline && { fail "job $id still $s at the deadline"; return 1; }
            sleep 0.5
        done
        chain+=("$id")
        [ "$s" = COMPLETED ] || { fail "job $id ended $s: $(tail -5 "ipmpi-$id.log")"; return 1; }
        head -1 "ipmpi-$id.log" | grep -q "^ipmpi job $id: " ||
            fail "job $id: its log does not begin with the job's first line (truncated?)"
        id=$(sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p' "ipmpi-$id.log")
    done
}

submit() { # submit OUTDIR [SBATCH OPTIONS...]
    local outdir=$1
    shift
    sbatch --parsable --ntasks=2 "$@" "$JOB" "$CONFIG" "$outdir" "${SETS[@]}"
}

# keeps_prefix FILE SNAPSHOT: FILE still begins with SNAPSHOT's bytes.
keeps_prefix() {
    cmp -s -n "$(stat -c %s "$2")" "$1" "$2" ||
        fail "$1 no longer begins with what it held earlier (truncated?)"
}

same_as_straight() { # same_as_straight CASE
    "$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same straight.nc "$1/tishby.nc" >"$1.same" ||
        fail "$1: the output differs from the uninterrupted run: $(cat "$1.same")"
}

# ---- the cases ------------------------------------------------------------

# slurmctld checks time limits every 30 s from its start, and signals a job
# whose remaining time is within its --signal time at a check. With --time=1
# and @58 that is the first check from 2 s after the start. The three jobs are
# submitted together 6 s before a check: the time-limit signal then comes
# early in the run whatever the machine's speed (a run finished before the
# signal would test nothing), while the other two jobs share the cores.
sleep_until_before_check() {
    sleep "$(awk -v t0="$ctld_started" -v now="$EPOCHREALTIME" \
        'BEGIN { k = int((now - t0 + 6) / 30) + 1; print t0 + 30 * k - 6 - now }')"
}

# The signal comes at Slurm's first limit check after the start (every 30 s),
# so a job may also get it before ipmpi has set its handler (the script then
# resubmits on status 138); at least one stop must have been a checkpoint.
check_limit_case() {
    local logs
    finish_chain "$limit_job" || return
    logs=("${chain[@]/#/ipmpi-}")
    logs=("${logs[@]/%/.log}")
    [ ${#chain[@]} -ge 2 ] || fail "limit: no resubmission (jobs ${chain[*]})"
    grep -q 'time limit near' "${logs[0]}" ||
        fail "limit: the first job got no time-limit signal: $(tail -3 "${logs[0]}")"
    cat "${logs[@]}" | grep -Eq '^stopped early at epoch [0-9]+ on signal SIGUSR1' ||
        fail "limit: no run stopped with a checkpoint on the signal"
    cat "${logs[@]:1}" | grep -q "^resuming after epoch [0-9]* from limit/tishby.ckpt" ||
        fail "limit: no resubmitted job continued from the checkpoint"
    grep -q "^done: $EPOCHS epochs" "${logs[-1]}" || fail "limit: the last job did not finish"
    echo "limit: jobs ${chain[*]}, stopped at epochs $(cat "${logs[@]}" |
        sed -n 's/^stopped early at epoch \([0-9]*\).*/\1/p' | paste -sd ' ')"
    same_as_straight limit
}

requeue_first_job() {
    wait_for_line "$requeue_job" '^epoch +[0-9]{3,}/' || return
    cp "ipmpi-$requeue_job.log" requeue.before
    scontrol requeue "$requeue_job" || fail "scontrol requeue failed"
}

check_requeue_case() {
    [ -e requeue.before ] || return
    finish_chain "$requeue_job" || return
    [ ${#chain[@]} -eq 1 ] || fail "requeue: the job resubmitted itself as well (${chain[*]})"
    keeps_prefix "ipmpi-$requeue_job.log" requeue.before
    grep -q "^resuming after epoch [0-9]* from requeue/tishby.ckpt" "ipmpi-$requeue_job.log" ||
        fail "requeue: the requeued job did not continue from the checkpoint: $(grep 'ipmpi job' "ipmpi-$requeue_job.log")"
    grep -q "^done: $EPOCHS epochs" "ipmpi-$requeue_job.log" || fail "requeue: the run did not finish"
    echo "requeue: job $requeue_job, $(scontrol show job "$requeue_job" | grep -o 'Restarts=[0-9]*')"
    same_as_straight requeue
}

signal_first_job() {
    wait_for_line "$signal_job" '^epoch +[0-9]+/' || return
    cp "ipmpi-$signal_job.log" signal.before
    scancel --signal=USR1 "$signal_job" || fail "scancel --signal=USR1 failed"
}

check_signal_case() {
    [ -e signal.before ] || return
    local aside
    finish_chain "$signal_job" || return
    [ ${#chain[@]} -ge 2 ] || fail "signal: no resubmission (jobs ${chain[*]})"
    keeps_prefix "ipmpi-$signal_job.log" signal.before
    grep -Eq '^stopped early at epoch [0-9]+ on signal SIGUSR1' "ipmpi-$signal_job.log" ||
        fail "signal: the run did not stop on SIGUSR1: $(tail -3 "ipmpi-$signal_job.log")"
    grep -q "^resuming after epoch [0-9]* from signal/tishby.ckpt" "ipmpi-${chain[1]}.log" ||
        fail "signal: job ${chain[1]} did not continue from the checkpoint"
    grep -q "^done: $EPOCHS epochs" "ipmpi-${chain[-1]}.log" || fail "signal: the last job did not finish"
    aside=(signal/tishby.earlier-*.nc)
    { [ ${#aside[@]} -eq 1 ] && cmp -s "${aside[0]}" stale.nc; } ||
        fail "signal: the earlier output was not moved aside intact: $(ls signal)"
    echo "signal: jobs ${chain[*]}, earlier output kept as ${aside[0]}"
    same_as_straight signal
}

# shellcheck disable=SC2046  # one argument per variable
unset $(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_')
trap cleanup EXIT
install_slurm
write_config
start_daemons
# Eight ranks share the two cores: let idle ranks yield instead of spinning.
export OMPI_MCA_mpi_yield_when_idle=1

"$MPIRUN" 2 "$IPMPI" "$CONFIG" --set run.output=straight.nc "${SETS[@]}" >straight.out 2>&1 &
straight=$!
mkdir signal && head -c 5000 /dev/urandom >stale.nc && cp stale.nc signal/tishby.nc
sleep_until_before_check
limit_job=$(submit limit --time=1 --signal=B:USR1@58) || fail "sbatch failed"
requeue_job=$(submit requeue --time=10) || fail "sbatch failed"
signal_job=$(submit signal --time=10) || fail "sbatch failed"
signal_first_job
requeue_first_job
wait "$straight" || fail "the straight run failed: $(tail -3 straight.out)"
straight=
check_limit_case
check_requeue_case
check_signal_case
echo "took ${SECONDS}s"
finish
