#!/bin/bash
# `make bench`: one table of figures, each a ratio against a baseline
# measured in the same run (absolute times on a shared machine are noise).
# Every timing is the median of interleaved repetitions.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
	# build and install as root, then measure as the postgres OS user in a
	# scratch copy (initdb refuses root; nothing is left behind)
	bash test/install-deps.sh
	make -s >/dev/null && make -s install >/dev/null
	work=$(mktemp -d /tmp/repo_stream-bench.XXXXXX)
	trap 'rm -rf "$work"' EXIT
	rsync -a --exclude .git --exclude node_modules --exclude results --exclude tmp_check ./ "$work/"
	chown -R postgres: "$work"
	runuser -u postgres -- env $(env | grep -E '^(REPS|WRITE_SECONDS|BULK_RUNS|DEC_[A-Z]+|BENCH_[A-Z]+)=' || true) \
		bash "$work/bench/run.sh"
	exit $?
fi
make -s bench/mst_bench >/dev/null
export LANG=C.UTF-8 LC_ALL=C.UTF-8
REPS=${REPS:-7}
export REPS
# The relay starts its own three clusters (two shards and a relay).
bash bench/relay_bench.sh
# wal2json and pgoutput are the output plugin's baselines (bench/decoder_bench.sh).
# fsync=on: pg_virtualenv turns it off, but write throughput is measured
# with durable commits, as a real server runs.
exec pg_virtualenv -o wal_level=logical -o "output_plugin_libraries=pgoutput, test_decoding, repo_stream, wal2json" \
	-o shared_buffers=512MB -o max_replication_slots=10 -o max_wal_senders=10 \
	-o max_wal_size=4GB -o fsync=on bash -c 'psql -qX -v ON_ERROR_STOP=1 \
		-c "CREATE EXTENSION IF NOT EXISTS repo_stream" -c "SELECT repo_stream.create_master_key()" >/dev/null &&
	bash bench/sql_bench.sh && bash bench/write_bench.sh && bash bench/decoder_bench.sh && bash bench/snapshot_bench.sh && bash bench/views_bench.sh'
