# A stalled or hostile session never blocks writers: the sequencing lock
# is a lock tag no SQL function can name and is released with the
# transaction however it ends; no documented role can take a table lock
# that stalls writers (LOCK TABLE on every relation of the extension, in
# every mode, by every role, with and without the library loaded);
# pre-commit never waits on another transaction's row or table lock;
# prune_events() cannot be left holding segments in an open transaction.
# Each part checks that a writer and a reader still finish within a second.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = rs_node('lock_safety');
$node->append_conf('postgresql.conf', "max_connections = 30\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:lock' || i) FROM generate_series(0, 3) i;
	CREATE ROLE nogrant LOGIN;
	CREATE ROLE lk_writer LOGIN IN ROLE repo_stream_writer;
	CREATE ROLE lk_reader LOGIN IN ROLE repo_stream_reader;
	CREATE ROLE lk_admin LOGIN IN ROLE repo_stream_admin;
	CREATE ROLE lk_deleter LOGIN IN ROLE repo_stream_deleter;
	-- LOCK TABLE on every relation of the extension in every mode, as the
	-- caller; returns the ones granted (and keeps them: the caller's
	-- transaction holds them).  NOWAIT: a lock that would wait is an ERROR.
	CREATE FUNCTION public.try_locks() RETURNS SETOF text LANGUAGE plpgsql AS $$
	DECLARE
		rel text;
		m text;
	BEGIN
		FOR rel IN SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		           WHERE n.nspname = 'repo_stream' AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')
		           ORDER BY 1 LOOP
			FOREACH m IN ARRAY ARRAY['ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE',
			                         'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'] LOOP
				BEGIN
					EXECUTE format('LOCK TABLE %s IN %s MODE NOWAIT', rel, m);
					RETURN NEXT rel || ':' || replace(m, ' ', '_');
				EXCEPTION WHEN insufficient_privilege OR wrong_object_type THEN
					NULL;
				END;
			END LOOP;
		END LOOP;
	END $$;
	-- a view a DBA made over records, granting UPDATE on it to writers
	CREATE VIEW public.records_v AS SELECT * FROM repo_stream.records;
	GRANT SELECT, UPDATE ON public.records_v TO repo_stream_writer;
});
# a log big enough that reads take a while (so cancels land mid-read)
$node->safe_psql('postgres', q{
	DO $$
	BEGIN
		FOR k IN 1 .. 3000 LOOP
			PERFORM repo_stream.put_record('did:plc:lock' || (k % 4), 'app.bsky.feed.post', 'seed' || k,
			                               jsonb_build_object('text', repeat('x', 200)));
			COMMIT;
		END LOOP;
	END $$});
my $n = 0;

# A write and a read each finish within 1 s.  statement_timeout does not
# bound COMMIT (PostgreSQL disables it first), so time them from here.
sub writer_and_reader_ok
{
	my ($what) = @_;
	$n++;
	my $t0 = time;
	my ($rc, $out, $err) = $node->psql('postgres', qq{
		SELECT repo_stream.put_record('did:plc:lock0', 'app.bsky.feed.post', 'w$n', '{"n": $n}') IS NOT NULL},
		timeout => 20);
	my $wt = time - $t0;
	ok($rc == 0 && $wt < 1, sprintf('%s: a writer commits in %.3f s', $what, $wt)) or diag("rc=$rc $err");
	$t0 = time;
	($rc, $out, $err) = $node->psql('postgres',
		'SELECT count(*) > 0 FROM repo_stream.events_since(0, 100000)', timeout => 20);
	my $rt = time - $t0;
	ok($rc == 0 && $rt < 1, sprintf('%s: a reader reads in %.3f s', $what, $rt)) or diag("rc=$rc $err");
}

writer_and_reader_ok('at rest');

# ---- 1. Readers cancelled and timed out mid-read, hundreds of times,
# while writers keep commits in flight (so the reader often holds or waits
# for the lock when the cancel lands).
my $script = $node->basedir . '/w.sql';
open my $fh, '>', $script or die;
print $fh q{
\set r random(1, 3)
SELECT repo_stream.put_record('did:plc:lock' || :r, 'app.bsky.feed.post', 'b' || :client_id || '-' || repo_stream.tid_now(), '{"t": 1}');
};
close $fh;
my ($bout, $berr) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '3', '-j', '3', '-T', '30', '-f', $script, '-d', $node->connstr('postgres') ],
	'>', \$bout, '2>', \$berr);
my $reader = $node->background_psql('postgres', on_error_stop => 0);
my $reader_pid = $reader->query_safe('SELECT pg_backend_pid()');
my $killer = $node->background_psql('postgres', on_error_stop => 0);
my ($cancelled, $timed_out) = (0, 0);
for my $i (1 .. 300)
{
	if ($i % 2)
	{
		my $ms = 1 + int(rand(15));
		$reader->query("SET statement_timeout = '${ms}ms'; SELECT count(*) FROM repo_stream.events_since(0, 100000); RESET statement_timeout");
	}
	else
	{
		# cancel from another session at a random moment of the read
		$reader->{stdin} .= "SELECT count(*) FROM repo_stream.events_since(0, 100000);\n\\echo done$i\n";
		$reader->{run}->pump_nb;
		usleep(int(rand(15000)));
		$killer->query_safe("SELECT pg_cancel_backend($reader_pid)");
		$reader->{run}->pump until $reader->{stdout} =~ /done$i/;
	}
	$cancelled++ if $reader->{stderr} =~ /canceling statement due to user request/;
	$timed_out++ if $reader->{stderr} =~ /canceling statement due to statement timeout/;
	$reader->{stdout} = '';
	$reader->{stderr} = '';
}
note("readers: $cancelled cancelled by request, $timed_out by statement_timeout, of 300");
ok($cancelled + $timed_out > 200, 'most reads were interrupted mid-way') or diag("$cancelled + $timed_out");
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM pg_locks WHERE pid = $reader_pid AND locktype = 'advisory'}), '0',
	'the interrupted reader holds no lock afterwards');
writer_and_reader_ok('after 300 interrupted reads');
$bench->kill_kill;
$reader->quit;
$killer->quit;

# ---- 2. A role with no grants takes every lock it can name, and keeps
# its transaction open.
my $hostile = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'nogrant' ]);
is($hostile->query_safe('SELECT current_user'), 'nogrant', 'a session of the role with no grants');
$hostile->query_safe('BEGIN');
# the key the sequencing lock had as an advisory lock, both halves as an
# int4 pair, and every key near them, in every mode SQL offers
$hostile->query_safe(q{
	SELECT pg_advisory_lock(5932189945426935809);
	SELECT pg_advisory_xact_lock(5932189945426935809 + k) FROM generate_series(1, 100) k;
	SELECT pg_advisory_lock_shared(5932189945426935809 - k) FROM generate_series(1, 100) k;
	SELECT pg_advisory_lock(1381195589, 1397048577);
	SELECT pg_advisory_lock_shared(1397048577, 1381195589);
	SELECT pg_advisory_xact_lock(k::int, k::int) FROM generate_series(1, 50) k;
	SELECT pg_advisory_lock(21075::int, 21075::int);});
# every relation of the extension: LOCK TABLE and row locks, each refused
my @rels = split /\n/, $node->safe_psql('postgres', q{
	SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'repo_stream' AND c.relkind IN ('r', 'p', 'S', 'v') ORDER BY 1});
my $denied = 0;
for my $rel (@rels)
{
	for my $sql ("LOCK TABLE $rel IN ACCESS SHARE MODE", "LOCK TABLE $rel IN ACCESS EXCLUSIVE MODE",
		"SELECT 1 FROM $rel FOR UPDATE", "SELECT 1 FROM $rel FOR KEY SHARE")
	{
		$hostile->{stderr} = '';
		$hostile->query("SAVEPOINT s; $sql; RELEASE s");
		$denied++ if $hostile->{stderr} =~ /permission denied|cannot lock|not supported for sequences/;
		$hostile->query('ROLLBACK TO SAVEPOINT s; RELEASE s') if $hostile->{stderr} =~ /ERROR/;
	}
}
is($denied, 4 * scalar(@rels), 'every LOCK TABLE and row lock on the extension\'s ' . scalar(@rels) . ' relations is refused');
ok($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	WHERE a.usename = 'nogrant' AND l.locktype = 'advisory'}) > 250,
	'the role holds its advisory locks, in an open transaction');
writer_and_reader_ok('while a role with no grants holds every lock it can name');
$hostile->quit;

# ---- 2b. LOCK TABLE by every documented role.  PostgreSQL lets a role
# with table-level UPDATE, DELETE or TRUNCATE take any mode, so the default
# grants give none of them (UPDATE by column, INSERT at most ROW
# EXCLUSIVE), and the library's hook refuses modes above ROW EXCLUSIVE to
# everyone but the owner and superusers wherever it is loaded.  The one
# documented role that can stall writers without the hook is the opt-in
# repo_stream_deleter.
my $all_rels = $node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = 'repo_stream' AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')});
my @strong = ('SHARE_UPDATE_EXCLUSIVE', 'SHARE', 'SHARE_ROW_EXCLUSIVE', 'EXCLUSIVE', 'ACCESS_EXCLUSIVE');
my %granted = (
	lk_writer => 'repo_stream.records:ACCESS_SHARE repo_stream.records:ROW_EXCLUSIVE',
	lk_reader => 'repo_stream.log_status:ACCESS_SHARE repo_stream.records:ACCESS_SHARE repo_stream.view_status:ACCESS_SHARE',
	lk_admin => 'repo_stream.log_status:ACCESS_SHARE repo_stream.records:ACCESS_SHARE repo_stream.records:ROW_EXCLUSIVE'
	  . ' repo_stream.relay_status:ACCESS_SHARE repo_stream.view_status:ACCESS_SHARE',
	lk_deleter => 'repo_stream.records:ACCESS_SHARE repo_stream.records:ROW_SHARE repo_stream.records:ROW_EXCLUSIVE',
	nogrant => '');
my $deleter_unguarded = join(' ', $granted{lk_deleter}, map { "repo_stream.records:$_" } @strong);

# $how: 'not loaded' (a fresh session), 'loaded by use' (the session called
# an extension function first), 'preloaded' (shared_preload_libraries)
sub lock_matrix
{
	my ($how) = @_;
	for my $role (sort keys %granted)
	{
		my $s = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', $role ]);
		$s->query_safe('SELECT repo_stream.tid_now()') if $how eq 'loaded by use';
		$s->query_safe('BEGIN');
		my $got = $s->query_safe(q{SELECT coalesce(string_agg(l, ' ' ORDER BY l), '') FROM public.try_locks() l});
		my $loaded = $s->query_safe(q{SELECT current_setting('repo_stream.retention_events', true) IS NOT NULL});
		is($loaded, $how eq 'not loaded' ? 'f' : 't', "$how: the library is " . ($how eq 'not loaded' ? 'not ' : '')
			  . "loaded in $role\'s session");
		my $want = join ' ', sort split / /,
		  ($role eq 'lk_deleter' && $how eq 'not loaded') ? $deleter_unguarded : $granted{$role};
		is($got, $want, "$how: of $all_rels relations x 8 modes, $role may lock only: " . ($want || 'none'));
		if ($got =~ /ACCESS_EXCLUSIVE/)
		{
			# the documented exception: without the hook, the opt-in role stalls writers
			my ($rc, $out, $err) = $node->psql('postgres', q{SET statement_timeout = '1s';
				SELECT repo_stream.put_record('did:plc:lock0', 'app.bsky.feed.post', 'stalled', '{}')});
			like($err, qr/canceling statement due to statement timeout/,
				"$how: $role\'s ACCESS EXCLUSIVE lock on records stalls writers (documented: no hook, DELETE granted)");
		}
		else
		{
			writer_and_reader_ok("$how: while $role holds every lock it was granted");
		}
		$s->query_safe('ROLLBACK');
		$s->quit;
	}
}

lock_matrix('not loaded');
lock_matrix('loaded by use');

# The probe's reproduction, as a client would send it: refused outright.
{
	my ($rc, $out, $err) = $node->psql('postgres',
		'BEGIN; LOCK TABLE repo_stream.records IN ACCESS EXCLUSIVE MODE; COMMIT', extra_params => [ '-U', 'lk_writer' ]);
	like($err, qr/permission denied for table records/, 'a writer\'s LOCK TABLE records IN ACCESS EXCLUSIVE MODE is refused');
	# through a view a DBA made and granted UPDATE on: PostgreSQL checks
	# the tables under it with the view owner's rights; the hook refuses it
	($rc, $out, $err) = $node->psql('postgres', q{SELECT repo_stream.tid_now();
		BEGIN; LOCK TABLE public.records_v IN SHARE MODE; COMMIT}, extra_params => [ '-U', 'lk_writer' ]);
	like($err, qr/ERROR:  LOCK TABLE public.records_v IN SHARE MODE is not allowed\nDETAIL:  It would lock repo_stream.records./,
		'through a view over records: refused, naming the table it would lock');
	($rc, $out, $err) = $node->psql('postgres', q{
		BEGIN; LOCK TABLE repo_stream.event_log IN EXCLUSIVE MODE; COMMIT}, extra_params => [ '-U', 'lk_deleter' ]);
	like($err, qr/ERROR:  permission denied for table event_log/,
		'the event log: no role has a grant that allows it');
	# the owner (a superuser here) still may, with the hook loaded
	($rc, $out, $err) = $node->psql('postgres', q{SELECT repo_stream.tid_now();
		BEGIN; LOCK TABLE repo_stream.records, repo_stream.event_log IN ACCESS EXCLUSIVE MODE; COMMIT});
	is($rc, 0, 'the owner (a superuser) may lock with the hook loaded') or diag($err);
}

# ---- 3. prune_events() cannot be left open in a transaction.  From here
# a segment is due every 10 events.
$node->safe_psql('postgres', "LOAD 'repo_stream'; ALTER SYSTEM SET repo_stream.retention_events = 70");
$node->reload;
my $admin = $node->background_psql('postgres', on_error_stop => 0);
$admin->query('BEGIN; SELECT repo_stream.prune_events()');
like($admin->{stderr}, qr/ERROR:  repo_stream.prune_events\(\) cannot run inside a transaction block/,
	'prune_events() inside a transaction block is refused');
$admin->query('ROLLBACK');
$admin->{stderr} = '';
is($node->safe_psql('postgres', 'SELECT repo_stream.prune_events() >= 0'), 't', 'outside one it runs');
writer_and_reader_ok('after a refused prune_events() in a transaction block');

# The write path rotates the ring when a segment is due (every 10 events
# here): an uncommitted change to the log state (a superuser's open
# transaction) makes it skip the rotation and rotate later, never wait.
$admin->query_safe('BEGIN; UPDATE repo_stream.log_state SET pruned_through = pruned_through');
for my $i (1 .. 3)
{
	$node->safe_psql('postgres', qq{
		SELECT count(repo_stream.put_record('did:plc:lock1', 'app.bsky.feed.post', 'r$i-' || k, '{}'))
		FROM generate_series(1, 12) k});
}
writer_and_reader_ok('while the log state has an uncommitted change');
$admin->query_safe('ROLLBACK');
# a segment some session keeps open (a long reader's lock) is not waited for
$admin->query_safe('BEGIN; LOCK TABLE repo_stream.event_log_0, repo_stream.event_log_1, repo_stream.event_log_2,'
	  . ' repo_stream.event_log_3, repo_stream.event_log_4, repo_stream.event_log_5, repo_stream.event_log_6,'
	  . ' repo_stream.event_log_7 IN ACCESS SHARE MODE');
my $segment = $node->safe_psql('postgres', 'SELECT current_segment FROM repo_stream.log_state');
$node->safe_psql('postgres', q{
	DO $$
	BEGIN
		FOR k IN 1 .. 30 LOOP
			PERFORM repo_stream.put_record('did:plc:lock2', 'app.bsky.feed.post', 's' || k, '{}');
			COMMIT;
		END LOOP;
	END $$});
writer_and_reader_ok('while every segment is in use');
is($node->safe_psql('postgres', 'SELECT current_segment FROM repo_stream.log_state'), $segment,
	'the due rotation was skipped, not waited for');
is($node->safe_psql('postgres', 'SELECT repo_stream.prune_events() >= 0'), 't',
	'prune_events() skips segments in use instead of waiting');
$admin->query_safe('ROLLBACK');
$node->safe_psql('postgres', 'SELECT repo_stream.prune_events()');
is($node->safe_psql('postgres', 'SELECT current_segment FROM repo_stream.log_state'), ($segment + 1) % 8,
	'once released, the ring rotates');
$admin->quit;

# ---- 4. A seq that goes backwards is refused, with nothing written.
my $high = $node->safe_psql('postgres', q{SELECT max(seq) FROM repo_stream.event_log});
$node->safe_psql('postgres', "BEGIN; SELECT setval('repo_stream.event_seq', 1); ROLLBACK");
my $records = $node->safe_psql('postgres', 'SELECT count(*) FROM repo_stream.records');
my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT repo_stream.put_record('did:plc:lock3', 'app.bsky.feed.post', 'back', '{}')});
like($err, qr/ERROR:  event seq 2 is not above the highest seq in the log, \d+/, 'a write that would reuse seqs fails');
like($err, qr/HINT:  A superuser moves it forward with SELECT setval\('repo_stream.event_seq', \d+\)/,
	'... saying how to repair the sequence');
is($node->safe_psql('postgres', 'SELECT count(*) FROM repo_stream.records'), $records, 'no record was written');
is($node->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log'), $high, 'no event was appended');
($rc, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM repo_stream.events_since(0)');
like($err, qr/ERROR:  the event sequence is behind the log: it stands at 2, the log holds seq $high/,
	'a reader is told too, instead of silently reading a truncated window');
my ($fix) = $err =~ /setval\('repo_stream.event_seq', (\d+)\)/;
$node->safe_psql('postgres', "SELECT setval('repo_stream.event_seq', $fix)");
is($node->safe_psql('postgres', q{
	SELECT repo_stream.put_record('did:plc:lock3', 'app.bsky.feed.post', 'back', '{}') IS NOT NULL}), 't',
	'after the hinted repair, writes go on');
is($node->safe_psql('postgres', qq{SELECT min(seq) > $high FROM repo_stream.events_since($high, 100)}), 't',
	'with seqs above every earlier one');

# ---- 5. A prune that lands between a reader's snapshot and its segment
# locks.  TRUNCATE is not hidden by snapshots, so the reader must take
# pruned_through after it holds the segments, or it returns a gap without
# an OutdatedCursor.  A superuser session plays the pruner: it holds the
# oldest segment while the reader takes its snapshot and waits for it.
my ($oldest, $through) = split /\|/, $node->safe_psql('postgres', q{
	SELECT segment, max(seq) FROM repo_stream.event_log GROUP BY segment ORDER BY min(seq) LIMIT 1});
my $pruner = $node->background_psql('postgres');
$pruner->query_safe("BEGIN; LOCK repo_stream.event_log_$oldest IN ACCESS EXCLUSIVE MODE");
$reader = $node->background_psql('postgres');
$reader->query_until(qr/started/, q{
	\echo started
	SELECT count(*) FILTER (WHERE kind = 'info') || '/' || min(seq) FILTER (WHERE kind <> 'info') AS got
	  FROM repo_stream.events_since(0, 1000000);
});
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND relation = 'repo_stream.event_log_$oldest'::regclass}),
	'the reader waits for the segment after taking its snapshot');
$pruner->query_safe("TRUNCATE repo_stream.event_log_$oldest");
$pruner->query_safe("UPDATE repo_stream.log_state SET pruned_through = $through");
$pruner->query_safe('COMMIT');
my $got = $reader->query_safe('SELECT 1');
like($got, qr/^1\/@{[$through + 1]}$/m,
	'it reports OutdatedCursor and starts right after the pruned seqs, instead of a silent gap');
$reader->quit;
$pruner->quit;

# ---- 6. The same matrix with the library in shared_preload_libraries.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'repo_stream'\n");
$node->restart;
lock_matrix('preloaded');

$node->stop;
done_testing();
