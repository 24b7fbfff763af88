# Views under load, refreshed by the background worker: eight writers for
# 20 seconds (likes and follows, updates that move a like between posts,
# deletes, aborts, multi-record transactions) while a lifecycle session
# creates, deactivates, reactivates, rotates and deletes repos.  lag_seconds
# is sampled throughout (p50, p99, max are reported).  After a final
# refresh every view equals its GROUP BY, and the handler view's mirror
# equals the records.  Then: commits wake the worker early; a failing
# handler stops only its own view, visibly.  A second cluster, without
# repo_stream preloaded, refreshes a view through pg_cron.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use RsViews;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

my $duration = $ENV{RS_VIEWS_SECONDS} // 20;

# ---- the pg_cron cluster first: its job runs at the next whole minute,
# so it works while the other cluster is under load
my $cron = rs_node('views_cron');
$cron->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$cron->start;
$cron->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	CREATE EXTENSION pg_cron;
	SELECT repo_stream.create_repo('did:plc:cron');
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:cron', 'app.bsky.feed.like', 'c' || i,
	       jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/' || i % 5))
	FROM generate_series(1, 20) i;
	SELECT repo_stream.create_count_view('cron_likes', 'app.bsky.feed.like', 'subject.uri');
	SELECT cron.schedule('refresh cron_likes', '* * * * *', $$SELECT repo_stream.refresh_view('cron_likes')$$);
	UPDATE repo_stream.records SET record = '{"subject": {"uri": "at://post/moved"}}' WHERE rkey IN ('c1', 'c2');
	DELETE FROM repo_stream.records WHERE rkey = 'c3';
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:cron', 'app.bsky.feed.like', 'd' || i, '{"subject": {"uri": "at://post/new"}}'
	FROM generate_series(1, 7) i;
});
is($cron->safe_psql('postgres', q{SELECT count(*) FROM cron_likes WHERE key IN ('at://post/new', 'at://post/moved')}),
	'0', 'pg_cron cluster: the view lags until the scheduled refresh');

# ---- the cluster with the background worker
my $node = rs_node('views');
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'repo_stream'
repo_stream.views_database = 'postgres'
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:w' || i) FROM generate_series(1, 8) i;
	-- records from before the views: the fill must count them
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:w' || (i % 8 + 1), 'app.bsky.feed.like', 'old' || i,
	       jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/' || i % 50))
	FROM generate_series(1, 2000) i;
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:w' || (i % 8 + 1), 'app.bsky.graph.follow', 'old' || i,
	       jsonb_build_object('subject', 'did:plc:w' || (i % 5 + 1))
	FROM generate_series(1, 300) i;
} . $MIRROR_SQL . q{
	SELECT repo_stream.create_count_view('like_counts', 'app.bsky.feed.like', 'subject.uri');
	SELECT repo_stream.create_count_view('likers', 'app.bsky.feed.like', '$did');
	SELECT repo_stream.create_count_view('follower_counts', 'app.bsky.graph.follow', 'subject');
	SELECT repo_stream.create_handler_view('like_mirror', 'mirror_like(bigint,text,text,text,jsonb)',
	                                       'app.bsky.feed.like');
});
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'repo_stream views'}),
	'1', 'the background worker runs');

# Each transaction: put a like (a create, or an update that moves it to
# another post), delete one, put or delete a follow, or put three likes;
# about one in six rolls back.  Each client writes its own repo (writers
# of one record in one repo can deadlock in the write path).
my $script = $node->basedir . '/writer.sql';
open my $fh, '>', $script or die;
print $fh q{
\set r :client_id + 1
\set n random(1, 40)
\set p random(0, 49)
\set op random(1, 10)
\set abort random(1, 6)
BEGIN;
\if :op <= 4
SELECT repo_stream.put_record('did:plc:w' || :r, 'app.bsky.feed.like', 'l' || :n,
	jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/' || :p)));
\elif :op <= 6
SELECT repo_stream.delete_record('did:plc:w' || :r, 'app.bsky.feed.like', 'l' || :n);
\elif :op = 7
SELECT repo_stream.put_record('did:plc:w' || :r, 'app.bsky.graph.follow', 'f' || :n,
	jsonb_build_object('subject', 'did:plc:w' || (:p % 8 + 1)));
\elif :op = 8
SELECT repo_stream.delete_record('did:plc:w' || :r, 'app.bsky.graph.follow', 'f' || :n);
\else
SELECT count(repo_stream.put_record('did:plc:w' || :r, 'app.bsky.feed.like', 'm' || (:n + i),
	jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/' || ((:p + i) % 50)))))
FROM generate_series(0, 2) i;
\endif
\if :abort = 1
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

# repo lifecycles while the writers run: likes from short-lived repos,
# deactivated and reactivated, keys rotated, half of them deleted
my $life = $node->background_psql('postgres');
my $sampler = $node->background_psql('postgres');
my @lag;
my $k = 0;
my $next_life = time;
while ($pgbench->pumpable)
{
	push @lag, $sampler->query_safe(
		q{SELECT lag_seconds FROM repo_stream.view_status WHERE name = 'public.like_counts'});
	note(sprintf('%.3f lag %s', time, $lag[-1])) if $lag[-1] > 0.5;
	if (time >= $next_life)
	{
		$k++;
		$life->query_safe(qq{
			SELECT repo_stream.create_repo('did:plc:life$k');
			SELECT count(repo_stream.put_record('did:plc:life$k', 'app.bsky.feed.like', 'x' || i,
				jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/' || i))))
			FROM generate_series(1, 5) i;
			SELECT repo_stream.put_record('did:plc:life$k', 'app.bsky.graph.follow', 'y',
				'{"subject": "did:plc:w1"}');
			SELECT repo_stream.deactivate_repo('did:plc:life$k');
			SELECT repo_stream.activate_repo('did:plc:life$k');
			SELECT repo_stream.rotate_key('did:plc:life$k');
			SELECT repo_stream.put_record('did:plc:life$k', 'app.bsky.feed.like', 'x1',
				'{"subject": {"uri": "at://post/rotated"}}');
		});
		$life->query_safe(qq{SELECT repo_stream.delete_repo('did:plc:life$k')}) if $k % 2 == 0;
		$next_life = time + 1;
	}
	$pgbench->pump_nb;
	usleep(50_000);
}
ok($pgbench->finish, 'pgbench writers finished cleanly') or diag($err);
like($out, qr/number of failed transactions: 0/, 'no writer transaction failed');
note("pgbench: " . join(' ', grep { /tps|processed/ } split /\n/, $out));
$life->quit;

my @sorted = sort { $a <=> $b } @lag;
my $pct = sub { $sorted[ int($_[0] * $#sorted) ] };
# a precondition, not a result: too few samples make the percentiles noise
die 'only ' . scalar(@lag) . ' lag samples while writing' if @lag < 50;
diag(sprintf('like_counts lag_seconds over %d samples under 8 writers + lifecycles: p50 %.3f s, p99 %.3f s, max %.3f s',
	scalar(@lag), $pct->(0.5), $pct->(0.99), $sorted[-1]));
cmp_ok($pct->(0.5), '<', 2, 'the worker keeps up: median lag under 2 s');

# caught up by the worker, then a final refresh
my $worker_caught_up = 0;
for (1 .. 100)
{
	last if ($worker_caught_up = $sampler->query_safe(
		q{SELECT bool_and(lag_events = 0) FROM repo_stream.view_status}) eq 't');
	usleep(100_000);
}
ok($worker_caught_up, 'the worker alone brings every view to the head');
$node->safe_psql('postgres', 'SELECT repo_stream.refresh_view(name) FROM repo_stream.view_status');

views_exact($node, 'after 8 writers and a final refresh', qw(like_counts likers follower_counts mirror));
# the writers changed the likes (a precondition), and the counted total is
# the records' (views_exact above compares key by key)
die 'the writers left no like of their own' if $node->safe_psql('postgres',
	q{SELECT count(*) FROM repo_stream.records WHERE collection = 'app.bsky.feed.like' AND rkey NOT LIKE 'old%'}) == 0;
is($node->safe_psql('postgres', q{SELECT sum(count) FROM like_counts}),
	$node->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records
		WHERE collection = 'app.bsky.feed.like' AND jsonb_typeof(record->'subject'->'uri') = 'string'}),
	'the likes counted are the likes the records hold');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM repo_stream.view_status WHERE last_error IS NOT NULL OR rebuilds > 0}),
	'0', 'no view failed or was rebuilt');
# deleted repos (repos.status): none of them is counted or mirrored
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM repo_stream.repos r
	WHERE r.status = 'deleted' AND (EXISTS (SELECT FROM likers WHERE key = r.did)
	                             OR EXISTS (SELECT FROM mirror m WHERE m.did = r.did))}),
	'0', 'no deleted repo is counted or mirrored');
is($node->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.repos WHERE status = 'deleted' AND did LIKE 'did:plc:life%'}),
	int($k / 2), "the lifecycle's deletions ($k lifecycles, every second one deleted) all took effect");

# ---- commits wake the worker: with a 10-minute interval, a like still
# shows up in well under a second or two
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.views_refresh_interval = '10min';
	SELECT pg_reload_conf();
});
sleep 2;	# the worker finishes its current 1 s wait and takes the new interval
my $t0 = time;
$node->safe_psql('postgres', q{SELECT repo_stream.put_record('did:plc:w1', 'app.bsky.feed.like', 'wake',
	'{"subject": {"uri": "at://post/wake"}}')});
my $woke = 0;
for (1 .. 100)
{
	last if ($woke = $node->safe_psql('postgres',
		q{SELECT count(*) FROM like_counts WHERE key = 'at://post/wake'}) eq '1');
	usleep(50_000);
}
my $wake_s = time - $t0;
ok($woke, sprintf('a commit wakes the worker: the like was counted after %.2f s (interval 10 min)', $wake_s));
cmp_ok($wake_s, '<', 3, 'well before the interval');

# ---- a failing handler stops its own view only, and says why (the
# handler is repaired by data: a view refuses a handler whose definition
# changed)
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.views_refresh_interval = '200ms';
	SELECT pg_reload_conf();
	CREATE TABLE fragile_refuses (uri text);
	INSERT INTO fragile_refuses VALUES ('at://post/boom');
	CREATE FUNCTION fragile(seq bigint, did text, action text, path text, record jsonb)
	RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF EXISTS (SELECT FROM public.fragile_refuses r WHERE r.uri = record->'subject'->>'uri') THEN
			RAISE EXCEPTION 'fragile handler: boom at %', path;
		END IF;
	END $$;
	SELECT repo_stream.create_handler_view('fragile_view', 'fragile(bigint,text,text,text,jsonb)',
	                                       'app.bsky.feed.like');
	SELECT repo_stream.put_record('did:plc:w2', 'app.bsky.feed.like', 'boom', '{"subject": {"uri": "at://post/boom"}}');
	SELECT repo_stream.put_record('did:plc:w2', 'app.bsky.feed.like', 'after', '{"subject": {"uri": "at://post/after"}}');
});
my $status = '';
for (1 .. 100)
{
	$status = $node->safe_psql('postgres', q{
		SELECT (SELECT last_error FROM repo_stream.view_status WHERE name = 'public.fragile_view') || ' | ' ||
		       (SELECT count(*) FROM like_counts WHERE key = 'at://post/after')});
	last if $status =~ /boom.*\| 1$/;
	usleep(100_000);
}
like($status, qr/fragile handler: boom at app\.bsky\.feed\.like\/boom \| 1$/,
	'the failing view shows its error in view_status while the others go on');
cmp_ok($node->safe_psql('postgres', q{SELECT lag_events FROM repo_stream.view_status WHERE name = 'public.fragile_view'}),
	'>=', 2, 'the failing view keeps its cursor');
$node->safe_psql('postgres', q{DELETE FROM fragile_refuses});
my $recovered = '';
for (1 .. 150)
{
	$recovered = $node->safe_psql('postgres', q{
		SELECT coalesce(last_error, 'none') || ' ' || lag_events FROM repo_stream.view_status WHERE name = 'public.fragile_view'});
	last if $recovered eq 'none 0';
	usleep(100_000);
}
is($recovered, 'none 0', 'after the handler is fixed, the worker catches the view up and clears the error');
ok($node->log_contains('repo_stream view \d+: refresh failed: fragile handler: boom'),
	'the failure is in the server log');

$sampler->quit;
$node->stop;

# ---- pg_cron: repo_stream is not preloaded there; the scheduled job does the refresh
is($cron->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'repo_stream views'}),
	'0', 'pg_cron cluster: no repo_stream worker');
my $cron_ok = '';
for (1 .. 130)
{
	$cron_ok = $cron->safe_psql('postgres', q{
		SELECT count(*) FROM ((TABLE cron_likes EXCEPT SELECT record->'subject'->>'uri', count(*) FROM repo_stream.records GROUP BY 1)
		                      UNION ALL (SELECT record->'subject'->>'uri', count(*) FROM repo_stream.records GROUP BY 1 EXCEPT TABLE cron_likes)) d});
	last if $cron_ok eq '0';
	sleep 1;
}
is($cron_ok, '0', 'pg_cron\'s scheduled refresh_view brought the view to its GROUP BY');
like($cron->safe_psql('postgres', q{SELECT status || ' ' || command FROM cron.job_run_details ORDER BY runid LIMIT 1}),
	qr/^succeeded SELECT repo_stream.refresh_view\('cron_likes'\)/, 'the cron job ran and succeeded');
$cron->stop;

done_testing();
