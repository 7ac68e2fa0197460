#!/bin/sh
# Runs every fuzz target on a copy of its corpus (the repo's corpus is not
# modified), two at a time (one per core), each until RUNS executions or
# SECONDS, whichever comes first, and prints
# "TARGET: N execs in S s (R/s), K crashes".
# Exits 1 if any target crashed (crashers are left in the work directory,
# printed at the end: copy each into tests/fuzz/regressions/TARGET/). A target
# that stopped short of RUNS is reported ("short of RUNS"), not failed: the
# machine's load, not the code, decides how fast it runs.
# usage: tests/fuzz/run.sh SECONDS [BUILD_DIR [RUNS]]   (BUILD_DIR default build-fuzz)
set -u
seconds=${1:?usage: run.sh SECONDS [BUILD_DIR [RUNS]]}
here=$(cd "$(dirname "$0")" && pwd)
build=${2:-$here/../../build-fuzz}
runs=${3:-0}
targets="fuzz_config fuzz_idx fuzz_checkpoint fuzz_netcdf fuzz_cli" # slowest first
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-fuzz.XXXXXX")

# fuzz TARGET: one libFuzzer process; its log in $work/TARGET/log.
fuzz() {
    target=$1
    exe=$build/tests/fuzz/$target
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    cp "$here/corpus/$target"/* "$work/$target/corpus/"
    dict=
    [ -f "$here/${target#fuzz_}.dict" ] && dict=-dict=$here/${target#fuzz_}.dict
    # -fork would survive crashes but hides libFuzzer's stats; one process
    # stops at the first crash, which is all a pass/fail run needs.
    "$exe" -max_total_time="$seconds" -runs="$([ "$runs" -gt 0 ] && echo "$runs" || echo -1)" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        $dict -artifact_prefix="$work/$target/artifacts/" "$work/$target/corpus" \
        >"$work/$target/log" 2>&1
    echo $? >"$work/$target/rc"
}

for target in $targets; do
    if [ ! -x "$build/tests/fuzz/$target" ]; then
        echo "$target: $build/tests/fuzz/$target not built (meson setup with -Dfuzz=true)" >&2
        exit 2
    fi
done

# Two at a time: the pairs keep both cores busy.
set -- $targets
while [ $# -gt 0 ]; do
    fuzz "$1" &
    first=$!
    second=
    if [ $# -gt 1 ]; then
        fuzz "$2" &
        second=$!
    fi
    wait "$first"
    [ -z "$second" ] || wait "$second"
    shift
    [ $# -gt 0 ] && shift
done

status=0
short=0
for target in $targets; do
    log=$work/$target/log
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    crashes=$(find "$work/$target/artifacts" -type f | wc -l)
    if [ "$(cat "$work/$target/rc")" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # died without leaving an input (e.g. killed)
    fi
    took="under 1"
    [ "${rate:-0}" -gt 0 ] && took=$(( ${execs:-0} / rate ))
    echo "$target: ${execs:-0} execs in ${took} s (${rate:-0}/s), $crashes crashes"
    if [ "$runs" -gt 0 ] && [ "${execs:-0}" -lt "$runs" ] && [ "$crashes" -eq 0 ]; then
        echo "  short of $runs executions after $seconds s"
        short=$((short + 1))
    fi
    if [ "$crashes" -ne 0 ]; then
        status=1
        echo "  log: $log" >&2
        find "$work/$target/artifacts" -type f | sed 's/^/  input: /' >&2
    fi
done
if [ "$runs" -gt 0 ] && [ "$short" -eq 0 ] && [ "$status" -eq 0 ]; then
    echo "fuzz: every target reached $runs executions"
fi
[ "$status" -eq 0 ] && rm -rf "$work"
exit "$status"
