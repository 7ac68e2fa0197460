#!/usr/bin/env bash
# ipmpi at the machine's limit, every figure against a peer measured in this
# same invocation on this machine, one core per run unless said otherwise:
#  0. "before": the commit $BEFORE (default 5eba3fa) built beside this checkout
#     (git archive into a scratch directory), and the core's sgemm roof (OpenBLAS,
#     a 2048 x 2048 x 2048 product, one thread);
#  1. training throughput, replica-epochs per second and achieved GFLOP/s (the
#     multiply-adds of forward, weight and input gradients, x2), now and before,
#     and PyTorch's (jobs/bench_torch.py, one thread, replicas stacked) as a ratio:
#       a. the 2017 net 12-10-7-5-4-4-3-2 tanh + softmax, 20 replicas, full batch
#          of 4096, Adam (Target 1: ipmpi / PyTorch >= 6);
#       b. the seed's Experiment 2 net (jobs/seed-experiment2.ini: 5 replicas,
#          12-10-7-5-4-3-1 tanh, one batch of 101 per epoch, SGD, mse);
#       c. the fashion CNN (jobs/bench_cnn.sh, one replica; Target 4: >= 3);
#  2. Target 3: Experiment 2 end to end (MI of 6 layers at each of 1000 epochs),
#     now against before (>= 3x);
#  3. binning + counting per activation value in Experiment 2 against the
#     memory-read floor of the same data (a float32 array as large as one logged
#     epoch's activations, summed by numpy), and of a 64 MB array;
#  4. Target 2: the whole 2017 run on 2 ranks (RUN_EPOCHS epochs, default
#     10000; log:RUN_LOGS logged epochs, default 1800; 50 bins, all three
#     estimators), wall time now against before (>= 3.5x), and each layer's
#     replica-mean I(X;T) at the last epoch (within 0.1 bit of before's). The
#     longest part: minutes on a quiet machine.
#  5. Experiment 2 against the original Python estimator (jobs/baseline_original_mi.py)
#     on the same activations;
#  6. the 12-bit task by rank count (jobs/scaling.sh up to MAX_RANKS, default 8):
#     training, information and merge time, and per layer on one rank.
# usage: bash jobs/benchmark.sh [BUILD_DIR]     (default build/)
# env:   BEFORE (5eba3fa), RUN_EPOCHS (10000; 0 skips 4), RUN_LOGS (1800),
#        TRAIN_EPOCHS (100), MAX_RANKS (8), PYTHON (/usr/bin/python3 with numpy, netCDF4, torch)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
before_commit=${BEFORE:-5eba3fa}
run_epochs=${RUN_EPOCHS:-10000}
run_logs=${RUN_LOGS:-1800}
train_epochs=${TRAIN_EPOCHS:-100}
max_ranks=${MAX_RANKS:-8}
python=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cores=$(nproc) # before OMP_NUM_THREADS, which nproc obeys
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
net2017="dense:10:tanh,dense:7:tanh,dense:5:tanh,dense:4:tanh,dense:4:tanh,dense:3:tanh,dense:2:softmax"

run() { # run BINARY NP LOG ARGS...: one ipmpi run, its summary kept in LOG
    local bin=$1 np=$2 log=$3
    shift 3
    mpirun --oversubscribe --bind-to none --mca btl self,vader -np "$np" "$bin" "$@" >"$log"
}
seconds() { sed -n "s/^time (rank 0):.* $2 \([0-9.]*\)s.*/\1/p" "$1" | tail -n 1; }
wall() { sed -n 's/.*wall \([0-9.]*\)s.*/\1/p' "$1" | tail -n 1; }

echo "== 0. before = $before_commit, built in $work/before; the sgemm roof"
mkdir "$work/before"
git -C "$here" archive "$before_commit" | tar -x -C "$work/before"
(cd "$work/before" && meson setup build --buildtype=release >/dev/null && meson compile -C build ipmpi >/dev/null)
before="$work/before/build/ipmpi"
now="$build/ipmpi"
roof=$("$python" - <<'PY'
import ctypes, ctypes.util, time
import numpy as np
lib = ctypes.CDLL(ctypes.util.find_library("openblas") or "libopenblas.so.0")
n = 2048
a, b = (np.random.default_rng(1).random((n, n), dtype=np.float32) for _ in range(2))
c = np.empty((n, n), np.float32)
p = lambda m: m.ctypes.data_as(ctypes.c_void_p)
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    lib.cblas_sgemm(101, 111, 111, n, n, n, ctypes.c_float(1), p(a), n, p(b), n, ctypes.c_float(0), p(c), n)
    best = min(best, time.perf_counter() - t)
print(f"{2 * n**3 / best / 1e9:.1f}")
PY
)
echo "sgemm roof (OpenBLAS, 2048^3, 1 thread): $roof GFLOP/s"

# flops SPEC SAMPLES: training FLOPs of SAMPLES samples through a net given as
# "in:w1,w2,..." (dense) or "cnn" (the fashion CNN on 28x28 images).
flops() {
    "$python" - "$1" "$2" <<'PY'
import sys
spec, samples = sys.argv[1], int(sys.argv[2])
if spec == "cnn":  # (pixels, fan-in, outputs, needs input gradient)
    layers = [(576, 25, 8, False), (1, 1152, 64, True), (1, 64, 10, True)]
else:
    dims = [int(v) for v in spec.replace(":", ",").split(",")]
    layers = [(1, k, n, i > 0) for i, (k, n) in enumerate(zip(dims, dims[1:]))]
macs = sum(p * k * n * (3 if grad_in else 2) for p, k, n, grad_in in layers)
print(2 * macs * samples)
PY
}

# throughput NAME REPLICAS EPOCHS SAMPLES_PER_EPOCH FLOP_SPEC SECONDS_NOW SECONDS_BEFORE TORCH_S_PER_EPOCH
throughput() {
    local f
    f=$(flops "$5" "$4")
    awk -v name="$1" -v r="$2" -v e="$3" -v f="$f" -v now="$6" -v bef="$7" -v t="$8" -v roof="$roof" 'BEGIN {
        re = r * e
        printf "%-36s %9.2f %9.2f %9.2f   %6.2f %6.2f %6.2f  (roof %s)   now/before %.2f  now/torch %.2f\n",
            name, re / now, re / bef, (t > 0 ? r / t : 0), re * f / now / 1e9, re * f / bef / 1e9,
            (t > 0 ? r * f / t / 1e9 : 0), roof, bef / now, (t > 0 ? t * e / now : 0) }'
}

echo
echo "== 1. training throughput (replica-epochs/s: now, before, PyTorch; GFLOP/s: the same)"
args2017=(--set run.replicas=20 --set training.batch_size=4096 --set "network.layers=$net2017"
          --set training.epochs="$train_epochs" --set information.epochs=0)
run "$now" 1 "$work/t2017.log" "$here/jobs/tishby.ini" "${args2017[@]}" --set run.output="$work/t2017.nc"
run "$before" 1 "$work/t2017b.log" "$here/jobs/tishby.ini" "${args2017[@]}" --set run.output="$work/t2017b.nc"
torch2017=$("$python" "$here/jobs/bench_torch.py" --dense 10,7,5,4,4,3,2 --replicas 20 --batch 4096 \
    --epochs "$train_epochs" | sed -n 's/.*s\/epoch \([0-9.]*\).*/\1/p')
s2args=(--set training.epochs=1000 --set information.epochs=0)
run "$now" 1 "$work/t2.log" "$here/jobs/seed-experiment2.ini" "${s2args[@]}" --set run.output="$work/t2.nc"
run "$before" 1 "$work/t2b.log" "$here/jobs/seed-experiment2.ini" "${s2args[@]}" --set run.output="$work/t2b.nc"
torch2=$("$python" "$here/jobs/bench_torch.py" --dense 10,7,5,4,3,1 --replicas 5 --samples 1000 \
    --batch 101 --batches 1 --loss mse --optimizer sgd --epochs 1000 | sed -n 's/.*s\/epoch \([0-9.]*\).*/\1/p')
IMAGES=10000 EPOCHS=3 MI_LOGS=1 bash "$here/jobs/bench_cnn.sh" "$now" >"$work/cnn.txt"
IMAGES=10000 EPOCHS=3 MI_LOGS=1 bash "$here/jobs/bench_cnn.sh" "$before" >"$work/cnnb.txt"
rate() { sed -n "s/^$2 *\([0-9.]*\)$/\1/p" "$1"; }
cnn_now=$(rate "$work/cnn.txt" 'ipmpi (1 rank, OPENBLAS_NUM_THREADS=1)')
cnn_before=$(rate "$work/cnnb.txt" 'ipmpi (1 rank, OPENBLAS_NUM_THREADS=1)')
cnn_torch=$(rate "$work/cnn.txt" 'PyTorch (bench_torch.py, 1 thread)')
printf "%-36s %9s %9s %9s   %6s %6s %6s\n" "" now before torch now before torch
throughput "2017 net, 20 replicas, batch 4096" 20 "$train_epochs" 4096 12:10,7,5,4,4,3,2 \
    "$(seconds "$work/t2017.log" train)" "$(seconds "$work/t2017b.log" train)" "$torch2017"
throughput "Experiment 2, 5 replicas, batch 101" 5 1000 101 12:10,7,5,4,3,1 \
    "$(seconds "$work/t2.log" train)" "$(seconds "$work/t2b.log" train)" "$torch2"
# the CNN as one replica of 3 epochs of 10000 images: seconds from images/s
throughput "fashion CNN, 1 replica, batch 64" 1 3 10000 cnn \
    "$(awk -v r="$cnn_now" 'BEGIN { print 30000 / r }')" \
    "$(awk -v r="$cnn_before" 'BEGIN { print 30000 / r }')" \
    "$(awk -v r="$cnn_torch" 'BEGIN { print 10000 / r }')"

echo
echo "== 2. Experiment 2 end to end (jobs/seed-experiment2.ini, 1 rank, MI at all 1000 epochs)"
run "$now" 1 "$work/s2.log" "$here/jobs/seed-experiment2.ini" --set run.output="$work/s2.nc"
run "$before" 1 "$work/s2b.log" "$here/jobs/seed-experiment2.ini" --set run.output="$work/s2b.nc"
grep '^time' "$work/s2.log"
awk -v n="$(wall "$work/s2.log")" -v b="$(wall "$work/s2b.log")" 'BEGIN {
    printf "wall per epoch: now %.3f ms, before %.3f ms: %.2fx\n", n, b, b / n }'

echo
echo "== 3. binning + counting per activation value (Experiment 2: 5 x 1000 samples x 30 units, 1001 logged epochs)"
bin_s=$(seconds "$work/s2.log" 'binning+tables')
"$python" - "$bin_s" <<'PY'
import sys, time
import numpy as np
seconds, values = float(sys.argv[1]), 1001 * 5 * 1000 * 30
def floor(n):  # ns per float32 value to read n values once (numpy sum, best of many)
    a = np.random.default_rng(1).random(n, dtype=np.float32)
    reps = max(3, int(2e8 // n))
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t)
    return 1e9 * best / n
same, big = floor(5 * 1000 * 30), floor(16 << 20)
mine = 1e9 * seconds / values
print(f"binning+tables {mine:.3f} ns per value; memory-read floor {same:.3f} ns per value for the "
      f"same data (600 KB), {big:.3f} for 64 MB; ratio {mine / same:.1f}x the floor")
PY

if [ "$run_epochs" -gt 0 ]; then
    echo
    echo "== 4. the 2017 run: 20 replicas on 2 ranks, $run_epochs epochs, log:$run_logs, 50 bins, all estimators"
    full=(--set run.replicas=20 --set training.batch_size=4096 --set "network.layers=$net2017"
          --set training.epochs="$run_epochs" --set information.epochs=log:"$run_logs"
          --set information.bins=50 --set information.estimators=all)
    run "$now" 2 "$work/full.log" "$here/jobs/tishby.ini" "${full[@]}" --set run.output="$work/full.nc"
    run "$before" 2 "$work/fullb.log" "$here/jobs/tishby.ini" "${full[@]}" --set run.output="$work/fullb.nc"
    grep '^time' "$work/full.log" "$work/fullb.log"
    awk -v n="$(wall "$work/full.log")" -v b="$(wall "$work/fullb.log")" 'BEGIN {
        printf "wall: now %.1f s, before %.1f s: %.2fx\n", n, b, b / n }'
    "$python" - "$work/full.nc" "$work/fullb.nc" <<'PY'
import sys
from netCDF4 import Dataset
means = []
for path in sys.argv[1:]:
    with Dataset(path) as ds:
        means.append(ds["I_XT_simple"][-1].mean(axis=0))
print("replica-mean I(X;T) at the last epoch, layer by layer (now / before / difference, bits):")
for l, (a, b) in enumerate(zip(*means)):
    print(f"  T{l + 1}: {a:.4f} / {b:.4f} / {a - b:+.4f}")
print(f"largest difference {max(abs(a - b) for a, b in zip(*means)):.4f} bits")
PY
fi
echo
echo "== 5. Experiment 2 against the original estimator on the same activations"
run "$now" 1 "$work/s2act.log" "$here/jobs/seed-experiment2.ini" --set run.output="$work/s2act.nc" \
    --set training.epochs=20 --set output.activations=all
baseline=$("$python" "$here/jobs/baseline_original_mi.py" "$work/s2act.nc" 21 |
           sed -n 's/.*: \([0-9.]*\) ms per epoch/\1/p')
awk -v w="$(wall "$work/s2.log")" -v b="$baseline" 'BEGIN {
    printf "ipmpi end to end:              %8.3f ms per epoch (wall %.2fs / 1000 epochs)\n", w, w
    printf "original estimator, MI only:   %8.3f ms per epoch\n", b
    printf "ratio (original MI / ipmpi all): %6.0fx\n", b / w }'

echo
echo "== 6. 12-bit task (4096 samples, 12-10-7-5-4-3-2), 8 replicas, 200 epochs, MI every 5 epochs"
env -u OMP_NUM_THREADS IPMPI="$now" MAX_RANKS=$max_ranks MPIRUN_ARGS="--mca btl self,vader" \
    bash "$here/jobs/scaling.sh" \
    "$here/jobs/tishby.ini" --set run.replicas=8 --set training.epochs=200 --set information.epochs=every:5 |
    tee "$work/scaling.txt"
awk '$1 == 1 { printf "12-bit, one rank, 8 replicas: training %.4f ms per epoch, information %.4f ms per logged epoch and layer\n", 1000 * $3 / 200, 1000 * ($4 + $5) / 41 / 6 }' "$work/scaling.txt"
echo "one rank, information time per logged epoch when only layer k is measured:"
echo "layer  width  forward+binning+tables+exchange (ms per logged epoch)"
for k in 1 2 3 4 5 6; do
    run "$now" 1 "$work/layer$k.log" "$here/jobs/tishby.ini" --set run.output="$work/layer$k.nc" \
        --set run.replicas=8 --set training.epochs=200 --set information.epochs=every:5 \
        --set information.layers=$k
    width=$(echo "10 7 5 4 3 2" | cut -d' ' -f$k)
    sed -n 's/.*forward \([0-9.]*\)s  binning+tables \([0-9.]*\)s  exchange \([0-9.]*\)s.*/\1 \2 \3/p' \
        "$work/layer$k.log" | awk -v k=$k -v w="$width" '{ printf "%5d  %5d  %8.3f\n", k, w, 1000 * ($1 + $2 + $3) / 41 }'
done
echo "cores: $cores; load average: $(cut -d' ' -f1-3 /proc/loadavg); build: $build"
