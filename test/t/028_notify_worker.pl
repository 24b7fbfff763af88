# With repo_stream preloaded, NOTIFY repo_stream_events comes from a
# per-database background worker, once per batch of commits: every commit is
# covered by a notification whose payload is at or above its seq, aborted
# transactions add nothing, the worker exits when idle (DROP DATABASE works)
# and comes back when killed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = rs_node('notifyw');
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'repo_stream'\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:w' || i) FROM generate_series(1, 4) i;
});

my $worker_sql = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'repo_stream notify'};
my $max_seq_sql = 'SELECT max(seq) FROM repo_stream.event_log';
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN repo_stream_events');

# [payload, pid] of every notification psql reported
sub notifications
{
	my ($out) = @_;
	my @n;
	while ($out =~ /Asynchronous notification "repo_stream_events" with payload "(\d+)" received from server process with PID (\d+)/g)
	{
		push @n, [ $1, $2 ];
	}
	return @n;
}

sub put
{
	my ($did, $rkey) = @_;
	$node->safe_psql('postgres',
		"SELECT repo_stream.put_record('$did', 'app.bsky.feed.post', '$rkey', '{\"t\": 1}')");
	return $node->safe_psql('postgres', $max_seq_sql);
}

# the first commit notifies by itself and starts the worker
my $seq = put('did:plc:w1', 'first');
my @n = notifications($listener->query_safe('SELECT 1'));
is_deeply([ map { $_->[0] } @n ], [$seq], 'first commit: one notification with its seq');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_sql) w"),
	'the notify worker started');
my $wpid = $node->safe_psql('postgres', $worker_sql);

# from now on the worker notifies
$seq = put('did:plc:w1', 'second');
my $seen = '';
for (1 .. 50)
{
	$seen .= $listener->query_safe('SELECT 1');
	last if $seen =~ /payload "$seq"/;
	usleep(100_000);
}
@n = notifications($seen);
is_deeply(\@n, [ [ $seq, $wpid ] ], 'second commit: notified once, by the worker, with its seq');

# four writers, 50 commits each: every commit covered, fewer notifications
my @writers = map {
	my $w = $node->background_psql('postgres');
	$w->query_until(qr/started/, qq{
		\\echo started
		DO \$\$ BEGIN FOR i IN 1..50 LOOP
			PERFORM repo_stream.put_record('did:plc:w$_', 'app.bsky.feed.post', 'c' || i, jsonb_build_object('i', i));
			COMMIT;
		END LOOP; END \$\$;
	});
	$w } (1 .. 4);
$_->query_safe('SELECT 1') for @writers;
$_->quit for @writers;
my $max = $node->safe_psql('postgres', $max_seq_sql);
$seen = '';
for (1 .. 100)
{
	$seen .= $listener->query_safe('SELECT 1');
	last if $seen =~ /payload "$max"/;
	usleep(100_000);
}
@n = notifications($seen);
my @payloads = map { $_->[0] } @n;
is($payloads[-1], $max, "200 commits: the last notification carries the highest seq $max");
is_deeply(\@payloads, [ sort { $a <=> $b } @payloads ], 'payloads ascend');
cmp_ok(scalar(@n), '<=', 200, scalar(@n) . ' notifications for 200 commits');
is(scalar(grep { $_->[1] != $wpid } @n), 0, 'all sent by the worker');

# an aborted transaction: no notification
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT repo_stream.put_record('did:plc:w1', 'app.bsky.feed.post', 'aborted', '{"t": 0}');
	ROLLBACK;
});
usleep(500_000);
unlike($listener->query_safe('SELECT 1'), qr/Asynchronous notification/, 'aborted: no notification');

# repo_stream.notify = off: silent
$node->safe_psql('postgres', q{
	SET repo_stream.notify = off;
	SELECT repo_stream.put_record('did:plc:w1', 'app.bsky.feed.post', 'quiet', '{"t": 0}');
});
usleep(500_000);
unlike($listener->query_safe('SELECT 1'), qr/Asynchronous notification/, 'notify off: no notification');

# killed: a commit is still notified (in the transaction or by a new worker)
$node->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)");
$seq = put('did:plc:w2', 'after-kill');
$seen = '';
for (1 .. 50)
{
	$seen .= $listener->query_safe('SELECT 1');
	last if $seen =~ /payload "$seq"/;
	usleep(100_000);
}
like($seen, qr/payload "$seq"/, 'after pg_terminate_backend of the worker: the next commit is notified');

# idle: the worker exits, and a database it served can be dropped at once
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM ($worker_sql) w"),
	'the worker exits when idle');
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_repo('did:plc:other');
	SELECT repo_stream.put_record('did:plc:other', 'app.bsky.feed.post', 'a', '{"t": 1}');
	SELECT repo_stream.put_record('did:plc:other', 'app.bsky.feed.post', 'b', '{"t": 1}');
});
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE other');
is($rc, 0, 'DROP DATABASE right after its writes succeeds') or diag($err);

$listener->quit;
$node->stop;
done_testing();
