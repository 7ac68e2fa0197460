#!/usr/bin/env bash
# jobs/scaling.sh as a user runs it, on a small job: both modes say which ran,
# keep a log and a NetCDF file per rank count, and write the CSV (every
# column, each row's values taken from its run's log, speedup and efficiency
# recomputed here from the wall times) and the plot; it refuses a non-empty
# output directory and an unknown mode, and stops at a failing run.
. "$(dirname "$0")/lib.sh"
SCALING="$IPMPI_SOURCE_ROOT/jobs/scaling.sh"
cd "$WORK" || exit 1
export IPMPI MPIRUN_ARGS="--mca btl self,vader"

cat >job.ini <<'INI'
[run]
seed = 5
# one checkpoint path for every run of the study: the script gives each its own
checkpoint = shared.ckpt
[data]
source = tishby12
[network]
layers = dense:6:tanh, dense:4:tanh, dense:2:softmax
[training]
epochs = 20
batch_size = 256
[information]
epochs = log:5
bins = 30
range = -1, 1
estimators = simple, pooled, sampled
INI

columns="mode,ranks,replicas,logged,wall_s,train_s,forward_s,binning_s,exchange_s,output_s,wait_s,\
other_s,rank0_sent_bytes_per_logged,rank0_received_bytes_per_logged,peak_mb_rank0,peak_mb_max,\
speedup,efficiency"

# check_study DIR MODE REPLICAS...: the CSV of a study on ranks 3 then 2
# (P0 = 2 though listed second), one replica count per row.
check_study() {
    local dir=$1 mode=$2
    shift 2
    [ "$(head -n 1 "$dir/scaling.csv")" = "$columns" ] || fail "$mode: CSV header: $(head -n 1 "$dir/scaling.csv")"
    [ "$(($(wc -l <"$dir/scaling.csv") - 1))" = 2 ] || fail "$mode: expected 2 rows in the CSV"
    for np in 2 3; do
        [ -s "$dir/np$np.log" ] && [ -s "$dir/np$np.nc" ] || fail "$mode: no log or output for -np $np"
    done
    [ "$(head -c 4 "$dir/scaling.png" 2>/dev/null | tail -c 3)" = PNG ] || fail "$mode: no PNG plot"
    "$PY" - "$dir" "$mode" "$@" <<'PY' || fail "$mode: CSV values"
import csv, re, sys
d, mode, reps = sys.argv[1], sys.argv[2], [int(r) for r in sys.argv[3:]]
rows = list(csv.DictReader(open(f"{d}/scaling.csv")))
assert [r["mode"] for r in rows] == [mode] * 2, rows
assert [int(r["ranks"]) for r in rows] == [3, 2], rows
assert [int(r["replicas"]) for r in rows] == reps, (rows, reps)
wall = {int(r["ranks"]): float(r["wall_s"]) for r in rows}
for r in rows:
    p = int(r["ranks"])
    log = open(f"{d}/np{p}.log").read()
    assert f"wall {r['wall_s']}s" in log, (p, r["wall_s"])
    assert re.search(rf"done: \d+ epochs, {r['logged']} logged, {r['replicas']} replicas?", log), p
    for col, word in [("train_s", "train"), ("binning_s", "binning\\+tables"),
                      ("exchange_s", "exchange"), ("wait_s", "wait")]:
        assert re.search(rf" {word} {re.escape(r[col])}s", log), (p, col, r[col])
    sent, received = int(r["rank0_sent_bytes_per_logged"]), int(r["rank0_received_bytes_per_logged"])
    assert sent > 0 and received > 0, (p, sent, received)
    assert float(r["peak_mb_max"]) >= float(r["peak_mb_rank0"]) > 0, r
    if mode == "strong":
        speedup = wall[2] / wall[p] * 2
        efficiency = speedup / p
    else:
        efficiency = wall[2] / wall[p]
        speedup = efficiency * p
    assert abs(float(r["speedup"]) - speedup) < 2e-3, (p, r["speedup"], speedup)
    assert abs(float(r["efficiency"]) - efficiency) < 2e-3, (p, r["efficiency"], efficiency)
PY
}

bash "$SCALING" --mode strong --ranks "3 2" --replicas 6 --out strong job.ini >strong.txt 2>&1 ||
    fail "strong study failed: $(tail -3 strong.txt)"
grep -q "^strong scaling of job.ini" strong.txt || fail "strong: the mode is not named: $(head -1 strong.txt)"
grep -q "3 ranks: speedup" strong.txt || fail "strong: no speedup printed"
check_study strong strong 6 6

bash "$SCALING" --mode weak --ranks "3 2" --replicas 1 --out weak job.ini >weak.txt 2>&1 ||
    fail "weak study failed: $(tail -3 weak.txt)"
grep -q "^weak scaling of job.ini" weak.txt || fail "weak: the mode is not named: $(head -1 weak.txt)"
grep -q "3 ranks: scaled speedup" weak.txt || fail "weak: no scaled speedup printed"
check_study weak weak 3 2

# refusals: a non-empty output directory (its files untouched), a bad mode,
# and a run that fails (the study stops, naming its log)
cp strong/scaling.csv kept.csv
bash "$SCALING" --ranks 1 --replicas 2 --out strong job.ini >again.txt 2>&1 && fail "a non-empty --out was reused"
grep -q "not empty" again.txt || fail "no reason for refusing --out: $(cat again.txt)"
cmp -s kept.csv strong/scaling.csv || fail "a refused study changed the earlier CSV"
bash "$SCALING" --mode fast --ranks 1 --out bad job.ini >mode.txt 2>&1 && fail "--mode fast accepted"
grep -q "strong or weak" mode.txt || fail "no reason for refusing --mode: $(cat mode.txt)"
# strong scaling with replicas = 0 (one per rank) would be weak: refused
bash "$SCALING" --ranks "1 2" --out zero job.ini --set run.replicas=0 >zero.txt 2>&1 &&
    fail "strong scaling with replicas = 0 accepted"
grep -q "needs a fixed replica count" zero.txt || fail "no reason for refusing replicas = 0: $(cat zero.txt)"
for bad in 0 two; do
    bash "$SCALING" --ranks "$bad" --out bad job.ini >ranks.txt 2>&1 && fail "--ranks $bad accepted"
    grep -q "is not a rank count" ranks.txt || fail "no reason for refusing --ranks $bad: $(cat ranks.txt)"
done
[ ! -e zero ] && [ ! -e bad ] || fail "a refused study made its --out folder"
bash "$SCALING" --ranks 1 --replicas 2 --out broken job.ini --set run.no_such_key=1 >broken.txt 2>&1 &&
    fail "a failing run did not stop the study"
grep -q "np 1 failed (log: .*np1.log)" broken.txt || fail "the failing run's log is not named: $(cat broken.txt)"
finish
