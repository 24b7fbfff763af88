# A write queued behind rotate_key signs with the new key, never the
# retired one: the repo's state (its sealed key included) is read after
# the row lock is granted.  First two sessions step by step, then writers
# and rotations under load; afterwards every repo verifies, and every frame
# verifies with the key that was current at its rev.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = rs_node('rotation');
$node->append_conf('postgresql.conf', "max_connections = 30\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:rot');
	SELECT repo_stream.put_record('did:plc:rot', 'app.bsky.feed.post', 'before', '{"n": 0}');
});
my $old_key = $node->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:rot')});

# session A rotates and keeps its transaction open
my $a = $node->background_psql('postgres');
$a->query_safe('BEGIN');
my $new_key = $a->query_safe(q{SELECT repo_stream.rotate_key('did:plc:rot')});
isnt($new_key, $old_key, 'rotate_key returns a new did:key');

# session B writes to the same repo and waits for A's row lock
my $b = $node->background_psql('postgres', on_error_stop => 0);
my $b_pid = $b->query_safe('SELECT pg_backend_pid()');
$b->query_until(qr/queued/, q{\echo queued
SELECT repo_stream.put_record('did:plc:rot', 'app.bsky.feed.post', 'queued', '{"n": 1}') IS NOT NULL AS written;
});
ok($node->poll_query_until('postgres',
		"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $b_pid"),
	'the write waits for the rotating transaction');

$a->query_safe('COMMIT');
my $out = $b->query('SELECT 1');
unlike($b->{stderr}, qr/ERROR/, 'the queued write commits once the rotation has') or diag($b->{stderr});
is($node->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:rot')}), $new_key,
	'the new key is current');

# the queued write's commit is signed by the new key and verifies with it
my ($frame_new, $frame_old) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT repo_stream.verify_frame(frame, '$new_key')::int || '|' || repo_stream.verify_frame(frame, '$old_key')::int
	FROM repo_stream.events_since(0) e
	WHERE repo_stream.frame_to_json(frame)->'body'->'ops'->0->>'path' = 'app.bsky.feed.post/queued'});
is($frame_new, '1', "the queued write's #commit verifies with the new key");
is($frame_old, '0', '... and not with the retired one');
is($node->safe_psql('postgres', q{
	SELECT string_agg(check_name, ',') FROM repo_stream.verify_repo('did:plc:rot') WHERE NOT ok}), '',
	'verify_repo passes every check (head_commit and events included)');
$a->quit;
$b->quit;

# ---- Under load: 4 writers on 3 repos, 1 session rotating their keys.
$node->safe_psql('postgres', q{
	SELECT repo_stream.create_repo('did:plc:load' || i) FROM generate_series(0, 2) i});
my $writer = $node->basedir . '/writer.sql';
open my $fh, '>', $writer or die;
print $fh q{
\set r random(0, 2)
SELECT repo_stream.put_record('did:plc:load' || :r, 'app.bsky.feed.post', 'p' || :client_id || '-' || repo_stream.tid_now(), '{"t": 1}');
};
close $fh;
my $rotator = $node->basedir . '/rotator.sql';
open $fh, '>', $rotator or die;
print $fh q{
\set r random(0, 2)
SELECT repo_stream.rotate_key('did:plc:load' || :r);
\sleep 20 ms
};
close $fh;
my $seconds = $ENV{RS_ROTATION_SECONDS} // 6;
my @cmd_w = ('pgbench', '-n', '-c', '4', '-j', '4', '-T', $seconds, '-f', $writer, '-d', $node->connstr('postgres'));
my @cmd_r = ('pgbench', '-n', '-c', '1', '-T', $seconds, '-f', $rotator, '-d', $node->connstr('postgres'));
my ($wout, $werr, $rout, $rerr) = ('', '', '', '');
my $hw = IPC::Run::start(\@cmd_w, '>', \$wout, '2>', \$werr);
my $hr = IPC::Run::start(\@cmd_r, '>', \$rout, '2>', \$rerr);
$hw->finish;
$hr->finish;
my ($wtx) = $wout =~ /number of transactions actually processed: (\d+)/;
my ($rtx) = $rout =~ /number of transactions actually processed: (\d+)/;
ok($wtx && $wtx > 100, "writers committed ($wtx transactions)") or diag($werr);
ok($rtx && $rtx > 10, "keys were rotated meanwhile ($rtx rotations)") or diag($rerr);
unlike($werr . $rerr, qr/ERROR/, 'no write or rotation failed');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM repo_stream.repos r, repo_stream.verify_repo(r.did) v
	WHERE r.did LIKE 'did:plc:load%' AND NOT v.ok}), '0', 'every repo verifies after the run');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE NOT repo_stream.verify_frame(e.frame, k.did_key))
	FROM repo_stream.events_since(0, 1000000) e
	CROSS JOIN LATERAL (SELECT repo_stream.frame_to_json(e.frame) AS j) f
	CROSS JOIN LATERAL (SELECT h.did_key FROM repo_stream.repo_key_history h
	                    WHERE h.did = f.j->'body'->>'repo' AND h.since_rev <= f.j->'body'->>'rev'
	                    ORDER BY h.since_rev DESC LIMIT 1) k
	WHERE f.j->'header'->>'t' = '#commit' AND f.j->'body'->>'repo' LIKE 'did:plc:load%'}), '0',
	'every #commit verifies with the key that was current at its rev');

$node->stop;
done_testing();
