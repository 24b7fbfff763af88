# Under sustained writes with a small cap, the log's table and index size
# stays bounded (the ring of segments is truncated, never bloats), and a
# stale cursor gets OutdatedCursor followed by the window.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('retention');
$node->init;
$node->append_conf('postgresql.conf', "repo_stream.retention_events = 700\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
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

$node->pgbench('-n -c 4 -j 2 -t 500', 0, [qr/processed: 2000\/2000/], [qr/^$/], 'first 2000 events', { 'w1' => do { local $/; open my $f, '<', $script; <$f> } });
my $size1 = $node->safe_psql('postgres', $size_sql);
my $count1 = $node->safe_psql('postgres', $events_sql);
my $stale = $node->safe_psql('postgres', 'SELECT min(seq) FROM repo_stream.event_log');

$node->pgbench('-n -c 4 -j 2 -t 2500', 0, [qr/processed: 10000\/10000/], [qr/^$/], '10000 more events', { 'w2' => do { local $/; open my $f, '<', $script; <$f> } });
my $size2 = $node->safe_psql('postgres', $size_sql);
my $count2 = $node->safe_psql('postgres', $events_sql);
note("after 2000 writes: $count1 events, $size1 bytes; after 12000: $count2 events, $size2 bytes");

cmp_ok($count2, '>=', 700, 'at least retention_events events are kept');
cmp_ok($count2, '<=', 700 * 8 / 7 + 8 * 4, 'at most 8/7 of retention_events (plus one commit per writer) are kept');
cmp_ok($size2, '<=', 1.5 * $size1, 'log size after 6x the writes is within 1.5x');

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
