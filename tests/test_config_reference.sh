#!/usr/bin/env bash
# The README's config reference lists exactly the keys the parser accepts
# (those `ipmpi --check` prints), so the docs cannot drift.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
printf '[run]\n' >empty.ini
"$IPMPI" --check empty.ini >effective.ini 2>check.err || fail "--check on an empty config: $(cat check.err)"
awk '/^\[/ { gsub(/[][]/, ""); section = $0; next }
     /^[a-z_]+ = / { print section "." $1 }' effective.ini | sort >parser.txt
sed -n 's/^| \([a-z]*\) | `\([a-z_]*\)` |.*/\1.\2/p' "$IPMPI_SOURCE_ROOT/README.md" | sort >readme.txt
[ -s parser.txt ] || fail "no keys read from --check"
if ! diff -u parser.txt readme.txt >diff.txt; then
    fail "README config reference and parser disagree (- parser only, + README only): $(cat diff.txt)"
fi
# Every job in the catalogue passes --check, but for data sets a user must
# fetch (the original var_u.nc, MNIST): those fail only on their absent file.
for job in "$IPMPI_SOURCE_ROOT"/jobs/*.ini; do
    "$IPMPI" --check "$job" >/dev/null 2>job.err ||
        { grep -Eq '(var_u\.nc|data/mnist/[a-z0-9-]+\.gz): cannot open' job.err ||
            fail "$(basename "$job") fails --check: $(cat job.err)"; }
done
finish
