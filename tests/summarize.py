#!/usr/bin/python3
"""Counts meson test results: summarize.py TESTLOG.json... [--extra NAME=ok|fail]...
Prints the skipped tests and a last line "N passed, N failed"; exit 1 if any failed."""
import json
import sys

passed, failed, skipped = 0, 0, []
args = sys.argv[1:]
for i, arg in enumerate(args):
    if arg == "--extra" or (i > 0 and args[i - 1] == "--extra"):
        if arg != "--extra":
            name, _, result = arg.partition("=")
            passed, failed = (passed + 1, failed) if result == "ok" else (passed, failed + 1)
        continue
    try:
        lines = open(arg).read().splitlines()
    except OSError as e:
        print(f"{arg}: {e}")
        failed += 1
        continue
    for line in lines:
        test = json.loads(line)
        if test["result"] in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif test["result"] == "SKIP":
            skipped.append(test["name"])
        else:
            failed += 1
if skipped:
    print(f"skipped ({len(skipped)}): {', '.join(skipped)}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
