#!/bin/bash
# `make demo`: installs what it needs, starts a throwaway server and walks
# through what repo_stream does, end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
	bash test/install-deps.sh
	make -s >/dev/null && make -s install >/dev/null
fi
export LANG=C.UTF-8 LC_ALL=C.UTF-8
pg_virtualenv -o wal_level=logical -o "output_plugin_libraries=pgoutput, test_decoding, repo_stream" \
	psql -X -v ON_ERROR_STOP=1 -f demo/demo.sql
