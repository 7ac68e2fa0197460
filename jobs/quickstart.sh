#!/usr/bin/env bash
# From a fresh Debian 12 machine to the picture: installs and builds ipmpi,
# runs the 12-bit experiment with 4 replicas on 4 ranks, and plots it.
# Writes tishby.nc and tishby.png in the current directory. Run again, it
# first moves the earlier tishby.nc, its checkpoints and tishby.png aside
# (to tishby.earlier-DATE-XXXX.nc and so on), whichever run wrote them: it
# never overwrites a run. A run still writing tishby.nc stops it at once.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/jobs/setup.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
job=$here/jobs/tishby.ini
# --check fails (73) when a live run holds tishby.nc: before anything moves.
"$here/build/ipmpi" --check "$job" >/dev/null 2>quickstart-check.err ||
    { status=$?; cat quickstart-check.err >&2; rm -f quickstart-check.err; exit $status; }
rm -f quickstart-check.err
stamp=$(date +%Y%m%dT%H%M%S)
for file in tishby.nc tishby.ckpt tishby.ckpt.prev tishby.png; do
    [ -e "$file" ] || [ -L "$file" ] || continue
    base=${file%%.*} rest=${file#*.}
    aside=$(mktemp --suffix=".$rest" "$base.earlier-$stamp-XXXX")
    mv -f -- "$file" "$aside"
    echo "quickstart: moved the earlier $file aside to $aside"
done
mpirun --oversubscribe --bind-to none -np 4 "$here/build/ipmpi" "$job"
"$here/build/ipmpi-plot" tishby.nc -o tishby.png
