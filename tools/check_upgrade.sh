#!/bin/bash
# check_upgrade.sh [--fix]: each extension's newest upgrade script records
# (a "-- source digest:" line) the sha256 of the install script sources it
# brings a database up to.  When the sources change and the upgrade script
# does not, this fails: a database on an older version could not reach the
# new schema with ALTER EXTENSION ... UPDATE.  --fix rewrites the digest lines
# (after the upgrade script has been given the change).  Prints TAP.
set -u
cd "$(dirname "$0")/.."
fix=${1:-}
version=$(sed -n 's/^EXTVERSION = //p' Makefile)
n=0; bad=0
check() {	# extension, its sources...
	local ext=$1; shift
	local digest up recorded
	digest=$(cat "$@" | sha256sum | cut -d' ' -f1)
	up=$(ls upgrade/"$ext"--*--"$version".sql 2>/dev/null | head -1)
	n=$((n + 1))
	if [ -z "$up" ]; then
		echo "not ok $n - $ext $version has no upgrade script upgrade/$ext--X--$version.sql"; bad=1; return
	fi
	if [ "$fix" = --fix ]; then
		sed -i "s/^-- source digest: .*/-- source digest: $digest/" "$up"
	fi
	recorded=$(sed -n 's/^-- source digest: //p' "$up")
	if [ "$recorded" = "$digest" ]; then
		echo "ok $n - $up is up to date with the sources of $ext $version"
	else
		echo "not ok $n - the sources of $ext changed since $up last did"
		echo "# put the change into $up too, then run tools/check_upgrade.sh --fix"
		bad=1
	fi
}
echo "1..2"
check repo_stream $(ls src/sql/*.sql | sort)
check repo_stream_router router/repo_stream_router.sql
exit $bad
