# Exact handoff by slot, while writers run: a consumer creates a logical
# replication slot with plugin repo_stream over the replication protocol
# with EXPORT_SNAPSHOT, exports every repo in a REPEATABLE READ transaction
# that uses that snapshot (SET TRANSACTION SNAPSHOT), then streams from the
# slot and applies every event it receives, strictly (a create of a key it
# holds, or an update or delete whose prev is not the CID it holds, is a
# failure).  It receives exactly the events the exports do not reflect:
# nothing to deduplicate, nothing missing, and its state equals the records
# table for every repo.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use RepoStreamCar;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use JSON::PP;

my $seconds = $ENV{RS_HANDOFF_SECONDS} // 10;
my $n_repos = 8;

my $node = rs_node('handoff_slot', allows_streaming => 'logical');
$node->append_conf('postgresql.conf', qq{
max_connections = 40
output_plugin_libraries = 'pgoutput, test_decoding, repo_stream'
});
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:s' || i) FROM generate_series(1, $n_repos) i;
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:s' || r, 'app.bsky.feed.post', 'k' || k, jsonb_build_object('seed', k)
	FROM generate_series(1, $n_repos) r, generate_series(1, 40, 3) k;
});

my $script = $node->basedir . '/writer.sql';
open my $fh, '>', $script or die;
print $fh qq{
\\set r random(1, $n_repos)
\\set r2 random(1, $n_repos)
\\set k random(1, 40)
\\set op random(1, 10)
BEGIN;
\\if :op <= 5
SELECT repo_stream.put_record('did:plc:s' || :r, 'app.bsky.feed.post', 'k' || :k, jsonb_build_object('v', random()::text));
\\elif :op <= 8
SELECT repo_stream.delete_record('did:plc:s' || :r, 'app.bsky.feed.post', 'k' || :k);
\\else
SELECT repo_stream.put_record('did:plc:s' || :r, (ARRAY['app.bsky.feed.post', 'app.bsky.feed.like'])[i % 2 + 1],
       'k' || i, jsonb_build_object('v', random()::text)) FROM generate_series(:k, least(:k + 6, 40)) i;
SELECT repo_stream.delete_record('did:plc:s' || :r2, 'app.bsky.feed.like', 'k' || :k);
\\endif
COMMIT;
};
close $fh;

my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '4', '-j', '4', '-T', $seconds, '--max-tries=20', '-f', $script,
	  $node->connstr('postgres') ],
	'>', \$out, '2>', \$err);
sleep 1;

# 1. the slot, over the replication protocol, exporting its snapshot
my $repl = $node->background_psql('postgres', replication => 'database');
my ($slot, $lsn, $snapshot, $plugin) = split /\|/,
  $repl->query_safe('CREATE_REPLICATION_SLOT handoff LOGICAL repo_stream EXPORT_SNAPSHOT');
is($plugin, 'repo_stream', "slot $slot at $lsn exported snapshot $snapshot");

# 2. every repo exported in one transaction on that snapshot (the
#    replication connection stays idle until it is imported)
my $psql = $node->background_psql('postgres');
$psql->query_safe("BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '$snapshot'");
$repl->quit;
my (%state, %export_seq);
for my $i (1 .. $n_repos)
{
	my $did = "did:plc:s$i";
	my ($seq, $hex) = split /\|/, $psql->query_safe(qq{
		SELECT max(seq), string_agg(chunk, ''::bytea ORDER BY n)
		FROM repo_stream.export_repo('$did') WITH ORDINALITY AS e(seq, rev, chunk, n)});
	($state{$did}) = car_records(car_from_hex($hex));
	$export_seq{$did} = $seq;
	select(undef, undef, undef, 0.3);
}
$psql->query_safe('COMMIT');
pass('exported every repo on the slot\'s snapshot');

# 3. stream from the slot and apply everything it sends
my @failures;
my ($applied, $events) = (0, 0);
my %received;    # did -> seqs
sub consume
{
	my $rows = $psql->query_safe(q{
		SELECT j->'body'->>'seq', j->'header'->>'t', coalesce(j->'body'->>'repo', j->'body'->>'did'),
		       coalesce(j->'body'->'ops', '[]')
		FROM pg_logical_slot_get_binary_changes('handoff', NULL, NULL) c, repo_stream.frame_to_json(c.data) j});
	my $n = 0;
	for my $line (split /\n/, $rows)
	{
		my ($seq, $type, $did, $ops) = split /\|/, $line, 4;
		$n++;
		$events++;
		push @{ $received{$did} }, $seq;
		push @failures, "seq $seq of $did is reflected in its export (seq $export_seq{$did})"
		  if $seq <= $export_seq{$did};
		push @failures, "seq $seq: unexpected $type" unless $type eq '#commit';
		for my $op (@{ decode_json($ops) })
		{
			my $cur = $state{$did}{ $op->{path} };
			my $prev = $op->{prev} ? $op->{prev}{'$link'} : undef;
			if ($op->{action} eq 'create')
			{
				push @failures, "seq $seq: create of existing $did/$op->{path}" if defined $cur;
			}
			elsif (!defined $cur || !defined $prev || $prev ne $cur)
			{
				push @failures, "seq $seq: $op->{action} of $did/$op->{path} with prev "
				  . ($prev // 'none') . ', held ' . ($cur // 'nothing');
			}
			if ($op->{action} eq 'delete')
			{
				delete $state{$did}{ $op->{path} };
			}
			else
			{
				$state{$did}{ $op->{path} } = $op->{cid}{'$link'};
			}
			$applied++;
		}
	}
	return $n;
}

while ($pgbench->pumpable)
{
	consume();
	$pgbench->pump_nb;
	select(undef, undef, undef, 0.05);
}
ok($pgbench->finish, 'writers finished') or diag($err);
like($out, qr/number of failed transactions: 0/, 'no writer transaction failed');
note(join(' ', grep { /processed|tps/ } split /\n/, $out));
1 while consume() > 0;

cmp_ok($applied, '>', 500, "consumer applied $applied ops from $events streamed events");
is(scalar(@failures), 0, 'every streamed event was new to the consumer and applied strictly')
  or diag(join("\n", @failures[0 .. ($#failures < 9 ? $#failures : 9)]));

for my $i (1 .. $n_repos)
{
	my $did = "did:plc:s$i";
	# exactly the repo's events after its export seq: no gap, no duplicate
	my $logged = $node->safe_psql('postgres', qq{
		SELECT string_agg(seq::text, ',' ORDER BY seq) FROM repo_stream.event_log
		WHERE did = '$did' AND seq > $export_seq{$did}});
	is(join(',', sort { $a <=> $b } @{ $received{$did} // [] }), $logged,
		"$did: the slot sent exactly its events after seq $export_seq{$did}");
	my %table = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
		qq{SELECT collection || '/' || rkey, cid FROM repo_stream.records WHERE did = '$did'});
	is_deeply($state{$did}, \%table, "$did: consumer state equals the records table ("
		  . scalar(keys %table) . ' records)');
}

$psql->quit;
done_testing();
