# Under sustained writes with a small cap, the log's table and index size
# stays bounded (the ring of segments is truncated, never bloats), and a
# stale cursor gets OutdatedCursor followed by the window.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;

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
# README, Retention): allow one event per writer below the cap, twice over.
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
$node->stop;
done_testing();
