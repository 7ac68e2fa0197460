#!/usr/bin/env bash
# The C sources follow .clang-format (the house style, applied once): any
# file clang-format would change is named. Skips (77) where clang-format is
# not installed (Debian: apt-get install clang-format).
cd "${IPMPI_SOURCE_ROOT:?}" || exit 1
command -v clang-format >/dev/null || { echo "skipped: clang-format is not installed"; exit 77; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null) || files=$(find src include tests -name '*.[ch]')
# shellcheck disable=SC2086  # one argument per file
out=$(clang-format --dry-run $files 2>&1)
if [ -n "$out" ]; then
    echo "$out" | grep -o '^[^:]*:[0-9]*' | sort -u | sed 's/^/not formatted: /'
    echo "run: clang-format -i \$(git ls-files '*.c' '*.h')"
    exit 1
fi
echo "$(echo "$files" | wc -w) files formatted"
