#!/usr/bin/env bash
# A short convolutional run on Debian's Fashion-MNIST (2000 training images,
# the 10000 test images, 3 epochs, 2 replicas on 2 ranks): the test accuracy
# is well above chance (> 0.6; chance is 0.1), every estimate of both planes
# lies in [0, H(X)] and [0, H(Y)], and one rank gives the same file bit for
# bit. Skipped without the data package.
. "$(dirname "$0")/lib.sh"
needs_python
data=/usr/share/datasets/fashion-mnist
if [ ! -r "$data/train-images-idx3-ubyte.gz" ]; then
    echo "skipped: $data not installed (apt-get install dataset-fashion-mnist)"
    exit 77
fi
cd "$WORK"
for np in 2 1; do
    "$MPIRUN" $np "$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/fashion-cnn.ini" --set run.output=np$np.nc \
        --set run.replicas=2 --set data.subset=2000 --set training.epochs=3 \
        --set information.epochs=0,3 >run$np.out 2>run$np.err ||
        fail "run on $np ranks failed: $(tail -3 run$np.err)"
done
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" same np1.nc np2.nc >same.txt ||
    fail "the CNN run depends on the rank count: $(cat same.txt)"
mv np2.nc fashion.nc
"$PY" "$IPMPI_SOURCE_ROOT/tests/check_run.py" bounds fashion.nc >bounds.txt ||
    fail "estimates out of bounds: $(cat bounds.txt)"
"$PY" - fashion.nc >accuracy.txt <<'PY' || fail "$(cat accuracy.txt)"
import sys
from netCDF4 import Dataset
with Dataset(sys.argv[1]) as ds:
    acc = ds["test_accuracy"][-1, :]
    layers = ds["layer_measured"][:].tolist()
print("test accuracy", acc.tolist(), "measured layers", layers)
sys.exit(0 if acc.min() > 0.6 and layers == [1, 0, 1, 1] else 1)
PY
finish
