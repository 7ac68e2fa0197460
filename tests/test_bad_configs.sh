#!/usr/bin/env bash
# Bad input stops every rank with one clear message naming file, line and key,
# a non-zero status, and no output file.
. "$(dirname "$0")/lib.sh"
cd "$WORK"

good() {
    cat <<'INI'
[run]
output = out.nc
[data]
source = tishby12
[network]
layers = dense:4:tanh, dense:2:softmax
[training]
epochs = 2
INI
}

# expect_error NAME PATTERN: runs bad.ini on 2 ranks.
expect_error() {
    local name=$1 pattern=$2
    rm -f out.nc
    "$MPIRUN" 2 "$IPMPI" bad.ini >"$name.out" 2>"$name.err"
    local status=$?
    [ $status -ne 0 ] || fail "$name: exit status 0"
    grep -Eq "$pattern" "$name.err" || fail "$name: stderr lacks /$pattern/: $(cat "$name.err")"
    local count
    count=$(grep -c '^ipmpi: ' "$name.err")
    [ "$count" -eq 1 ] || fail "$name: message printed $count times, not once"
    [ ! -e out.nc ] || fail "$name: an output file was written"
}

good | sed 's/^epochs = 2$/epochs = 2\nepochz = 3/' >bad.ini
expect_error unknown-key 'bad\.ini:9: \[training\] epochz: unknown key'

good | sed 's/^\[training\]$/[trainer]/' >bad.ini
expect_error unknown-section 'bad\.ini:8: \[trainer\]'

good | sed 's/^epochs = 2$/epochs = 2x/' >bad.ini
expect_error bad-number "bad\.ini:8: \[training\] epochs: .*'2x'"

good | sed 's/^layers = .*$/layers = dense:4:tanh, dense:two:softmax/' >bad.ini
expect_error bad-layer "bad\.ini:6: \[network\] layers: .*dense:two:softmax"

good | sed 's/^layers = .*$/layers = dense:4:tanhh, dense:2:softmax/' >bad.ini
expect_error bad-activation "bad\.ini:6: \[network\] layers: .*tanhh"

good | sed 's|^source = tishby12$|source = netcdf\npath = /nonexistent/data.nc|' >bad.ini
expect_error missing-data '/nonexistent/data\.nc'

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nmax_table_mb = 1/' >bad.ini
expect_error table-memory 'bad\.ini: \[information\] max_table_mb = 1: the count tables may need up to [0-9]+ MB'

rm -f bad.ini
expect_error missing-config 'bad\.ini: cannot open'
finish
