#!/bin/bash
# `make bench-profile` (as root): starts a throwaway server as the postgres
# OS user, then runs bench/commit_profile.sh against it as root (perf must
# attach to the server's backend), and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-profile: run as root (perf attaches to a server process)"; exit 1; }
bash test/install-deps.sh
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y linux-perf >/dev/null
make -s >/dev/null && make -s install >/dev/null
work=$(mktemp -d /tmp/repo_stream-profile.XXXXXX)
chown postgres: "$work"
trap 'touch "$work/stop"; wait; rm -rf "$work"' EXIT
runuser -u postgres -- env LANG=C.UTF-8 pg_virtualenv -o fsync=on -o shared_buffers=512MB -o max_wal_size=4GB \
	bash -c "psql -qX -c 'CREATE EXTENSION repo_stream' -c 'SELECT repo_stream.create_master_key()' >/dev/null &&
		env | grep '^PG' > '$work/env' && while [ ! -e '$work/stop' ]; do sleep 1; done" >"$work/server.log" 2>&1 &
for _ in $(seq 60); do [ -s "$work/env" ] && break; sleep 1; done
[ -s "$work/env" ] || { cat "$work/server.log"; exit 1; }
set -a; . "$work/env"; set +a
PGOPTIONS="-c client_min_messages=warning" bash bench/commit_profile.sh
