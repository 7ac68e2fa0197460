#!/usr/bin/env bash
# mpirun as the tests use it: as root if need be, more ranks than cores, one
# BLAS thread per rank, shared-memory transport, no binding.
# usage: mpirun.sh NP PROGRAM [ARGS...]
set -u
np=$1
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1
exec mpirun --oversubscribe --bind-to none --mca btl self,vader -np "$np" "$@"
