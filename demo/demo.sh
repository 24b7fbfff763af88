#!/bin/bash
# `make demo`: installs what it needs, starts a throwaway server and walks
# through what repo_stream does, end to end (demo/demo.sql).
#
#   demo.sh              the demo
#   demo.sh run          inside pg_virtualenv: psql runs demo.sql
#   demo.sh recv-start   (from demo.sql, \!) pg_recvlogical: create its slot, start streaming
#   demo.sh recv-stop    (from demo.sql, \!) wait for the last frame, stop it, show what it got
set -euo pipefail
cd "$(dirname "$0")/.."

# psql 15 ignores the exit status of \! commands, so a step that fails
# ends the psql that runs demo.sql, which makes the demo fail.
fail() {
	echo "demo.sh: $*" >&2
	kill -TERM "$(cat "$DEMO_TMP/psql.pid")"
	exit 1
}

case "${1:-}" in
run)
	# Whatever happens in psql, stop the streaming consumer before
	# pg_virtualenv stops the server (it would retry for ever otherwise).
	trap '[ -f "$DEMO_TMP/recv.pid" ] && kill -INT "$(cat "$DEMO_TMP/recv.pid")" 2>/dev/null; true' EXIT
	bash -c 'echo $$ >"$DEMO_TMP/psql.pid"; exec psql -X -v ON_ERROR_STOP=1 -f demo/demo.sql'
	exit
	;;
recv-start)
	cd "$DEMO_TMP"
	echo '   $ pg_recvlogical -d postgres -S firehose_cli --create-slot -P repo_stream'
	pg_recvlogical -d postgres -S firehose_cli --create-slot -P repo_stream || fail "pg_recvlogical --create-slot failed"
	echo '   $ pg_recvlogical -d postgres -S firehose_cli --start -o format=json -o blocks=false -f received.json &'
	bash -c 'pg_recvlogical -d postgres -S firehose_cli --start -o format=json -o blocks=false \
			-f received.json 2>recv.err & echo $! >recv.pid; wait $!; echo $? >recv.rc' >/dev/null 2>&1 &
	for _ in $(seq 300); do
		[ "$(psql -XAtc "SELECT active FROM pg_replication_slots WHERE slot_name = 'firehose_cli'")" = t ] && exit 0
		[ -f recv.rc ] && break
		sleep 0.1
	done
	cat recv.err >&2 || true
	fail "pg_recvlogical did not start streaming"
	;;
recv-stop)
	cd "$DEMO_TMP"
	# Its file holds one JSON frame a line; wait for the log's newest seq.
	last=$(psql -XAtc 'SELECT max(seq) FROM repo_stream.event_log')
	for _ in $(seq 300); do
		grep -q "^{\"seq\": $last," received.json 2>/dev/null && break
		sleep 0.1
	done
	grep -q "^{\"seq\": $last," received.json || { cat recv.err >&2 || true; fail "pg_recvlogical did not receive seq $last"; }
	echo '   $ kill -INT $!    # as Ctrl-C: pg_recvlogical flushes, confirms and exits 0'
	kill -INT "$(cat recv.pid)"
	for _ in $(seq 300); do [ -f recv.rc ] && break; sleep 0.1; done
	[ "$(cat recv.rc 2>/dev/null)" = 0 ] || { cat recv.err >&2 || true; fail "pg_recvlogical did not exit cleanly"; }
	rm recv.pid
	echo "   received.json: $(wc -l <received.json) lines, one frame each, as JSON:"
	psql -X -q -v ON_ERROR_STOP=1 -v recv="$(cat received.json)" <<-'SQL' || fail "reading received.json failed"
		SELECT j->'seq' AS seq, j->'header'->>'t' AS type, j->'body'->>'repo' AS repo,
		       j->'body' ? 'blocks' AS has_blocks,
		       jsonb_path_query_array(j, '$.body.ops[*].path') AS paths
		FROM (SELECT line::jsonb AS j FROM regexp_split_to_table(:'recv', E'\n') AS line) s;
	SQL
	echo '   a slot keeps WAL until its consumer confirms it; drop it when done:'
	echo '   $ pg_recvlogical -d postgres -S firehose_cli --drop-slot'
	pg_recvlogical -d postgres -S firehose_cli --drop-slot || fail "pg_recvlogical --drop-slot failed"
	exit 0
	;;
esac

if [ "$(id -u)" = 0 ]; then
	bash test/install-deps.sh
	make -s >/dev/null && make -s install >/dev/null
fi
export LANG=C.UTF-8 LC_ALL=C.UTF-8
DEMO_TMP=$(mktemp -d -t repo_stream-demo.XXXXXX)
export DEMO_TMP
trap 'rm -rf "$DEMO_TMP"' EXIT
# -t: the cluster's configuration directory is temporary even as root.
# Otherwise it is /etc/postgresql/15/regress, and the master key file that
# create_master_key() writes next to postgresql.conf would outlive
# pg_dropcluster, so that the next pg_virtualenv as root refuses to run
# ("Cluster 15/regress exists, refusing to overwrite").
pg_virtualenv -t -o wal_level=logical -o "output_plugin_libraries=pgoutput, test_decoding, repo_stream" \
	bash demo/demo.sh run
