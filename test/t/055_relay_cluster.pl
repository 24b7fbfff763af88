# Scale-out on one machine: two shards, a router and a relay, four clusters.
#
# Writers go through the router (PL/Proxy) to both shards for
# RS_RELAY_SECONDS (20) seconds while one shard is killed with SIGKILL and
# restarted, the relay is crashed (immediate stop) and restarted, a repo
# moves from one shard to the other, and a shard sends forged commits.  A
# consumer polls the relay's events_since all along.  Then:
#  - every acknowledged write is in the shards' records (nothing lost);
#  - every #commit in the shards' logs (but the forged ones) is in the
#    relay's log exactly once, and nothing else is: re-sequenced, verified;
#  - the consumer saw every relay event, in increasing seq, none skipped;
#  - the relay's records are the union of the shards'; the moved repo is
#    hosted by its new shard, with its records;
#  - a count view on the relay equals the GROUP BY over both shards;
#  - the forged commits were never relayed: the one signed by another key
#    desynchronized the repo, which was synced again; the replayed one was
#    dropped as a replay; a commit from the wrong shard dropped;
#  - a write through the router to a repo that a move holds (at its
#    deactivation, waiting for a write on the shard) is RepoMoving.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep time);

my $seconds = $ENV{RS_RELAY_SECONDS} // 20;

sub node
{
	my ($name) = @_;
	my $n = rs_node($name, allows_streaming => 'logical');
	$n->append_conf('postgresql.conf', qq{
output_plugin_libraries = 'pgoutput, test_decoding, repo_stream'
max_connections = 60
max_worker_processes = 16
max_logical_replication_workers = 6
wal_retrieve_retry_interval = 500ms
});
	$n->start;
	return $n;
}

# a connection string as an SQL literal
sub conn_lit
{
	my ($node) = @_;
	(my $c = $node->connstr('postgres')) =~ s/'/''/g;
	return "'$c'";
}

my ($s1, $s2, $router, $relay) = map { node($_) } qw(shard1 shard2 router relay);
my %shard = (s1 => $s1, s2 => $s2);
for my $s ($s1, $s2)
{
	$s->safe_psql('postgres', 'CREATE EXTENSION repo_stream; SELECT repo_stream.create_master_key();');
}
$router->safe_psql('postgres', qq{
	CREATE EXTENSION repo_stream_router CASCADE;
	SELECT repo_stream.router_add_shard('s1', @{[ conn_lit($s1) ]});
	SELECT repo_stream.router_add_shard('s2', @{[ conn_lit($s2) ]});
});
$relay->safe_psql('postgres', 'CREATE EXTENSION repo_stream; CREATE EXTENSION dblink;');

# the router adds only shards that answer, hold repo_stream, and are not
# already shards under another name; it removes only empty ones
sub sqlstate_of
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : "no error ($ret): $err";
}
is(sqlstate_of($router, q{SELECT repo_stream.router_add_shard('bad', 'this is not a conninfo')}), '08001',
	'router_add_shard: a conninfo that does not connect is 08001');
is(sqlstate_of($router, "SELECT repo_stream.router_add_shard('again', @{[ conn_lit($s1) ]})"), '42710',
	'router_add_shard: a second name for a shard\'s database is 42710');
is(sqlstate_of($router, "SELECT repo_stream.router_add_shard('plain', @{[ conn_lit($router) ]})"), '55000',
	'router_add_shard: a database without repo_stream is 55000');
$s1->safe_psql('postgres', 'CREATE DATABASE spare');
$s1->safe_psql('spare', 'CREATE EXTENSION repo_stream');
(my $spare = conn_lit($s1)) =~ s/dbname=(?:'')?postgres(?:'')?/dbname=spare/;
$router->safe_psql('postgres', "SELECT repo_stream.router_add_shard('spare', $spare)");
is(sqlstate_of($router, q{SELECT repo_stream.router_remove_shard('nosuch')}), '42704',
	'router_remove_shard: an unknown shard is 42704');
$router->safe_psql('postgres', q{SELECT repo_stream.router_remove_shard('spare')});
is($router->safe_psql('postgres', q{SELECT string_agg(name || '=' || partition, ',' ORDER BY name) FROM repo_stream.shards}),
	's1=0,s2=1', 'router_remove_shard takes an empty shard out');

# ------------------------------------------------ repos before the relay

# twelve repos through the router, spread over both shards, with records:
# the relay takes them from exports and the retained window
$router->safe_psql('postgres', q{
	SELECT repo_stream.create_repo('did:plc:w' || i) FROM generate_series(0, 11) i;
	SELECT repo_stream.put_record('did:plc:w' || i, 'app.bsky.feed.like', 'pre' || j,
		jsonb_build_object('subject', jsonb_build_object('uri', 'at://did:plc:t/app.bsky.feed.post/p' || (j % 7)),
						   'createdAt', '2026-11-30T00:00:00.000Z'))
	  FROM generate_series(0, 11) i, generate_series(1, 5) j;
	SELECT repo_stream.delete_record('did:plc:w' || i, 'app.bsky.feed.like', 'pre1') FROM generate_series(0, 11) i;
});
is($router->safe_psql('postgres', q{SELECT string_agg(n::text, ',' ORDER BY shard) FROM
	(SELECT shard, count(*) n FROM repo_stream.directory GROUP BY shard) x}), '6,6',
	'create_repo through the router spreads the repos over both shards');
is($s1->safe_psql('postgres', 'SELECT count(*) FROM repo_stream.records')
	+ $s2->safe_psql('postgres', 'SELECT count(*) FROM repo_stream.records'), 48,
	'and the records land on the shard of their repo');

$relay->safe_psql('postgres', qq{
	SELECT repo_stream.relay_add_shard('s1', @{[ conn_lit($s1) ]});
	SELECT repo_stream.relay_add_shard('s2', @{[ conn_lit($s2) ]});
	SELECT pg_create_logical_replication_slot('merged', 'repo_stream');
	SELECT repo_stream.create_count_view('public.like_counts', 'app.bsky.feed.like', 'subject.uri');
});
my $slot_from = $relay->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
is(sqlstate_of($router, q{SELECT repo_stream.router_remove_shard('s1')}), '55000',
	'router_remove_shard: a shard that hosts repos is 55000');
# the same shard database under a second name would relay its history twice
is(sqlstate_of($relay, "SELECT repo_stream.relay_add_shard('again', @{[ conn_lit($s1) ]})"), '42710',
	'relay_add_shard: a second name for a shard\'s database is 42710');
is(sqlstate_of($relay, "SELECT repo_stream.relay_add_shard('me', @{[ conn_lit($relay) ]})"), '22023',
	'relay_add_shard: the relay\'s own database is 22023');
is($s1->safe_psql('postgres', q{SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots}),
	'rs_relay_s1_' . $relay->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
	'and no slot was left on the shard: its one slot is the relay\'s for s1');
is($relay->safe_psql('postgres', q{SELECT string_agg(shard || ':' || repos, ',' ORDER BY shard) FROM repo_stream.relay_status}),
	's1:6,s2:6', 'relay_add_shard backfilled both shards: each hosts six repos');

# ------------------------------------------------------------ the run

$router->safe_psql('postgres', q{
	CREATE TABLE attempts (w int, did text, rkey text, n int);
	CREATE TABLE acked (w int, did text, rkey text, n int, cid text);
	CREATE TABLE write_errors (w int, state text, message text);
	-- repos the writers leave alone for a moment (while commits are forged)
	CREATE TABLE paused (did text);
	-- one write per iteration, its attempt and its acknowledgement committed
	-- around it; errors (a shard down, a repo moving) are logged and retried
	CREATE PROCEDURE writer(w int, seconds int) LANGUAGE plpgsql AS $$
	DECLARE
		n int := 0;
		d text;
		k text;
		c text;
		t_end timestamptz := clock_timestamp() + make_interval(secs => seconds);
	BEGIN
		WHILE clock_timestamp() < t_end LOOP
			n := n + 1;
			d := 'did:plc:w' || ((n * 5 + w) % 12);
			CONTINUE WHEN EXISTS (SELECT FROM paused WHERE did = d);
			k := 'w' || w || 'k' || (n % 40);
			INSERT INTO attempts VALUES (w, d, k, n);
			COMMIT;
			BEGIN
				c := repo_stream.put_record(d, 'app.bsky.feed.like', k,
					jsonb_build_object('subject', jsonb_build_object('uri', 'at://did:plc:t/app.bsky.feed.post/p' || (n % 7)),
									   'n', n, 'createdAt', '2026-11-30T00:00:00.000Z'));
				INSERT INTO acked VALUES (w, d, k, n, c);
			EXCEPTION WHEN OTHERS THEN
				INSERT INTO write_errors VALUES (w, SQLSTATE, SQLERRM);
				PERFORM pg_sleep(0.05);
			END;
			COMMIT;
		END LOOP;
	END $$;
});

my @writers;
for my $w (0 .. 3)
{
	my ($out, $err) = ('', '');
	push @writers, [ IPC::Run::start([ 'psql', '-X', '-q', '-d', $router->connstr('postgres'),
		'-c', "CALL writer($w, $seconds)" ], '>', \$out, '2>', \$err), \$err ];
}

# the consumer: events_since from its cursor, every 200 ms; the relay may be down
my @consumed;
my $cursor = 0;
my $consumer_ok = 1;
sub poll
{
	my ($rc, $out, $err) = $relay->psql('postgres',
		"SELECT seq, md5(frame) FROM repo_stream.events_since($cursor, 100000)");
	return if $rc != 0;
	for my $line (split /\n/, $out)
	{
		my ($seq) = split /\|/, $line;
		$consumer_ok = 0 unless $seq > $cursor;
		push @consumed, $line;
		$cursor = $seq;
	}
}

my $moved = 'did:plc:w3';
my $from = $router->safe_psql('postgres', "SELECT shard FROM repo_stream.directory WHERE did = '$moved'");
my $to = $from eq 's1' ? 's2' : 's1';
my $victim = $router->safe_psql('postgres',
	"SELECT min(did) FROM repo_stream.directory WHERE shard = 's2' AND did <> '$moved'");
my %forged;		# shard => [seq ...]
my %done;
my $t0 = time;
my $killed_at;
while (time - $t0 < $seconds + 1)
{
	my $t = time - $t0;
	if ($t > 4 && !$done{kill})
	{
		$s1->kill9;
		$killed_at = time;
		$done{kill} = 1;
	}
	if ($done{kill} && !$done{restart} && time - $killed_at > 2.5)
	{
		$s1->start;
		$done{restart} = 1;
	}
	if ($t > 9 && !$done{relay})
	{
		$relay->stop('immediate');
		$relay->start;
		$done{relay} = 1;
	}
	if ($t > 12 && $done{restart} && !$done{move})
	{
		$router->safe_psql('postgres', "CALL repo_stream.move_repo('$moved', '$to')");
		$done{move} = 1;
	}
	if ($t > 15 && !$done{forge})
	{
		# a commit of the victim's DID signed by another key (made in another
		# database), and an old commit of the victim replayed under a new seq.
		# The raw INSERTs draw their seqs outside the shard's sequencing, so
		# a genuine commit of the victim could take a higher seq and reach
		# the relay first, which would then take them for duplicates; the
		# writers leave the victim alone meanwhile.
		$router->safe_psql('postgres', "INSERT INTO paused VALUES ('$victim')");
		usleep(500_000);
		$s2->safe_psql('postgres', 'CREATE DATABASE forge');
		my $hex = $s2->safe_psql('forge', qq{
			CREATE EXTENSION repo_stream;
			SELECT repo_stream.create_repo('$victim');
			SELECT repo_stream.put_record('$victim', 'app.bsky.feed.like', 'forged',
				'{"subject": {"uri": "at://did:plc:t/app.bsky.feed.post/forged"}}');
			SELECT encode(frame, 'hex') FROM repo_stream.event_log WHERE kind = 'commit' ORDER BY seq DESC LIMIT 1;
		});
		$hex = (split /\n/, $hex)[-1];
		my $insert = q{INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame)
			SELECT nextval('repo_stream.event_seq'), coalesce((SELECT current_segment FROM repo_stream.log_state), 0),};
		push @{ $forged{s2} }, $s2->safe_psql('postgres', qq{$insert did, kind, frame FROM repo_stream.event_log
			WHERE did = '$victim' AND kind = 'commit' ORDER BY seq DESC LIMIT 1 OFFSET 1 RETURNING seq});
		push @{ $forged{s2} }, $s2->safe_psql('postgres', qq{$insert '$victim', 'commit', decode('$hex', 'hex') RETURNING seq});
		# the same from a shard that does not host the repo
		push @{ $forged{s1} }, $s1->safe_psql('postgres', qq{$insert '$victim', 'commit', decode('$hex', 'hex') RETURNING seq});
		$router->safe_psql('postgres', 'DELETE FROM paused');
		$done{forge} = 1;
	}
	poll();
	usleep(200_000);
}
for my $w (@writers)
{
	ok($w->[0]->finish, 'writer finished') or diag(${ $w->[1] });
}
ok($done{kill} && $done{restart} && $done{relay} && $done{move} && $done{forge},
	'shard killed and restarted, relay restarted, repo moved, commits forged during the run');

my $acked = $router->safe_psql('postgres', 'SELECT count(*) FROM acked');
cmp_ok($acked, '>', 200, "writers were busy: $acked acknowledged writes");
note 'write errors by SQLSTATE: ', $router->safe_psql('postgres', q{SELECT string_agg(state || ' ' || n, ', ') FROM
	(SELECT state, count(*) n FROM write_errors GROUP BY 1 ORDER BY 1) x});
# while a move runs, the router refuses writes to the repo with RepoMoving:
# a move of another repo, held at its deactivation by a transaction on its
# shard that writes to it (and so holds its lock)
my $held = $router->safe_psql('postgres',
	"SELECT min(did) FROM repo_stream.directory WHERE did NOT IN ('$moved', '$victim')");
my $held_from = $router->safe_psql('postgres', "SELECT shard FROM repo_stream.directory WHERE did = '$held'");
my $held_to = $held_from eq 's1' ? 's2' : 's1';
my $blocker = $shard{$held_from}->background_psql('postgres');
$blocker->query_safe(qq{BEGIN; SELECT repo_stream.put_record('$held', 'app.bsky.feed.like', 'held',
	'{"subject": {"uri": "at://did:plc:t/app.bsky.feed.post/p1"}, "createdAt": "2026-11-30T00:00:00.000Z"}')});
my ($mv_out, $mv_err) = ('', '');
my $mv = IPC::Run::start([ 'psql', '-X', '-d', $router->connstr('postgres'),
	'-c', "CALL repo_stream.move_repo('$held', '$held_to')" ], '>', \$mv_out, '2>', \$mv_err);
ok($shard{$held_from}->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%deactivate_repo%' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()}),
	'a move waits for the repo\'s lock on its shard');
my ($rc, $out, $err) = $router->psql('postgres', qq{\\set VERBOSITY verbose
	SELECT repo_stream.put_record('$held', 'app.bsky.feed.like', 'x', '{"subject": {"uri": "at://x"}}')});
like($err, qr/55R02: repo "$held" is moving from shard $held_from to shard $held_to.*HINT:  Retry in a moment/s,
	'a write through the router to the repo being moved is refused with RepoMoving (55R02) and a hint to retry');
$blocker->query_safe('COMMIT');
$blocker->quit;
ok($mv->finish, 'and the move finishes once the write on the shard commits') or diag($mv_err);
is($router->safe_psql('postgres', "SELECT shard || ' ' || coalesce(moving_to, '-') FROM repo_stream.directory WHERE did = '$held'"),
	"$held_to -", "$held is on $held_to");
is($shard{$held_to}->safe_psql('postgres', "SELECT count(*) FROM repo_stream.records WHERE did = '$held' AND rkey = 'held'"), '1',
	'with the write that committed on the old shard during the move');

# ------------------------------------------------------ wait for the relay

my $union_sql = q{SELECT did, collection, rkey, cid FROM repo_stream.records};
sub union_records
{
	return join("\n", sort(split(/\n/, $s1->safe_psql('postgres', $union_sql)),
		split(/\n/, $s2->safe_psql('postgres', $union_sql))));
}
my $shard_records = union_records();
my $caught_up = 0;
for (1 .. 240)
{
	my $lag = $relay->safe_psql('postgres',
		'SELECT bool_and(connected AND lag_events = 0) FROM repo_stream.relay_status');
	if ($lag eq 't'
		&& join("\n", sort split /\n/, $relay->safe_psql('postgres', $union_sql)) eq $shard_records)
	{
		$caught_up = 1;
		last;
	}
	poll();
	usleep(500_000);
}
ok($caught_up, 'the relay caught up with both shards (lag 0 events)')
  or diag($relay->safe_psql('postgres', 'SELECT * FROM repo_stream.relay_status')),
	 diag($relay->safe_psql('postgres', 'SELECT * FROM repo_stream.relay_repos WHERE desynchronized'));
poll();

# ------------------------------------------------------------- checks

# no acknowledged write lost: each key holds its last acknowledged write, or
# a later attempted one
my %final;
for my $node ($s1, $s2)
{
	for (split /\n/, $node->safe_psql('postgres',
		q{SELECT did, rkey, record->>'n' FROM repo_stream.records WHERE rkey LIKE 'w%'}))
	{
		my ($did, $rkey, $n) = split /\|/;
		$final{"$did $rkey"} = $n;
	}
}
my ($lost, $checked) = (0, 0);
for (split /\n/, $router->safe_psql('postgres', 'SELECT did, rkey, max(n) FROM acked GROUP BY 1, 2'))
{
	my ($did, $rkey, $n) = split /\|/;
	$checked++;
	$lost++ unless defined $final{"$did $rkey"} && $final{"$did $rkey"} >= $n;
}
is($lost, 0, "no acknowledged write is lost ($checked keys)");

my $relay_records = join("\n", sort split /\n/, $relay->safe_psql('postgres', $union_sql));
is($relay_records, $shard_records,
	"the relay's records are the union of the shards' (" . scalar(split /\n/, $shard_records) . ' records)')
  or diag_diff($relay_records, $shard_records);

# every #commit of the shards' logs, but the forged ones, reaches the relay
# exactly once, and nothing else does
my $commits_sql = q{SELECT did || ' ' || (repo_stream.frame_to_json(frame)->'body'->>'rev') || ' '
	|| (repo_stream.frame_to_json(frame)->'body'->'commit'->>'$link') FROM repo_stream.event_log WHERE kind = 'commit'};
my @expected;
for my $s ('s1', 's2')
{
	my $skip = @{ $forged{$s} // [] } ? ' AND seq NOT IN (' . join(',', @{ $forged{$s} }) . ')' : '';
	push @expected, split /\n/, $shard{$s}->safe_psql('postgres', $commits_sql . $skip);
}
my @relayed = split /\n/, $relay->safe_psql('postgres', $commits_sql);
sub diag_diff
{
	my ($got, $want) = @_;
	my %g = map { $_ => 1 } split /\n/, $got;
	my %w = map { $_ => 1 } split /\n/, $want;
	my @extra = grep { !$w{$_} } sort keys %g;
	my @missing = grep { !$g{$_} } sort keys %w;
	diag("extra: " . scalar(@extra) . "\n" . join("\n", @extra[0 .. ($#extra < 9 ? $#extra : 9)]));
	diag("missing: " . scalar(@missing) . "\n" . join("\n", @missing[0 .. ($#missing < 9 ? $#missing : 9)]));
}
is(scalar(@relayed), scalar(@expected), 'as many #commit events on the relay as the shards committed (' . scalar(@expected) . ')');
ok(join("\n", sort @relayed) eq join("\n", sort @expected),
	'and the same ones: every committed change of every shard exactly once');
my %forged_revs;
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.event_log
	WHERE kind IN ('commit', 'sync') AND NOT repo_stream.verify_frame(frame)}), '0',
	'every relayed #commit and #sync verifies with the key of its rev');
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.event_log e
	WHERE kind = 'commit' AND (repo_stream.frame_to_json(frame)->'body'->>'seq')::bigint <> e.seq}), '0',
	'each relayed frame carries its relay seq');

# the live consumer missed nothing
my @all = split /\n/, $relay->safe_psql('postgres', 'SELECT seq, md5(frame) FROM repo_stream.events_since(0, 1000000)');
ok($consumer_ok, 'the consumer always read seqs above its cursor, in increasing order');
is(scalar(@consumed), scalar(@all), 'the consumer, polling through the restarts, got every relay event (' . scalar(@all) . ')');
ok(join("\n", @consumed) eq join("\n", @all), 'the same events, in the same order: no gap in the relay seq')
  or diag_diff(join("\n", @consumed), join("\n", @all));
is($relay->safe_psql('postgres', q{SELECT string_agg(s::text, ',' ORDER BY s) FROM
	(SELECT (repo_stream.frame_to_json(data)->'body'->>'seq')::bigint s FROM pg_logical_slot_get_binary_changes('merged', NULL, NULL)) x}),
	$relay->safe_psql('postgres', "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM repo_stream.event_log WHERE seq > $slot_from"),
	'the output plugin streams the merged log from the relay, every event once');

# the move
is($relay->safe_psql('postgres', "SELECT shard FROM repo_stream.relay_repos WHERE did = '$moved'"), $to,
	"the relay follows the move: $moved is hosted on $to");
my $moved_sql = "SELECT collection, rkey, cid FROM repo_stream.records WHERE did = '$moved' ORDER BY 1, 2";
is($relay->safe_psql('postgres', $moved_sql), $shard{$to}->safe_psql('postgres', $moved_sql),
	"and its records on the relay are $to\'s");
is($shard{$from}->safe_psql('postgres', "SELECT status FROM repo_stream.repos WHERE did = '$moved'"), 'deleted',
	"$from deleted it");

# the forged commits
my $v = $relay->safe_psql('postgres', "SELECT desynchronized, resyncs FROM repo_stream.relay_repos WHERE did = '$victim'");
my ($desync, $resyncs) = split /\|/, $v;
cmp_ok($resyncs, '>=', 1, "the repo that got forged commits was marked desynchronized and synced again ($resyncs)");
is($desync, 'f', 'and is in sync now');
my $status = $relay->safe_psql('postgres', q{SELECT shard, rejected, dropped_host, desynchronized, replayed FROM repo_stream.relay_status ORDER BY 1});
like($status, qr/^s1\|\d+\|[1-9]\d*\|\{\}\|\d+\ns2\|[1-9]\d*\|\d+\|\{\}\|[1-9]\d*$/,
	'relay_status: s2\'s commit signed by another key rejected, its replayed commit dropped as a replay, s1\'s commit for a repo it does not host dropped, none desynchronized');
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.event_log
	WHERE repo_stream.frame_to_json(frame)->'body'->'ops' @> '[{"path": "app.bsky.feed.like/forged"}]'}), '0',
	'the forged commit was never re-emitted');

# the view on the relay
$relay->safe_psql('postgres', q{SELECT repo_stream.refresh_view('public.like_counts')});
my %want;
for my $node ($s1, $s2)
{
	for (split /\n/, $node->safe_psql('postgres', q{SELECT record->'subject'->>'uri', count(*) FROM repo_stream.records
		WHERE collection = 'app.bsky.feed.like' GROUP BY 1}))
	{
		my ($k, $n) = split /\|/;
		$want{$k} += $n;
	}
}
is($relay->safe_psql('postgres', 'SELECT key, count FROM public.like_counts ORDER BY key'),
	join("\n", map { "$_|$want{$_}" } sort keys %want),
	'a count view on the relay equals the GROUP BY over the union of the shards\' records');

done_testing();
