#!/usr/bin/env bash
# The MI stopping criterion in real runs. scope = ensemble: the run stops at
# the same epoch, bit for bit the same file, on 1, 2 and 4 ranks; stop_J
# equals I(T;Y) - beta I(X;T) of the pooled estimates, and an independent
# replay of the rule on stop_J stops at the recorded epoch. A run cut short
# (fewer epochs; logged epochs do not depend on the count) and continued
# with --restart carries the rule's state and
# ends as the straight run. scope = replica: each replica stops on its own,
# trains no more after (its loss stays put), on any rank count.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
cat >job.ini <<'INI'
[run]
seed = 3
replicas = 4
output = run.nc
[training]
epochs = 1000
batch_size = 64
learning_rate = 0.003
batches_per_epoch = 1
[information]
epochs = every:5
[stopping]
criterion = mi
beta = 1
check_every = 10
patience = 4
tolerance = 0.01
INI

for np in 1 2 4; do
    "$MPIRUN" $np "$IPMPI" job.ini --set run.output=np$np.nc >np$np.out 2>np$np.err ||
        fail "-np $np: exit status $?: $(tail -2 np$np.err)"
done
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same np1.nc np2.nc np4.nc >same.txt ||
    fail "stopped runs differ across rank counts: $(cat same.txt)"
grep -q '^stopping the ensemble at epoch [0-9]*: J = I(T;Y) - 1 I(X;T) of layer 6 (pooled)' np2.out ||
    fail "no stop line: $(grep -v '^epoch' np2.out | head -3)"
[ "$(grep -c '^stopping the ensemble' np2.out)" -eq 1 ] || fail "stop line not printed once"

cat >check_stop.py <<'PY'
import sys
import numpy as np
from netCDF4 import Dataset

path, beta, tol, patience, every = sys.argv[1], 1.0, 0.01, 4, 10
with Dataset(path) as ds:
    ds.set_auto_mask(False)
    epochs = ds["epoch"][:]
    j = ds["stop_J"][:]
    stop = ds["stop_epoch"][:]
    xt, ty = ds["I_XT_pooled"][:, -1], ds["I_TY_pooled"][:, -1]
checks = (epochs > 0) & (epochs % every == 0)
bad = 0
if not np.all(stop == stop[0]) or stop[0] < 0:
    print("stop_epoch", stop); bad += 1
if epochs[-1] != stop[0]:
    print("last logged epoch", epochs[-1], "is not the stop epoch", stop[0]); bad += 1
if not np.array_equal(j[checks], ty[checks] - beta * xt[checks]):
    print("stop_J is not I(T;Y) - beta I(X;T)"); bad += 1
if np.any(j[~checks] < 9e36):
    print("stop_J set at an epoch that is no check"); bad += 1
best, stale, stopped_at = None, 0, -1
for e, v in zip(epochs[checks], j[checks]):
    if best is None or v > best + tol * abs(best):
        best, stale = v, 0
    else:
        stale += 1
    if stale >= patience:
        stopped_at = e
        break
if stopped_at != stop[0]:
    print("the rule replayed stops at", stopped_at, "the run at", stop[0]); bad += 1
print("stop epoch", stop[0], "checks", int(checks.sum()), "problems", bad)
sys.exit(1 if bad else 0)
PY
"$PY" check_stop.py np1.nc >check.txt || fail "stop record wrong: $(cat check.txt)"
stop_epoch=$(sed -n 's/^stop epoch \([0-9]*\) .*/\1/p' check.txt)
[ -n "$stop_epoch" ] && [ "$stop_epoch" -lt 1000 ] || fail "did not stop early: $(cat check.txt)"

# Cut short before the stop (epochs is a key a restart may change), then
# continued: the rule's state travels in the checkpoint.
half=$((stop_epoch / 2))
"$MPIRUN" 2 "$IPMPI" job.ini --set training.epochs=$half >cut.out 2>cut.err ||
    fail "cut-short run failed: $(tail -2 cut.err)"
"$MPIRUN" 4 "$IPMPI" job.ini --restart >resume.out 2>resume.err ||
    fail "restart failed: $(tail -2 resume.err)"
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same np1.nc run.nc >same2.txt ||
    fail "cut at $half and restarted differs from the straight run: $(cat same2.txt)"

# scope = replica.
for np in 1 3; do
    "$MPIRUN" $np "$IPMPI" job.ini --set stopping.scope=replica --set stopping.estimator=simple \
        --set run.output=rep$np.nc >rep$np.out 2>rep$np.err || fail "replica scope -np $np failed"
done
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same rep1.nc rep3.nc >same3.txt ||
    fail "replica scope differs across rank counts: $(cat same3.txt)"
"$PY" - rep1.nc >replica.txt <<'PY' || fail "replica scope: $(cat replica.txt)"
import sys
import numpy as np
from netCDF4 import Dataset
with Dataset(sys.argv[1]) as ds:
    ds.set_auto_mask(False)
    epochs, loss, stop = ds["epoch"][:], ds["loss"][:], ds["stop_epoch"][:]
    j, xt, ty = ds["stop_J"][:], ds["I_XT_simple"][:, :, -1], ds["I_TY_simple"][:, :, -1]
bad = 0
for r, s in enumerate(stop):
    if s < 0:
        continue
    after = epochs >= s
    if not np.all(loss[after, r] == loss[after, r][0]):
        print("replica", r, "kept training after its stop at", s); bad += 1
    at = np.where(epochs == s)[0][0]
    if j[at, r] != ty[at, r] - xt[at, r]:
        print("replica", r, "J at its stop is not its own simple objective"); bad += 1
if np.all(stop < 0):
    print("no replica stopped"); bad += 1
print("stops", stop.tolist(), "problems", bad)
sys.exit(1 if bad else 0)
PY
# The stop lines number replicas as the output's replica coordinate does.
"$PY" - rep1.nc rep1.out >numbers.txt <<'PY' || fail "stop lines: $(cat numbers.txt)"
import re
import sys
from netCDF4 import Dataset
with Dataset(sys.argv[1]) as ds:
    stops = {int(r): int(s) for r, s in zip(ds["replica"][:], ds["stop_epoch"][:]) if s >= 0}
said = {int(r): int(e) for r, e in re.findall(r"^stopping replica (\d+) at epoch (\d+)",
                                              open(sys.argv[2]).read(), re.M)}
print("file", stops, "lines", said)
sys.exit(0 if said == stops else 1)
PY
finish
