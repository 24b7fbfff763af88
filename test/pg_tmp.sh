#!/bin/bash
# pg_tmp.sh [-o guc=value]... command...
#
# Runs command against a throwaway PostgreSQL cluster, as Debian's
# pg_virtualenv does (PGHOST, PGPORT, PGUSER, PGDATABASE are exported), but
# with the server binaries of $PG_CONFIG (default: Debian's PostgreSQL 15).
# That lets several checkouts test at once, each against its own relocated
# copy of the server (tools/dev/pgcopy.sh), without sharing an install.
# Runs as any user but root; the cluster is removed on exit.
set -u
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$PG_CONFIG" --bindir) || exit 2
opts=()
while [ $# -gt 0 ] && [ "$1" = -o ]; do
	opts+=("$2"); shift 2
done
[ $# -gt 0 ] || { echo "usage: pg_tmp.sh [-o guc=value]... command..." >&2; exit 2; }

dir=$(mktemp -d /tmp/pg_tmp.XXXXXX)
cleanup() {
	"$bindir/pg_ctl" -D "$dir/etc" -m immediate stop >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT HUP INT TERM

"$bindir/initdb" -D "$dir/data" -U "$(id -un)" -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 2; }
# the configuration outside the data directory, as in Debian's clusters
# (the master key file's default place is next to postgresql.conf)
mkdir "$dir/etc"
mv "$dir/data/postgresql.conf" "$dir/data/pg_hba.conf" "$dir/data/pg_ident.conf" "$dir/etc/"
{
	echo "data_directory = '$dir/data'"
	echo "hba_file = '$dir/etc/pg_hba.conf'"
	echo "ident_file = '$dir/etc/pg_ident.conf'"
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$dir'"
	echo "fsync = off"
	for o in "${opts[@]+"${opts[@]}"}"; do
		echo "${o%%=*} = '${o#*=}'"
	done
} >>"$dir/etc/postgresql.conf"

# a free port: the first that no socket file or listener claims
port=$((20000 + RANDOM % 20000))
while [ -e "/tmp/.s.PGSQL.$port" ] || ss -ltn 2>/dev/null | grep -q ":$port "; do
	port=$((port + 1))
done
"$bindir/pg_ctl" -D "$dir/etc" -o "-p $port" -l "$dir/server.log" -w start >/dev/null ||
	{ cat "$dir/server.log" >&2; exit 2; }

export PGHOST="$dir" PGPORT="$port" PGUSER="$(id -un)" PGDATABASE=postgres
"$@"
