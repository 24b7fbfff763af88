# Handler views in the background worker against hostile handlers (issue
# 17; sql/views_security.sql covers the creator's and a refresher's
# sessions):
#  - the probe: a repo_stream_admin's handler sets search_path inside the
#    worker, its now() waits for the worker's next statement (as the
#    extension's owner): the admin never becomes superuser;
#  - handlers that set every kind of setting (SET, set_config, SET LOCAL),
#    default_transaction_read_only among them: a handler that runs after
#    them sees the worker's settings as they were, the worker never exits,
#    and a count view keeps refreshing;
#  - the time budget: a sleeping handler is cut, its view shows why, and
#    another view keeps refreshing meanwhile; a slow handler within its
#    budget gets a slice of each round, the other views the rest;
#  - no lock on the log while user code runs: the ring rotates while the
#    worker waits inside a handler, and while a session that called
#    refresh_view keeps its transaction open;
#  - a handler that catches every cancel: the worker ends itself, and the
#    next one records why and leaves that view alone for a while;
#  - a database on 0.1.0 with this library, then upgraded: which handler
#    views get their handler recorded, and which are refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = rs_node('views_security');
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'repo_stream'
repo_stream.views_database = 'postgres'
repo_stream.views_refresh_interval = '200ms'
repo_stream.view_handler_timeout = '2s'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:s' || i) FROM generate_series(1, 2) i;
	CREATE ROLE adm LOGIN IN ROLE repo_stream_admin;
	CREATE ROLE adm2 LOGIN IN ROLE repo_stream_admin;
	CREATE SCHEMA adm AUTHORIZATION adm;
	CREATE SCHEMA adm2 AUTHORIZATION adm2;
	GRANT USAGE ON SCHEMA adm, adm2 TO PUBLIC;
	-- every call of a planted function, whoever ran it
	CREATE TABLE public.ran (what text, who text, superuser boolean, backend text);
	GRANT INSERT ON public.ran TO PUBLIC;
	-- true inside the views worker only (a superuser's: others do not see
	-- the worker's backend_type)
	CREATE FUNCTION public.in_worker() RETURNS boolean LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog AS $$
		SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity
		               WHERE pid = pg_catalog.pg_backend_pid() AND backend_type = 'repo_stream views') $$;
});

my $worker_sql = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'repo_stream views'};
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_sql) w"), 'the views worker runs');
my $wpid = $node->safe_psql('postgres', $worker_sql);

my $n = 0;
# one like by did:plc:s1 (one event); returns its seq
sub put_like
{
	my ($uri) = @_;
	$n++;
	$node->safe_psql('postgres', qq{SELECT repo_stream.put_record('did:plc:s1', 'app.bsky.feed.like', 'k$n',
		jsonb_build_object('subject', jsonb_build_object('uri', '$uri')))});
	return $node->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
}

# wait until view name's cursor reaches seq
sub caught_up
{
	my ($name, $seq, $tries) = @_;
	return $node->poll_query_until('postgres',
		"SELECT cursor >= $seq FROM repo_stream.view_status WHERE name = '$name'");
}

my $truth = q{SELECT count(*) FROM ((TABLE like_counts EXCEPT
		SELECT record->'subject'->>'uri', count(*) FROM repo_stream.records WHERE collection = 'app.bsky.feed.like' GROUP BY 1)
	UNION ALL (SELECT record->'subject'->>'uri', count(*) FROM repo_stream.records WHERE collection = 'app.bsky.feed.like' GROUP BY 1
		EXCEPT TABLE like_counts)) d};

# ---- the probe (F-H1 in the worker): search_path set inside the worker.
# The first view of the database, created in one transaction with a
# record: the worker's first refresh calls the handler before it has
# prepared its statements (as a worker just started does), so the
# statement that advances the cursor (now()) is parsed after the handler.
$node->safe_psql('postgres', q{
	SET ROLE adm;
	BEGIN;
	CREATE FUNCTION adm.h(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$
	BEGIN
		IF public.in_worker() THEN
			PERFORM pg_catalog.set_config('search_path', 'adm, pg_catalog', false);
		END IF;
	END $$;
	CREATE FUNCTION adm.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.ran SELECT 'adm.now()', current_user, rolsuper, public.in_worker()::text
		FROM pg_catalog.pg_roles WHERE rolname = current_user;
		IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
			EXECUTE 'ALTER ROLE adm SUPERUSER';
		END IF;
		RETURN pg_catalog.now();
	END $$;
	CREATE FUNCTION adm.lower(text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.ran SELECT 'adm.lower(text)', current_user, rolsuper, public.in_worker()::text
		FROM pg_catalog.pg_roles WHERE rolname = current_user;
		RETURN 'hijacked';
	END $$;
	SELECT repo_stream.create_handler_view('adm.hv', 'adm.h(bigint,text,text,text,jsonb)');
	SELECT repo_stream.put_record('did:plc:s1', 'app.bsky.feed.like', 'k0', '{"subject": {"uri": "at://post/0"}}');
	COMMIT;
});
my $seq = $node->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
ok(caught_up('adm.hv', $seq), 'the worker ran the handler on the new event');
$node->safe_psql('postgres', q{SELECT repo_stream.create_count_view('like_counts', 'app.bsky.feed.like', 'subject.uri')});
$seq = put_like('at://post/1');
ok(caught_up('adm.hv', $seq) && caught_up('public.like_counts', $seq), 'and refreshed again after it');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'adm'}), 'f',
	'the admin whose handler set search_path in the worker is not superuser');
is($node->safe_psql('postgres', q{SELECT count(*) FROM public.ran}), '0', 'no planted function ran');

# ---- every setting, every way, in the worker
# observe: what the worker's settings are when a handler runs (the
# observer's view is older than the meddlers', so it runs before them in a
# round and sees what the previous round's meddlers left)
$node->safe_psql('postgres', q{
	CREATE TABLE public.observed (seq bigint, name text, value text);
	GRANT INSERT ON public.observed TO PUBLIC;
	CREATE FUNCTION public.settings_seen() RETURNS TABLE (name text, value text) LANGUAGE sql AS $$
		-- a placeholder once set exists from then on, empty: NULL and '' alike
		SELECT n, coalesce(pg_catalog.current_setting(n, true), '') FROM pg_catalog.unnest(ARRAY['search_path', 'role',
			'session_authorization', 'statement_timeout', 'work_mem', 'default_transaction_read_only',
			'transaction_read_only', 'lock_timeout', 'rs_test.planted']) n $$;
	CREATE FUNCTION adm2.observe(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$
	BEGIN
		IF public.in_worker() THEN
			INSERT INTO public.observed SELECT seq, s.name, s.value FROM public.settings_seen() s;
		END IF;
	END $$;
	ALTER FUNCTION adm2.observe(bigint, text, text, text, jsonb) OWNER TO adm2;
	SET ROLE adm2;
	SELECT repo_stream.create_handler_view('adm2.observer', 'adm2.observe(bigint,text,text,text,jsonb)');
});
my $before_seq = put_like('at://post/2');
ok(caught_up('adm2.observer', $before_seq), 'the observer saw the worker\'s settings');
$node->safe_psql('postgres', q{
	SET ROLE adm;
	CREATE FUNCTION adm.meddle(how text) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		g record;
	BEGIN
		FOR g IN SELECT * FROM (VALUES ('search_path', 'adm, pg_catalog'), ('statement_timeout', '1234'),
			('work_mem', '77kB'), ('default_transaction_read_only', 'on'), ('lock_timeout', '4321'),
			('rs_test.planted', 'by a handler'), ('role', 'adm2'), ('session_authorization', 'adm2')) AS v(name, value)
		LOOP
			BEGIN
				IF how = 'SET LOCAL' THEN
					EXECUTE pg_catalog.format('SET LOCAL %s = %L', g.name, g.value);
				ELSIF how = 'set_config' THEN
					PERFORM pg_catalog.set_config(g.name, g.value, false);
				ELSE
					EXECUTE pg_catalog.format('SET %s = %L', g.name, g.value);
				END IF;
			EXCEPTION WHEN insufficient_privilege THEN
				NULL;	-- role, session_authorization: refused in a security-restricted operation
			END;
		END LOOP;
		PERFORM pg_catalog.set_config('transaction_read_only', 'on', how = 'SET LOCAL');
		PERFORM pg_catalog.pg_advisory_lock(4321);	-- a session-level lock, never released
	END $$;
	CREATE FUNCTION adm.m_set(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN IF public.in_worker() THEN PERFORM adm.meddle('SET'); END IF; END $$;
	CREATE FUNCTION adm.m_config(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN IF public.in_worker() THEN PERFORM adm.meddle('set_config'); END IF; END $$;
	CREATE FUNCTION adm.m_local(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN IF public.in_worker() THEN PERFORM adm.meddle('SET LOCAL'); END IF; END $$;
	SELECT repo_stream.create_handler_view('adm.m_set', 'adm.m_set(bigint,text,text,text,jsonb)');
	SELECT repo_stream.create_handler_view('adm.m_config', 'adm.m_config(bigint,text,text,text,jsonb)');
	SELECT repo_stream.create_handler_view('adm.m_local', 'adm.m_local(bigint,text,text,text,jsonb)');
});
$seq = put_like('at://post/3');
ok(caught_up($_, $seq), "$_ ran in the worker") for qw(adm.m_set adm.m_config adm.m_local);
my $after_seq = put_like('at://post/3');
ok(caught_up('adm2.observer', $after_seq), 'the observer ran after the meddlers');
my $seen = q{SELECT string_agg(name || '=' || coalesce(value, 'NULL'), ' ' ORDER BY name) FROM public.observed WHERE seq = %d};
my $settings_before = $node->safe_psql('postgres', sprintf($seen, $before_seq));
like($settings_before, qr/default_transaction_read_only=off .*search_path=pg_catalog, pg_temp/,
	"the worker's settings in a handler: $settings_before");
is($node->safe_psql('postgres', sprintf($seen, $after_seq)), $settings_before,
	'after handlers set every setting (SET, set_config, SET LOCAL), the next handler sees the worker\'s settings unchanged');
ok(caught_up('public.like_counts', $after_seq), 'the count view refreshed after the meddlers');
is($node->safe_psql('postgres', q{SELECT string_agg(name || ':' || coalesce(last_error, 'ok'), ' ' ORDER BY name)
	FROM repo_stream.view_status WHERE name LIKE 'adm.m_%'}),
	'adm.m_config:ok adm.m_local:ok adm.m_set:ok', 'the meddlers\' refreshes succeeded (transaction_read_only did not stay)');
is($node->safe_psql('postgres', $worker_sql), $wpid,
	'the worker did not exit (default_transaction_read_only did not stay)');
is($node->safe_psql('postgres', q{SELECT pg_try_advisory_lock(4321)}), 't',
	'the session-level advisory lock the handlers took did not stay with the worker');
ok(!$node->log_contains('in a read-only transaction'), 'no statement of the worker met a read-only transaction');
is($node->safe_psql('postgres', q{SELECT count(*) FROM public.ran}), '0', 'no planted function ran');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'adm'}), 'f', 'adm is not superuser');
$node->safe_psql('postgres', q{SELECT repo_stream.drop_view(v) FROM unnest(ARRAY['adm.m_set', 'adm.m_config', 'adm.m_local', 'adm.hv', 'adm2.observer']) v});

# ---- the time budget (2 s): a handler that sleeps in the worker is cut,
# says so, and the count view keeps refreshing meanwhile
$node->safe_psql('postgres', q{
	SET ROLE adm2;
	CREATE FUNCTION adm2.sleeper(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN IF public.in_worker() THEN PERFORM pg_catalog.pg_sleep(3600); END IF; END $$;
	SELECT repo_stream.create_handler_view('adm2.sleepy', 'adm2.sleeper(bigint,text,text,text,jsonb)');
});
put_like('at://post/sleep');
my $err = '';
for (1 .. 100)
{
	$err = $node->safe_psql('postgres', q{SELECT coalesce(last_error, '') FROM repo_stream.view_status WHERE name = 'adm2.sleepy'});
	last if $err ne '';
	usleep(100_000);
}
like($err, qr/handler adm2\.sleeper\(.*\) of view "adm2\.sleepy" ran longer than repo_stream\.view_handler_timeout \(2000 ms\)/,
	'the sleeping handler was cut at its budget, and view_status says so');
my @lags;
for my $i (1 .. 3)
{
	my $t0 = time;
	$seq = put_like("at://post/while-sleepy-$i");
	ok(caught_up('public.like_counts', $seq), "like $i counted while the sleepy view fails");
	push @lags, time - $t0;
}
cmp_ok((sort { $a <=> $b } @lags)[-1], '<', 15, sprintf('within %.1f s each (budget 2 s)', (sort { $a <=> $b } @lags)[-1]));
is($node->safe_psql('postgres', $truth), '0', 'the count view equals its GROUP BY');
is($node->safe_psql('postgres', $worker_sql), $wpid, 'the same worker');
$node->safe_psql('postgres', q{SELECT repo_stream.drop_view('adm2.sleepy')});

# ---- a slow handler within its budget (1.5 s a call, 8 events: 12 s of
# work) shares the worker: each view gets a slice of a round (ended
# between events: the ops of one event are applied together)
$node->safe_psql('postgres', q{
	SET ROLE adm2;
	CREATE FUNCTION adm2.slow(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$ BEGIN IF public.in_worker() THEN PERFORM pg_catalog.pg_sleep(1.5); END IF; END $$;
	SELECT repo_stream.create_handler_view('adm2.slow', 'adm2.slow(bigint,text,text,text,jsonb)');
	RESET ROLE;
	-- after the slow view in a round
	SELECT repo_stream.create_count_view('likes_late', 'app.bsky.feed.like', 'subject.uri');
});
$node->safe_psql('postgres', q{
	DO $$
	BEGIN
		FOR i IN 1 .. 8 LOOP
			PERFORM repo_stream.put_record('did:plc:s2', 'app.bsky.feed.like', 'slow' || i, '{"subject": {"uri": "at://post/slow"}}');
			COMMIT;
		END LOOP;
	END $$});
my $slow_seq = $node->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
ok($node->poll_query_until('postgres', q{SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE backend_type = 'repo_stream views'}),
	'the worker is in the slow handler');
my $t0 = time;
$seq = put_like('at://post/while-slow');
ok(caught_up('public.likes_late', $seq), 'a like made meanwhile is counted by a view after the slow one');
my $took = time - $t0;
cmp_ok($took, '<', 6, sprintf('after %.1f s, long before the slow view is done', $took));
cmp_ok($node->safe_psql('postgres', q{SELECT cursor FROM repo_stream.view_status WHERE name = 'adm2.slow'}),
	'<', $slow_seq, 'the slow view was still behind');
ok(caught_up('adm2.slow', $slow_seq), 'and it catches up in later rounds');
is($node->safe_psql('postgres', q{SELECT coalesce(last_error, 'ok') FROM repo_stream.view_status WHERE name = 'adm2.slow'}),
	'ok', 'without an error');
$node->safe_psql('postgres', q{SELECT repo_stream.drop_view('adm2.slow'), repo_stream.drop_view('likes_late')});

# ---- the ring rotates while the worker waits inside a handler: a refresh
# holds no lock on the log while user code runs
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.view_handler_timeout = '5min';
	SELECT pg_reload_conf();
	SET ROLE adm;
	CREATE FUNCTION adm.waiter(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$
	BEGIN
		IF public.in_worker() AND path = 'app.bsky.feed.like/wait' THEN
			PERFORM pg_catalog.pg_advisory_xact_lock_shared(777);
		END IF;
	END $$;
	SELECT repo_stream.create_handler_view('adm.waiting', 'adm.waiter(bigint,text,text,text,jsonb)');
});
sleep 1;	# the worker takes the new budget at its next wait
my $blocker = $node->background_psql('postgres');
$blocker->query_safe('SELECT pg_advisory_lock(777)');
$node->safe_psql('postgres', q{SELECT repo_stream.put_record('did:plc:s2', 'app.bsky.feed.like', 'wait',
	'{"subject": {"uri": "at://post/wait"}}')});
ok($node->poll_query_until('postgres',
	q{SELECT wait_event = 'advisory' FROM pg_stat_activity WHERE backend_type = 'repo_stream views'}),
	'the worker waits inside the handler');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	WHERE l.pid = (} . $worker_sql . q{) AND c.relname LIKE 'event_log%'}),
	'0', 'holding no lock on the event log');
my $ring_sql = q{SELECT current_segment || ' ' || pruned_through FROM repo_stream.log_state};
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.retention_events = 100;
	SELECT pg_reload_conf();
});
sleep 1;
my $ring_before = $node->safe_psql('postgres', $ring_sql);
$node->safe_psql('postgres', q{
	DO $$
	BEGIN
		FOR i IN 1 .. 300 LOOP
			PERFORM repo_stream.put_record('did:plc:s2', 'app.bsky.feed.like', 'r' || i,
				jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/r' || (i % 7))));
			COMMIT;
		END LOOP;
	END $$});
my $ring_after = $node->safe_psql('postgres', $ring_sql);
my ($pruned_before) = $ring_before =~ / (\d+)$/;
my ($pruned_after) = $ring_after =~ / (\d+)$/;
cmp_ok($pruned_after // 0, '>', $pruned_before // 0,
	"300 commits with retention_events = 100 rotated the ring while the handler waited ($ring_before -> $ring_after)");
is($node->safe_psql('postgres', q{SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'repo_stream views'}),
	'advisory', 'the worker was inside the handler all along');
$blocker->query_safe('SELECT pg_advisory_unlock(777)');
my $done = '';
for (1 .. 150)
{
	$done = $node->safe_psql('postgres', q{SELECT bool_and(lag_events = 0 AND last_error IS NULL) FROM repo_stream.view_status});
	last if $done eq 't';
	usleep(100_000);
}
is($done, 't', 'released, the worker brings every view to the head (rebuilding what fell out of the log)');
is($node->safe_psql('postgres', $truth), '0', 'the count view equals its GROUP BY');
$node->safe_psql('postgres', q{SELECT repo_stream.drop_view('adm.waiting')});

# ---- an open transaction that called refresh_view does not hold the ring back
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.views_refresh_interval = 0;
	SELECT pg_reload_conf();
	SET ROLE adm;
	SELECT repo_stream.create_count_view('adm.likers', 'app.bsky.feed.like', '$did');
});
put_like('at://post/open');
$blocker->query_safe(q{BEGIN; SET LOCAL ROLE adm; SELECT repo_stream.refresh_view('adm.likers')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	WHERE l.pid = } . $blocker->query_safe('SELECT pg_backend_pid()') . q{ AND c.relname LIKE 'event_log%'}),
	'0', 'after refresh_view returns, its transaction holds no lock on the event log');
$ring_before = $node->safe_psql('postgres', $ring_sql);
$node->safe_psql('postgres', q{
	DO $$
	BEGIN
		FOR i IN 1 .. 300 LOOP
			PERFORM repo_stream.put_record('did:plc:s2', 'app.bsky.feed.like', 'o' || i,
				jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/o' || (i % 7))));
			COMMIT;
		END LOOP;
	END $$});
$ring_after = $node->safe_psql('postgres', $ring_sql);
($pruned_before) = $ring_before =~ / (\d+)$/;
($pruned_after) = $ring_after =~ / (\d+)$/;
cmp_ok($pruned_after, '>', $pruned_before,
	"the ring rotated while the refreshing transaction stayed open ($ring_before -> $ring_after)");
$blocker->query_safe('COMMIT');
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.views_refresh_interval = '200ms';
	ALTER SYSTEM SET repo_stream.view_handler_timeout = '1s';
	SELECT pg_reload_conf();
});
$blocker->quit;

# ---- a handler that catches every cancel: the worker ends itself, the
# next one says why and leaves the view alone while the others go on
$node->safe_psql('postgres', q{
	SET ROLE adm2;
	CREATE FUNCTION adm2.stubborn(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE plpgsql AS $$
	BEGIN
		IF public.in_worker() THEN
			LOOP
				BEGIN
					PERFORM pg_catalog.pg_sleep(100);
				EXCEPTION WHEN query_canceled THEN
					NULL;
				END;
			END LOOP;
		END IF;
	END $$;
	SELECT repo_stream.create_handler_view('adm2.stubborn', 'adm2.stubborn(bigint,text,text,text,jsonb)');
});
sleep 1;
put_like('at://post/stubborn');
$err = '';
for (1 .. 400)
{
	$err = $node->safe_psql('postgres', q{SELECT coalesce(last_error, '') FROM repo_stream.view_status WHERE name = 'adm2.stubborn'});
	last if $err ne '';
	usleep(100_000);
}
like($err, qr/caught every cancel: the views worker ended itself to stop it; retried in 60 s/,
	'the next worker recorded why the last one ended, and when it retries');
my $wpid2 = $node->safe_psql('postgres', $worker_sql);
isnt($wpid2, $wpid, 'a new worker runs');
$seq = put_like('at://post/after-stubborn');
ok(caught_up('public.like_counts', $seq), 'and refreshes the other views');
is($node->safe_psql('postgres', $worker_sql), $wpid2, 'without ending again (the stubborn view waits its penalty)');
is($node->safe_psql('postgres', $truth), '0', 'the count view equals its GROUP BY');
is($node->safe_psql('postgres', q{SELECT count(*) FROM public.ran}), '0', 'no planted function ever ran');
is($node->safe_psql('postgres', q{SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname IN ('adm', 'adm2') AND rolsuper}),
	'', 'neither admin is superuser');

# ---- a database on 0.1.0, then upgraded: its handler views get their
# handler recorded where only their creator (or a superuser) could have
# changed it, and the others are refused until created again
$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('old', q{
	CREATE EXTENSION repo_stream VERSION '0.1.0';
	SELECT repo_stream.create_repo('did:plc:o1');
	SELECT repo_stream.put_record('did:plc:o1', 'app.bsky.feed.like', 'a', '{"subject": {"uri": "at://o/1"}}');
	CREATE SCHEMA adm AUTHORIZATION adm;
	CREATE SCHEMA adm2 AUTHORIZATION adm2;
	GRANT USAGE ON SCHEMA adm, adm2 TO PUBLIC;
	CREATE TABLE public.seen (who text, path text);
	GRANT INSERT ON public.seen TO PUBLIC;
	SET ROLE adm;
	CREATE FUNCTION adm.own(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO public.seen VALUES (current_user, path) $$;
	SET ROLE adm2;
	CREATE FUNCTION adm2.other(seq bigint, did text, action text, path text, record jsonb) RETURNS void
	LANGUAGE sql AS $$ INSERT INTO public.seen VALUES (current_user, path) $$;
	RESET ROLE;
	SELECT repo_stream.create_count_view('old_likes', 'app.bsky.feed.like', 'subject.uri');
});
is($node->safe_psql('old', q{SELECT extversion FROM pg_extension WHERE extname = 'repo_stream'}), '0.1.0',
	'a database on 0.1.0 with the new library');
$node->safe_psql('old', q{SELECT repo_stream.put_record('did:plc:o1', 'app.bsky.feed.like', 'b', '{"subject": {"uri": "at://o/1"}}')});
is($node->safe_psql('old', q{SELECT repo_stream.refresh_view('old_likes'); SELECT count FROM old_likes}), "1
2",
	'its count views work');
my ($rc, $out, $stderr) = $node->psql('old',
	q{SET ROLE adm; SELECT repo_stream.create_handler_view('adm.v', 'adm.own(bigint,text,text,text,jsonb)')});
like($stderr, qr/the catalog of repo_stream 0\.1\.0 cannot record its handler.*\n.*ALTER EXTENSION repo_stream UPDATE/s,
	'a handler view cannot be created before the update');
# the catalog rows 0.1.0's create_handler_view made
$node->safe_psql('old', q{
	INSERT INTO repo_stream.views (name, kind, handler, owner, cursor) VALUES
		('adm.own_view', 'handler', 'adm.own(bigint,text,text,text,jsonb)'::regprocedure, 'adm'::regrole, 0),
		('adm.other_view', 'handler', 'adm2.other(bigint,text,text,text,jsonb)'::regprocedure, 'adm'::regrole, 0);
});
($rc, $out, $stderr) = $node->psql('old', q{SET ROLE adm; SELECT repo_stream.refresh_view('adm.own_view')});
like($stderr, qr/has no record of the owner and definition of its handler/, 'before the update no handler runs');
$node->safe_psql('old', 'ALTER EXTENSION repo_stream UPDATE');
is($node->safe_psql('old', q{SELECT string_agg(name || ':' || coalesce((handler_digest = repo_stream._view_handler_digest(handler))::text, '')
	|| ':' || coalesce(handler_owner::regrole::text, '-'), ' ' ORDER BY name) FROM repo_stream.views WHERE kind = 'handler'}),
	'adm.other_view::- adm.own_view:true:adm', 'the update recorded the handler its creator owns, not the other');
is($node->safe_psql('old', q{SET ROLE adm; SELECT repo_stream.refresh_view('adm.own_view'); RESET ROLE;
	SELECT string_agg(who || ' ' || path, ', ' ORDER BY path) FROM public.seen}),
	"3\nadm app.bsky.feed.like/a, adm app.bsky.feed.like/b", 'the recorded one runs (on each event since its cursor 0)');
($rc, $out, $stderr) = $node->psql('old', q{SET ROLE adm; SELECT repo_stream.refresh_view('adm.other_view')});
like($stderr, qr/ERROR:  view "adm\.other_view" has no record of the owner and definition of its handler adm2\.other/,
	'the one over another role\'s handler is refused');
$node->safe_psql('old', q{SET ROLE adm; SELECT repo_stream.drop_view('adm.other_view'); RESET ROLE; TRUNCATE public.seen;
	SET ROLE adm; SELECT repo_stream.create_handler_view('adm.other_view', 'adm2.other(bigint,text,text,text,jsonb)')});
is($node->safe_psql('old', q{SELECT count(*) FROM public.seen WHERE who = 'adm'}), '2', 'created again, it runs');

$node->stop;
done_testing();
