#!/bin/bash
# Write-path figures (signed commits into the event log), each a ratio
# against a baseline measured in the same run.  Runs inside pg_virtualenv;
# see bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
T=${WRITE_SECONDS:-10}
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
script() {	# name table-or-repo-insert repo-expression
	local target=$2 did=$3
	if [ "$target" = repo ]; then
		printf '%s\n' "\\set r random(1, 1000)" \
			"SELECT repo_stream.put_record($did, 'app.bsky.feed.like', repo_stream.tid_now(), '$REC');" >"$DIR/$1.sql"
	else
		printf '%s\n' "\\set r random(1, 1000)" \
			"INSERT INTO $target VALUES ($did, 'app.bsky.feed.like', repo_stream.tid_now(), '$REC');" >"$DIR/$1.sql"
	fi
}
script repo repo "'did:plc:bench' || :r"
script plain plain_records "'did:plc:bench' || :r"
script audit audited_records "'did:plc:bench' || :r"
script repo_own repo "'did:plc:bench' || (:client_id + 1)"
script plain_own plain_records "'did:plc:bench' || (:client_id + 1)"

tps() {	# script clients
	pgbench -n -c "$2" -j "$(($2 < 4 ? $2 : 4))" -T "$T" -f "$DIR/$1.sql" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
best() { tr ' ' '\n' | grep . | sort -n | tail -1; }

# interleave subject and baselines, two rounds, keep the best of each
r1=""; p1=""; a1=""
for _ in 1 2; do
	r1+=" $(tps repo 4)"; p1+=" $(tps plain 4)"; a1+=" $(tps audit 4)"
done
r1=$(best <<<"$r1"); p1=$(best <<<"$p1"); a1=$(best <<<"$a1")
row "1-record write txns, 4 clients: tps vs plain INSERT" "$r1" "$p1" ">= 0.75x"
row "  same, vs PL/pgSQL audit trigger (to_jsonb(NEW))" "$r1" "$a1" "(report)"

r8=$(tps repo_own 8); r1c=$(tps repo_own 1); p8=$(tps plain_own 8); p1c=$(tps plain_own 1)
awk -v a="$r8" -v b="$r1c" -v c="$p8" -v d="$p1c" \
	'BEGIN {printf "%-52s %10.2f %10.2f %8.2fx   %s\n", "8 writers, distinct repos: tps(8)/tps(1)", a / b, c / d, (a / b) / (c / d), "(scaling vs plain)"}'

# 100k records in one transaction into one repo vs a plain bulk INSERT
bulk_ms() {
	"${PSQL[@]}" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
"${PSQL[@]}" -c "SELECT repo_stream.create_repo('did:plc:bulk')" >/dev/null
bulk_sql() {
	echo "INSERT INTO $1 SELECT 'did:plc:bulk', 'app.bsky.feed.like', 'r' || i,
		'$REC'::jsonb || jsonb_build_object('i', i) FROM generate_series(1, 100000) i"
}
b_repo=$(bulk_ms "$(bulk_sql 'repo_stream.records (did, collection, rkey, record)')")
b_plain=$(bulk_ms "$(bulk_sql plain_records)")
b_audit=$(bulk_ms "$(bulk_sql audited_records)")
row "100k records in one txn, one repo: ms vs plain" "$b_repo" "$b_plain" "<= 3.00x"
row "  same, audit trigger vs plain (reference)" "$b_audit" "$b_plain" "(~3.3x)"
