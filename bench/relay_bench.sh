#!/bin/bash
# Relay figures: how fast a relay verifies and re-sequences the events of
# two shards, against how fast those two shards write, all three clusters
# on this machine (docs/scale-out.md).  Starts its own clusters (initdb,
# fsync on), so it runs as any user but root; as root it re-runs itself as
# postgres.  RELAY_SECONDS (default 10) per phase.
#
#  1. write rate W: 4 pgbench clients per shard, single-record put_record on
#     1,000 repos each, both shards at once, relay subscriptions disabled;
#  2. ingest rate I: the subscriptions enabled, the relay drains that
#     backlog (verify, mirror, re-sequence) with the machine to itself;
#  3. both at once: writers and relay together; the relay's lag per event
#     (its log's logged_at minus the shard frame's time), p50 and p99, and
#     what it relayed during the run against what was written.
set -euo pipefail
if [ "$(id -u)" = 0 ]; then
	tmp=$(mktemp /tmp/relay_bench.XXXXXX.sh)
	cp "$0" "$tmp"
	chmod 755 "$tmp"
	runuser -u postgres -- env RELAY_SECONDS="${RELAY_SECONDS:-10}" bash "$tmp"
	rc=$?
	rm -f "$tmp"
	exit $rc
fi
export PATH=/usr/lib/postgresql/15/bin:$PATH LANG=C.UTF-8 LC_ALL=C.UTF-8
T=${RELAY_SECONDS:-10}
DIR=$(mktemp -d /tmp/relay_bench.XXXXXX)
BASE=$((20000 + RANDOM % 20000))
NODES=(s1 s2 relay)
cleanup() {
	for n in "${NODES[@]}"; do pg_ctl -D "$DIR/$n" -m immediate stop >/dev/null 2>&1 || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT

i=0
for n in "${NODES[@]}"; do
	i=$((i + 1))
	initdb -D "$DIR/$n" -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1
	cat >>"$DIR/$n/postgresql.conf" <<EOF
port = $((BASE + i))
listen_addresses = ''
unix_socket_directories = '$DIR'
wal_level = logical
output_plugin_libraries = 'pgoutput, test_decoding, repo_stream'
shared_buffers = 256MB
max_wal_size = 4GB
fsync = on
repo_stream.master_key_file = '$DIR/$n.key'
EOF
	pg_ctl -D "$DIR/$n" -l "$DIR/$n.log" -w start >/dev/null
done
conn() { echo "host=$DIR port=$((BASE + $1)) dbname=postgres"; }
S1=(psql -X -qAt -v ON_ERROR_STOP=1 -d "$(conn 1)")
S2=(psql -X -qAt -v ON_ERROR_STOP=1 -d "$(conn 2)")
R=(psql -X -qAt -v ON_ERROR_STOP=1 -d "$(conn 3)")

for s in 1 2; do
	psql -X -qAt -v ON_ERROR_STOP=1 -d "$(conn $s)" \
		-c 'CREATE EXTENSION repo_stream' -c 'SELECT repo_stream.create_master_key()' >/dev/null
done
"${R[@]}" -c 'CREATE EXTENSION repo_stream' -c 'CREATE EXTENSION dblink' \
	-c "SELECT repo_stream.relay_add_shard('s1', '$(conn 1)')" \
	-c "SELECT repo_stream.relay_add_shard('s2', '$(conn 2)')" >/dev/null
for s in 1 2; do
	psql -X -qAt -v ON_ERROR_STOP=1 -d "$(conn $s)" \
		-c "SELECT count(repo_stream.create_repo('did:plc:s${s}r' || i)) FROM generate_series(1, 1000) i" >/dev/null
done

REC='{"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3k2a", "cid": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"}, "createdAt": "2026-11-26T04:00:00.000Z"}'
for s in 1 2; do
	printf '%s\n' "\\set r random(1, 1000)" \
		"SELECT repo_stream.put_record('did:plc:s${s}r' || :r, 'app.bsky.feed.like', repo_stream.tid_now(), '$REC');" \
		>"$DIR/w$s.sql"
done

total_shard_events() {
	echo $(( $("${S1[@]}" -c 'SELECT count(*) FROM repo_stream.event_log') + \
		$("${S2[@]}" -c 'SELECT count(*) FROM repo_stream.event_log') ))
}
relay_events() { "${R[@]}" -c 'SELECT count(*) FROM repo_stream.event_log'; }
wait_caught_up() {	# until the relay holds as many events as the shards
	local want=$1
	while [ "$(relay_events)" -lt "$want" ]; do sleep 0.1; done
}
write_both() {
	pgbench -n -c 4 -j 2 -T "$T" -f "$DIR/w1.sql" "$(conn 1)" >"$DIR/pgb1.log" 2>&1 &
	pgbench -n -c 4 -j 2 -T "$T" -f "$DIR/w2.sql" "$(conn 2)" >"$DIR/pgb2.log" 2>&1 &
	wait
}
now() { date +%s.%N; }

wait_caught_up "$(total_shard_events)"

# 1. write rate, relay paused
"${R[@]}" -c 'ALTER SUBSCRIPTION rs_relay_s1 DISABLE' -c 'ALTER SUBSCRIPTION rs_relay_s2 DISABLE'
before=$(total_shard_events)
t0=$(now)
write_both
t1=$(now)
written=$(( $(total_shard_events) - before ))
W=$(echo "$written / ($t1 - $t0)" | bc -l)

# 2. ingest rate: the backlog, the machine to itself
target=$(total_shard_events)
t0=$(now)
"${R[@]}" -c 'ALTER SUBSCRIPTION rs_relay_s1 ENABLE' -c 'ALTER SUBSCRIPTION rs_relay_s2 ENABLE'
wait_caught_up "$target"
t1=$(now)
I=$(echo "$written / ($t1 - $t0)" | bc -l)

# 3. writers and relay together
from=$("${R[@]}" -c 'SELECT max(seq) FROM repo_stream.event_log')
before=$(total_shard_events)
rbefore=$(relay_events)
t0=$(now)
write_both
t1=$(now)
written3=$(( $(total_shard_events) - before ))
relayed3=$(( $(relay_events) - rbefore ))
behind=$(( written3 - relayed3 ))
wait_caught_up "$(total_shard_events)"
t2=$(now)
lag=$("${R[@]}" -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric * 1000, 1) || ' ' ||
	round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric * 1000, 1) || ' ' || round(max(l)::numeric * 1000, 1)
	FROM (SELECT extract(epoch FROM logged_at - (repo_stream.frame_to_json(frame)->'body'->>'time')::timestamptz) AS l
	      FROM repo_stream.event_log WHERE seq > $from AND kind = 'commit') x")
read -r p50 p99 pmax <<<"$lag"
verified=$("${R[@]}" -c "SELECT count(*) FILTER (WHERE repo_stream.verify_frame(frame)) || '/' || count(*)
	FROM repo_stream.event_log WHERE seq > $from")
sizes=$("${R[@]}" -c "SELECT avg(octet_length(frame))::int FROM repo_stream.event_log WHERE seq > $from AND kind = 'commit'")
mirror=$("${R[@]}" -c "SELECT pg_total_relation_size('repo_stream.records') / greatest(count(*), 1) FROM repo_stream.records")

printf '%-58s %10s %10s %8s\n' 'relay (2 shards, 4+4 pgbench clients, this machine)' 'subject' 'baseline' 'ratio'
awk -v i="$I" -v w="$W" 'BEGIN {printf "%-58s %10.0f %10.0f %7.2fx   target >= 1\n",
	"ingest, events/s (backlog) vs both shards writing", i, w, i / w}'
awk -v r="$relayed3" -v w="$written3" -v t="$T" 'BEGIN {printf "%-58s %10.0f %10.0f %7.2fx   report\n",
	"relayed vs written during " t " s of writers + relay", r / t, w / t, r / w}'
printf '%-58s %10s\n' "events behind when the writers stopped; drained in (s)" \
	"$behind; $(printf '%.1f' "$(echo "$t2 - $t1" | bc -l)")"
printf '%-58s %10s\n' "relay lag per event, ms: p50 / p99 / max" "$p50 / $p99 / $pmax"
printf '%-58s %10s\n' "relayed events that verify (verify_frame)" "$verified"
printf '%-58s %10s\n' "bytes per relayed single-record #commit frame" "$sizes"
printf '%-58s %10s\n' "bytes per record of the relay's mirror (records + index)" "$mirror"
