#!/bin/bash
# Runs inside pg_virtualenv (PG* variables point at a throwaway server).
set -euo pipefail
cd "$(dirname "$0")/.."
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

# ms of one query, as psql's \timing reports it
time_query() {
	"${PSQL[@]}" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# Interleave baseline and subject REPS times (after one warm-up each) and
# print "subject_ms baseline_ms".
compare() {
	local subject=$1 baseline=$2 s b
	time_query "$subject" >/dev/null; time_query "$baseline" >/dev/null
	for _ in $(seq "$REPS"); do
		s+=" $(time_query "$subject")"; b+=" $(time_query "$baseline")"
	done
	echo "$(tr ' ' '\n' <<<"$s" | grep . | median) $(tr ' ' '\n' <<<"$b" | grep . | median)"
}

row() {	# name subject_ms baseline_ms target
	awk -v n="$1" -v s="$2" -v b="$3" -v t="$4" \
		'BEGIN {printf "%-52s %10.1f %10.1f %8.2fx   %s\n", n, s, b, s / b, t}'
}

"${PSQL[@]}" -c 'CREATE EXTENSION IF NOT EXISTS repo_stream' >/dev/null
"${PSQL[@]}" -f bench/records.sql >/dev/null

printf '%-52s %10s %10s %9s   %s\n' "figure (REPS=$REPS, median ms)" subject baseline ratio target
printf '%s\n' "$(printf '%.0s-' {1..100})"

read -r s b < <(compare \
	"SELECT count(repo_stream.cbor_cid(repo_stream.json_to_cbor(x))) FROM bench_records" \
	"SELECT count(sha256(convert_to(x::text, 'UTF8'))) FROM bench_records")
row "encode+hash 100k records vs sha256(x::text)" "$s" "$b" "<= 1.00x"

read -r s b < <(compare \
	"SELECT count(repo_stream.json_to_cbor(x)) FROM bench_records" \
	"SELECT count(x::text) FROM bench_records")
row "json_to_cbor 100k records vs jsonb::text" "$s" "$b" "(info)"

read -r s b < <(compare \
	"SELECT count(repo_stream.cbor_to_json(c)) FROM bench_records" \
	"SELECT count(x::text::jsonb) FROM bench_records")
row "cbor_to_json 100k records vs text::jsonb parse" "$s" "$b" "(info)"

if [ -x bench/mst_bench ]; then
	bench/mst_bench
fi

if [ -z "${BENCH_QUICK:-}" ]; then
	bash bench/log_size.sh
fi
