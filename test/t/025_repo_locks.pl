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

# REPEATABLE READ: a repo another transaction wrote after ours took its
# snapshot cannot be written (its records, as we see them, are stale), as
# an UPDATE of a concurrently updated row could not be; other repos can.
$a->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$a->query_safe('SELECT count(*) FROM repo_stream.records');
$node->safe_psql('postgres',
	q{SELECT repo_stream.put_record('did:plc:busy', 'app.bsky.feed.post', 'd', '{"t": 4}')});
is($a->query_safe(q{SELECT repo_stream.put_record('did:plc:free', 'app.bsky.feed.post', 'e', '{"t": 5}') IS NOT NULL}),
	't', 'REPEATABLE READ: a repo nobody changed since the snapshot is written');
my $a_err = $node->background_psql('postgres', on_error_stop => 0);
$a_err->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$a_err->query_safe('SELECT count(*) FROM repo_stream.records');
$node->safe_psql('postgres',
	q{SELECT repo_stream.put_record('did:plc:busy', 'app.bsky.feed.post', 'f', '{"t": 6}')});
$a_err->query(q{SELECT repo_stream.put_record('did:plc:busy', 'app.bsky.feed.post', 'g', '{"t": 7}')});
like($a_err->{stderr}, qr/ERROR:  could not serialize access due to concurrent update/,
	'REPEATABLE READ: a repo changed since the snapshot is a serialization failure');
$a_err->{stderr} = '';
$a_err->query('ROLLBACK');
$a_err->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$a_err->query_safe('SELECT count(*) FROM repo_stream.records');
$node->safe_psql('postgres', q{SELECT repo_stream.put_record('did:plc:busy', 'app.bsky.feed.post', 'h', '{"t": 8}')});
$a_err->query(q{INSERT INTO repo_stream.records (did, collection, rkey, record) VALUES ('did:plc:busy', 'app.bsky.feed.post', 'i', '{}')});
like($a_err->{stderr}, qr/could not serialize access due to concurrent update/, '... through plain DML too');
$a_err->query('ROLLBACK');
$a_err->quit;
$a->query_safe('COMMIT');
is($node->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE rkey IN ('g', 'i')}), '0',
	'the refused writes left nothing');

$a->quit;
$node->stop;
done_testing();
