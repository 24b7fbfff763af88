# Under sustained writes with a small cap, the log's table and index size
# stays bounded (the ring of segments is truncated, never bloats), and a
# stale cursor gets OutdatedCursor followed by the window.  events_since
# returns exactly max_events rows while more are there, and the next call
# from the last seq continues without a gap.  A reader's transaction left
# open after events_since does not hold back rotation; one left open after
# a plain SELECT on the log does (rotation skips, never waits, and writers
# go on), and log_status names it and shows the log's excess over its cap.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = rs_node('retention');
$node->append_conf('postgresql.conf', "repo_stream.retention_events = 700\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:ret' || i) FROM generate_series(0, 3) i;
});

my $script = $node->basedir . '/writer.sql';
open my $fh, '>', $script or die;
print $fh q{
\set r random(0, 3)
SELECT repo_stream.put_record('did:plc:ret' || :r, 'app.bsky.feed.post', 'p' || :client_id || '-' || repo_stream.tid_now(),
	jsonb_build_object('text', repeat('retention ', 20)));
};
close $fh;

my $size_sql = q{SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'repo_stream.event_log'::regclass};
my $events_sql = 'SELECT count(*) FROM repo_stream.event_log';

my $writer = do { local $/; open my $f, '<', $script or die; <$f> };
my $stale;
my @sizes;
my @counts;
# 7 rounds of 2000 writes: the first fills the ring, the rest run at steady state
for my $round (1 .. 7)
{
	$node->pgbench('-n -c 4 -j 2 -t 500', 0, [qr/processed: 2000\/2000/], [qr/^$/],
		"round $round: 2000 writes", { "w$round" => $writer });
	$stale //= $node->safe_psql('postgres', 'SELECT min(seq) FROM repo_stream.event_log');
	push @sizes, $node->safe_psql('postgres', $size_sql);
	push @counts, $node->safe_psql('postgres', $events_sql);
}
note("events kept after each round: @counts");
note("log bytes after each round: @sizes");

my ($min_count) = sort { $a <=> $b } @counts;
my ($max_count) = sort { $b <=> $a } @counts;
# A commit in flight during a rotation can be pruned one segment early (see
# docs/log.md, Retention): allow one event per writer below the cap, twice over.
cmp_ok($min_count, '>=', 700 - 2 * 4, 'at least retention_events events are kept, less the in-flight dip');
cmp_ok($max_count, '<=', 700 * 8 / 7 + 8 * 4, 'at most 8/7 of retention_events (plus one commit per writer) are kept');
my ($early) = sort { $b <=> $a } @sizes[0 .. 1];
my ($late) = sort { $b <=> $a } @sizes[4 .. 6];
cmp_ok($late, '<=', 1.5 * $early,
	'the log does not grow: largest size after 10k-14k writes is within 1.5x of the largest after 2k-4k');

my $pruned = $node->safe_psql('postgres', 'SELECT pruned_through FROM repo_stream.log_state');
cmp_ok($pruned, '>', $stale, 'events were pruned past the old cursor');
my $first = $node->safe_psql('postgres', qq{
	SELECT coalesce(seq::text, 'info') || ' ' || (repo_stream.frame_to_json(frame)->'body'->>'name')
	FROM repo_stream.events_since($stale, 2) LIMIT 1});
is($first, 'info OutdatedCursor', 'a stale cursor first gets OutdatedCursor');
is($node->safe_psql('postgres', qq{
	SELECT min(seq) = (SELECT pruned_through + 1 FROM repo_stream.log_state)
	    OR min(seq) = (SELECT min(seq) FROM repo_stream.event_log WHERE seq > (SELECT pruned_through FROM repo_stream.log_state))
	FROM repo_stream.events_since($stale, 10) WHERE seq IS NOT NULL}),
	't', 'then the window from its start');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM repo_stream.events_since((SELECT max(seq) FROM repo_stream.event_log)) WHERE seq IS NULL}),
	'0', 'a current cursor gets no OutdatedCursor');
my ($rc, $o, $e) = $node->psql('postgres',
	'SELECT * FROM repo_stream.events_since((SELECT max(seq) + 5 FROM repo_stream.event_log))');
like($e, qr/FutureCursor/, 'a cursor past the newest event is FutureCursor');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM repo_stream.repos r, repo_stream.verify_repo(r.did) v WHERE NOT v.ok}),
	'0', 'repos still verify after pruning (only the log is bounded, not the repos)');

# ---- Batches: exactly max_events rows while more are there, and the next
# call from the last seq continues with no gap and no repeat.  No writer runs
# meanwhile, so the window is fixed.
{
	my $from = $node->safe_psql('postgres', 'SELECT pruned_through FROM repo_stream.log_state');
	my @window = split /\n/, $node->safe_psql('postgres', "SELECT seq FROM repo_stream.event_log WHERE seq > $from ORDER BY seq");
	cmp_ok(scalar(@window), '>', 100, 'the window holds ' . scalar(@window) . ' events');
	for my $filter ('NULL', q{ARRAY['did:plc:ret1', 'did:plc:ret2']})
	{
		my @want = $filter eq 'NULL' ? @window : split /\n/, $node->safe_psql('postgres', qq{
			SELECT seq FROM repo_stream.event_log WHERE seq > $from AND did IN ('did:plc:ret1', 'did:plc:ret2') ORDER BY seq});
		my ($cursor, @got, @sizes) = ($from);
		while (1)
		{
			my @batch = split /\n/, $node->safe_psql('postgres',
				"SELECT seq FROM repo_stream.events_since($cursor, 25, $filter) WHERE seq IS NOT NULL");
			push @sizes, scalar(@batch);
			last unless @batch;
			push @got, @batch;
			$cursor = $batch[-1];
		}
		my $left = scalar(@want);
		my @expect_sizes;
		while ($left > 0) { push @expect_sizes, $left > 25 ? 25 : $left; $left -= 25; }
		push @expect_sizes, 0;
		is("@sizes", "@expect_sizes", "repos $filter: batches of max_events (25) while more are there: @sizes");
		is("@got", "@want", 'repos ' . $filter . ': the batches, each from the last seq of the one before, are the window: '
			  . scalar(@want) . ' events, no gap, no repeat');
	}
}

# ---- Readers' transactions and rotation (retention_events 100: a segment
# of 15 events is due every 15 seqs, the ring holds at most 120).
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.retention_events = 100;
	CREATE ROLE ret_reader LOGIN IN ROLE repo_stream_reader;
});
$node->reload;
$node->safe_psql('postgres', 'SELECT repo_stream.prune_events()');

# n single-record commits; returns the slowest commit's seconds
my $k = 0;
sub commits
{
	my ($n) = @_;
	my $slowest = 0;
	my $w = $node->background_psql('postgres');
	for (1 .. $n)
	{
		$k++;
		my $t0 = time;
		$w->query_safe("SELECT repo_stream.put_record('did:plc:ret0', 'app.bsky.feed.post', 'rot$k', '{}')");
		my $t = time - $t0;
		$slowest = $t if $t > $slowest;
	}
	$w->quit;
	return $slowest;
}
my $segment_locks = q{
	SELECT count(*) FROM pg_locks l JOIN pg_inherits i ON i.inhrelid = l.relation
	WHERE i.inhparent = 'repo_stream.event_log'::regclass AND l.pid = %d};
my $state_sql = 'SELECT current_segment || \' \' || pruned_through FROM repo_stream.log_state';

# 1. events_since in a transaction left open: its locks end with the call
my $reader = $node->background_psql('postgres', extra_params => [ '-U', 'ret_reader' ]);
my $reader_pid = $reader->query_safe('SELECT pg_backend_pid()');
$reader->query_safe('BEGIN');
cmp_ok($reader->query_safe('SELECT count(*) FROM repo_stream.events_since(0, 100000)'), '>', 0,
	'a reader reads the log in a transaction, and stays idle in it');
is($node->safe_psql('postgres', sprintf($segment_locks, $reader_pid)), '0',
	'after events_since returned, the reader holds no lock on any segment');
my $before = $node->safe_psql('postgres', $state_sql);
my $slowest = commits(300);
my $after = $node->safe_psql('postgres', $state_sql);
my ($seg0, $pruned0) = split / /, $before;
my ($seg1, $pruned1) = split / /, $after;
cmp_ok($pruned1, '>', $pruned0, "300 commits later the ring rotated past the reader's transaction ($before -> $after)");
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM repo_stream.event_log'), '<=', 120 + 15,
	'the log stays within its cap');
is($node->safe_psql('postgres', 'SELECT excess_events || \' \' || rotation_blocked_by::text FROM repo_stream.log_status'),
	'0 {}', 'log_status: no excess over the cap, nothing blocks rotation');
# the reader's open transaction reads on: the window moved, so OutdatedCursor first
like($reader->query_safe(q{
	SELECT string_agg(coalesce(seq::text, kind), ',' ORDER BY seq NULLS FIRST) FROM repo_stream.events_since(0, 3)}),
	qr/^info,\d+,\d+,\d+$/, 'in the same transaction, events_since reads the rotated window (OutdatedCursor first)');
$reader->query_safe('COMMIT');

# 1b. What events_since returned outlives its locks: a frame big enough to
# live in TOAST, read from a cursor after a rotation truncated its segment.
$node->safe_psql('postgres', q{
	DO $$
	BEGIN
		FOR i IN 1 .. 3 LOOP
			PERFORM repo_stream.put_record('did:plc:ret1', 'app.bsky.feed.post', 'big' || i,
			                               jsonb_build_object('text', repeat(md5(i::text), 1000)));
			COMMIT;
		END LOOP;
	END $$});
my $big = $node->safe_psql('postgres', q{
	SELECT min(seq) - 1 FROM repo_stream.event_log WHERE pg_column_size(frame) > 30000});
$reader->query_safe('BEGIN');
# the first FETCH runs events_since, which keeps its rows for the later ones
$reader->query_safe("DECLARE big CURSOR FOR SELECT seq, md5(frame) FROM repo_stream.events_since($big, 3)");
like($reader->query_safe('FETCH 1 FROM big'), qr/^\d+\|[0-9a-f]{32}$/, 'a cursor over events_since reads a big frame');
commits(200);
cmp_ok($node->safe_psql('postgres', 'SELECT pruned_through FROM repo_stream.log_state'), '>', $big + 3,
	'a rotation truncated the segment of the big frames meanwhile');
like($reader->query_safe('FETCH ALL FROM big'), qr/^\d+\|[0-9a-f]{32}\n\d+\|[0-9a-f]{32}$/,
	'the frames events_since returned still read (it holds no TOAST pointer into the segment)');
$reader->query_safe('COMMIT');

# 2. A plain SELECT on the log (the columns readers may read) in a transaction
# left open keeps its segment locks: rotation skips (writers do not wait),
# and log_status shows who holds it back and by how much.
$reader->query_safe('BEGIN');
$reader->query_safe('SELECT count(seq) FROM repo_stream.event_log');
# an events_since in the same transaction lets go of its own locks only
$reader->query_safe('SELECT count(*) FROM repo_stream.events_since(0, 10)');
cmp_ok($node->safe_psql('postgres', sprintf($segment_locks, $reader_pid)), '>=', 8,
	'the SELECT\'s segment locks outlive a later events_since in its transaction');
$before = $node->safe_psql('postgres', $state_sql);
$slowest = commits(300);
cmp_ok($slowest, '<', 1, sprintf('writers are not held up by the blocked rotation (slowest commit %.3f s)', $slowest));
is($node->safe_psql('postgres', $state_sql), $before, 'the ring did not rotate while the SELECT\'s transaction is open');
my ($due, $blockers, $excess, $cap) = split /\|/, $node->safe_psql('postgres',
	'SELECT rotation_due, rotation_blocked_by::text, excess_events, cap_events FROM repo_stream.log_status',
	extra_params => [ '-U', 'ret_reader' ]);
is($due, 't', 'log_status (as a reader): rotation is due');
is($blockers, "{$reader_pid}", 'log_status: rotation_blocked_by names the reader\'s pid');
is($cap, '120', 'log_status: the cap is 8 segments of 15 events');
cmp_ok($excess, '>=', 300 - 120, "log_status: excess_events ($excess) counts what the 300 commits added beyond the cap");
$reader->query_safe('ROLLBACK');
commits(1);
my ($seg2) = split / /, $node->safe_psql('postgres', $state_sql);
isnt($seg2, (split / /, $before)[0], 'once the transaction ends, the next commit rotates');
is($node->safe_psql('postgres', 'SELECT rotation_blocked_by::text FROM repo_stream.log_status'), '{}',
	'log_status: nothing blocks rotation any more');
$reader->quit;

$node->stop;
done_testing();
