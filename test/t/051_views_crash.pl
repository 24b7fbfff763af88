# kill -9 the server in the middle of refreshes (a count view with a long
# backlog, and a handler view writing a mirror): after the restart the views
# are where their last committed refresh left them, the next refresh makes
# them exact, and the restarted background worker carries on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use RsViews;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $node = rs_node('views_crash');
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'repo_stream'
repo_stream.views_refresh_interval = 0
# the handler waits for the test's lock until the crash: no budget cuts it
repo_stream.view_handler_timeout = 0
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:k' || i) FROM generate_series(1, 4) i;
} . $MIRROR_SQL . q{
	-- halfway through the backlog the handler waits while the test holds a lock
	CREATE FUNCTION pause_at_t5(seq bigint, did text, action text, path text, record jsonb)
	RETURNS void LANGUAGE plpgsql SET search_path = public AS $$
	BEGIN
		PERFORM mirror_like(seq, did, action, path, record);
		IF path = 'app.bsky.feed.like/t5-5000' THEN
			PERFORM pg_advisory_xact_lock_shared(4242);
		END IF;
	END $$;
	SELECT repo_stream.create_count_view('like_counts', 'app.bsky.feed.like', 'subject.uri');
	SELECT repo_stream.create_count_view('likers', 'app.bsky.feed.like', '$did');
	SELECT repo_stream.create_handler_view('like_mirror', 'pause_at_t5(bigint,text,text,text,jsonb)',
	                                       'app.bsky.feed.like');
});

# a long backlog: 80k likes in 8 transactions, then moves and deletes
for my $t (1 .. 8)
{
	my $r = ($t % 4) + 1;
	$node->safe_psql('postgres', qq{
		INSERT INTO repo_stream.records (did, collection, rkey, record)
		SELECT 'did:plc:k$r', 'app.bsky.feed.like', 't$t-' || i,
		       jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/' || (i % 997)))
		FROM generate_series(1, 10000) i});
}
$node->safe_psql('postgres', q{
	UPDATE repo_stream.records SET record = '{"subject": {"uri": "at://post/moved"}}'
	WHERE rkey LIKE 't1-%' AND rkey LIKE '%7';
	DELETE FROM repo_stream.records WHERE rkey LIKE 't2-%' AND rkey LIKE '%3';
});

my $cursors_sql = q{SELECT string_agg(name || '=' || cursor, ' ' ORDER BY name) FROM repo_stream.view_status};
my $before = $node->safe_psql('postgres', $cursors_sql);

# both refreshes are stopped in the middle: the count view's once it has
# written its first chunk's memory rows (its count table is locked), the
# handler view's halfway through the backlog (its handler waits for a lock)
my $blocker = $node->background_psql('postgres');
$blocker->query_safe('SELECT pg_advisory_lock(4242); BEGIN; LOCK TABLE like_counts IN EXCLUSIVE MODE');

my @refreshes;
for my $view ('like_counts', 'like_mirror')
{
	my ($o, $e) = ('', '');
	push @refreshes, IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', "SELECT repo_stream.refresh_view('$view')" ],
		'>', \$o, '2>', \$e);
}
# both refreshes running for a while, neither committed
my $running = 0;
for (1 .. 100)
{
	$running = $node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity
		WHERE state = 'active' AND now() - query_start > interval '300 ms'
		  AND query LIKE 'SELECT repo_stream.refresh_view%' AND wait_event_type = 'Lock'});
	last if $running eq '2';
	usleep(50_000);
}
is($running, '2', 'two refreshes are in the middle of their work');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
	WHERE query = 'SELECT repo_stream.refresh_view(''like_mirror'')' AND wait_event = 'advisory'}),
	'==', 1, 'the handler view\'s refresh is halfway, in its handler');
is($node->safe_psql('postgres', $cursors_sql), $before, 'no refresh has committed yet');
$node->kill9;
$_->finish for @refreshes;
eval { $blocker->quit };
sleep 3;	# the orphaned backends notice the postmaster is gone
$node->start;

is($node->safe_psql('postgres', $cursors_sql), $before, 'after the crash the cursors are where they were');
is($node->safe_psql('postgres', q{SELECT count(*) FROM mirror}), '0',
	'and the handler\'s writes went with its refresh (nothing was applied)');

# the live count is exact before any refresh
is($node->safe_psql('postgres', q{SELECT repo_stream.view_count_live('like_counts', 'at://post/moved')}),
	$node->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE record->'subject'->>'uri' = 'at://post/moved'}),
	'view_count_live is exact with the whole backlog unapplied');

$node->safe_psql('postgres', 'SELECT repo_stream.refresh_view(name) FROM repo_stream.view_status');
views_exact($node, 'after the crash and a refresh', qw(like_counts likers mirror));

# the restarted worker carries on
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.views_refresh_interval = '200ms';
	SELECT pg_reload_conf();
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:k1', 'app.bsky.feed.like', 'after-' || i, '{"subject": {"uri": "at://post/after"}}'
	FROM generate_series(1, 50) i;
	DELETE FROM repo_stream.records WHERE rkey LIKE 't3-%' AND rkey LIKE '%1';
});
my $caught_up = '';
for (1 .. 200)
{
	$caught_up = $node->safe_psql('postgres', q{SELECT bool_and(lag_events = 0) FROM repo_stream.view_status});
	last if $caught_up eq 't';
	usleep(100_000);
}
is($caught_up, 't', 'the background worker brings the views to the head after the restart');
views_exact($node, 'after the worker caught up', qw(like_counts likers mirror));

$node->stop;
done_testing();
