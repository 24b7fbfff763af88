#!/bin/bash
# pgcopy.sh DIR: a relocated copy of Debian's PostgreSQL 15 server in DIR, so
# that several checkouts can build, install and test at once without sharing
# /usr/lib/postgresql/15.  PostgreSQL finds its share and lib directories
# relative to its binaries, so the copy is self-contained.  Prints the
# PG_CONFIG to use:
#   export PG_CONFIG=$(tools/dev/pgcopy.sh /opt/pgwt/mine)
#   make install && make test        # both honour PG_CONFIG
set -euo pipefail
dir=${1:?usage: pgcopy.sh DIR}
src=/usr/lib/postgresql/15
if [ ! -x "$dir/usr/lib/postgresql/15/bin/pg_config" ]; then
	mkdir -p "$dir/usr/lib/postgresql" "$dir/usr/share/postgresql" "$dir/usr/lib"
	cp -a "$src" "$dir/usr/lib/postgresql/"
	cp -a /usr/share/postgresql/15 "$dir/usr/share/postgresql/"
	# headers and libpq stay the system's
	ln -sfn /usr/include "$dir/usr/include"
	ln -sfn /usr/lib/x86_64-linux-gnu "$dir/usr/lib/x86_64-linux-gnu"
	chmod -R a+rX "$dir"
fi
echo "$dir/usr/lib/postgresql/15/bin/pg_config"
