#!/usr/bin/env bash
# A failure on one rank (injected with IPMPI_INJECT_FAULT) stops every rank
# promptly with one message and status 1: no hang; what was logged is kept.
. "$(dirname "$0")/lib.sh"
needs_test_hooks
cd "$WORK"
run_with_fault() { # run_with_fault SPEC: 3 ranks, 3 replicas, 10 epochs
    IPMPI_INJECT_FAULT=$1 timeout 120 "$MPIRUN" 3 "$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" \
        --set training.epochs=10 --set information.epochs=all --set run.output=fault.nc \
        >fault.out 2>fault.err
}
rm -f fault.nc
run_with_fault setup:1
status=$?
[ $status -eq 1 ] || fail "setup fault on rank 1: exit status $status (124 = hang), expected 1"
[ "$(grep -c '^ipmpi: rank 1: injected fault in setup' fault.err)" -eq 1 ] ||
    fail "setup fault: message not printed exactly once: $(cat fault.err)"
[ ! -e fault.nc ] || fail "setup fault: an output file was written"

# A rank whose counting fails before the reduce, with each reduce (the
# partitioned one on 3 ranks merges its filter first): all stop at once.
for reduce in partitioned tree; do
    IPMPI_INJECT_FAULT=count:1 timeout 120 "$MPIRUN" 3 "$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" \
        --set training.epochs=10 --set information.epochs=all --set run.reduce=$reduce \
        --set run.output=count-$reduce.nc >fault.out 2>fault.err
    status=$?
    [ $status -eq 1 ] || fail "count fault, $reduce: exit status $status (124 = hang), expected 1"
    [ "$(grep -c '^ipmpi: rank 1: injected fault in count' fault.err)" -eq 1 ] ||
        fail "count fault, $reduce: message not printed exactly once: $(cat fault.err)"
done

run_with_fault epoch:2:4
status=$?
[ $status -eq 1 ] || fail "epoch fault on rank 2: exit status $status (124 = hang), expected 1"
[ "$(grep -c '^ipmpi: rank 2: injected fault in epoch' fault.err)" -eq 1 ] ||
    fail "epoch fault: message not printed exactly once: $(cat fault.err)"
if command -v ncdump >/dev/null; then
    ncdump -v epoch fault.nc >dump.txt 2>&1 || fail "fault.nc unreadable: $(cat dump.txt)"
    grep -q 'epoch = 0, 1, 2, 3 ;' dump.txt || fail "epochs 0-3 not kept: $(tail -3 dump.txt)"
fi
finish
