#!/bin/sh
# Runs every fuzz target for SECONDS on a copy of its corpus (the repo's
# corpus is not modified) and prints "TARGET: N execs, K crashes".
# Exits 1 if any target crashed (crashers are left in the work directory,
# printed at the end: copy each into tests/fuzz/regressions/TARGET/).
# usage: tests/fuzz/run.sh SECONDS [BUILD_DIR]   (BUILD_DIR default build-fuzz)
set -u
seconds=${1:?usage: run.sh SECONDS [BUILD_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
build=${2:-$here/../../build-fuzz}
work=$(mktemp -d "${TMPDIR:-/tmp}/ipmpi-fuzz.XXXXXX")
status=0
for target in fuzz_config fuzz_netcdf fuzz_checkpoint fuzz_idx; do
    exe=$build/tests/fuzz/$target
    if [ ! -x "$exe" ]; then
        echo "$target: $exe not built (meson setup with -Dfuzz=true)" >&2
        exit 2
    fi
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    cp "$here/corpus/$target"/* "$work/$target/corpus/"
    dict=
    [ -f "$here/${target#fuzz_}.dict" ] && dict=-dict=$here/${target#fuzz_}.dict
    # -fork would survive crashes but hides libFuzzer's stats; one process
    # stops at the first crash, which is all a pass/fail run needs.
    "$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        $dict -artifact_prefix="$work/$target/artifacts/" "$work/$target/corpus" \
        >"$work/$target/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target/log" | tail -n 1)
    crashes=$(find "$work/$target/artifacts" -type f | wc -l)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # died without leaving an input (e.g. killed)
    fi
    echo "$target: ${execs:-0} execs, $crashes crashes"
    if [ "$crashes" -ne 0 ]; then
        status=1
        echo "  log: $work/$target/log" >&2
        find "$work/$target/artifacts" -type f | sed 's/^/  input: /' >&2
    fi
done
[ "$status" -eq 0 ] && rm -rf "$work"
exit "$status"
