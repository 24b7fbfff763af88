#!/bin/bash
# Write-path figures (signed commits into the event log), each a ratio
# against a baseline measured in the same run, fsync on.  Runs inside
# pg_virtualenv; see bench/run.sh.
#
#   1. single-record write transactions, 4 pgbench clients, each write to one
#      of 1,000 repos: put_record, and plain DML into repo_stream.records,
#      vs a plain INSERT of the same JSON into a table with the same key
#      (and a PL/pgSQL audit trigger for reference);
#   2. tps with 8 writers on distinct repos / tps with 1, vs the same ratio
#      for plain INSERT;
#   3. 100k records in one transaction into one repo, as INSERT ... SELECT
#      into repo_stream.records and as 100k put_record calls in one
#      statement, vs a plain bulk INSERT: BULK_RUNS (5) runs, every ratio;
#   4. rows 1 and 2 again after a restart with repo_stream in
#      shared_preload_libraries (NOTIFY then comes from a background worker).
set -euo pipefail
cd "$(dirname "$0")/.."
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
T=${WRITE_SECONDS:-10}
RUNS=${BULK_RUNS:-5}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

row() {	# name subject baseline target
	awk -v n="$1" -v s="$2" -v b="$3" -v t="$4" \
		'BEGIN {printf "%-52s %10.1f %10.1f %8.2fx   %s\n", n, s, b, s / b, t}'
}

"${PSQL[@]}" <<'SQL'
CREATE EXTENSION IF NOT EXISTS repo_stream;
DROP TABLE IF EXISTS plain_records, audited_records, audit_log;
DROP FUNCTION IF EXISTS audit();
CREATE TABLE plain_records (did text, collection text, rkey text, record jsonb,
	PRIMARY KEY (did, collection, rkey));
CREATE TABLE audited_records (did text, collection text, rkey text, record jsonb,
	PRIMARY KEY (did, collection, rkey));
CREATE TABLE audit_log (id bigserial PRIMARY KEY, op text, at timestamptz DEFAULT now(), row_data jsonb);
CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO audit_log (op, row_data) VALUES (TG_OP, to_jsonb(NEW));
	RETURN NEW;
END $$;
CREATE TRIGGER audit AFTER INSERT OR UPDATE ON audited_records FOR EACH ROW EXECUTE FUNCTION audit();
SELECT count(repo_stream.create_repo('did:plc:bench' || i)) FROM generate_series(1, 1000) i
WHERE NOT EXISTS (SELECT 1 FROM repo_stream.repos WHERE did = 'did:plc:bench' || i);
SQL

REC='{"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3k2a", "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}, "createdAt": "2026-11-26T04:00:00.000Z"}'

# The same rkey source (a TID), JSON and primary key for every variant.  A
# write picks one of 1,000 repos, as writes from many users do (writes to one
# repo serialize by design).
script() {	# name kind repo-expression
	local kind=$2 did=$3 stmt
	case $kind in
	repo) stmt="SELECT repo_stream.put_record($did, 'app.bsky.feed.like', repo_stream.tid_now(), '$REC');" ;;
	dml) stmt="INSERT INTO repo_stream.records (did, collection, rkey, record) VALUES ($did, 'app.bsky.feed.like', repo_stream.tid_now(), '$REC');" ;;
	*) stmt="INSERT INTO $kind VALUES ($did, 'app.bsky.feed.like', repo_stream.tid_now(), '$REC');" ;;
	esac
	printf '%s\n' "\\set r random(1, 1000)" "$stmt" >"$DIR/$1.sql"
}
script repo repo "'did:plc:bench' || :r"
script dml dml "'did:plc:bench' || :r"
script plain plain_records "'did:plc:bench' || :r"
script audit audited_records "'did:plc:bench' || :r"
script repo_own repo "'did:plc:bench' || (:client_id + 1)"
script plain_own plain_records "'did:plc:bench' || (:client_id + 1)"

tps() {	# script clients
	pgbench -n -c "$2" -j "$(($2 < 4 ? $2 : 4))" -T "$T" -f "$DIR/$1.sql" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
best() { tr ' ' '\n' | grep . | sort -n | tail -1; }

single_rows() {	# label
	local r="" d="" p="" a=""
	# interleave subjects and baselines, two rounds, keep the best of each
	for _ in 1 2; do
		r+=" $(tps repo 4)"; d+=" $(tps dml 4)"; p+=" $(tps plain 4)"; a+=" $(tps audit 4)"
	done
	r=$(best <<<"$r"); d=$(best <<<"$d"); p=$(best <<<"$p"); a=$(best <<<"$a")
	row "1-record txns, 4 clients, put_record, tps ($1)" "$r" "$p" ">= 0.75x"
	row "  same, DML into records ($1)" "$d" "$p" ">= 0.75x"
	row "  put_record vs audit trigger ($1)" "$r" "$a" "(report)"
	local r8 r1 p8 p1
	r8=$(tps repo_own 8); r1=$(tps repo_own 1); p8=$(tps plain_own 8); p1=$(tps plain_own 1)
	awk -v a="$r8" -v b="$r1" -v c="$p8" -v d="$p1" -v l="$1" \
		'BEGIN {printf "%-52s %10.2f %10.2f %8.2fx   %s\n", "tps(8 writers)/tps(1), distinct repos (" l ")", a / b, c / d, (a / b) / (c / d), ">= 0.90x"}'
}

single_rows "no preload"

# 100k records in one transaction into one repo vs a plain bulk INSERT
bulk_ms() {
	"${PSQL[@]}" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
gen="FROM generate_series(1, 100000) i"
val="'$REC'::jsonb || jsonb_build_object('i', i)"
dml_ratios=""; put_ratios=""
for run in $(seq "$RUNS"); do
	"${PSQL[@]}" -c "TRUNCATE plain_records" \
		-c "SELECT repo_stream.delete_repo(did) FROM repo_stream.repos WHERE did LIKE 'did:plc:bulk%' AND status <> 'deleted'" \
		-c "SELECT repo_stream.create_repo('did:plc:bulk$run'), repo_stream.create_repo('did:plc:bulkput$run')" >/dev/null
	"${PSQL[@]}" -c "VACUUM" 2>/dev/null || true
	b_dml=$(bulk_ms "INSERT INTO repo_stream.records (did, collection, rkey, record) SELECT 'did:plc:bulk$run', 'app.bsky.feed.like', 'r' || i, $val $gen")
	b_plain=$(bulk_ms "INSERT INTO plain_records SELECT 'did:plc:bulk$run', 'app.bsky.feed.like', 'r' || i, $val $gen")
	b_put=$(bulk_ms "SELECT count(repo_stream.put_record('did:plc:bulkput$run', 'app.bsky.feed.like', 'r' || i, $val)) $gen")
	dml_ratios+=" $(awk -v a="$b_dml" -v b="$b_plain" 'BEGIN {printf "%.2f", a / b}')"
	put_ratios+=" $(awk -v a="$b_put" -v b="$b_plain" 'BEGIN {printf "%.2f", a / b}')"
	row "100k records in 1 txn, INSERT..SELECT, ms (run $run)" "$b_dml" "$b_plain" "<= 2.50x"
	row "  same, 100k put_record in 1 statement (run $run)" "$b_put" "$b_plain" "<= 2.50x"
done
echo "  bulk ratios over $RUNS runs: DML${dml_ratios}; put_record${put_ratios} (target: every one <= 2.50x)"

# The same single-record rows with repo_stream preloaded: restart the server
# (pg_ctl restart keeps the command line it was started with).
restart() {
	/usr/lib/postgresql/15/bin/pg_ctl -D "$DATA" -w -l "$DIR/restart.log" restart >/dev/null
}
DATA=$("${PSQL[@]}" -At -c "SHOW data_directory")
"${PSQL[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = repo_stream" >/dev/null
restart
single_rows "preloaded"
"${PSQL[@]}" -c "ALTER SYSTEM RESET shared_preload_libraries" >/dev/null
restart
