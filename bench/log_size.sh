#!/bin/bash
# The event log's on-disk size (tables, TOAST and indexes of all segments)
# after LOG_EVENTS events with a LOG_CAP retention cap, against its size
# when the cap was first reached.  Target: <= 1.5x.  Runs inside
# pg_virtualenv; see bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
CAP=${LOG_CAP:-100000}
EVENTS=${LOG_EVENTS:-1000000}

"${PSQL[@]}" -c "LOAD 'repo_stream'" -c "ALTER SYSTEM SET repo_stream.retention_events = $CAP" -c "SELECT pg_reload_conf()" >/dev/null
"${PSQL[@]}" <<'SQL' >/dev/null
CREATE EXTENSION IF NOT EXISTS repo_stream;
SELECT count(repo_stream.create_repo('did:plc:log' || i)) FROM generate_series(1, 100) i
WHERE NOT EXISTS (SELECT 1 FROM repo_stream.repos WHERE did = 'did:plc:log' || i);
SQL

# Each transaction writes one like into each of 100 repos: 100 #commit
# events, each with a signed commit, MST nodes and the record.
fill_to() {
	"${PSQL[@]}" -c "
	DO \$\$
	DECLARE
		n int := 0;
	BEGIN
		WHILE (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM repo_stream.event_seq) < $1 LOOP
			INSERT INTO repo_stream.records AS r (did, collection, rkey, record)
			SELECT 'did:plc:log' || i, 'app.bsky.feed.like', 'k' || (n % 50),
			       jsonb_build_object('\$type', 'app.bsky.feed.like', 'n', n,
			           'subject', jsonb_build_object('uri', 'at://did:plc:x/app.bsky.feed.post/' || n,
			               'cid', 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a'))
			FROM generate_series(1, 100) i
			ON CONFLICT ON CONSTRAINT records_pkey DO UPDATE SET record = excluded.record;
			COMMIT;
			n := n + 1;
		END LOOP;
	END \$\$"
}

size() {
	"${PSQL[@]}" -c "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
		WHERE inhparent = 'repo_stream.event_log'::regclass"
}

fill_to "$CAP"
s1=$(size)
n1=$("${PSQL[@]}" -c "SELECT count(*) FROM repo_stream.event_log")
fill_to "$EVENTS"
s2=$(size)
n2=$("${PSQL[@]}" -c "SELECT count(*) FROM repo_stream.event_log")
awk -v n="log size after $EVENTS events, cap $CAP (MB)" -v s="$s2" -v b="$s1" \
	'BEGIN {printf "%-52s %10.1f %10.1f %8.2fx   %s\n", n, s / 1048576, b / 1048576, s / b, "<= 1.50x"}'
echo "  (rows kept: $n2 at the end, $n1 when the cap was first reached)"
"${PSQL[@]}" -c "LOAD 'repo_stream'" -c "ALTER SYSTEM RESET repo_stream.retention_events" -c "SELECT pg_reload_conf()" >/dev/null
