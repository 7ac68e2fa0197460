#!/usr/bin/env bash
# The whole test suite: builds (installing dependencies when missing), runs
# every test in the normal build and again under AddressSanitizer +
# UndefinedBehaviorSanitizer, and prints "N passed, N failed" (skips apart).
set -uo pipefail
cd "$(dirname "$0")/.."
bash jobs/setup.sh --sanitize || { echo "0 passed, 1 failed (build)"; exit 1; }
status=0
for dir in build build-sanitize; do
    echo "== meson test in $dir"
    meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
done
/usr/bin/python3 tests/summarize.py build/meson-logs/testlog.json \
    build-sanitize/meson-logs/testlog.json || status=1
exit $status
