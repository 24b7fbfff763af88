#!/bin/bash
# Runs libFuzzer harnesses, one after the other:
#   test/fuzz/run.sh SECONDS LOGDIR TARGET...
# Each runs SECONDS on its corpus (test/fuzz/build/corpus/TARGET, kept
# between runs), the seeds made from the fixtures and the committed
# regression inputs (test/fuzz/regressions/TARGET).  Prints one line per
# target and "FUZZ <target> pass|fail" for test/run.sh to count; the exit
# status is the number of failed targets.  A crash leaves its input in
# LOGDIR/<target>-crash-*.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=$1 logdir=$2
shift 2
mkdir -p "$logdir"
failed=0
for t in "$@"; do
	bin="$top/test/fuzz/build/fuzz_$t"
	corpus="$top/test/fuzz/build/corpus/$t"
	mkdir -p "$corpus"
	dirs=("$corpus")
	for d in "$top/test/fuzz/build/seeds/$t" "$top/test/fuzz/regressions/$t"; do
		[ -d "$d" ] && dirs+=("$d")
	done
	log="$logdir/$t.log"
	# -timeout: an input slower than 10 s is a bug (a hang) as much as a crash
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$logdir/$t-" "${dirs[@]}" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	stats=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
	if [ $rc -eq 0 ]; then
		echo "fuzz $t: ${execs:-?} runs in ${seconds}s, ${stats:-no stats}"
		echo "FUZZ $t pass"
	else
		echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} runs; log $log"
		grep -E 'ERROR: |SUMMARY: |property failed|Test unit written' "$log" | head -5 | sed 's/^/    /'
		echo "FUZZ $t fail"
		failed=$((failed + 1))
	fi
done
exit $failed
