# Moves between shards, and what happens when one is cut short.  Two
# shards, a router and a relay:
#  - a real move: the relay follows it (the new shard's #sync is held until
#    the old shard deletes the repo), its stream of the repo stays whole and
#    in order, and every relayed commit verifies;
#  - a repo moves back to a shard it left (its DID deleted there), with and
#    without writes in between; the relay follows, and a count view on that
#    shard counts the repo again;
#  - the router's session is killed (SIGKILL) while the old shard exports
#    the repo, and again while the new shard imports it: the repo is left
#    "moving"; router_recover_moves() settles the first, the next move_repo
#    of the DID the second, each rolled back with the repo active on exactly
#    one shard and the relay following; a move cut short after its import
#    committed is finished by router_recover_moves();
#  - a move to a shard that holds another repo of the DID is refused
#    before the old copy is touched, and one made there while the move runs
#    makes the move roll back: a move never takes over another repo.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use RsScaleOut;

my ($s1, $s2) = map { so_shard($_) } qw(shard1 shard2);
my %shard = (s1 => $s1, s2 => $s2);
my $router = so_node('router');
my $relay = so_node('relay');
$router->safe_psql('postgres', qq{
	CREATE EXTENSION repo_stream_router CASCADE;
	SELECT repo_stream.router_add_shard('s1', @{[ conn_lit($s1) ]});
	SELECT repo_stream.router_add_shard('s2', @{[ conn_lit($s2) ]});
});
$relay->safe_psql('postgres', qq{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.relay_add_shard('s1', @{[ conn_lit($s1) ]});
	SELECT repo_stream.relay_add_shard('s2', @{[ conn_lit($s2) ]});
});

sub like_sql
{
	my ($did, $rkey, $n) = @_;
	return qq{SELECT repo_stream.put_record('$did', 'app.bsky.feed.like', '$rkey',
		'{"subject": {"uri": "at://did:plc:t/app.bsky.feed.post/p$n"}, "createdAt": "2026-12-07T00:00:00.000Z"}')};
}
sub host_of
{
	my ($did) = @_;
	return $router->safe_psql('postgres', "SELECT shard FROM repo_stream.directory WHERE did = '$did'");
}
sub other { return $_[0] eq 's1' ? 's2' : 's1' }
sub settled_both
{
	return so_wait_applied($relay, 's1', $s1) && so_wait_applied($relay, 's2', $s2);
}
# a repo's records: how many, and a digest of their keys and CIDs
my $rec_sql = q{SELECT count(*) || ' ' || coalesce(md5(string_agg(collection || '/' || rkey || '=' || cid, ',' ORDER BY collection, rkey)), '-')
	FROM repo_stream.records WHERE did = '%s'};
sub records_of
{
	my ($node, $did) = @_;
	return $node->safe_psql('postgres', sprintf($rec_sql, $did));
}
sub status_on
{
	my ($name, $did) = @_;
	return $shard{$name}->safe_psql('postgres', "SELECT coalesce((SELECT status FROM repo_stream.repos WHERE did = '$did'), 'none')");
}
sub directory_row
{
	my ($did) = @_;
	return $router->safe_psql('postgres', "SELECT shard || ' ' || coalesce(moving_to, '-') || ' ' || coalesce(moved_from, '-')
		FROM repo_stream.directory WHERE did = '$did'");
}
# the relay's revs of a DID's #commit events, and the shards'
sub commit_revs
{
	my ($node, $did) = @_;
	return $node->safe_psql('postgres', qq{SELECT string_agg(repo_stream.frame_to_json(frame)->'body'->>'rev', ',' ORDER BY seq)
		FROM repo_stream.event_log WHERE did = '$did' AND kind = 'commit'});
}

# a count view on each shard, made before anything moves
for my $s ($s1, $s2)
{
	$s->safe_psql('postgres', q{SELECT repo_stream.create_count_view('public.likes', 'app.bsky.feed.like', 'subject.uri')});
}
sub view_exact
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{SELECT repo_stream.refresh_view('public.likes')});
	return $node->safe_psql('postgres', q{SELECT count(*) FROM (
		(SELECT key, count FROM public.likes WHERE count > 0
		 EXCEPT SELECT record->'subject'->>'uri', count(*) FROM repo_stream.records WHERE collection = 'app.bsky.feed.like' GROUP BY 1)
		UNION ALL
		(SELECT record->'subject'->>'uri', count(*) FROM repo_stream.records WHERE collection = 'app.bsky.feed.like' GROUP BY 1
		 EXCEPT SELECT key, count FROM public.likes WHERE count > 0)) d});
}

# ------------------------------------------------------------ a real move
$router->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:mover')});
$router->safe_psql('postgres', like_sql('did:plc:mover', "m$_", $_)) for 1 .. 5;
my $from = host_of('did:plc:mover');
my $to = other($from);
settled_both();
my $cursor = $relay->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
$router->safe_psql('postgres', "CALL repo_stream.move_repo('did:plc:mover', '$to')");
$router->safe_psql('postgres', like_sql('did:plc:mover', "m$_", $_)) for 6 .. 8;
is(directory_row('did:plc:mover'), "$to - -", "move_repo moved did:plc:mover from $from to $to");
is(status_on($from, 'did:plc:mover'), 'deleted', "and deleted it on $from");
ok(settled_both(), 'the relay received both shards\' events');
ok(so_wait($relay, "SELECT shard FROM repo_stream.relay_repos WHERE did = 'did:plc:mover'", $to),
	"the relay follows the move: $to hosts the repo");
is(records_of($relay, 'did:plc:mover'), records_of($shard{$to}, 'did:plc:mover'),
	"its records on the relay are $to\'s, with the writes after the move");
is(so_relay_events($relay, 'did:plc:mover', $cursor) =~ s/\d+ //gr, 'account,sync,commit,commit,commit',
	'the relay\'s stream of the repo: the old shard\'s deactivation, the new shard\'s #sync and commits (the deletion is not relayed)');
is(commit_revs($relay, 'did:plc:mover'),
	join(',', grep { $_ ne '' } commit_revs($shard{$from}, 'did:plc:mover'), commit_revs($shard{$to}, 'did:plc:mover')),
	'every commit of both shards, in order, none twice: the stream is whole');
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.event_log
	WHERE did = 'did:plc:mover' AND kind IN ('commit', 'sync') AND NOT repo_stream.verify_frame(frame)}), '0',
	'every relayed #commit and #sync of it verifies');

# ----------------------------------------------------------------- move back
# with writes in between (mover), and straight back (pingpong: the same tree
# comes back to the shard that deleted it)
$cursor = $relay->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
$router->safe_psql('postgres', "CALL repo_stream.move_repo('did:plc:mover', '$from')");
is(directory_row('did:plc:mover'), "$from - -", "a repo moves back to the shard it left ($from)");
is(status_on($from, 'did:plc:mover'), 'active', "active there again");
is(status_on($to, 'did:plc:mover'), 'deleted', "deleted on $to");
$router->safe_psql('postgres', like_sql('did:plc:mover', 'm9', 9));
like(records_of($shard{$from}, 'did:plc:mover'), qr/^9 /, 'with its nine records');
settled_both();
ok(so_wait($relay, "SELECT shard FROM repo_stream.relay_repos WHERE did = 'did:plc:mover'", $from),
	'the relay follows it back');
is(records_of($relay, 'did:plc:mover'), records_of($shard{$from}, 'did:plc:mover'), "its records on the relay are $from\'s");
is(so_relay_events($relay, 'did:plc:mover', $cursor) =~ s/\d+ //gr, 'account,sync,commit',
	'the relay relays the move back the same way');

$router->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:pingpong')});
$router->safe_psql('postgres', like_sql('did:plc:pingpong', "p$_", $_)) for 1 .. 4;
my $home = host_of('did:plc:pingpong');
$router->safe_psql('postgres', "CALL repo_stream.move_repo('did:plc:pingpong', '@{[ other($home) ]}')");
$router->safe_psql('postgres', "CALL repo_stream.move_repo('did:plc:pingpong', '$home')");
is(directory_row('did:plc:pingpong'), "$home - -", 'a repo moved away and straight back');
is(view_exact($shard{$home}), '0', "a count view on $home counts its records again (a #sync after its deletion there)");
is(view_exact($shard{other($home)}), '0', 'and the view on the other shard does not count them');
settled_both();
ok(so_wait($relay, "SELECT shard FROM repo_stream.relay_repos WHERE did = 'did:plc:pingpong'", $home),
	'the relay follows both moves');
is(records_of($relay, 'did:plc:pingpong'), records_of($shard{$home}, 'did:plc:pingpong'), 'with the same records');

# ------------------------------------------------- a move cut short, twice
# a repo with records enough that the steps take a moment; the old shard's
# export and the new shard's import are held at a table lock so that the
# router's session is killed in the middle of each
$router->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:big')});
my $src = host_of('did:plc:big');
my $dst = other($src);
$shard{$src}->safe_psql('postgres', q{INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:big', 'app.bsky.feed.like', 'k' || i,
		jsonb_build_object('subject', jsonb_build_object('uri', 'at://did:plc:t/app.bsky.feed.post/p' || (i % 5)),
						   'createdAt', '2026-12-07T00:00:00.000Z')
	  FROM generate_series(1, 3000) i});

sub move_in_background
{
	my ($did, $to) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-d', $router->connstr('postgres'),
		'-c', "CALL repo_stream.move_repo('$did', '$to')" ], '>', \$out, '2>', \$err);
	return $h;
}
sub kill_router_mover
{
	my $pid = $router->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity
		WHERE query LIKE 'CALL repo_stream.move_repo%' AND pid <> pg_backend_pid()});
	kill 'KILL', $pid if $pid;
	return $pid;
}

# 1. during the export: the old shard's nodes are locked
my $lock = $shard{$src}->background_psql('postgres');
$lock->query_safe('BEGIN; LOCK TABLE repo_stream.mst_nodes IN ACCESS EXCLUSIVE MODE;');
my $mover = move_in_background('did:plc:big', $dst);
ok(so_wait($shard{$src}, q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%export_repo%' AND wait_event_type = 'Lock'}),
	"the move is exporting the repo on $src");
ok(kill_router_mover(), 'the router\'s session running move_repo is killed (SIGKILL)');
$lock->query_safe('COMMIT');
$lock->quit;
$mover->finish;
$router->poll_query_until('postgres', 'SELECT true');
is(directory_row('did:plc:big'), "$src $dst -", 'the directory is left moving (writes refused)');
is(sqlstate_of($router, like_sql('did:plc:big', 'x', 1)), '55R02', 'a write is RepoMoving');
is($router->safe_psql('postgres', q{SELECT string_agg(did || ' ' || from_shard || ' ' || to_shard || ' ' || outcome, ',')
	FROM repo_stream.router_recover_moves()}), "did:plc:big $src $dst rolled back",
	'router_recover_moves() rolls the interrupted move back (the new shard has no copy)');
is(directory_row('did:plc:big'), "$src - -", "the directory points at $src, not moving");
is(status_on($src, 'did:plc:big') . ' ' . status_on($dst, 'did:plc:big'), 'active none', "active on $src only");
$router->safe_psql('postgres', like_sql('did:plc:big', 'after1', 1));
is($shard{$src}->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE did = 'did:plc:big'}), '3001',
	'writes go there again');
is($router->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.router_recover_moves()}), '0',
	'nothing is left to recover');

# 2. during the import: the new shard's MST nodes are locked (its repos table
# stays readable: the move reads it before it begins)
$lock = $shard{$dst}->background_psql('postgres');
$lock->query_safe('BEGIN; LOCK TABLE repo_stream.mst_nodes IN ACCESS EXCLUSIVE MODE;');
$mover = move_in_background('did:plc:big', $dst);
ok(so_wait($shard{$dst}, q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%import_repo%' AND wait_event_type = 'Lock'}),
	"the move is importing the repo on $dst");
ok(kill_router_mover(), 'the router\'s session running move_repo is killed (SIGKILL)');
$lock->query_safe('COMMIT');
$lock->quit;
$mover->finish;
$router->poll_query_until('postgres', 'SELECT true');
is(directory_row('did:plc:big'), "$src $dst -", 'the directory is left moving');
is(status_on($src, 'did:plc:big'), 'deactivated', "the repo is left deactivated on $src");
# the import that was under way never commits: the router sends no COMMIT
ok(so_wait($shard{$dst}, q{SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE '%import_repo%' AND pid <> pg_backend_pid()}),
	"the import's session on $dst ends");
is(status_on($dst, 'did:plc:big'), 'none', "and left nothing on $dst");
# the next move_repo of the DID settles it first, then moves
my ($rc, $out, $err) = $router->psql('postgres', "CALL repo_stream.move_repo('did:plc:big', '$dst')");
is($rc, 0, 'the next move_repo of the repo succeeds') or diag($err);
like($err, qr/an interrupted move of repo "did:plc:big" was rolled back/, 'after rolling the interrupted one back');
is(directory_row('did:plc:big'), "$dst - -", "the repo is on $dst");
is(status_on($src, 'did:plc:big') . ' ' . status_on($dst, 'did:plc:big'), 'deleted active', "active on $dst only");
like(records_of($shard{$dst}, 'did:plc:big'), qr/^3001 /, 'with its 3001 records');
settled_both();
ok(so_wait($relay, "SELECT shard FROM repo_stream.relay_repos WHERE did = 'did:plc:big'", $dst),
	'the relay follows it');
is(records_of($relay, 'did:plc:big'), records_of($shard{$dst}, 'did:plc:big'), 'its records on the relay are the new shard\'s');

# 3. cut short after the import committed (its steps done by hand up to
# there, as a router that died right after the new shard's COMMIT leaves
# them): recovery finishes the move
$router->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:half')});
$router->safe_psql('postgres', like_sql('did:plc:half', "h$_", $_)) for 1 .. 3;
my $h_src = host_of('did:plc:half');
my $h_dst = other($h_src);
$router->safe_psql('postgres', "UPDATE repo_stream.directory SET moving_to = '$h_dst' WHERE did = 'did:plc:half'");
my ($hcar, $hkey) = split /\|/, $shard{$h_src}->safe_psql('postgres', q{
	SELECT encode(string_agg(chunk, ''::bytea ORDER BY n), 'hex'), repo_stream.repo_key('did:plc:half')
	  FROM repo_stream.export_repo('did:plc:half') WITH ORDINALITY AS e(seq, rev, chunk, n)});
$shard{$h_src}->safe_psql('postgres', q{SELECT repo_stream.deactivate_repo('did:plc:half')});
$shard{$h_dst}->safe_psql('postgres', qq{SELECT repo_stream.import_repo(decode('$hcar', 'hex'), '$hkey')});
is($router->safe_psql('postgres', q{SELECT string_agg(did || ' ' || from_shard || ' ' || to_shard || ' ' || outcome, ',')
	FROM repo_stream.router_recover_moves()}), "did:plc:half $h_src $h_dst finished",
	'router_recover_moves() finishes a move whose import committed');
is(directory_row('did:plc:half'), "$h_dst - -", "the directory points at $h_dst");
is(status_on($h_src, 'did:plc:half') . ' ' . status_on($h_dst, 'did:plc:half'), 'deleted active',
	"the old copy on $h_src is deleted");
$router->safe_psql('postgres', like_sql('did:plc:half', 'h4', 4));
settled_both();
ok(so_wait($relay, "SELECT shard FROM repo_stream.relay_repos WHERE did = 'did:plc:half'", $h_dst),
	'the relay follows it');
is(records_of($relay, 'did:plc:half'), records_of($shard{$h_dst}, 'did:plc:half'),
	'with the write made after the recovery');

# ------------------------------- a move never takes over another repo
# the new shard holds a repo of the DID made there directly (not through
# the router): the move is refused before the old copy is touched
$router->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:twin')});
$router->safe_psql('postgres', like_sql('did:plc:twin', "t$_", $_)) for 1 .. 3;
my $t_src = host_of('did:plc:twin');
my $t_dst = other($t_src);
$shard{$t_dst}->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:twin')});
$shard{$t_dst}->safe_psql('postgres', like_sql('did:plc:twin', 'other', 1));
my %twin = map { $_ => records_of($shard{$_}, 'did:plc:twin') . ' ' . $shard{$_}->safe_psql('postgres',
	q{SELECT repo_stream.repo_key('did:plc:twin')}) } $t_src, $t_dst;
my $t_seq = $shard{$t_src}->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
is(sqlstate_of($router, "CALL repo_stream.move_repo('did:plc:twin', '$t_dst')"), '42710',
	"a move to $t_dst, which holds another repo of the DID, is refused (42710)");
is(directory_row('did:plc:twin'), "$t_src - -", "the repo stays on $t_src");
is(status_on($t_src, 'did:plc:twin') . ' ' . status_on($t_dst, 'did:plc:twin'), 'active active', 'both repos active');
is($shard{$t_src}->safe_psql('postgres', "SELECT count(*) FROM repo_stream.event_log WHERE did = 'did:plc:twin' AND seq > $t_seq"),
	'0', "the old copy was not touched (no #account on $t_src)");
is(records_of($shard{$_}, 'did:plc:twin') . ' ' . $shard{$_}->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:twin')}),
	$twin{$_}, "the records and key on $_ are unchanged") for $t_src, $t_dst;

# such a repo made on the new shard while the move runs (held at the old
# shard's deactivation by a write there): the import is refused, and the
# move is rolled back, not finished over the other repo
$router->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:race')});
$router->safe_psql('postgres', like_sql('did:plc:race', "r$_", $_)) for 1 .. 3;
my $r_src = host_of('did:plc:race');
my $r_dst = other($r_src);
my $blocker = $shard{$r_src}->background_psql('postgres');
$blocker->query_safe('BEGIN; ' . like_sql('did:plc:race', 'held', 4));
my ($r_out, $r_err) = ('', '');
my $r_mover = IPC::Run::start([ 'psql', '-X', '-v', 'VERBOSITY=verbose', '-d', $router->connstr('postgres'),
	'-c', "CALL repo_stream.move_repo('did:plc:race', '$r_dst')" ], '>', \$r_out, '2>', \$r_err);
ok(so_wait($shard{$r_src}, q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE query LIKE '%deactivate_repo%' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()}),
	"the move waits for the repo's lock on $r_src");
$shard{$r_dst}->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:race')});
my $r_other = records_of($shard{$r_dst}, 'did:plc:race') . ' '
  . $shard{$r_dst}->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:race')});
$blocker->query_safe('COMMIT');
$blocker->quit;
$r_mover->finish;
like($r_err, qr/ERROR:  42710: moving repo "did:plc:race" to shard "$r_dst" failed/,
	"the move fails: $r_dst now holds another repo of the DID (42710)");
is(directory_row('did:plc:race'), "$r_src - -", "the repo stays on $r_src (rolled back)");
is(status_on($r_src, 'did:plc:race') . ' ' . status_on($r_dst, 'did:plc:race'), 'active active', 'active again, the other repo too');
like(records_of($shard{$r_src}, 'did:plc:race'), qr/^4 /, "its four records on $r_src, the held write too");
is(records_of($shard{$r_dst}, 'did:plc:race') . ' ' . $shard{$r_dst}->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:race')}),
	$r_other, "the other repo on $r_dst is unchanged");
settled_both();
for my $d ([ 'did:plc:twin', $t_src ], [ 'did:plc:race', $r_src ])
{
	ok(so_wait($relay, "SELECT shard FROM repo_stream.relay_repos WHERE did = '$d->[0]'", $d->[1]),
		"the relay keeps $d->[1] as the host of $d->[0]");
	ok(so_wait($relay, sprintf($rec_sql, $d->[0]), records_of($shard{ $d->[1] }, $d->[0])), 'with its records');
}

is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.relay_repos WHERE desynchronized}), '0',
	'no repo is desynchronized on the relay');

done_testing();
