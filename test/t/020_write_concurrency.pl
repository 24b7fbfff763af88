# Eight writers on overlapping and distinct repos for 20 seconds, some
# transactions aborting on purpose, while a reader polls events_since by
# cursor.  Every committed change must arrive exactly once, in strictly
# increasing seq; no aborted change may appear; every repo must verify.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use JSON::PP;

my $duration = $ENV{RS_WRITE_SECONDS} // 20;

my $node = rs_node('writers');
$node->append_conf('postgresql.conf', "max_connections = 40\n");
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	-- what each committed transaction changed, written in the same transaction
	CREATE TABLE ledger (path text PRIMARY KEY, did text NOT NULL, cid text NOT NULL);
	SELECT repo_stream.create_repo('did:plc:shared' || i) FROM generate_series(0, 3) i;
	SELECT repo_stream.create_repo('did:plc:own' || i) FROM generate_series(1, 8) i;
});

# Each transaction writes 1 to 3 new records (in a shared repo or the
# client's own) and sometimes updates one; about one in five rolls back.
my $script = $node->basedir . '/writer.sql';
open my $fh, '>', $script or die;
print $fh q{
\set v_shared random(0, 3)
\set v_n random(1, 3)
\set v_abort random(1, 5)
\set v_mine random(0, 1)
BEGIN;
WITH w AS (
	SELECT CASE WHEN :v_mine = 1 THEN 'did:plc:own' || :client_id + 1 ELSE 'did:plc:shared' || :v_shared END AS did,
	       'c' || :client_id || '-' || repo_stream.tid_now() || '-' || i AS rkey
	FROM generate_series(1, :v_n) i),
  p AS (
	SELECT w.did, 'app.bsky.feed.like/' || w.rkey AS path,
	       repo_stream.put_record(w.did, 'app.bsky.feed.like', w.rkey,
	           jsonb_build_object('$type', 'app.bsky.feed.like', 'n', :v_n, 'by', :client_id)) AS cid
	FROM w)
INSERT INTO ledger SELECT path, did, cid FROM p;
\if :v_abort = 1
ROLLBACK;
\else
COMMIT;
\endif
};
close $fh;

my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '8', '-j', '4', '-T', $duration, '-f', $script,
	  $node->connstr('postgres') ],
	'>', \$out, '2>', \$err);

# The reader: poll by cursor as fast as possible while the writers run.
my $reader = $node->background_psql('postgres');
my $cursor = 0;
my $last_seq = 0;
my $monotonic = 1;
my %seen;       # path -> times seen in a #commit op
my $ops_total = 0;
my $polls = 0;

sub poll
{
	my $rows = $reader->query_safe(qq{
		SELECT e.seq, coalesce(jsonb_path_query_array(repo_stream.frame_to_json(e.frame),
		                                              '\$.body.ops[*] ? (\@.action != "delete")'), '[]')
		FROM repo_stream.events_since($cursor, 500) e});
	my $n = 0;
	for my $line (split /\n/, $rows)
	{
		next if $line eq '';
		my ($seq, $ops) = split /\|/, $line, 2;
		$monotonic = 0 if $seq <= $last_seq;
		$last_seq = $seq;
		$cursor = $seq;
		for my $op (@{ decode_json($ops) })
		{
			$seen{ $op->{path} }++;
			$ops_total++;
		}
		$n++;
	}
	$polls++;
	return $n;
}

while ($pgbench->pumpable)
{
	poll();
	$pgbench->pump_nb;
}
ok($pgbench->finish, 'pgbench writers finished cleanly') or diag($err);
like($out, qr/number of failed transactions: 0/, 'no writer transaction failed unexpectedly');
note("pgbench: " . join(' ', grep { /tps|processed/ } split /\n/, $out));
1 while poll() > 0;

my %ledger = map { (split /\|/)[0] => 1 }
	split /\n/, $node->safe_psql('postgres', 'SELECT path FROM ledger');
my $committed = keys %ledger;
cmp_ok($committed, '>', 500, "writers committed $committed changes");
cmp_ok($polls, '>', 20, "reader polled $polls times while writing");
ok($monotonic, 'seq strictly increases in delivery order');

my @missing = grep { !$seen{$_} } keys %ledger;
my @dup = grep { $seen{$_} > 1 } keys %seen;
my @aborted = grep { !$ledger{$_} } keys %seen;
is(scalar(@missing), 0, 'every committed change arrived') or diag("missing: @missing[0..min(9,$#missing)]");
is(scalar(@dup), 0, 'no change arrived twice') or diag("duplicates: @dup[0..min(9,$#dup)]");
is(scalar(@aborted), 0, 'no aborted change appeared') or diag("aborted: @aborted[0..min(9,$#aborted)]");
is($ops_total, $committed, 'ops delivered = changes committed');

is($node->safe_psql('postgres', q{
	SELECT count(*) FROM repo_stream.repos r, repo_stream.verify_repo(r.did) v WHERE NOT v.ok}),
	'0', 'verify_repo passes for every repo');
is($node->safe_psql('postgres',
	'SELECT count(*) FROM (SELECT seq FROM repo_stream.event_log GROUP BY seq HAVING count(*) > 1) d'),
	'0', 'no seq is stored twice');

$reader->quit;
$node->stop;
done_testing();

sub min { $_[0] < $_[1] ? $_[0] : $_[1] }
