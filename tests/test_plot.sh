#!/usr/bin/env bash
# ipmpi-plot (build/ipmpi-plot, the command line of python/ipmpi) on a real
# (small) run: every figure kind as PNG and PDF with the right magic bytes,
# the default output name, and the one-line errors, a Python without the
# packages it needs included.
. "$(dirname "$0")/lib.sh"
needs_python
if ! "$PY" -c 'import matplotlib, xarray' 2>/dev/null; then
    echo "skipped: $PY lacks matplotlib or xarray"
    exit 77
fi
PLOT="$(dirname "$IPMPI")/ipmpi-plot"
[ -x "$PLOT" ] || { echo "FAIL: no $PLOT beside $IPMPI"; exit 1; }
cd "$WORK" || exit 1

cat >job.ini <<'INI'
[run]
seed = 3
replicas = 2
output = run.nc
[data]
source = tishby12
train_fraction = 0.8
[network]
layers = dense:6:tanh, dense:4:tanh, dense:3:tanh, dense:2:softmax
[training]
epochs = 12
batch_size = 128
[information]
epochs = all
bins = 30
range = -1, 1
estimators = simple, pooled, sampled
on = all
INI
"$MPIRUN" 2 "$IPMPI" job.ini >run.log 2>&1 || fail "run failed: $(tail -3 run.log)"
"$MPIRUN" 1 "$IPMPI" job.ini --set run.replicas=1 --set information.estimators=pooled \
    --set data.train_fraction=1 --set information.on=train --set run.output=pooled.nc \
    >pooled.log 2>&1 || fail "pooled-only run failed: $(tail -3 pooled.log)"

# magic FILE: the first bytes of a PNG, PDF or SVG file, printably.
magic() {
    case "$1" in
        *.png) head -c 4 "$1" | tail -c 3 ;;   # \x89PNG
        *.pdf) head -c 4 "$1" ;;
        *.svg) grep -c '<svg' "$1" >/dev/null && echo svg ;;
    esac
}

check_figure() { # FILE WHAT: FILE is non-empty and has its format's magic
    local out=$1 what=$2 want
    [ -s "$out" ] || { fail "$what: $out missing or empty"; return; }
    case "$out" in *.png) want=PNG ;; *.pdf) want=%PDF ;; *.svg) want=svg ;; esac
    [ "$(magic "$out")" = "$want" ] || fail "$what: $out is not a ${want} file"
}

expect_figure() { # FILE ARGS...: the command line succeeds and writes FILE
    local out=$1
    shift
    rm -f "$out"
    if ! "$PY" "$PLOT" "$@" >plot.log 2>&1; then
        fail "ipmpi-plot $* failed: $(tail -2 plot.log)"
        return
    fi
    check_figure "$out" "ipmpi-plot $*"
}

# Importing matplotlib costs a second or more, so the figures are drawn in one
# python process through the script's own main(argv); the command line
# itself is exercised below (default output, errors).
cat >figures.txt <<'LIST'
fig1 png pdf --estimator pooled
fig2 png pdf --estimator sampled
fig3 png pdf --estimator simple
fig4 png pdf --estimator all
fig5 png pdf --curves
fig6 png pdf --test
fig7 png pdf --test --estimator all --curves
fig8 png --layers 1,3-4 --epochs 2:9
fig9 svg --epochs :0
fig10 png pdf --color-by layer
fig11 png pdf --style epochs
fig12 png --style epochs --estimator all --test
fig13 png --colour-by layer --estimator simple --layers 2-4
LIST
PYTHONPATH="$IPMPI_SOURCE_ROOT/python" "$PY" - <<'PYEOF' >figures.log 2>&1 ||
import sys
from ipmpi.cli import plot_main
status = 0
for line in open("figures.txt"):
    name, *words = line.split()
    formats = [w for w in words if w in ("png", "pdf", "svg")]
    opts = words[len(formats):]
    for ext in formats:
        if plot_main(["run.nc", *opts, "-o", f"{name}.{ext}"]) != 0:
            print(f"FAIL: ipmpi-plot {' '.join(opts)} -o {name}.{ext}")
            status = 1
if plot_main(["run.nc", "--curves", "--test"]) != 0:    # default name beside the run
    status = 1
sys.exit(status)
PYEOF
    fail "drawing the figures failed: $(tail -3 figures.log)"
while read -r name words; do
    for ext in $words; do
        case "$ext" in png | pdf | svg) check_figure "$name.$ext" "ipmpi-plot $words" ;; esac
    done
done <figures.txt
check_figure run-curves-test.png "ipmpi-plot --curves --test (default output)"

# The command line; the default output lies beside the run, named after it.
mkdir -p sub && cp run.nc sub/
expect_figure sub/run.png sub/run.nc

# png_width FILE: the pixel width from the PNG header.
png_width() {
    "$PY" -c 'import struct, sys; print(struct.unpack(">I", open(sys.argv[1], "rb").read()[16:20])[0])' "$1"
}
# About 150 dpi: a single plane is 5.6 in wide, so well over 600 px; `all`
# puts three panels side by side, so it is much wider than one.
one=$(png_width fig1.png)
three=$(png_width fig4.png)
[ "$one" -gt 600 ] || fail "single plane only $one px wide: dpi too low"
[ "$three" -gt $((2 * one)) ] || fail "--estimator all ($three px) is not ~3 panels wide (one: $one px)"

# Non-ipmpi inputs made here with python.
echo "not a netcdf file" >text.nc
"$PY" - <<'PYEOF'
from netCDF4 import Dataset
with Dataset("other.nc", "w") as d:      # a NetCDF file, but not an ipmpi run
    d.createDimension("t", 2)
    d.createVariable("t", "i4", ("t",))[:] = [1, 2]
with Dataset("empty.nc", "w") as d:      # an ipmpi run before its first record
    d.ipmpi_version = "0"
    d.createDimension("epoch", None)
    d.createVariable("epoch", "i4", ("epoch",))
PYEOF

expect_error() { # PATTERN ARGS...: exit 1, one "ipmpi-plot: " line matching PATTERN, no traceback
    local pattern=$1
    shift
    ${PY_BARE:-$PY} "$PLOT" -o err.png "$@" >out.log 2>err.log
    local rc=$?
    [ "$rc" -eq 1 ] || fail "ipmpi-plot $*: exit status $rc, want 1"
    local said
    said=$(head -c 300 err.log)
    grep -q '^ipmpi-plot: ' err.log || fail "ipmpi-plot $*: message lacks the ipmpi-plot: prefix: $said"
    grep -qi -- "$pattern" err.log || fail "ipmpi-plot $*: message does not say '$pattern': $said"
    grep -q Traceback err.log && fail "ipmpi-plot $*: printed a traceback"
    [ "$(wc -l <err.log)" -eq 1 ] || fail "ipmpi-plot $*: want one line on stderr, got $(wc -l <err.log)"
    [ -e err.png ] && fail "ipmpi-plot $*: wrote a figure despite the error"
    rm -f err.png
}

expect_error "no such file" missing.nc
expect_error "not a readable NetCDF" text.nc
expect_error "not an ipmpi run" other.nc
expect_error "no logged epochs" empty.nc
expect_error "did not compute the simple estimator" pooled.nc --estimator simple
expect_error "no test plane" pooled.nc --test
expect_error "no logged epoch in the range" run.nc --epochs 100:
expect_error "layers 1..4" run.nc --layers 5
expect_error "expected a list" run.nc --layers two
expect_error "expected A:B" run.nc --epochs 3
expect_error "unsupported format" run.nc -o fig.jpg
expect_error "use color_by epoch" run.nc --style epochs --color-by layer

# A Python that cannot import numpy, netCDF4, xarray or matplotlib (-S: no
# site packages) is told so in one line, not by a traceback.
PY_BARE="$PY -S" expect_error "cannot import numpy" run.nc

finish
