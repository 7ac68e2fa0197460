#!/usr/bin/env bash
# From a fresh Debian 12 machine to the picture: installs and builds ipmpi,
# runs the 12-bit experiment with 4 replicas on 4 ranks, and plots it.
# Writes tishby.nc and tishby.png in the current directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/jobs/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# --overwrite: running the quick start again replaces its own earlier tishby.nc
# (ipmpi refuses to start over an existing output otherwise).
mpirun --oversubscribe --bind-to none -np 4 "$here/build/ipmpi" "$here/jobs/tishby.ini" --overwrite
"$here/build/ipmpi-plot" tishby.nc -o tishby.png
