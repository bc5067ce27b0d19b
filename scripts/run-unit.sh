#!/usr/bin/env bash
# Runs every unit test binary in a directory; prints one summary line.
set -u
dir=$1
pass=0 fail=0 failed=()
for t in "$dir"/test_*; do
	[ -x "$t" ] || continue
	if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$(basename "$t")"); fi
done
echo "unit ($dir): $pass passed, $fail failed ${failed[*]:-}"
[ "$fail" -eq 0 ]
