#!/usr/bin/env bash
# The KDE bounds against an independent numpy implementation
# (tests/kde_reference.py): test_kde_mpi on 2 ranks writes its problems (one
# network as Saxe et al., pooled replicas, ReLU-like layers with repeated
# points, ...) and its bounds; numpy recomputes all ten values from the
# activations and must agree to 1e-9 bits (1e-9 relative above 1).
# usage: test_kde_reference.sh TEST_KDE_MPI
. "$(dirname "$0")/lib.sh"
if ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "skipped: $PY lacks numpy"
    exit 77
fi
"$PY" "$IPMPI_SOURCE_ROOT/tests/kde_reference.py" --self-test || fail "numpy reference self-test"
"$MPIRUN" 2 "$1" --dump "$WORK" >"$WORK/run.log" 2>&1 || fail "test_kde_mpi failed: $(tail -3 "$WORK/run.log")"
"$PY" "$IPMPI_SOURCE_ROOT/tests/kde_reference.py" --compare "$WORK" || fail "numpy reference disagrees"
finish
