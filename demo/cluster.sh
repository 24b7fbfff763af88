#!/bin/bash
# `make demo-cluster`: two shards, a router and a relay, four throwaway
# clusters on this machine (docs/scale-out.md).  Writes go through the
# router; the relay shows the merged, re-sequenced stream and a count view
# over both shards.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
	bash test/install-deps.sh
	make -s >/dev/null && make -s install >/dev/null
	tmp=$(mktemp -d /tmp/repo_stream-demo.XXXXXX)
	cp demo/cluster.sh demo/cluster.sql "$tmp/"
	chown -R postgres: "$tmp"
	runuser -u postgres -- bash "$tmp/cluster.sh" --here
	rc=$?
	rm -rf "$tmp"
	exit $rc
fi
[ "${1:-}" = --here ] && cd "$(dirname "$0")" || cd demo
export PATH=/usr/lib/postgresql/15/bin:$PATH LANG=C.UTF-8 LC_ALL=C.UTF-8
DIR=$(mktemp -d /tmp/repo_stream-cluster.XXXXXX)
BASE=$((40000 + RANDOM % 20000))
NODES=(shard1 shard2 router relay)
cleanup() {
	for n in "${NODES[@]}"; do pg_ctl -D "$DIR/$n" -m fast stop >/dev/null 2>&1 || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT
i=0
for n in "${NODES[@]}"; do
	i=$((i + 1))
	initdb -D "$DIR/$n" -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1
	cat >>"$DIR/$n/postgresql.conf" <<CONF
port = $((BASE + i))
listen_addresses = ''
unix_socket_directories = '$DIR'
wal_level = logical
output_plugin_libraries = 'pgoutput, test_decoding, repo_stream'
repo_stream.master_key_file = '$DIR/$n.key'
CONF
	pg_ctl -D "$DIR/$n" -l "$DIR/$n.log" -w start >/dev/null
	echo "started $n on port $((BASE + i))"
done
conn() { echo "host=$DIR port=$((BASE + $1)) dbname=postgres"; }
psql -X -q -v ON_ERROR_STOP=1 -d "$(conn 1)" -v shard1="$(conn 1)" -v shard2="$(conn 2)" \
	-v router="$(conn 3)" -v relay="$(conn 4)" -f cluster.sql
