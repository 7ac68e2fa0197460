#!/usr/bin/env bash
# Bad input stops every rank with one clear message naming file, line and key,
# status 2 (in a run as under --check, which finds the same), and no output file.
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
    [ $status -eq 2 ] || fail "$name: exit status $status, expected 2"
    "$IPMPI" --check bad.ini >"$name.check.out" 2>"$name.check.err"
    status=$?
    [ $status -eq 2 ] || fail "$name: --check exit status $status, expected 2"
    grep -Eq "$pattern" "$name.check.err" ||
        fail "$name: --check stderr lacks /$pattern/: $(cat "$name.check.err")"
    grep -Eq "$pattern" "$name.err" || fail "$name: stderr lacks /$pattern/: $(cat "$name.err")"
    local count
    count=$(grep -c '^ipmpi: ' "$name.err")
    [ "$count" -eq 1 ] || fail "$name: message printed $count times, not once"
    [ ! -e out.nc ] || fail "$name: an output file was written"
}

good | sed 's/^epochs = 2$/epochs = 2\nepochz = 3/' >bad.ini
expect_error unknown-key 'bad\.ini:9: \[training\] epochz: unknown key'

# A key given twice: the later line would have won silently.
good | sed 's/^epochs = 2$/epochs = 2\nbatch_size = 8\nepochs = 3/' >bad.ini
expect_error twice 'bad\.ini:10: \[training\] epochs: given a second time \(first at line 8\)'

good | sed 's/^\[training\]$/[trainer]/' >bad.ini
expect_error unknown-section 'bad\.ini:7: unknown section \[trainer\]'

# What inih alone would pass over: old Mac line ends (the whole file one
# line, the run the default one) and a key after a section header's ']'.
good | tr '\n' '\r' >bad.ini
expect_error carriage-returns 'bad\.ini:1: a carriage return inside the line'
good | sed 's/^\[training\]$/[training] epochs = 5/' >bad.ini
expect_error after-header "bad\\.ini:7: text after the section header's '\\]'"

good | sed 's/^epochs = 2$/epochs = 2x/' >bad.ini
expect_error bad-number "bad\.ini:8: \[training\] epochs: .*'2x'"

good | sed 's/^layers = .*$/layers = dense:4:tanh, dense:two:softmax/' >bad.ini
expect_error bad-layer "bad\.ini:6: \[network\] layers: .*dense:two:softmax"

good | sed 's/^layers = .*$/layers = dense:4:tanhh, dense:2:softmax/' >bad.ini
expect_error bad-activation "bad\.ini:6: \[network\] layers: .*tanhh"

good | sed 's|^source = tishby12$|source = netcdf\npath = /nonexistent/data.nc|' >bad.ini
expect_error missing-data 'bad\.ini:5: \[data\] path: /nonexistent/data\.nc: cannot open'

# replicas = 32: with replicas = 0, --check (one rank) would plan one replica.
good | sed 's/^epochs = 2$/epochs = 2\n[information]\nmax_table_mb = 1/; s/^output = out.nc$/output = out.nc\nreplicas = 32/' >bad.ini
expect_error table-memory 'bad\.ini:11: \[information\] max_table_mb = 1: the count tables may need up to [0-9]+ MB'

good | sed 's/^layers = .*/layers = conv:4:3x3:relu, dense:2:softmax/' >bad.ini
expect_error conv-on-flat-data "bad\.ini:6: \[network\] layers: item 1 'conv:4:3x3:relu': needs image input"

# The same shape error at --check, before any run.
"$IPMPI" --check bad.ini >check.out 2>check.err && fail "--check accepted a conv on flat data"
grep -q "bad\.ini:6: \[network\] layers: item 1 'conv:4:3x3:relu': needs image input" check.err ||
    fail "--check: no shape error: $(cat check.err)"

good | sed 's/^layers = .*/layers = dense:4:tanh, dense:2:tanh/' >bad.ini
expect_error loss-output 'bad\.ini: \[training\] loss = cross_entropy needs a softmax output'

good | sed 's/^epochs = 2$/epochs = 2\n[information]\non = test/' >bad.ini
expect_error no-test-set 'bad\.ini:10: \[information\] on: test needs a test set'

# Neither file of an IDX pair: one message names both.
good | sed 's|^source = tishby12$|source = idx\nimages = /nonexistent/img.gz\nlabels = /nonexistent/lab.gz|' >bad.ini
expect_error idx-both-missing 'bad\.ini:5: \[data\] images: /nonexistent/img\.gz: cannot open: .*; nor can /nonexistent/lab\.gz \(\[data\] labels\)'

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nscope = replica/' >bad.ini
expect_error scope-fixed-range 'bad\.ini:10: \[information\] scope: replica needs range = adaptive'

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nbinning = width\nscope = replica/' >bad.ini
expect_error scope-width 'bad\.ini:11: \[information\] scope: replica applies to range = adaptive'

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nbinning = width\nwidth = 0/' >bad.ini
expect_error width-zero "bad\.ini:11: \[information\] width: '0' out of range"

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nbinning = quantiles/' >bad.ini
expect_error binning-unknown "bad\.ini:10: \[information\] binning: .*quantiles"

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nrange = whole/' >bad.ini
expect_error whole-without-file 'bad\.ini:10: \[information\] range: whole needs \[information\] range_from'

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nrange = whole\nrange_from = out.nc/' >bad.ini
expect_error whole-from-output 'bad\.ini:11: \[information\] range_from = out\.nc: the same file as the run.s output'

# range_from written by a run of another network: its extremes are not this run's.
good | sed 's/^epochs = 2$/epochs = 2\n[information]\nrange = adaptive/; s/^output = out.nc$/output = first.nc/' >first.ini
"$IPMPI" first.ini >first.out 2>&1 || fail "the adaptive run failed: $(tail -2 first.out)"
good | sed 's/^epochs = 2$/epochs = 2\n[information]\nrange = whole\nrange_from = first.nc/; s/dense:4:tanh/dense:5:tanh/' >bad.ini
expect_error whole-from-other-config 'bad\.ini:11: \[information\] range_from: first\.nc was written by a run with \[network\] layers = dense:4:tanh, dense:2:softmax, this run has dense:5:tanh'
good | sed 's/^epochs = 2$/epochs = 2\n[information]\nrange = whole\nrange_from = first.nc\nbins = 12/' >whole.ini
"$IPMPI" --check whole.ini >whole.out 2>&1 || fail "range_from of the same config refused: $(tail -2 whole.out)"

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nbinning = quantile\nrange = adaptive/' >bad.ini
expect_error quantile-with-range 'bad\.ini:11: \[information\] range: adaptive: binning = quantile takes no range'

good | sed 's/^epochs = 2$/epochs = 2\n[information]\nbinning = quantile\nquantiles = units/' >bad.ini
expect_error quantiles-unknown "bad\.ini:11: \[information\] quantiles: .*units"

fashion=/usr/share/datasets/fashion-mnist
if [ -r "$fashion/train-images-idx3-ubyte.gz" ]; then
    good | sed "s|^source = tishby12$|source = idx\nimages = $fashion/train-images-idx3-ubyte.gz\nlabels = $fashion/t10k-labels-idx1-ubyte.gz|" >bad.ini
    expect_error idx-count-mismatch 'bad\.ini:5: \[data\] images: count mismatch: .*train-images-idx3-ubyte\.gz has 60000 images, .* has 10000 labels'
    good | sed "s|^source = tishby12$|source = idx\nimages = $fashion/train-images-idx3-ubyte.gz\nlabels = $fashion/train-labels-idx1-ubyte.gz\npool = 2|; s/^layers = .*/layers = conv:2:5x5, maxpool:2x2, conv:2:6x6, dense:10:softmax/" >bad.ini
    expect_error conv-too-large "bad\.ini:9: \[network\] layers: item 3 'conv:2:6x6:linear': kernel 6x6 is larger than its 5x5x2 input"
fi

rm -f bad.ini
expect_error missing-config 'bad\.ini: cannot open'
finish
