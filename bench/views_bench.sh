#!/bin/bash
# Computed views (docs/views.md), each figure a ratio against a baseline
# measured in the same run.  Runs inside pg_virtualenv; see bench/run.sh.
#
#   1. a count view over 1M existing likes: refresh_view of 1k new events
#      vs recomputing the GROUP BY from scratch (REFRESH MATERIALIZED VIEW)
#   2. refresh throughput (ops/s) vs a hand-written upsert per op
#      (INSERT ... ON CONFLICT DO UPDATE SET count = count + 1) fed from a
#      plain table of the same keys
#   3. view_count_live at a lag of 1k events vs a primary-key read of the
#      count table
#
# Refreshes are timed inside BEGIN ... ROLLBACK, so every repetition applies
# the same pending events; the baselines run the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
LIKES=${VIEWS_LIKES:-1000000}		# existing likes
NEW=${VIEWS_NEW:-1000}				# new events for figures 1 and 3
OPS=${VIEWS_OPS:-20000}				# events for the throughput figure
REPS=${REPS:-7}
COLL=com.example.bench.like
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

time_query() {
	"${PSQL[@]}" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
# Interleaved medians, "subject_ms baseline_ms", in one warm session (as the
# background worker runs), after a warm-up of each.  With rollback, each
# statement runs between BEGIN and ROLLBACK, then the tables it wrote are
# vacuumed, so every repetition does the same work on the same tables.
compare() {	# rollback|plain subject baseline [tables to vacuum]
	local mode=$1 subject=$2 baseline=$3 vac=${4:-} script
	script=$( {
		echo '\timing on'
		for _ in $(seq 0 "$REPS"); do
			for q in "$subject" "$baseline"; do
				if [ "$mode" = rollback ]; then
					echo "BEGIN;"; echo "\\echo @"; echo "$q;"; echo "ROLLBACK;"
					[ -n "$vac" ] && echo "\\timing off" && echo "VACUUM $vac;" && echo '\timing on'
				else
					echo "\\echo @"; echo "$q;"
				fi
			done
		done
	} )
	local times
	times=$("${PSQL[@]}" <<<"$script" | awk '/^@$/ {mark = 1; next} /^Time: / && mark {print $2; mark = 0}' |
		tail -n +3)	# the warm-up pair
	echo "$(awk 'NR % 2 == 1' <<<"$times" | median) $(awk 'NR % 2 == 0' <<<"$times" | median)" \
		"$(awk 'NR % 2 == 1' <<<"$times" | sort -n | head -1) $(awk 'NR % 2 == 0' <<<"$times" | sort -n | head -1)"
}
best() {	# subject_ms baseline_ms: the best of the repetitions, for a machine shared with other work
	awk -v s="$1" -v b="$2" -v r="$REPS" 'BEGIN {printf "  best of %d: %.1f ms vs %.1f ms, %.2fx\n", r, s, b, s / b}'
}
row() {	# name subject_ms baseline_ms target
	awk -v n="$1" -v s="$2" -v b="$3" -v t="$4" \
		'BEGIN {printf "%-52s %10.1f %10.1f %8.2fx   %s\n", n, s, b, s / b, t}'
}

# 1,000 repos each holding 1,000 likes of 100,000 posts, written through the
# write path, 100k records per transaction.  DIDs, rkeys (TIDs) and at-uris
# have their real lengths, so the memory figure is a real one.
t0=$(date +%s.%N)
"${PSQL[@]}" <<SQL
CREATE EXTENSION IF NOT EXISTS repo_stream;
CREATE FUNCTION pg_temp.did(i int) RETURNS text LANGUAGE sql IMMUTABLE AS \$\$ SELECT 'did:plc:vbench' || lpad(i::text, 18, '0') \$\$;
SELECT count(repo_stream.create_repo(pg_temp.did(i))) FROM generate_series(1, 1000) i
WHERE NOT EXISTS (SELECT 1 FROM repo_stream.repos WHERE did = pg_temp.did(i));
SQL
for chunk in $(seq 0 $(( (LIKES + 99999) / 100000 - 1 ))); do
	"${PSQL[@]}" -c "
		INSERT INTO repo_stream.records (did, collection, rkey, record)
		SELECT 'did:plc:vbench' || lpad((i % 1000 + 1)::text, 18, '0'), '$COLL', repo_stream.tid_now(),
		       jsonb_build_object('\$type', 'app.bsky.feed.like',
		           'subject', jsonb_build_object('uri', 'at://did:plc:' || lpad((i::bigint * 7919 % 100000 % 1000)::text, 24, 'a')
		                                                 || '/app.bsky.feed.post/' || lpad((i::bigint * 7919 % 100000)::text, 13, '2'),
		                                         'cid', 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a'),
		           'createdAt', '2026-11-26T04:00:00.000Z')
		FROM generate_series($((chunk * 100000 + 1)), $(( (chunk + 1) * 100000 < LIKES ? (chunk + 1) * 100000 : LIKES ))) i"
done
t1=$(date +%s.%N)

"${PSQL[@]}" <<SQL
DROP MATERIALIZED VIEW IF EXISTS bench_like_mv;
CREATE MATERIALIZED VIEW bench_like_mv AS
	SELECT record->'subject'->>'uri' AS key, count(*) AS count FROM repo_stream.records
	WHERE collection = '$COLL' AND jsonb_typeof(record->'subject'->'uri') = 'string' GROUP BY 1;
SQL
fill_ms=$(time_query "SELECT repo_stream.create_count_view('bench_likes', '$COLL', 'subject.uri')")
mv_ms=$(time_query "REFRESH MATERIALIZED VIEW bench_like_mv")

# NEW single-like transactions from 8 clients: new likes, and likes moved to another post
cat >"$DIR/new.sql" <<EOF
\set r random(1, 1000)
\set p random(0, 99999)
\set n random(1, 1000)
SELECT repo_stream.put_record('did:plc:vbench' || lpad(:r::text, 18, '0'), '$COLL', 'new' || :client_id || '-' || :n,
	jsonb_build_object('\$type', 'app.bsky.feed.like',
		'subject', jsonb_build_object('uri', 'at://did:plc:' || lpad((:p % 1000)::text, 24, 'a')
			|| '/app.bsky.feed.post/' || lpad(:p::text, 13, '2')),
		'createdAt', '2026-11-26T04:00:00.000Z'));
EOF
pgbench -n -c 8 -j 4 -t $((NEW / 8)) -f "$DIR/new.sql" >/dev/null
lag=$("${PSQL[@]}" -At -c "SELECT lag_events FROM repo_stream.view_status WHERE name = 'public.bench_likes'")
key=$("${PSQL[@]}" -At -c "SELECT key FROM bench_likes ORDER BY count DESC LIMIT 1")

echo
echo "views: $LIKES likes in $("${PSQL[@]}" -At -c "SELECT count(*) FROM bench_likes") keys (written in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}') s); view lag $lag events"
vid=$("${PSQL[@]}" -At -c "SELECT id FROM repo_stream.views WHERE name = 'public.bench_likes'")
read -r s b bs bb < <(compare rollback \
	"SELECT repo_stream.refresh_view('bench_likes')" \
	"REFRESH MATERIALIZED VIEW bench_like_mv" \
	"bench_likes, repo_stream.view_memory_$vid, repo_stream.views, bench_like_mv")
row "view: refresh $lag events vs GROUP BY of ${LIKES} likes" "$s" "$b" ">= 100x faster"
awk -v s="$s" -v b="$b" -v bs="$bs" -v bb="$bb" \
	'BEGIN {printf "  refresh_view is %.0fx faster (median), %.0fx (best of each)\n", b / s, bb / bs}'
echo "  command: SELECT repo_stream.refresh_view('bench_likes') vs REFRESH MATERIALIZED VIEW bench_like_mv (GROUP BY subject.uri)"
row "view: fill at creation vs that GROUP BY (info)" "$fill_ms" "$mv_ms" "(info)"

# 3. live count at this lag vs a primary-key read
read -r s b bs bb < <(compare plain \
	"SELECT repo_stream.view_count_live('bench_likes', '$key')" \
	"SELECT count FROM bench_likes WHERE key = '$key'")
row "view: view_count_live at lag $lag vs PK read" "$s" "$b" "(report)"
best "$bs" "$bb"
echo "  command: SELECT repo_stream.view_count_live('bench_likes', key) vs SELECT count FROM bench_likes WHERE key = ..."

# memory: what the view keeps per counted record to find a record's old key
"${PSQL[@]}" -At -F ' ' -c "SELECT pg_relation_size('repo_stream.view_memory_$vid'),
	pg_indexes_size('repo_stream.view_memory_$vid'), (SELECT count(*) FROM repo_stream.view_memory_$vid)" |
	awk '{printf "  memory: %.0f bytes per counted record (heap %.0f + index %.0f) over %d records\n", ($1 + $2) / $3, $1 / $3, $2 / $3, $3}'

# 2. throughput: OPS new likes, one per event (rkeys are TIDs, later than tp_from)
"${PSQL[@]}" -c "SELECT repo_stream.refresh_view('bench_likes')" >/dev/null
tp_from=$("${PSQL[@]}" -At -c "SELECT repo_stream.tid_now()")
cat >"$DIR/ops.sql" <<EOF
\set r random(1, 1000)
\set p random(0, 99999)
SELECT repo_stream.put_record('did:plc:vbench' || lpad(:r::text, 18, '0'), '$COLL', repo_stream.tid_now(),
	jsonb_build_object('\$type', 'app.bsky.feed.like',
		'subject', jsonb_build_object('uri', 'at://did:plc:' || lpad((:p % 1000)::text, 24, 'a')
			|| '/app.bsky.feed.post/' || lpad(:p::text, 13, '2')),
		'createdAt', '2026-11-26T04:00:00.000Z'));
EOF
pgbench -n -c 8 -j 4 -t $((OPS / 8)) -f "$DIR/ops.sql" >/dev/null
"${PSQL[@]}" <<SQL
DROP TABLE IF EXISTS bench_ops, bench_upsert;
CREATE TABLE bench_ops AS SELECT row_number() OVER () AS n, record->'subject'->>'uri' AS key
	FROM repo_stream.records WHERE collection = '$COLL' AND rkey > '$tp_from' AND rkey NOT LIKE 'new%';
CREATE TABLE bench_upsert (key text PRIMARY KEY, count bigint NOT NULL);
INSERT INTO bench_upsert SELECT * FROM bench_like_mv;
SQL
ops=$("${PSQL[@]}" -At -c "SELECT count(*) FROM bench_ops")
read -r s b bs bb < <(compare rollback \
	"SELECT repo_stream.refresh_view('bench_likes')" \
	"DO \$\$ DECLARE r record; BEGIN
		FOR r IN SELECT key FROM bench_ops ORDER BY n LOOP
			INSERT INTO bench_upsert AS u VALUES (r.key, 1) ON CONFLICT (key) DO UPDATE SET count = u.count + 1;
		END LOOP; END \$\$" \
	"bench_likes, repo_stream.view_memory_$vid, repo_stream.views, bench_upsert")
awk -v n="view: refresh throughput, $ops single-like events" -v s="$s" -v b="$b" -v o="$ops" \
	'BEGIN {printf "%-52s %10.1f %10.1f %8.2fx   >= 0.5x (ops/s: refresh %.0f, upsert %.0f)\n", n, o / s * 1000, o / b * 1000, (o / s) / (o / b), o / s * 1000, o / b * 1000}'
awk -v s="$bs" -v b="$bb" -v o="$ops" -v r="$REPS" \
	'BEGIN {printf "  best of %d: %.0f vs %.0f ops/s, %.2fx\n", r, o / s * 1000, o / b * 1000, b / s}'
echo "  command: SELECT repo_stream.refresh_view('bench_likes') vs a PL/pgSQL loop of INSERT ... ON CONFLICT (key) DO UPDATE SET count = count + 1 over bench_ops"
