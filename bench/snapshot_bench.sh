#!/bin/bash
# Snapshot figures, each a ratio against a baseline measured in the same run
# (medians of interleaved repetitions).  Runs inside pg_virtualenv; see
# bench/run.sh.  BENCH_QUICK=1 skips the 1M-record memory figure.
#
#   export   export_repo of a 100k-record repo, read as a client reads it
#            (COPY of the chunks, binary) vs COPY of the same records' JSON
#   import   import_repo of that export vs a plain bulk INSERT of the same
#            rows into a table with the same primary key (both rolled back)
#   memory   peak anonymous RSS of the backend exporting 100k vs 1M records
set -euo pipefail
cd "$(dirname "$0")/.."
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
REPS=${REPS:-5}

time_query() {
	"${PSQL[@]}" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
compare() {	# subject baseline -> "subject_ms baseline_ms"
	local s b
	time_query "$1" >/dev/null; time_query "$2" >/dev/null
	for _ in $(seq "$REPS"); do
		s+=" $(time_query "$1")"; b+=" $(time_query "$2")"
	done
	echo "$(tr ' ' '\n' <<<"$s" | grep . | median) $(tr ' ' '\n' <<<"$b" | grep . | median)"
}
row() {	# name subject baseline target
	awk -v n="$1" -v s="$2" -v b="$3" -v t="$4" \
		'BEGIN {printf "%-52s %10.1f %10.1f %8.2fx   %s\n", n, s, b, s / b, t}'
}

# A repo of n records (bench_records' shapes, cycled; with "distinct",
# each made unique), written in transactions of 100k.
make_repo() {	# did n [distinct]
	"${PSQL[@]}" -c "SELECT repo_stream.create_repo('$1') WHERE NOT EXISTS (SELECT 1 FROM repo_stream.repos WHERE did = '$1')" >/dev/null
	local have
	have=$("${PSQL[@]}" -Atc "SELECT count(*) FROM repo_stream.records WHERE did = '$1'")
	while [ "$have" -lt "$2" ]; do
		"${PSQL[@]}" -c "INSERT INTO repo_stream.records (did, collection, rkey, record)
			SELECT '$1', b.x->>'\$type', 'r' || lpad((g + $have)::text, 8, '0'),
			       CASE WHEN '${3:-}' = 'distinct' THEN b.x || jsonb_build_object('n', g + $have) ELSE b.x END
			FROM generate_series(1, least(100000, $2 - $have)) g JOIN bench_records b ON b.i = (g - 1) % 100000 + 1" >/dev/null
		have=$("${PSQL[@]}" -Atc "SELECT count(*) FROM repo_stream.records WHERE did = '$1'")
	done
}

"${PSQL[@]}" -c 'CREATE EXTENSION IF NOT EXISTS repo_stream' >/dev/null
"${PSQL[@]}" -Atc "SELECT to_regclass('bench_records') IS NULL" | grep -q t && "${PSQL[@]}" -f bench/records.sql >/dev/null
make_repo did:plc:snapbench 100000

echo
echo "snapshots (REPS=$REPS, median ms): subject vs baseline"
EXPORT="COPY (SELECT (x).chunk FROM (SELECT repo_stream.export_repo('did:plc:snapbench') AS x) s) TO '/dev/null' WITH (FORMAT binary)"
COPYREC="COPY (SELECT record FROM repo_stream.records WHERE did = 'did:plc:snapbench') TO '/dev/null'"
read -r s b < <(compare "$EXPORT" "$COPYREC")
row "export_repo, 100k records vs COPY of their JSON" "$s" "$b" "<= 2.00x"
echo "    subject:  $EXPORT"
echo "    baseline: $COPYREC"
"${PSQL[@]}" -Atc "SELECT format('    CAR: %s MB in %s chunks', round(sum(length(chunk)) / 1048576.0, 1), count(*))
	FROM repo_stream.export_repo('did:plc:snapbench')"

# the export to import, and the same rows for the baseline, staged once
"${PSQL[@]}" <<'SQL' >/dev/null
DROP TABLE IF EXISTS snap_car, snap_rows, snap_plain;
CREATE TABLE snap_car AS
SELECT string_agg(chunk, ''::bytea ORDER BY n) AS car,
       repo_stream.repo_key('did:plc:snapbench') AS did_key
FROM repo_stream.export_repo('did:plc:snapbench') WITH ORDINALITY AS e(seq, rev, chunk, n);
CREATE TABLE snap_rows AS SELECT collection, rkey, record FROM repo_stream.records WHERE did = 'did:plc:snapbench';
CREATE TABLE snap_plain (did text, collection text, rkey text, record jsonb, cid text, PRIMARY KEY (did, collection, rkey));
-- the repo moves away, so its CAR can come back (in a transaction rolled back each time)
SELECT repo_stream.delete_repo('did:plc:snapbench');
DELETE FROM repo_stream.repos WHERE did = 'did:plc:snapbench';
SQL
IMPORT="DO \$\$ BEGIN PERFORM repo_stream.import_repo(car, did_key) FROM snap_car; RAISE EXCEPTION USING ERRCODE = 'P0099'; EXCEPTION WHEN SQLSTATE 'P0099' THEN NULL; END \$\$"
INSERT="DO \$\$ BEGIN INSERT INTO snap_plain SELECT 'did:plc:snapbench', collection, rkey, record, '' FROM snap_rows; RAISE EXCEPTION USING ERRCODE = 'P0099'; EXCEPTION WHEN SQLSTATE 'P0099' THEN NULL; END \$\$"
read -r s b < <(compare "$IMPORT" "$INSERT")
row "import_repo of that CAR vs plain bulk INSERT" "$s" "$b" "<= 3.00x"
echo "    subject:  import_repo(car, did_key), rolled back"
echo "    baseline: INSERT INTO snap_plain (same PK) SELECT the same 100k rows, rolled back"
"${PSQL[@]}" -c "SELECT repo_stream.import_repo(car, did_key) FROM snap_car" >/dev/null

# Peak anonymous RSS of one backend while it exports (sampled every 10 ms).
peak_rss_kb() {	# did [export_dedup_cids]
	local dir peak=0 pid rss bg
	dir=$(mktemp -d)
	cat >"$dir/run.sql" <<SQL
SET repo_stream.export_dedup_cids = ${2:-131072};
SELECT pg_backend_pid() \\g $dir/pid
COPY (SELECT (x).chunk FROM (SELECT repo_stream.export_repo('$1') AS x) s) TO '/dev/null' WITH (FORMAT binary);
SQL
	"${PSQL[@]}" -At -f "$dir/run.sql" >/dev/null &
	bg=$!
	while [ ! -s "$dir/pid" ] && kill -0 "$bg" 2>/dev/null; do sleep 0.01; done
	pid=$(cat "$dir/pid")
	while kill -0 "$bg" 2>/dev/null; do
		rss=$(sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
		[ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
		sleep 0.01
	done
	wait "$bg"
	rm -rf "$dir"
	echo "$peak"
}
if [ -z "${BENCH_QUICK:-}" ]; then
	make_repo did:plc:snapbench1m 1000000 distinct
	m1=$(peak_rss_kb did:plc:snapbench1m)
	m100=$(peak_rss_kb did:plc:snapbench)
	row "peak backend RssAnon (kB) exporting 1M vs 100k" "$m1" "$m100" "flat (~1.0x)"
	echo "    subject:  a fresh backend running COPY (export_repo('did:plc:snapbench1m')) TO '/dev/null'"
	echo "    baseline: the same for did:plc:snapbench (100k); RssAnon sampled from /proc every 10 ms"
	# both past the CID cap: the same bounded structures, whatever the size
	m1=$(peak_rss_kb did:plc:snapbench1m 16384)
	m100=$(peak_rss_kb did:plc:snapbench 16384)
	row "  the same with export_dedup_cids = 16384" "$m1" "$m100" "flat (~1.0x)"
fi
