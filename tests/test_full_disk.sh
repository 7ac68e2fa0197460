#!/usr/bin/env bash
# A full disk while writing NetCDF (D6): the run stops with the OS's reason
# ("No space left on device", status 74), no crash at exit, and the file
# stays readable with every record whole (no variable left as fill). The disk
# is a small tmpfs the test mounts; skipped (77) where mounting is not allowed.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
mkdir disk
if ! mount -t tmpfs -o size=300k tmpfs disk 2>mount.err; then
    echo "skipped: cannot mount a tmpfs here: $(cat mount.err)"
    exit 77
fi
trap 'umount "$WORK/disk"; rm -rf "$WORK"' EXIT

# The checkpoint on the full disk too, or elsewhere: the output's failure
# must be clean either way.
for where in elsewhere disk; do
    ckpt=$WORK/run.ckpt
    [ $where = disk ] && ckpt=disk/run.ckpt
    rm -f disk/* run.ckpt*
    timeout 300 "$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" --set training.epochs=2000 \
        --set information.epochs=all --set run.output=disk/run.nc --set run.checkpoint="$ckpt" \
        >run.out 2>run.err
    status=$?
    [ $status -eq 74 ] || fail "$where: exit status $status, expected 74: $(tail -3 run.err)"
    grep -q '^ipmpi: disk/run.nc: cannot write [0-9]* more records*: No space left on device' run.err ||
        fail "$where: no OS reason: $(tail -3 run.err)"
    grep -Eq 'HDF error|Segmentation|signal' run.err && fail "$where: crash or HDF error: $(cat run.err)"
    ncdump -h disk/run.nc >dump.txt 2>&1 || fail "$where: run.nc unreadable: $(cat dump.txt)"
    if "$PY" -c 'import netCDF4' 2>/dev/null; then
        "$PY" - disk/run.nc <<'PY' >records.txt 2>&1 || fail "$where: $(cat records.txt)"
import sys
import netCDF4
import numpy as np
d = netCDF4.Dataset(sys.argv[1])
n = len(d.dimensions["epoch"])
assert n > 0, "no record kept"
for name, v in d.variables.items():
    # Epoch 0 has no gradient norms (nothing trained before it): fill by design.
    kept = v[1:] if name.startswith("grad_") else v[:]
    if "epoch" in v.dimensions and np.ma.count_masked(kept):
        raise SystemExit(f"{name} has fill values in the {n} records kept")
assert list(d["epoch"][:]) == list(range(n)), "epochs not 0..n-1"
print(n, "whole records")
PY
        kept=$(sed -n 's/ whole records//p' records.txt)
        grep -q "the file keeps the $kept records* written before" run.err ||
            fail "$where: the message does not say the $kept records kept: $(tail -1 run.err)"
    fi
done
finish
