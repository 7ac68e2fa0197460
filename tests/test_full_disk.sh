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

# A restart with a changed config on a full disk: refused (74) before it
# touches the file's attributes, which HDF5 could not restore; the file
# stays readable, and once there is room the restart goes on.
# (A disk of its own, with room for the 1 MB a restart asks for once freed.)
rm -f disk/* run.ckpt*
mkdir disk2
mount -t tmpfs -o size=2m tmpfs disk2 || fail "cannot mount a second tmpfs"
trap 'umount "$WORK/disk" "$WORK/disk2"; rm -rf "$WORK"' EXIT
small=(--set information.epochs=log:5 --set run.output=disk2/small.nc --set run.checkpoint="$WORK/small.ckpt")
"$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" --set training.epochs=40 "${small[@]}" >small.out 2>&1 ||
    fail "the small run failed: $(tail -3 small.out)"
dd if=/dev/zero of=disk2/filler bs=4k 2>/dev/null # until the disk is full
"$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" --set training.epochs=60 "${small[@]}" --restart \
    >full.out 2>full.err
status=$?
[ $status -eq 74 ] || fail "restart on a full disk: exit status $status, expected 74: $(tail -3 full.err)"
grep -q 'free on its file system' full.err || fail "restart on a full disk: $(tail -3 full.err)"
rm -f disk2/filler
ncdump -h disk2/small.nc >dump.txt 2>&1 || fail "small.nc unreadable after the refused restart: $(cat dump.txt)"
"$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" --set training.epochs=60 "${small[@]}" --restart \
    >room.out 2>&1 || fail "the restart with room failed: $(tail -3 room.out)"

# A checkpoint that cannot be written is a failed write too (74), and the
# output (elsewhere) keeps its records.
rm -f disk/* small.ckpt*
dd if=/dev/zero of=disk/filler bs=4k 2>/dev/null
"$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" --set training.epochs=200 --set run.checkpoint_every=50 \
    --set run.output=ck.nc --set run.checkpoint=disk/ck.ckpt >ck.out 2>ck.err
status=$?
[ $status -eq 74 ] || fail "checkpoint on a full disk: exit status $status, expected 74: $(tail -3 ck.err)"
grep -q 'checkpoint: cannot write .*No space left on device' ck.err || fail "checkpoint: $(tail -3 ck.err)"
ncdump -h ck.nc >dump.txt 2>&1 || fail "ck.nc unreadable: $(cat dump.txt)"

# No room for even a file's header: refused before it is begun (HDF5 cannot
# undo a header the disk has no room for, and aborting it crashed), status
# 74 with the OS's reason, and no file left to block the rerun.
"$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" --set training.epochs=20 --set run.output=disk/h.nc \
    --set run.checkpoint="$WORK/h.ckpt" >h.out 2>h.err
status=$?
[ $status -eq 74 ] || fail "no room for a header: exit status $status, expected 74: $(tail -3 h.err)"
grep -q 'cannot create NetCDF file disk/h.nc: No space left on device' h.err || fail "header: $(tail -3 h.err)"
[ ! -e disk/h.nc ] || fail "a file was left where there was no room for it"

# A finished run gives back the room it reserved beyond its file's end.
rm -f disk/*
"$IPMPI" "$IPMPI_SOURCE_ROOT/jobs/tishby.ini" --set training.epochs=200 --set run.output=disk/r.nc \
    --set run.checkpoint="$WORK/r.ckpt" >r.out 2>&1 || fail "the run on an empty disk failed: $(tail -3 r.out)"
read -r bytes blocks <<<"$(stat -c '%s %b' disk/r.nc)"
[ $((blocks * 512)) -le $((bytes + 8192)) ] ||
    fail "r.nc holds $((blocks * 512)) bytes of disk for $bytes bytes of file"
finish
