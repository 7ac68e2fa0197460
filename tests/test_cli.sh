#!/usr/bin/env bash
# The command line: --help, --version, --check, --set, and usage errors.
. "$(dirname "$0")/lib.sh"
cd "$WORK"
JOB="$IPMPI_SOURCE_ROOT/jobs/tishby.ini"

"$IPMPI" --help >help.txt 2>&1 || fail "--help exits non-zero"
grep -q '^usage: ipmpi' help.txt || fail "--help prints no usage line"
for code in 0 1 2 73 74 75; do
    grep -Eq "^ +$code  [a-z]" help.txt || fail "--help does not explain exit status $code"
done
"$IPMPI" --version >version.txt 2>&1 || fail "--version exits non-zero"
grep -Eq '^ipmpi [0-9]+\.[0-9]+\.[0-9]+$' version.txt || fail "--version prints '$(cat version.txt)'"

"$IPMPI" >none.txt 2>&1
[ $? -eq 2 ] || fail "no config file should exit 2"
grep -q 'no config file' none.txt || fail "no config file: message is '$(cat none.txt)'"
"$IPMPI" --frobnicate "$JOB" >opt.txt 2>&1
[ $? -eq 2 ] || fail "unknown option should exit 2"
grep -q "unknown or incomplete option '--frobnicate'" opt.txt || fail "unknown option message: $(cat opt.txt)"

# --check prints every section and key, defaults included, and runs nothing.
"$IPMPI" --check "$JOB" >check.txt 2>&1 || fail "--check on the quick-start job failed: $(cat check.txt)"
for key in seed replicas output threads source path samples train_fraction layers init epochs \
           batch_size optimizer learning_rate momentum loss batches_per_epoch bins range \
           estimators on activations; do
    grep -Eq "^$key = " check.txt || fail "--check output lacks key '$key'"
done
for section in run data network training information output; do
    grep -q "^\[$section\]" check.txt || fail "--check output lacks [$section]"
done
[ ! -e tishby.nc ] || fail "--check wrote an output file"
grep -q 'note:' check.txt && fail "--check notes an existing file where there is none"
# An earlier run's output is what a run would refuse: --check says so on
# stderr (stdout, the effective config, stays the same), and passes.
echo earlier >tishby.nc
"$IPMPI" --check "$JOB" >noted.txt 2>noted.err || fail "--check with an existing output failed"
grep -q '^ipmpi: note: tishby.nc exists: a run of this config is refused (status 73)' noted.err ||
    fail "--check does not note the existing output: $(cat noted.err)"
diff -q check.txt noted.txt >/dev/null ||
    fail "--check's effective config changed with an existing output"
[ "$(cat tishby.nc)" = earlier ] || fail "--check touched the existing output"
rm tishby.nc

# --check --restart also checks the checkpoint the run would continue from.
"$IPMPI" "$JOB" --set training.epochs=2 --set information.epochs=all --set run.output=r.nc \
    >r.txt 2>&1 || fail "the run to restart failed: $(tail -2 r.txt)"
"$IPMPI" --check --restart "$JOB" --set run.output=r.nc --set information.epochs=all \
    --set training.epochs=5 >ok.txt 2>&1 ||
    fail "--check --restart with more epochs failed: $(tail -2 ok.txt)"
"$IPMPI" --check --restart "$JOB" --set run.output=r.nc --set information.epochs=all \
    --set run.seed=9 >seed.txt 2>&1
[ $? -eq 2 ] || fail "--check --restart with another seed should exit 2"
grep -q -- 'cannot restart: r.ckpt: --set run.seed: \[run\] seed = 9 differs' seed.txt ||
    fail "--check --restart, another seed: $(cat seed.txt)"
"$IPMPI" --check --restart "$JOB" --set run.output=none.nc >none.txt 2>&1
[ $? -eq 2 ] || fail "--check --restart without a checkpoint should exit 2"
grep -q 'cannot restart: none.ckpt: cannot open checkpoint' none.txt || fail "no checkpoint: $(cat none.txt)"

# --set overrides, repeatable, and the effective config reads back the same.
"$IPMPI" --check --set training.epochs=7 --set run.replicas=3 "$JOB" >set.txt 2>&1 ||
    fail "--set failed: $(cat set.txt)"
grep -q '^epochs = 7$' set.txt || fail "--set training.epochs=7 not applied"
grep -q '^replicas = 3' set.txt || fail "--set run.replicas=3 not applied"
grep -v '^#' set.txt >effective.ini
"$IPMPI" --check effective.ini >again.txt 2>&1 || fail "effective config does not load: $(cat again.txt)"
grep -v '^#' again.txt | diff -q - effective.ini >/dev/null || fail "effective config does not round-trip"

"$IPMPI" --check --set training.epochz=7 "$JOB" >badset.txt 2>&1
[ $? -eq 2 ] || fail "a bad --set should exit 2"
grep -q -- '--set training.epochz=7' badset.txt || fail "bad --set message: $(cat badset.txt)"
finish
