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
# Every row says what its key means (the default may be empty, e.g. paths).
blank=$(awk -F'|' '/^\| [a-z]+ \| `[a-z_]+` \|/ && $6 ~ /^ *$/ { print $2 "." $3 }' \
        "$IPMPI_SOURCE_ROOT/README.md")
[ -z "$blank" ] || fail "config reference rows without a meaning: $blank"
# Every job in the catalogue passes --check, run from the checkout as the
# jobs' comments say. Data a user must fetch may be absent: then the job must
# fail only on that file, and the MNIST job is checked again on the packaged
# Fashion-MNIST files (same format and shape).
fashion=/usr/share/datasets/fashion-mnist
cd "$IPMPI_SOURCE_ROOT"
for job in jobs/*.ini; do
    "$IPMPI" --check "$job" >/dev/null 2>"$WORK/job.err" && continue
    missing=$(sed -n 's/.*: \([^ :]*\): cannot open.*/\1/p' "$WORK/job.err")
    [ -n "$missing" ] && [ ! -e "$missing" ] ||
        fail "$job fails --check: $(cat "$WORK/job.err")"
    case "$missing" in
    data/mnist/*)
        [ -d "$fashion" ] || continue
        "$IPMPI" --check "$job" --set data.images="$fashion/train-images-idx3-ubyte.gz" \
            --set data.labels="$fashion/train-labels-idx1-ubyte.gz" >/dev/null 2>"$WORK/job.err" ||
            fail "$job fails --check on Fashion-MNIST files: $(cat "$WORK/job.err")" ;;
    *var_u.nc) ;;
    *) fail "$job needs $missing, which no job may need: $(cat "$WORK/job.err")" ;;
    esac
done
finish
