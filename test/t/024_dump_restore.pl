# pg_dump keeps repos, records, MST nodes, sealed keys and the event log;
# restored with session_replication_role = replica (so the write path does
# not turn the restored rows into new commits), everything verifies and
# writing goes on from the restored heads with higher seqs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = rs_node('dump');
$node->start;
$node->safe_psql('postgres', q{
	CREATE DATABASE restored;
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:dump' || i) FROM generate_series(1, 3) i;
	SELECT repo_stream.put_record('did:plc:dump' || (i % 3 + 1), 'app.bsky.feed.post', 'p' || i,
		jsonb_build_object('text', 'post ' || i)) FROM generate_series(1, 300) i;
	SELECT repo_stream.rotate_key('did:plc:dump2');
	SELECT repo_stream.delete_record('did:plc:dump1', 'app.bsky.feed.post', 'p3');
});

my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');
my $content = slurp_file($dump);
unlike($content, qr/repo_stream_master\.key|master_key/, 'the dump does not name or hold the master key');

$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $dump,
	'-d', $node->connstr('restored') . ' options=-csession_replication_role=replica' ],
	'restore with session_replication_role = replica');

my $events = q{SELECT md5(string_agg(seq || ':' || encode(frame, 'hex'), ',' ORDER BY seq)) FROM repo_stream.events_since(0, 100000)};
my $records = q{SELECT md5(string_agg(did || collection || rkey || cid || record::text, ',' ORDER BY did, collection, rkey)) FROM repo_stream.records};
is($node->safe_psql('restored', $records), $node->safe_psql('postgres', $records), 'records restored');
is($node->safe_psql('restored', $events), $node->safe_psql('postgres', $events), 'event log restored, frame for frame');
is($node->safe_psql('restored', q{
	SELECT count(*) FROM repo_stream.repos r, repo_stream.verify_repo(r.did) v WHERE NOT v.ok}),
	'0', 'every restored repo verifies');

my $max = $node->safe_psql('restored', 'SELECT max(seq) FROM repo_stream.event_log');
my $head = $node->safe_psql('restored', q{SELECT head_rev FROM repo_stream.repos WHERE did = 'did:plc:dump2'});
$node->safe_psql('restored',
	q{SELECT repo_stream.put_record('did:plc:dump2', 'app.bsky.feed.post', 'after', '{"text": "after restore"}')});
cmp_ok($node->safe_psql('restored', 'SELECT max(seq) FROM repo_stream.event_log'), '>', $max,
	'new events continue the seq');
is($node->safe_psql('restored', q{
	SELECT repo_stream.frame_to_json(frame)->'body'->>'since'
	FROM repo_stream.event_log WHERE seq = (SELECT max(seq) FROM repo_stream.event_log)}),
	$head, 'the new commit chains from the restored head');
is($node->safe_psql('restored', q{SELECT bool_and(ok) FROM repo_stream.verify_repo('did:plc:dump2')}),
	't', 'and the repo, signed with its rotated key, still verifies');

$node->stop;
done_testing();
