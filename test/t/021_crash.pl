# kill -9 the postmaster while writers run, restart: every repo verifies,
# every committed change has its event, and no seq is duplicated.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = rs_node('crash');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	CREATE TABLE ledger (path text PRIMARY KEY, did text NOT NULL, cid text NOT NULL);
	SELECT repo_stream.create_repo('did:plc:crash' || i) FROM generate_series(0, 5) i;
});

my $script = $node->basedir . '/writer.sql';
open my $fh, '>', $script or die;
print $fh q{
\set r random(0, 5)
\set n random(1, 20)
BEGIN;
WITH p AS (
	SELECT 'did:plc:crash' || :r AS did, 'app.bsky.feed.post/c' || :client_id || '-' || repo_stream.tid_now() || '-' || i AS path,
	       repo_stream.put_record('did:plc:crash' || :r, 'app.bsky.feed.post',
	           'c' || :client_id || '-' || repo_stream.tid_now() || '-' || i,
	           jsonb_build_object('text', repeat('crash test ', :n), 'i', i)) AS cid
	FROM generate_series(1, :n) i)
SELECT count(*) FROM p;
COMMIT;
};
close $fh;

# The ledger is filled from the records table itself after the restart:
# a record that survived the crash was committed.
my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '6', '-j', '3', '-T', '30', '-f', $script,
	  $node->connstr('postgres') ],
	'>', \$out, '2>', \$err);
sleep 6;
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM repo_stream.records');
cmp_ok($before, '>', 50, "writers were busy ($before records) when the server was killed");
$node->kill9;
$pgbench->finish;
# the orphaned backends notice the postmaster is gone and exit; wait for them
sleep 3;
$node->start;

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM repo_stream.repos r, repo_stream.verify_repo(r.did) v WHERE NOT v.ok}),
	'0', 'verify_repo passes for every repo after the crash');

# every surviving record is in exactly one #commit op of the log, with its CID
is($node->safe_psql('postgres', q{
	WITH ops AS (
		SELECT j->'body'->>'repo' AS did, op->>'path' AS path, op->'cid'->>'$link' AS cid
		FROM repo_stream.events_since(0, 1000000) e,
		     LATERAL repo_stream.frame_to_json(e.frame) j,
		     LATERAL jsonb_array_elements(coalesce(j->'body'->'ops', '[]')) op),
	per_record AS (SELECT did, path, cid, count(*) AS n FROM ops GROUP BY 1, 2, 3)
	SELECT count(*) FROM repo_stream.records r
	LEFT JOIN per_record p ON p.did = r.did AND p.path = r.collection || '/' || r.rkey AND p.cid = r.cid
	WHERE coalesce(p.n, 0) <> 1}),
	'0', 'every committed record has exactly one event');
is($node->safe_psql('postgres',
	'SELECT count(*) FROM (SELECT seq FROM repo_stream.event_log GROUP BY seq HAVING count(*) > 1) d'),
	'0', 'no duplicate seq');

# writing goes on after recovery, with seqs above everything before
my $max = $node->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
$node->safe_psql('postgres',
	q{SELECT repo_stream.put_record('did:plc:crash0', 'app.bsky.feed.post', 'after', '{"text": "after"}')});
cmp_ok($node->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log'), '>', $max,
	'new events get higher seqs after recovery');
is($node->safe_psql('postgres', q{
	SELECT bool_and(ok) FROM repo_stream.verify_repo('did:plc:crash0')}), 't', 'and the repo still verifies');

$node->stop;
done_testing();
