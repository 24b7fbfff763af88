#!/bin/bash
# Where the CPU time of a single-record write transaction goes, in µs per
# commit, split by phase (the "where the time goes" table of bench/README.md).
#
# One backend runs N single-record transactions in a DO loop (put_record
# and a plain INSERT of the same JSON, over 1,000 repos) with
# synchronous_commit = off, so that the figures are CPU and not the wait for
# the WAL flush.  CPU per commit comes from /proc/<pid>/stat; perf samples
# the backend and each phase is the share of samples under its functions.
#
# Runs as root (perf attaches to a server process) against the server the
# PG* variables point at: `make bench-profile` starts a throwaway one.
set -euo pipefail
N=${N:-5000}
PSQL=(psql -qXAt -v ON_ERROR_STOP=1)
command -v perf >/dev/null || { echo "commit_profile: perf is missing (apt-get install linux-perf)"; exit 1; }
DIR=$(mktemp -d)
trap "rm -rf \"$DIR\"" EXIT; [ -n "${KEEP:-}" ] && trap - EXIT

REC='{"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3k2a", "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}, "createdAt": "2026-11-26T04:00:00.000Z"}'
"${PSQL[@]}" <<'SQL' >/dev/null
CREATE EXTENSION IF NOT EXISTS repo_stream;
DROP TABLE IF EXISTS profile_plain;
CREATE TABLE profile_plain (did text, collection text, rkey text, record jsonb, PRIMARY KEY (did, collection, rkey));
SELECT count(repo_stream.create_repo('did:plc:bench' || i)) FROM generate_series(1, 1000) i
WHERE NOT EXISTS (SELECT 1 FROM repo_stream.repos WHERE did = 'did:plc:bench' || i);
SQL

# run LABEL STATEMENT: prints "µs-per-commit" and leaves $DIR/LABEL.perf
run() {
	local label=$1 stmt=$2 pid t0 t1 perfpid
	coproc SESSION { "${PSQL[@]}" 2>&1; }
	echo "SET synchronous_commit = off; SELECT pg_backend_pid();" >&"${SESSION[1]}"
	read -r pid <&"${SESSION[0]}"
	# warm up: every repo's key and root in this backend's caches
	echo "DO \$\$ BEGIN FOR i IN 1..2000 LOOP $stmt; COMMIT; END LOOP; END \$\$; SELECT 'w';" >&"${SESSION[1]}"
	read -r _ <&"${SESSION[0]}"
	perf record -e cpu-clock -F 2999 -g -o "$DIR/$label.perf" -p "$pid" >/dev/null 2>&1 &
	perfpid=$!
	sleep 0.5
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	echo "DO \$\$ BEGIN FOR i IN 1..$N LOOP $stmt; COMMIT; END LOOP; END \$\$; SELECT 'd';" >&"${SESSION[1]}"
	read -r _ <&"${SESSION[0]}"
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	kill -INT "$perfpid"; wait "$perfpid" 2>/dev/null || true
	echo '\q' >&"${SESSION[1]}"; wait "$SESSION_PID" 2>/dev/null || true
	awk -v a="$t0" -v b="$t1" -v n="$N" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f\n", (b - a) / hz * 1e6 / n}'
}

# share SYMBOL... : percent of samples with any of the symbols on the stack
share() {
	local label=$1; shift
	perf report -i "$DIR/$label.perf" --children --stdio --sort symbol -g none 2>/dev/null |
		awk -v syms=" $* " '
			/^ +[0-9.]+% +[0-9.]+% +\[/ {
				name = $0
				sub(/^[^]]*\] /, "", name)
				sub(/ .*$/, "", name)
				if (index(syms, " " name " ") && ($1 + 0) > best) best = $1 + 0
			}
			END { printf "%.1f\n", best }'
}

plain=$(run plain "INSERT INTO profile_plain VALUES ('did:plc:bench' || (i % 1000 + 1), 'app.bsky.feed.like', repo_stream.tid_now(), '$REC')")
repo=$(run repo "PERFORM repo_stream.put_record('did:plc:bench' || (i % 1000 + 1), 'app.bsky.feed.like', repo_stream.tid_now(), '$REC')")

# self share of one shared library (libsodium is built without frame
# pointers, so its samples lose their callers; it only signs, in pre-commit)
dso_share() {
	perf report -i "$DIR/$1.perf" --no-children --stdio --sort dso -g none 2>/dev/null |
		awk -v d="$2" '/^ +[0-9.]+%/ && index($0, d) { s += $1 + 0 } END { printf "%.1f\n", s }'
}

# phases of the put_record commit, as shares of its samples
sign=$(dso_share repo libsodium)
precommit=$(awk -v a="$(share repo xact_callback)" -v b="$sign" 'BEGIN {printf "%.1f", a + b}')
derive=$(share repo crypto_sign_seed_keypair)
event=$(share repo rs_eventlog_append)
nodes=$(share repo rs_persist_run persist_run)
commit=$(share repo CommitTransactionCommand)
notify=$(share repo PreCommit_Notify AtCommit_Notify)

us() { awk -v t="$repo" -v p="$1" 'BEGIN {printf "%.1f", t * p / 100}'; }
printf '%-64s %10s\n' "phase of one put_record commit (N=$N, CPU only)" "us/commit"
printf '%s\n' "$(printf '%.0s-' {1..76})"
printf '%-64s %10s\n' "statement: helper, \$type, DAG-CBOR, CID, repo lock, row" \
	"$(awk -v t="$repo" -v c="$commit" -v s="$sign" 'BEGIN {printf "%.1f", t * (100 - c - s) / 100}')"
printf '%-64s %10s\n' "pre-commit total (xact_callback)" "$(us "$precommit")"
printf '%-64s %10s\n' "  Ed25519 signature" "$(us "$sign")"
printf '%-64s %10s\n' "  deriving the key pair from the seed (part of the signature)" "$(us "$derive")"
printf '%-64s %10s\n' "  MST node and repo head rows" "$(us "$nodes")"
printf '%-64s %10s\n' "  event row (seq, log checks, insert)" "$(us "$event")"
printf '%-64s %10s\n' "  the rest: MST edits, commit and frame encoding, hashing" \
	"$(awk -v t="$repo" -v a="$precommit" -v b="$sign" -v c="$derive" -v d="$nodes" -v e="$event" \
		'BEGIN {printf "%.1f", t * (a - b - c - d - e) / 100}')"
printf '%-64s %10s\n' "commit record, locks, NOTIFY queue (outside pre-commit)" \
	"$(awk -v t="$repo" -v c="$commit" -v p="$precommit" -v s="$sign" 'BEGIN {printf "%.1f", t * (c + s - p) / 100}')"
printf '%-64s %10s\n' "  of which NOTIFY" "$(us "$notify")"
printf '%-64s %10s\n' "total put_record commit" "$repo"
printf '%-64s %10s\n' "total plain INSERT commit (same JSON, same key shape)" "$plain"
awk -v a="$repo" -v b="$plain" 'BEGIN {printf "%-64s %9.2fx\n", "CPU per commit, put_record / plain INSERT", a / b}'
