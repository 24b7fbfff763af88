# Writes to one repo serialize; writes to different repos do not wait for
# each other.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = rs_node('locks');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:busy');
	SELECT repo_stream.create_repo('did:plc:free');
});

# session A writes to did:plc:busy and keeps its transaction open
my $a = $node->background_psql('postgres');
$a->query_safe('BEGIN');
$a->query_safe(q{SELECT repo_stream.put_record('did:plc:busy', 'app.bsky.feed.post', 'a', '{"t": 1}')});

my ($rc, $out, $err) = $node->psql('postgres', q{
	SET lock_timeout = '5s';
	SELECT repo_stream.put_record('did:plc:free', 'app.bsky.feed.post', 'b', '{"t": 2}') IS NOT NULL});
is($rc, 0, 'a write to another repo commits while the first transaction is open') or diag($err);

($rc, $out, $err) = $node->psql('postgres', q{
	SET lock_timeout = '500ms';
	SELECT repo_stream.put_record('did:plc:busy', 'app.bsky.feed.post', 'c', '{"t": 3}')});
like($err, qr/canceling statement due to lock timeout/, 'a write to the same repo waits for it');

$a->query_safe('COMMIT');
is($node->safe_psql('postgres',
	q{SELECT repo_stream.put_record('did:plc:busy', 'app.bsky.feed.post', 'c', '{"t": 3}') IS NOT NULL}),
	't', 'and goes through once it has committed');
is($node->safe_psql('postgres', q{
	SELECT string_agg(repo_stream.frame_to_json(frame)->'body'->'ops'->0->>'path', ',' ORDER BY seq)
	FROM repo_stream.events_since(0) WHERE seq > 2}),
	'app.bsky.feed.post/b,app.bsky.feed.post/a,app.bsky.feed.post/c',
	'each change has its event, in commit order');

$a->quit;
$node->stop;
done_testing();
