#!/bin/bash
# `make test`: every suite (C unit, pg_regress, TAP, interop), one summary.
# As root it installs dependencies, builds and installs the extension, then
# re-runs itself as the postgres OS user in a scratch copy of the tree,
# because initdb and postgres refuse to run as root.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# PG_CONFIG picks the server (default: Debian's PostgreSQL 15); a relocated
# copy (tools/dev/pgcopy.sh) lets several checkouts test at once.
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=$("$PG_CONFIG" --bindir)
PGXSDIR=$(dirname "$("$PG_CONFIG" --pgxs)")/../..
export PATH="$PGBIN:$PATH"
# SUITES narrows the run (default: all of them); TAP_TESTS names .pl files.
SUITES=${SUITES:-unit regress tap interop demo fuzz}
want() { case " $SUITES " in *" $1 "*) return 0;; esac; return 1; }

if [ "$(id -u)" = 0 ]; then
	bash test/install-deps.sh || exit 1
	make -s >/dev/null && make -s install >/dev/null || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
	work=$(mktemp -d /tmp/repo_stream-test.XXXXXX)
	rsync -a --exclude .git --exclude node_modules --exclude results --exclude tmp_check \
		--exclude test/fuzz/build ./ "$work/"
	chown -R postgres: "$work"
	chmod 755 "$work"
	runuser -u postgres -- env HOME=/var/lib/postgresql CI="${CI:-}" FUZZ_SECONDS="${FUZZ_SECONDS:-}" \
		PG_CONFIG="$PG_CONFIG" SUITES="$SUITES" TAP_TESTS="${TAP_TESTS:-}" REGRESS_TESTS="${REGRESS_TESTS:-}" bash "$work/test/run.sh"
	rc=$?
	cp -r "$work"/test/logs "$top/test/" 2>/dev/null
	exit $rc
fi

export LANG=C.UTF-8 LC_ALL=C.UTF-8	# UTF8 databases in throwaway clusters
PGOPTS=(-o wal_level=logical -o "output_plugin_libraries=pgoutput, test_decoding, repo_stream"
	-o max_replication_slots=10 -o max_wal_senders=10)
logs="$top/test/logs"
rm -rf "$logs"; mkdir -p "$logs"
passed=0
failed=0

# Adds the counts of a prove run (its output file) to the totals.
count_prove() {
	local out=$1 total fail
	total=$(sed -n 's/.*Tests=\([0-9]*\),.*/\1/p' "$out" | tail -1)
	total=${total:-0}
	if grep -q '^Result: PASS' "$out"; then
		passed=$((passed + total))
	else
		fail=$(sed -n 's/.*Failed \([0-9]*\)\/[0-9]* subtests.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
		[ "$fail" -gt 0 ] || fail=1
		passed=$((passed + total - fail)); failed=$((failed + fail))
	fi
}

if want unit; then
echo "== C unit tests"
if make -s unit >"$logs/unit-build.log" 2>&1; then
	prove --exec '' test/unit/build/test_* 2>&1 | tee "$logs/unit.log" | grep -v '^ok' 
	count_prove "$logs/unit.log"
else
	cat "$logs/unit-build.log"; failed=$((failed + 1))
fi
fi

if want regress; then
echo "== pg_regress"
# REGRESS_TESTS names some of sql/ (setup always runs first)
bash test/pg_tmp.sh "${PGOPTS[@]}" env -u TAP_TESTS make -s installcheck ${REGRESS_TESTS:+REGRESS="setup $REGRESS_TESTS"} >"$logs/regress.log" 2>&1
grep -E '^test |tests (passed|failed)|^ERROR|^make' "$logs/regress.log"
n=$(grep -cE '^test .* \.\.\. ' "$logs/regress.log")
nf=$(grep -cE '^test .* \.\.\. FAILED' "$logs/regress.log")
if [ "$n" -eq 0 ]; then failed=$((failed + 1)); else passed=$((passed + n - nf)); failed=$((failed + nf)); fi
[ -f regression.diffs ] && cp regression.diffs "$logs/" && head -100 regression.diffs
fi

if want tap; then
echo "== TAP (PostgreSQL::Test::Cluster)"
tap_tests=${TAP_TESTS:-$(ls test/t/*.pl 2>/dev/null)}
if [ -n "$tap_tests" ]; then
	TESTDIR="$top/test" PG_REGRESS="$PGXSDIR/src/test/regress/pg_regress" \
		prove -I "$PGXSDIR/src/test/perl" -I test/t $tap_tests 2>&1 | tee "$logs/tap.log"
	count_prove "$logs/tap.log"
fi
fi

if want interop; then
echo "== interop (Node.js, third-party readers)"
if (cd test/interop && npm ci --no-audit --no-fund --loglevel=error >"$logs/npm.log" 2>&1); then
	bash test/pg_tmp.sh "${PGOPTS[@]}" bash -c 'cd test/interop && node --test --test-reporter=spec' >"$logs/interop.log" 2>&1
	grep -E '^(✔|✖|ℹ)|^\s+(✔|✖)' "$logs/interop.log" | grep -vE '^ℹ (cancelled|skipped|todo|duration)'
	p=$(sed -n 's/^ℹ pass \([0-9]*\)/\1/p' "$logs/interop.log"); f=$(sed -n 's/^ℹ fail \([0-9]*\)/\1/p' "$logs/interop.log")
	if [ -z "$p" ]; then tail -30 "$logs/interop.log"; failed=$((failed + 1)); else passed=$((passed + p)); failed=$((failed + f)); fi
else
	cat "$logs/npm.log"; failed=$((failed + 1))
fi
fi

if want demo; then
echo "== demos (make demo, make demo-cluster: they run to the end without an error)"
# The README's first commands (as root they would also install and build:
# done above); each passes if it ends with status 0 and its last step shows.
for d in demo cluster; do
	if [ $d = demo ]; then bash demo/demo.sh >"$logs/demo.log" 2>&1
	else bash "$top/demo/cluster.sh" --here >"$logs/demo-cluster.log" 2>&1; fi
	rc=$?
	log="$logs/demo.log"; [ $d = cluster ] && log="$logs/demo-cluster.log"
	# the last step of each must show in the log
	mark='woken by each commit'; [ $d = cluster ] && mark='did:plc:alice/app.bsky.feed.post/1'
	if [ $rc -eq 0 ] && grep -q "$mark" "$log"; then
		echo "ok - $d"; passed=$((passed + 1))
	else
		echo "not ok - $d (rc $rc)"; tail -20 "$log"; failed=$((failed + 1))
	fi
done
fi

if want fuzz; then
echo "== fuzzing (libFuzzer, test/fuzz/; one harness at a time)"
# Each harness is one test.  CI runs each for 30 s, a local `make test` for
# a 5 s smoke run; FUZZ_SECONDS overrides both (`make fuzz` defaults to 60).
fuzz_seconds=${FUZZ_SECONDS:-}
[ -n "$fuzz_seconds" ] || { [ "${CI:-}" = true ] && fuzz_seconds=30 || fuzz_seconds=5; }
fuzz_targets=$(ls test/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')
if make -s fuzz-build >"$logs/fuzz-build.log" 2>&1; then
	bash test/fuzz/run.sh "$fuzz_seconds" "$logs/fuzz" $fuzz_targets | tee "$logs/fuzz.log" | grep -v '^FUZZ '
	# a harness without a "pass" line failed, whether or not it said so
	p=$(grep -c '^FUZZ .* pass$' "$logs/fuzz.log")
	passed=$((passed + p)); failed=$((failed + $(echo $fuzz_targets | wc -w) - p))
else
	tail -20 "$logs/fuzz-build.log"; failed=$((failed + $(echo $fuzz_targets | wc -w)))
fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
