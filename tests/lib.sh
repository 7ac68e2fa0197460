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
