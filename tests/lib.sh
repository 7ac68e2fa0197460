# Shared by the script tests: where things are, and a scratch directory.
set -u
: "${IPMPI:?IPMPI must name the ipmpi binary (meson test sets it)}"
: "${IPMPI_SOURCE_ROOT:?}"
PY=${IPMPI_PYTHON:-/usr/bin/python3}
MPIRUN="$IPMPI_SOURCE_ROOT/tests/mpirun.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

finish() {
    [ "$failures" -eq 0 ] && echo "all checks passed" || echo "$failures check(s) failed"
    [ "$failures" -eq 0 ]
}

# on_1_2_4_ranks KIND: runs KIND.ini on 1, 2 and 4 ranks (KIND1.nc ...), then
# checks the three files bitwise equal and KIND2.nc's estimates against the
# independent numpy implementation (tests/mi_reference.py).
on_1_2_4_ranks() {
    local kind=$1 np
    for np in 1 2 4; do
        "$MPIRUN" $np "$IPMPI" --set run.output=$kind$np.nc $kind.ini >$kind$np.log 2>&1 ||
            fail "$kind -np $np failed: $(tail -3 $kind$np.log)"
    done
    "$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same ${kind}1.nc ${kind}2.nc ${kind}4.nc \
        >same-$kind.txt 2>&1 || fail "$kind depends on the rank count: $(cat same-$kind.txt)"
    "$PY" "$IPMPI_SOURCE_ROOT/tests/mi_reference.py" ${kind}2.nc >reference-$kind.txt ||
        fail "$kind: estimates differ from numpy: $(tail -5 reference-$kind.txt)"
}

needs_python() {
    if ! "$PY" -c 'import numpy, netCDF4' 2>/dev/null; then
        echo "skipped: $PY lacks numpy/netCDF4"
        exit 77
    fi
}

# Fault injection and forced blocks exist only in a build configured with
# -Dtest_hooks=true (tests/run.sh's sanitizer build).
needs_test_hooks() {
    if [ "${IPMPI_TEST_HOOKS:-0}" != 1 ]; then
        echo "skipped: this build has no test hooks (configure with -Dtest_hooks=true)"
        exit 77
    fi
}
