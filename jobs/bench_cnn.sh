#!/usr/bin/env bash
# ipmpi against PyTorch on jobs/fashion-cnn.ini's network (conv:8:5x5:relu, maxpool:2x2,
# dense:64:tanh, dense:10:softmax; Adam; Fashion-MNIST scaled to [0, 1]), one core each,
# measured in this same invocation:
#  a. PyTorch (jobs/bench_torch.py, one thread): training images per second;
#  b. ipmpi on one rank, OPENBLAS_NUM_THREADS=1, one replica, the same image count, batch and
#     epochs, information logged at the last epoch only (the smallest layer, off the clock):
#     images per second of its "train" time (forward, backward and step; no evaluation), and the
#     ratio ipmpi/torch;
#  c. ipmpi's information time per logged epoch at the widest layer, the conv layer
#     (24x24x8 = 4608 units), on all IMAGES training images: ipmpi's "binning+tables" time
#     (binning and count tables for the job's three estimators) over the logged epochs, with
#     the forward pass (all layers) beside it.
# usage: bash jobs/bench_cnn.sh [IPMPI]   (default $IPMPI, else build/ipmpi)
# env:   IMAGES (10000), BATCH (64), EPOCHS (3 full passes), MI_LOGS (3 logged epochs in c),
#        PYTHON (/usr/bin/python3, with torch and numpy)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ipmpi=${1:-${IPMPI:-$here/build/ipmpi}}
images=${IMAGES:-10000}
batch=${BATCH:-64}
epochs=${EPOCHS:-3}
mi_logs=${MI_LOGS:-3}
python=${PYTHON:-/usr/bin/python3}
[ -x "$ipmpi" ] || { echo "bench_cnn.sh: no ipmpi binary at $ipmpi (build it, or pass its path)" >&2; exit 2; }
[ "$mi_logs" -ge 1 ] || { echo "bench_cnn.sh: MI_LOGS must be >= 1" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-bench-cnn.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
cores=$(nproc) # before OMP_NUM_THREADS, which nproc obeys
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# run NAME ARGS...: one ipmpi run of the job on one rank with one replica and the training set
# alone (no test set), its output in $work/NAME.log; stops the script with the log's tail on failure.
run() {
    local name=$1
    shift
    if ! mpirun --oversubscribe --bind-to none --mca btl self,vader -np 1 "$ipmpi" \
        "$here/jobs/fashion-cnn.ini" --set run.output="$work/$name.nc" --set run.replicas=1 \
        --set data.subset="$images" --set data.test_images= --set data.test_labels= \
        --set information.on=train "$@" >"$work/$name.log" 2>&1; then
        echo "ipmpi run '$name' failed:" >&2
        tail -n 5 "$work/$name.log" >&2
        exit 1
    fi
}
# seconds LOG NAME: the time NAME of the end-of-run line "time (rank 0): train 1.234s ...".
seconds() { sed -n "s/^time (rank 0):.* $2 \([0-9.]*\)s.*/\1/p" "$1" | tail -n 1; }
logged() { sed -n 's/^done: .* \([0-9]*\) logged.*/\1/p' "$1"; }

echo "== a. PyTorch, 1 thread: $images images, batch $batch, $epochs epochs"
torch_rate=0
if "$python" -c 'import torch' 2>/dev/null; then
    "$python" "$here/jobs/bench_torch.py" --images "$images" --batch "$batch" --epochs "$epochs" \
        --threads 1 | tee "$work/torch.log"
    torch_rate=$(sed -n 's/.*images\/s \([0-9.]*\).*/\1/p' "$work/torch.log" | tail -n 1)
else
    echo "$python has no torch (pip install torch): ipmpi alone is measured, without the ratio"
fi

echo "== b. ipmpi, 1 rank, 1 BLAS thread: the same"
run train --set training.batch_size="$batch" --set training.batches_per_epoch=0 \
    --set training.epochs="$epochs" --set information.epochs="$epochs" \
    --set information.layers=4 --set information.estimators=simple
grep '^time' "$work/train.log"
train_s=$(seconds "$work/train.log" train)

echo "== c. ipmpi information time at the conv layer (4608 units), $images images, $mi_logs logged epochs"
run mi --set training.batch_size="$batch" --set training.epochs=$((mi_logs - 1)) \
    --set information.epochs=all --set information.layers=1
grep '^time' "$work/mi.log"
mi_bin_s=$(seconds "$work/mi.log" 'binning+tables')
mi_fwd_s=$(seconds "$work/mi.log" forward)
mi_logged=$(logged "$work/mi.log")

echo
awk -v n="$images" -v e="$epochs" -v bs="$batch" -v tr="$torch_rate" -v ts="$train_s" \
    -v b="$mi_bin_s" -v f="$mi_fwd_s" -v k="$mi_logged" 'BEGIN {
    ir = n * e / ts
    printf "%-44s %12s\n", "training, batch " bs ", one core", "images/s"
    if (tr > 0) printf "%-44s %12.0f\n", "PyTorch (bench_torch.py, 1 thread)", tr
    printf "%-44s %12.0f\n", "ipmpi (1 rank, OPENBLAS_NUM_THREADS=1)", ir
    if (tr > 0) printf "%-44s %12.2f\n", "ratio ipmpi / PyTorch", ir / tr
    printf "\ninformation at the conv layer, %d images, %d logged epochs (all layers forward):\n", n, k
    printf "  binning+tables %.1f ms per logged epoch (forward %.1f ms)\n", 1000 * b / k, 1000 * f / k }'
echo "cores: $cores; ipmpi: $ipmpi"
