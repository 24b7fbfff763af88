#!/bin/bash
# Output plugin figures, each a ratio against a baseline measured in the same
# run over the same WAL.  Runs inside pg_virtualenv (see bench/run.sh), which
# must allow wal2json too: output_plugin_libraries = pgoutput, test_decoding,
# repo_stream, wal2json.
#
#   1. decode time of DEC_TXNS (100k) single-record write transactions:
#      repo_stream (the #commit frames) vs wal2json format-version 2 and
#      pgoutput proto 1 (the rows of repo_stream.records, the same writes);
#   2. the same for one transaction of DEC_BULK (100k) records;
#   3. the decoding backend's peak anonymous memory (RssAnon, sampled) while
#      repo_stream decodes one transaction of DEC_BIG (1M) records, against
#      the size of what it outputs.
#
# Every decode goes through pg_logical_slot_peek_*_changes on slots created
# before the workload, so repetitions decode the same WAL.
set -euo pipefail
cd "$(dirname "$0")/.."
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
N=${DEC_TXNS:-100000}
BULK=${DEC_BULK:-100000}
BIG=${DEC_BIG:-1000000}
R=${DEC_REPS:-3}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

row() {	# name subject baseline target [unit]
	awk -v n="$1" -v s="$2" -v b="$3" -v t="$4" \
		'BEGIN {printf "%-52s %10.1f %10.1f %8.2fx   %s\n", n, s, b, s / b, t}'
}
time_query() {
	"${PSQL[@]}" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

REC='{"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3k2a", "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}, "createdAt": "2026-11-26T04:00:00.000Z"}'

"${PSQL[@]}" <<SQL >/dev/null
CREATE EXTENSION IF NOT EXISTS repo_stream;
SELECT count(repo_stream.create_repo('did:plc:decbench' || i)) FROM generate_series(0, 15) i
 WHERE NOT EXISTS (SELECT 1 FROM repo_stream.repos WHERE did = 'did:plc:decbench' || i);
DROP PUBLICATION IF EXISTS decbench_pub;
CREATE PUBLICATION decbench_pub FOR TABLE repo_stream.records;
SQL

slots() {	# (re)create the three slots before a workload
	"${PSQL[@]}" >/dev/null <<'SQL'
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'decbench_%';
SELECT pg_create_logical_replication_slot('decbench_rs', 'repo_stream');
SELECT pg_create_logical_replication_slot('decbench_w2j', 'wal2json');
SELECT pg_create_logical_replication_slot('decbench_pgo', 'pgoutput');
SQL
}

RS="SELECT count(*) FROM pg_logical_slot_peek_binary_changes('decbench_rs', NULL, NULL)"
W2J="SELECT count(*) FROM pg_logical_slot_peek_changes('decbench_w2j', NULL, NULL, 'format-version', '2', 'add-tables', 'repo_stream.records')"
PGO="SELECT count(*) FROM pg_logical_slot_peek_binary_changes('decbench_pgo', NULL, NULL, 'proto_version', '1', 'publication_names', 'decbench_pub')"

# the same frames as wal2json sees them: event_log rows, bytea in hex
# (add-tables takes no wildcard inside a name: list the eight partitions)
W2JE="SELECT count(*) FROM pg_logical_slot_peek_changes('decbench_w2j', NULL, NULL, 'format-version', '2', 'add-tables',
	(SELECT string_agg('repo_stream.event_log_' || i, ',') FROM generate_series(0, 7) i))"

# Interleaved repetitions after one warm-up each; prints the medians, in
# the order of the queries given.
decode_times() {
	local q i
	local -a t=()
	for q in "$@"; do time_query "$q" >/dev/null; done
	for _ in $(seq "$R"); do
		i=0
		for q in "$@"; do t[i]+=" $(time_query "$q")"; i=$((i + 1)); done
	done
	for i in "${!t[@]}"; do printf '%s ' "$(tr ' ' '\n' <<<"${t[i]}" | grep . | median)"; done
	echo
}

# 1. single-record transactions
slots
# pgbench, not a loop in one session: a session that never goes idle never
# reports its statistics, so autovacuum would never see the dead MST nodes.
# No WAL flush per commit: the figures are decode times, not write times.
printf '%s\n' "\\set r random(0, 15)" \
	"SELECT repo_stream.put_record('did:plc:decbench' || :r, 'app.bsky.feed.like', repo_stream.tid_now(), '$REC');" \
	>"$DIR/single.sql"
PGOPTIONS='-c synchronous_commit=off' pgbench -n -c 2 -j 2 -t $((N / 2)) -f "$DIR/single.sql" >/dev/null
# decoding reads flushed WAL only: a synchronous commit flushes the rest
"${PSQL[@]}" -c "SELECT txid_current()" >/dev/null
read -r rs w2j pgo w2je < <(decode_times "$RS" "$W2J" "$PGO" "$W2JE")
k=$((N / 1000))
row "decode ${k}k 1-record txns: repo_stream vs wal2json v2" "$rs" "$w2j" "<= 1.00x"
row "  same, vs pgoutput proto 1 (reference)" "$rs" "$pgo" "(report)"
row "  same, vs wal2json of the event_log rows (same frames)" "$rs" "$w2je" "(report)"

# 2. one transaction of BULK records into one repo
slots
"${PSQL[@]}" -c "INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:decbench0', 'app.bsky.feed.like', 'b' || i, '$REC'::jsonb || jsonb_build_object('i', i)
	FROM generate_series(1, $BULK) i"
read -r rs w2j pgo < <(decode_times "$RS" "$W2J" "$PGO")
k=$((BULK / 1000))
row "decode one ${k}k-record txn: repo_stream vs wal2json v2" "$rs" "$w2j" "<= 1.00x"
row "  same, vs pgoutput proto 1 (reference)" "$rs" "$pgo" "(report)"
"${PSQL[@]}" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'decbench_%'" >/dev/null

# 3. memory while decoding one transaction of BIG records
"${PSQL[@]}" -c "SELECT pg_create_logical_replication_slot('decbench_mem', 'repo_stream')" >/dev/null
"${PSQL[@]}" -c "INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:decbench1', 'app.bsky.feed.like', 'm' || i, '$REC'::jsonb || jsonb_build_object('i', i)
	FROM generate_series(1, $BIG) i"
out=$(mktemp)
PGAPPNAME=decbench_mem "${PSQL[@]}" -At -c "SET logical_decoding_work_mem = '64MB'" \
	-c "SELECT sum(length(data)) FROM pg_logical_slot_peek_binary_changes('decbench_mem', NULL, NULL)" >"$out" &
psql_pid=$!
pid=""
for _ in $(seq 200); do
	pid=$("${PSQL[@]}" -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'decbench_mem' AND state = 'active'")
	[ -n "$pid" ] && break
	sleep 0.05
done
peak=0
while kill -0 "$psql_pid" 2>/dev/null && [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; do
	kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
	[ "${kb:-0}" -gt "$peak" ] && peak=$kb
	sleep 0.05
done
wait "$psql_pid"
bytes=$(tail -1 "$out")
rm -f "$out"
"${PSQL[@]}" -c "SELECT pg_drop_replication_slot('decbench_mem')" >/dev/null
k=$((BIG / 1000))
row "peak RssAnon decoding one ${k}k-record txn: MB vs output MB" \
	"$(awk -v k="$peak" 'BEGIN {print k / 1024}')" "$(awk -v b="$bytes" 'BEGIN {print b / 1048576}')" "<< 1.00x"
