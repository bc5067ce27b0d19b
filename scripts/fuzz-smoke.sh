#!/usr/bin/env bash
# Runs each fuzzer briefly (FUZZ_SECONDS, default 20) over a copy of its
# seed corpus, so CI catches parser crashes without a long campaign.
set -eu
bindir=$1 corpus=$2
secs=${FUZZ_SECONDS:-20}
n=0
for f in "$bindir"/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	work=$(mktemp -d)
	[ -d "$corpus/$name" ] && cp -r "$corpus/$name/." "$work/"
	echo "fuzz: $name for ${secs}s"
	"$f" -max_total_time="$secs" -max_len=4096 -print_final_stats=0 \
		"$work" >"$work.log" 2>&1 || { tail -50 "$work.log"; exit 1; }
	rm -rf "$work" "$work.log"
	n=$((n + 1))
done
echo "fuzz: $n fuzzers ran clean"
