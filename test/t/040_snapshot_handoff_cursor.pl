# Exact handoff by cursor, while writers run: a new consumer notes a cursor
# from events_since, exports every repo (each export says the seq it
# reflects), then reads events_since from the cursor and applies, per repo,
# only the events above that repo's export seq.  It applies strictly: a
# create of a key it holds, or an update or delete whose prev is not the CID
# it holds, is a failure.  At the end its state equals the records table
# for every repo: no gap, no duplicate.
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

my $node = rs_node('handoff_cursor');
$node->append_conf('postgresql.conf', "max_connections = 40\n");
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:h' || i) FROM generate_series(1, $n_repos) i;
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:h' || r, 'app.bsky.feed.post', 'k' || k, jsonb_build_object('seed', k)
	FROM generate_series(1, $n_repos) r, generate_series(1, 40, 3) k;
});

# Creates, updates and deletes over 40 keys of two collections per repo:
# single writes, and transactions of several writes over two repos.
my $script = $node->basedir . '/writer.sql';
open my $fh, '>', $script or die;
print $fh qq{
\\set r random(1, $n_repos)
\\set r2 random(1, $n_repos)
\\set k random(1, 40)
\\set op random(1, 10)
BEGIN;
\\if :op <= 5
SELECT repo_stream.put_record('did:plc:h' || :r, 'app.bsky.feed.post', 'k' || :k, jsonb_build_object('v', random()::text));
\\elif :op <= 8
SELECT repo_stream.delete_record('did:plc:h' || :r, 'app.bsky.feed.post', 'k' || :k);
\\else
SELECT repo_stream.put_record('did:plc:h' || :r, (ARRAY['app.bsky.feed.post', 'app.bsky.feed.like'])[i % 2 + 1],
       'k' || i, jsonb_build_object('v', random()::text)) FROM generate_series(:k, least(:k + 6, 40)) i;
SELECT repo_stream.delete_record('did:plc:h' || :r2, 'app.bsky.feed.like', 'k' || :k);
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

my $psql = $node->background_psql('postgres', on_error_stop => 0);

# events_since; any error fails the test
sub events_query
{
	my ($sql) = @_;
	my ($out, $failed) = $psql->query($sql);
	die "events_since failed: $psql->{stderr}" if $failed;
	return $out;
}

# 1. the cursor: every seq at or below it belongs to a finished transaction
my $cursor = events_query(q{
	SELECT coalesce(max(e.seq), m.s) FROM (SELECT coalesce(max(last_seq), 0) AS s FROM repo_stream.repos) m
	LEFT JOIN repo_stream.events_since((SELECT coalesce(max(last_seq), 0) FROM repo_stream.repos), 100000) e ON true
	GROUP BY m.s});
note("cursor $cursor");

# 2. export every repo while the writers run
my (%state, %export_seq);
for my $i (1 .. $n_repos)
{
	my $did = "did:plc:h$i";
	my ($seq, $hex) = split /\|/, $psql->query_safe(qq{
		SELECT max(seq), string_agg(chunk, ''::bytea ORDER BY n)
		FROM repo_stream.export_repo('$did') WITH ORDINALITY AS e(seq, rev, chunk, n)});
	my ($records, $commit) = car_records(car_from_hex($hex));
	$state{$did} = $records;
	$export_seq{$did} = $seq;
	cmp_ok($seq, '>', 0, "$did exported at seq $seq");
	select(undef, undef, undef, 0.3);
}

# 3. read from the cursor, applying each repo's events above its export seq
my @failures;
my ($applied, $skipped) = (0, 0);
sub apply_events
{
	my $rows = events_query(qq{
		SELECT e.seq, j->'header'->>'t', coalesce(j->'body'->>'repo', j->'body'->>'did'), coalesce(j->'body'->'ops', '[]')
		FROM repo_stream.events_since($cursor, 500) e, repo_stream.frame_to_json(e.frame) j});
	my $n = 0;
	for my $line (split /\n/, $rows)
	{
		my ($seq, $type, $did, $ops) = split /\|/, $line, 4;
		if ($seq eq '')
		{
			# an #info row (OutdatedCursor): the window no longer reaches the
			# cursor, so events were lost to this consumer.  The default
			# retention keeps every event of this test: never expected here.
			push @failures, "an $type row at cursor $cursor: the log was pruned past the hand-off";
			next;
		}
		$cursor = $seq;
		$n++;
		next unless exists $state{$did};
		if ($seq <= $export_seq{$did})
		{
			$skipped++;
			next;
		}
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
	apply_events();
	$pgbench->pump_nb;
	select(undef, undef, undef, 0.05);
}
ok($pgbench->finish, 'writers finished') or diag($err);
like($out, qr/number of failed transactions: 0/, 'no writer transaction failed');
note(join(' ', grep { /processed|tps/ } split /\n/, $out));
1 while apply_events() > 0;

cmp_ok($applied, '>', 500, "consumer applied $applied ops after the exports");
cmp_ok($skipped, '>', 0, "events already in an export were skipped ($skipped)");
is(scalar(@failures), 0, 'every op applied strictly (create on absent, update/delete on its prev)')
  or diag(join("\n", @failures[0 .. ($#failures < 9 ? $#failures : 9)]));

for my $i (1 .. $n_repos)
{
	my $did = "did:plc:h$i";
	my %table = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
		qq{SELECT collection || '/' || rkey, cid FROM repo_stream.records WHERE did = '$did'});
	is_deeply($state{$did}, \%table, "$did: consumer state equals the records table ("
		  . scalar(keys %table) . ' records)');
}

$psql->quit;
done_testing();
