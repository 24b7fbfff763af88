#!/bin/bash
# `make valgrind`: the pg_regress suite against a server running under
# valgrind memcheck; fails if any error has a repo_stream.so frame.
#
# The server is PostgreSQL 15 built from the upstream tarball in Debian's
# source package (the version installed here, else the newest the mirror
# serves) with USE_VALGRIND, so valgrind also sees misuse of
# palloc'd memory (reads of freed or never-written chunks).  It is built once
# and cached in build/valgrind/ (not committed), using a private apt source
# list, so the machine's apt configuration is left alone.  If the source
# package cannot be had, Debian's own server runs under valgrind instead,
# with PostgreSQL's suppressions (test/valgrind/postgres.supp); then errors
# inside palloc'd chunks go unseen (see docs/testing.md, "Memory checking").
#
# Run as root from the top of the tree; the servers run as postgres.
set -eu
# started from `make valgrind`: PostgreSQL's own build must not see itself
# as a sub-make (it would skip generating its headers)
unset MAKELEVEL MAKEFLAGS MFLAGS MAKEOVERRIDES
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
build=$top/build/valgrind
mkdir -p "$build"
log() { echo "valgrind: $*"; }

[ "$(id -u)" = 0 ] || { echo "make valgrind runs as root (it installs packages and builds a server)" >&2; exit 1; }
bash test/install-deps.sh
missing=()
for p in valgrind dpkg-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---- a USE_VALGRIND server from Debian's source package, cached ----
# The installed version's source first; if the mirror lacks its files, the
# newest postgresql-15 source it does serve (any 15.x suits memcheck).
src=$build/src
apto=(-o "Dir::Etc::SourceList=$src/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$src/lists" -o Debug::NoLocking=1)
prefix=$(ls -d "$build"/pg-*/ 2>/dev/null | head -1)
prefix=${prefix%/}
mode=usevalgrind
# (dblink: the relay's tests need it; a server cached without it is built again)
if [ -z "$prefix" ] || [ ! -x "$prefix/bin/postgres" ] ||
	[ ! -f "$("$prefix/bin/pg_config" --sharedir 2>/dev/null)/extension/dblink.control" ]; then
	[ -n "$prefix" ] && rm -rf "$prefix"	# an incomplete cached server
	rm -rf "$src" && mkdir -p "$src/lists/partial"
	cat >"$src/sources.list" <<LIST
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
deb-src http://deb.debian.org/debian-security bookworm-security main
LIST
	chmod -R a+rX "$build"
	fetched=
	if apt-get "${apto[@]}" update -qq >"$build/apt.log" 2>&1; then
		installed=$(dpkg-query -W -f='${Version}' postgresql-15)
		for v in "$installed" $(apt-cache "${apto[@]}" showsrc postgresql-15 2>/dev/null |
				sed -n 's/^Version: //p' | sort -rV); do
			if (cd "$src" && apt-get "${apto[@]}" source --download-only -qq "postgresql-15=$v" \
					>>"$build/apt.log" 2>&1); then
				fetched=$v
				break
			fi
		done
	fi
	if [ -n "$fetched" ]; then
		prefix=$build/pg-$fetched
		# the upstream tarball as is: Debian's patches pin the paths to
		# /usr/lib/postgresql/15, which would mix this server with the system's
		tar -xf "$src"/postgresql-15_*.orig.tar.* -C "$src"
		dir=$(find "$src" -maxdepth 1 -type d -name 'postgresql-15.*' | head -1)
		log "building PostgreSQL $fetched (Debian source) with USE_VALGRIND into $prefix (once; several minutes)"
		(cd "$dir" &&
			./configure --prefix="$prefix" --enable-debug --without-readline --without-zlib --without-icu \
				--without-llvm CFLAGS="-O1 -g -fno-omit-frame-pointer" CPPFLAGS="-DUSE_VALGRIND" \
				>"$build/configure.log" 2>&1 &&
			make -j"$(nproc)" -s >"$build/make.log" 2>&1 &&
			make -s install >>"$build/make.log" 2>&1 &&
			make -s -C contrib/test_decoding install >>"$build/make.log" 2>&1 &&
			make -s -C contrib/dblink install >>"$build/make.log" 2>&1) ||
			{ log "the build failed: see $build/configure.log and $build/make.log"; exit 1; }
		cp "$dir/src/tools/valgrind.supp" "$prefix/valgrind.supp"
		rm -rf "$src"
	else
		log "no postgresql-15 source package is reachable (see $build/apt.log): using Debian's server"
		log "without USE_VALGRIND: errors inside palloc'd chunks go unseen"
		mode=debian
	fi
fi
if [ "$mode" = usevalgrind ]; then
	bindir=$prefix/bin
	supp=$prefix/valgrind.supp
else
	bindir=/usr/lib/postgresql/15/bin
	supp=$top/test/valgrind/postgres.supp
fi

# ---- the extension, built for that server in a scratch copy ----
ext=$build/ext
rm -rf "$ext" && mkdir -p "$ext"
# no objects of the tree: they were compiled against the system's headers
rsync -a --exclude .git --exclude build --exclude node_modules --exclude test/fuzz/build \
	--exclude results --exclude '*.o' --exclude '*.so' --exclude '*.bc' ./ "$ext/"
if [ "$mode" = usevalgrind ]; then
	make -s -C "$ext" PG_CONFIG="$bindir/pg_config" install >"$build/ext.log" 2>&1
else
	make -s -C "$ext" install >"$build/ext.log" 2>&1
fi

# ---- the server under valgrind, the suite against it ----
# The configuration lives outside the data directory, as in Debian's
# clusters, so the master key file's default place (next to
# postgresql.conf) is outside it too, as the tests expect.
data=$build/data
etc=$build/etc
vlogs=$build/logs
rm -rf "$data" "$etc" "$vlogs" && mkdir -p "$vlogs" "$etc"
chown -R postgres: "$build"
port=$((54000 + RANDOM % 1000))
as_pg() { runuser -u postgres -- env LANG=C.UTF-8 LC_ALL=C.UTF-8 "$@"; }
as_pg "$bindir/initdb" -D "$data" -A trust -E UTF8 >"$build/initdb.log" 2>&1
mv "$data/postgresql.conf" "$data/pg_hba.conf" "$data/pg_ident.conf" "$etc/"
cat >>"$etc/postgresql.conf" <<CONF
data_directory = '$data'
hba_file = '$etc/pg_hba.conf'
ident_file = '$etc/pg_ident.conf'
port = $port
listen_addresses = ''
unix_socket_directories = '$build'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
CONF
# 15.19 and later accept only the output plugins listed here
if as_pg "$bindir/postgres" --describe-config 2>/dev/null | grep -q '^output_plugin_libraries'; then
	echo "output_plugin_libraries = pgoutput, test_decoding, repo_stream" >>"$etc/postgresql.conf"
fi
log "server ($mode) under valgrind on port $port; logs in $vlogs"
as_pg valgrind --quiet --trace-children=yes --track-origins=yes --read-var-info=yes \
	--num-callers=30 --error-limit=no --suppressions="$supp" \
	--log-file="$vlogs/%p.log" "$bindir/postgres" -D "$etc" >"$build/server.log" 2>&1 &
for i in $(seq 1 120); do
	as_pg "$bindir/pg_isready" -q -h "$build" -p "$port" && break
	sleep 1
done
set +e
as_pg make -s -C "$ext" installcheck PG_CONFIG="$bindir/pg_config" PGHOST="$build" PGPORT="$port" \
	>"$build/regress.log" 2>&1
regress_rc=$?
as_pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 300 stop >/dev/null 2>&1
wait
set -e

grep -E '^(not )?ok|^test ' "$ext/regression.out" 2>/dev/null || tail -5 "$build/regress.log"
errors=$(cat "$vlogs"/*.log 2>/dev/null | grep -c '^==[0-9]*== [A-Z].*\(Invalid\|uninitialised\|Conditional jump\|Mismatched\|overlap\|Syscall param\)' || true)
ours=$(grep -l 'repo_stream.so' "$vlogs"/*.log 2>/dev/null | wc -l)
log "$(ls "$vlogs" | wc -l) processes checked, $errors errors in all, reports with a repo_stream.so frame in $ours of them"
if [ "$ours" -gt 0 ]; then
	grep -B2 -A30 'repo_stream.so' "$vlogs"/*.log | head -120
	exit 1
fi
[ "$regress_rc" -eq 0 ] || { log "pg_regress failed under valgrind: $build/regress.log"; exit 1; }
log "no error with a repo_stream.so frame"
