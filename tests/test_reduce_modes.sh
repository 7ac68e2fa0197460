#!/usr/bin/env bash
# Every NetCDF variable is bitwise the same on 1, 2, 3, 4 and 8 ranks, and
# with [run] reduce = partitioned and tree: 6 replicas (8 ranks leave two
# without any), both planes, all estimators, a wide layer (fingerprinted
# patterns, two words on the wire) and adaptive bins.
. "$(dirname "$0")/lib.sh"
needs_python
cd "$WORK"
cat >job.ini <<'INI'
[run]
seed = 5
replicas = 6
[data]
source = tishby12
train_fraction = 0.75
[network]
layers = dense:30:tanh, dense:5:relu, dense:3:tanh, dense:2:softmax
[training]
epochs = 6
batch_size = 128
learning_rate = 0.01
[information]
epochs = every:3
range = adaptive
on = all
INI
runs=()
for np in 1 2 3 4 8; do
    for reduce in partitioned tree; do
        [ "$np" -eq 1 ] && [ "$reduce" = tree ] && continue
        [ "$reduce" = tree ] && [ "$np" -eq 4 ] && continue
        out=np$np-$reduce
        "$MPIRUN" $np "$IPMPI" --set run.output=$out.nc --set run.reduce=$reduce job.ini >$out.log 2>&1 ||
            fail "-np $np reduce = $reduce failed: $(tail -3 $out.log)"
        grep -q "^exchange (rank 0, reduce $( [ $np -eq 1 ] && echo none || echo $reduce )" $out.log ||
            fail "-np $np: the summary does not name reduce = $reduce: $(grep '^exchange' $out.log)"
        runs+=($out.nc)
    done
done
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same "${runs[@]}" ||
    fail "results depend on the rank count or the reduce"

# A reduce that does not exist is refused, naming the key and the choices.
"$IPMPI" --check --set run.reduce=ring job.ini >bad.out 2>bad.err && fail "reduce = ring accepted"
grep -q "\[run\] reduce.*ring" bad.err || fail "reduce = ring: $(cat bad.err)"
finish
