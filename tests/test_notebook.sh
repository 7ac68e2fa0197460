#!/usr/bin/env bash
# jobs/ipmpi-run.ipynb executes from top to bottom on a small run, with
# Debian's jupyter-nbconvert and python3-ipykernel; skipped (77) without them.
. "$(dirname "$0")/lib.sh"
needs_python
if ! command -v jupyter-nbconvert >/dev/null || ! "$PY" -c 'import ipykernel, nbclient, xarray, matplotlib' 2>/dev/null; then
    echo "skipped: needs jupyter-nbconvert, python3-ipykernel and xarray, matplotlib for $PY"
    exit 77
fi
cd "$WORK" || exit 1
cat >job.ini <<'INI'
[run]
replicas = 2
output = run.nc
[data]
source = tishby12
[network]
layers = dense:6:tanh, dense:4:tanh, dense:2:softmax
[training]
epochs = 20
batch_size = 128
[information]
epochs = all
layers = 2, 3
INI
"$MPIRUN" 1 "$IPMPI" job.ini >run.log 2>&1 || fail "run failed: $(tail -3 run.log)"

export IPMPI_RUN="$WORK/run.nc" PYTHONPATH="$IPMPI_SOURCE_ROOT/python"
export JUPYTER_RUNTIME_DIR="$WORK/jupyter" JUPYTER_DATA_DIR="$WORK/jupyter" PYDEVD_DISABLE_FILE_VALIDATION=1
if ! jupyter-nbconvert --to notebook --execute --ExecutePreprocessor.timeout=300 \
        --output "$WORK/executed.ipynb" "$IPMPI_SOURCE_ROOT/jobs/ipmpi-run.ipynb" >nb.log 2>&1; then
    fail "the notebook failed: $(grep -v 'Debugger\|frozen\|Xfrozen\|PYDEVD' nb.log | tail -8)"
else
    # Every code cell ran, none raised, the figures and the CSV lines came out.
    "$PY" - "$WORK/executed.ipynb" <<'PYEOF' || fail "executed notebook: see above"
import json, sys
cells = [c for c in json.load(open(sys.argv[1]))["cells"] if c["cell_type"] == "code"]
outputs = [o for c in cells for o in c["outputs"]]
problems = [o.get("ename") for o in outputs if o["output_type"] == "error"]
images = sum("image/png" in o.get("data", {}) for o in outputs)
text = "".join("".join(o.get("text", "")) for o in outputs)
ok = (not problems and all(c["execution_count"] for c in cells) and images >= 3
      and "T3 dense:2:softmax" in text and "epoch,replica,layer,estimator,quantity,value" in text)
if not ok:
    print(f"errors {problems}, {images} images, text {text[:300]!r}")
sys.exit(0 if ok else 1)
PYEOF
fi
# A run of the simple estimator alone (as jobs/seed-experiment1.ini): the
# notebook takes the estimator the run has.
"$IPMPI" job.ini --set information.estimators=simple --set run.output="$WORK/simple.nc" \
    >simple.log 2>&1 || fail "simple run failed: $(tail -3 simple.log)"
IPMPI_RUN="$WORK/simple.nc" jupyter-nbconvert --to notebook --execute \
    --ExecutePreprocessor.timeout=300 --output "$WORK/simple.ipynb" \
    "$IPMPI_SOURCE_ROOT/jobs/ipmpi-run.ipynb" >nb-simple.log 2>&1 ||
    fail "the notebook on a simple-only run failed: $(grep -v 'Debugger\|frozen\|PYDEVD' nb-simple.log | tail -8)"
# The notebook in the repository carries no outputs (they are made here).
"$PY" -c 'import json, sys; nb = json.load(open(sys.argv[1])); sys.exit(any(c.get("outputs") for c in nb["cells"]))' \
    "$IPMPI_SOURCE_ROOT/jobs/ipmpi-run.ipynb" || fail "jobs/ipmpi-run.ipynb is stored with outputs"
finish
