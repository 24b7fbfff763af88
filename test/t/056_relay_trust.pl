# What the relay believes, and who can make it believe otherwise.  Two
# shards, a relay and an attacker's server (a PostgreSQL with repo_stream
# that holds its own did:plc:alice):
#  - a repo_stream_admin of the relay (not a superuser) pre-opens dblink
#    connections to the attacker under every name the relay ever used (and
#    the unnamed one, and one named like a shard's conninfo), then calls
#    every relay function it may: nothing is taken from the attacker (the
#    probe's exact reproduction: relay_resync('did:plc:alice'));
#  - a shard's conninfo that now leads to another server is refused (the
#    relay checks the shard's system identifier and database);
#  - a key history that names a key nothing verified, or contradicts what
#    the relay verified, changes nothing; the shard's later commits verify;
#  - a key rotation's #sync is relayed as it is, without a resync;
#  - an old frame replayed under a new seq is dropped and counted, cheaply;
#  - a commit that chains on (right since and prevData) but is signed by
#    another key is rejected and never relayed;
#  - another shard (an admin there, not a superuser) creating the DID of a
#    repo that is only deactivated on its host, or importing a perfect copy
#    of it, takes nothing over; its claim is dropped when the host
#    activates the repo again, and a deletion on the host hands nothing to
#    a copy that does not carry the relay's state.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use RsScaleOut;

my ($s1, $s2, $evil) = map { so_shard($_) } qw(shard1 shard2 evil);
my $relay = so_node('relay');
$relay->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	CREATE EXTENSION dblink;		-- only for the attacker's connections below
	CREATE ROLE radm LOGIN IN ROLE repo_stream_admin;
});
my $radm = $relay->connstr('postgres') . ' user=radm';

# the attacker's server asks its role for a password (dblink requires one
# of a role that is not a superuser) and holds a repo with alice's DID
$evil->safe_psql('postgres', q{
	CREATE ROLE evil LOGIN PASSWORD 'evilpw' IN ROLE repo_stream_admin;
	SELECT repo_stream.create_repo('did:plc:alice');
	SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', '3jzfcijpj2z2a',
		'{"text": "FORGED by attacker", "createdAt": "2026-12-07T00:00:00.000Z"}');
	SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', '3jzfcijpj2z2b',
		'{"text": "FORGED 2", "createdAt": "2026-12-07T00:00:00.000Z"}');
});
{
	my $hba = $evil->data_dir . '/pg_hba.conf';
	my $old = PostgreSQL::Test::Utils::slurp_file($hba);
	open(my $fh, '>', $hba) or die;
	print $fh "local all evil scram-sha-256\n$old";
	close $fh;
	$evil->reload;
}
(my $evil_conn = $evil->connstr('postgres') . " user=evil password=evilpw") =~ s/'/''/g;
my $evil_key = $evil->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:alice')});

sub post
{
	my ($did, $rkey, $text) = @_;
	return qq{SELECT repo_stream.put_record('$did', 'app.bsky.feed.post', '$rkey',
		'{"text": "$text", "createdAt": "2026-12-07T00:00:00.000Z"}')};
}
$s1->safe_psql('postgres', join(';', q{SELECT repo_stream.create_repo('did:plc:alice')},
	post('did:plc:alice', 'a1', 'alice one'), post('did:plc:alice', 'a2', 'alice two'),
	post('did:plc:alice', 'a3', 'alice three'),
	q{SELECT repo_stream.create_repo('did:plc:bob')}, post('did:plc:bob', 'b1', 'bob one')));
$s2->safe_psql('postgres', join(';', q{SELECT repo_stream.create_repo('did:plc:carol')},
	post('did:plc:carol', 'c1', 'carol one')));

# the superuser who adds the shards has dblink connections to the attacker
# open, under the names the relay used to reuse: the relay uses its own
my $s1_conn = $s1->connstr('postgres');
my $sysid = $relay->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
my @names = ('rs_relay_s1', 'rs_relay_s2', "rs_relay_s1_$sysid", "rs_relay_s2_$sysid",
	substr($s1_conn, 0, 63) =~ s/'/''/gr, substr($s2->connstr('postgres'), 0, 63) =~ s/'/''/gr);
my $preopen = join('', map { "SELECT public.dblink_connect('$_', '$evil_conn');\n" } @names)
	. "SELECT public.dblink_connect('$evil_conn');\n";
$relay->safe_psql('postgres', $preopen . qq{
	SELECT repo_stream.relay_add_shard('s1', @{[ conn_lit($s1) ]});
	SELECT repo_stream.relay_add_shard('s2', @{[ conn_lit($s2) ]});
});
my $rec_sql = q{SELECT string_agg(collection || '/' || rkey || '=' || cid, ',' ORDER BY collection, rkey)
	FROM repo_stream.records WHERE did = 'did:plc:alice'};
is($relay->safe_psql('postgres', $rec_sql), $s1->safe_psql('postgres', $rec_sql),
	'relay_add_shard in a session with dblink connections to another server under the relay\'s names mirrors the shard');

# ------------------------------------------- an admin's pre-opened connections
my $keys_sql = q{SELECT string_agg(did_key || '@' || since_rev, ',' ORDER BY since_rev) FROM repo_stream.repo_keys('did:plc:alice')};
my $state_sql = q{SELECT did_key || ' ' || head_rev FROM repo_stream.repos WHERE did = 'did:plc:alice'};
my %before = (rec => $relay->safe_psql('postgres', $rec_sql), keys => $relay->safe_psql('postgres', $keys_sql),
	state => $relay->safe_psql('postgres', $state_sql),
	seq => $relay->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log'));
my ($rc, $out, $err) = $relay->psql('postgres', $preopen . q{
	SELECT 'resync ' || repo_stream.relay_resync('did:plc:alice');
	SELECT 'all ' || repo_stream.relay_resync();
	SELECT 'status ' || count(*) FROM repo_stream.relay_status;
	SELECT 'lag ' || count(*) FROM repo_stream._relay_lag('s1');
	SELECT 'lag ' || count(*) FROM repo_stream._relay_lag('s2');
	SELECT 'mask ' || repo_stream._relay_mask_conninfo('password=x');
}, connstr => $radm);
is($rc, 0, 'an admin with dblink connections to the attacker named rs_relay_s1, rs_relay_s2, the slots, the conninfos and the unnamed one calls relay_resync(did), relay_resync(), relay_status, _relay_lag')
  or diag($err);
like($out, qr/^resync 1$/m, 'relay_resync(alice) resynced from the real shard');
is($relay->safe_psql('postgres', $rec_sql), $before{rec}, 'alice\'s records on the relay are still the shard\'s');
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE record->>'text' LIKE 'FORGED%'}), '0',
	'nothing of the attacker\'s repo was mirrored');
is($relay->safe_psql('postgres', $keys_sql), $before{keys}, 'alice\'s key history is unchanged');
is($relay->safe_psql('postgres', $state_sql), $before{state}, 'her current key and head are unchanged');
unlike($relay->safe_psql('postgres', $keys_sql), qr/\Q$evil_key\E/, 'the attacker\'s key is not among them');
is($relay->safe_psql('postgres', "SELECT count(*) FROM repo_stream.event_log WHERE seq > $before{seq}"), '0',
	'and nothing was relayed (no #sync)');
for my $call (q{SELECT repo_stream.relay_add_shard('s9', 'dbname=postgres')},
	q{SELECT * FROM repo_stream._relay_query('s1', 'SELECT 1') AS t(x int)},
	q{SELECT repo_stream._relay_sync_repo('s1', 'did:plc:alice', false)},
	q{SELECT repo_stream._relay_ingest('s1', 999999, '\x00')},
	q{SELECT repo_stream._relay_finish_backfill('s1')})
{
	is(sqlstate_of($relay, $call, connstr => $radm), '42501', "an admin may not call: $call");
}

# the shard's own next commit is relayed and verifies
$s1->safe_psql('postgres', post('did:plc:alice', 'a4', 'alice four'));
ok(so_wait_applied($relay, 's1', $s1), 'the relay received s1\'s commit');
is($relay->safe_psql('postgres', $rec_sql), $s1->safe_psql('postgres', $rec_sql),
	's1\'s later commit of alice is relayed: the mirror is s1\'s');
is($relay->safe_psql('postgres', q{SELECT (CASE WHEN bool_and(repo_stream.verify_frame(frame)) THEN 't' ELSE 'f' END) || ' ' || count(*)
	FROM repo_stream.event_log WHERE did = 'did:plc:alice' AND kind IN ('commit', 'sync')}),
	't ' . $relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.event_log WHERE did = 'did:plc:alice' AND kind IN ('commit', 'sync')}),
	'and every relayed commit of alice verifies');

# ------------------------------------------------ a conninfo leading elsewhere
(my $evil_su = $evil->connstr('postgres')) =~ s/'/''/g;
$relay->safe_psql('postgres', "UPDATE repo_stream.relay_shards SET conninfo = '$evil_su' WHERE name = 's1'");
($rc, $out, $err) = $relay->psql('postgres', q{SELECT repo_stream.relay_resync('did:plc:alice')});
is($out, '0', 'relay_resync by a superuser from a conninfo that leads to another server syncs nothing');
like($err, qr/leads to database \d+\/postgres, not to the shard's database/, 'the relay says the server is not the shard');
is($relay->safe_psql('postgres', $rec_sql), $s1->safe_psql('postgres', $rec_sql), 'the mirror is unchanged');
is($relay->safe_psql('postgres', q{SELECT desynchronized FROM repo_stream.relay_repos WHERE did = 'did:plc:alice'}), 'f',
	'and the repo, in sync, stays in sync');
# the same database under another form of conninfo is the shard
my ($host, $port) = ($s1->host, $s1->port);
$relay->safe_psql('postgres', "UPDATE repo_stream.relay_shards SET conninfo = 'postgresql:///postgres?host=$host&port=$port' WHERE name = 's1'");
is($relay->safe_psql('postgres', q{SELECT repo_stream.relay_resync('did:plc:alice')}), '1',
	'a URI to the same shard database is the shard');

# ------------------------------------------------------------- key histories
# a key the shard's history names from a rev after the relay's head, that
# signed nothing: not taken, not current; the shard's next commit verifies
my $head = $s1->safe_psql('postgres', q{SELECT head_rev FROM repo_stream.repos WHERE did = 'did:plc:alice'});
my $alpha = '234567abcdefghijklmnopqrstuvwxyz';
(my $later = $head) =~ s/(.)$/substr($alpha, index($alpha, $1) + 1, 1)/e;
$s1->safe_psql('postgres', qq{INSERT INTO repo_stream.repo_key_history VALUES ('did:plc:alice', '$evil_key', '$later')});
%before = (keys => $relay->safe_psql('postgres', $keys_sql), state => $relay->safe_psql('postgres', $state_sql),
	resyncs => $relay->safe_psql('postgres', q{SELECT resyncs FROM repo_stream.relay_repos WHERE did = 'did:plc:alice'}));
$relay->safe_psql('postgres', q{SELECT repo_stream.relay_resync('did:plc:alice')});
is($relay->safe_psql('postgres', $keys_sql), $before{keys}, 'a key the shard names but nothing signed is not taken by a resync');
is($relay->safe_psql('postgres', $state_sql), $before{state}, 'nor made current');
$s1->safe_psql('postgres', post('did:plc:alice', 'a5', 'alice five'));
so_wait_applied($relay, 's1', $s1);
is($relay->safe_psql('postgres', $rec_sql), $s1->safe_psql('postgres', $rec_sql), 'the shard\'s next commit is relayed');
is($relay->safe_psql('postgres', q{SELECT (CASE WHEN desynchronized THEN 't' ELSE 'f' END) || ' ' || resyncs FROM repo_stream.relay_repos WHERE did = 'did:plc:alice'}),
	'f ' . ($before{resyncs} + 1), 'verified with the key it was signed with: no resync but the one asked for');
$s1->safe_psql('postgres', qq{DELETE FROM repo_stream.repo_key_history WHERE did = 'did:plc:alice' AND since_rev = '$later'});

# a history that gives a rev the relay verified another key: refused whole
$s1->safe_psql('postgres', qq{UPDATE repo_stream.repo_key_history SET did_key = '$evil_key' WHERE did = 'did:plc:alice'});
%before = (keys => $relay->safe_psql('postgres', $keys_sql), state => $relay->safe_psql('postgres', $state_sql));
($rc, $out, $err) = $relay->psql('postgres', q{SELECT repo_stream.relay_resync('did:plc:alice')});
is($out, '0', 'a key history contradicting the relay\'s is refused');
like($err, qr/contradicts the relay's/, 'with a warning that says so');
is($relay->safe_psql('postgres', $keys_sql), $before{keys}, 'nothing of it was taken');
is($relay->safe_psql('postgres', $state_sql), $before{state}, 'the current key is unchanged');
is($relay->safe_psql('postgres', q{SELECT desynchronized FROM repo_stream.relay_repos WHERE did = 'did:plc:alice'}), 'f',
	'the repo stays in sync');
$s1->safe_psql('postgres', q{UPDATE repo_stream.repo_key_history h SET did_key = r.did_key FROM repo_stream.repos r
	WHERE r.did = h.did AND h.did = 'did:plc:alice'});

# ------------------------------------------------------------------ rotation
my %stat_before = map { $_ => $relay->safe_psql('postgres', "SELECT $_ FROM repo_stream.relay_status WHERE shard = 's1'") }
	qw(rejected resyncs replayed dropped_host);
my $bob_seq = $relay->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
my $new_key = $s1->safe_psql('postgres', q{SELECT repo_stream.rotate_key('did:plc:bob')});
$s1->safe_psql('postgres', post('did:plc:bob', 'b2', 'bob two'));
so_wait_applied($relay, 's1', $s1);
is(so_relay_events($relay, 'did:plc:bob', $bob_seq) =~ s/\d+ //gr, 'sync,commit',
	'a key rotation: its #sync and the next commit are relayed');
my $body = q{(repo_stream.frame_to_json(frame)->'body') - 'seq'};
is($relay->safe_psql('postgres', qq{SELECT $body FROM repo_stream.event_log WHERE did = 'did:plc:bob' AND kind = 'sync' AND seq > $bob_seq}),
	$s1->safe_psql('postgres', qq{SELECT $body FROM repo_stream.event_log WHERE did = 'did:plc:bob' AND kind = 'sync'}),
	'the #sync relayed is the shard\'s');
is($relay->safe_psql('postgres', q{SELECT did_key FROM repo_stream.repos WHERE did = 'did:plc:bob'}), $new_key,
	'the new key is current on the relay');
is($relay->safe_psql('postgres', q{SELECT string_agg(did_key, ',' ORDER BY since_rev) FROM repo_stream.repo_keys('did:plc:bob')}),
	$s1->safe_psql('postgres', q{SELECT string_agg(did_key, ',' ORDER BY since_rev) FROM repo_stream.repo_keys('did:plc:bob')}),
	'and the relay\'s key history of bob is the shard\'s');
is(join(',', map { $relay->safe_psql('postgres', "SELECT $_ FROM repo_stream.relay_status WHERE shard = 's1'") } qw(rejected resyncs)),
	"$stat_before{rejected},$stat_before{resyncs}", 'nothing rejected, no resync: the rotation verified with the new key');

# ------------------------------------------------------------ a replayed frame
my $alice_seq = $relay->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
my $insert = q{INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame)
	SELECT nextval('repo_stream.event_seq'), coalesce((SELECT current_segment FROM repo_stream.log_state), 0),};
$s1->safe_psql('postgres', qq{$insert did, kind, frame FROM repo_stream.event_log
	WHERE did = 'did:plc:alice' AND kind = 'commit' ORDER BY seq LIMIT 1 OFFSET 2});
so_wait_applied($relay, 's1', $s1);
is($relay->safe_psql('postgres', q{SELECT replayed FROM repo_stream.relay_status WHERE shard = 's1'}), $stat_before{replayed} + 1,
	'an old frame of alice replayed under a new seq is counted as replayed');
is(join(',', map { $relay->safe_psql('postgres', "SELECT $_ FROM repo_stream.relay_status WHERE shard = 's1'") } qw(rejected resyncs)),
	"$stat_before{rejected},$stat_before{resyncs}", 'and dropped cheaply: not rejected, no resync (no export)');
is(so_relay_events($relay, 'did:plc:alice', $alice_seq), '', 'nothing relayed');
is($relay->safe_psql('postgres', q{SELECT desynchronized FROM repo_stream.relay_repos WHERE did = 'did:plc:alice'}), 'f',
	'alice stays in sync');

# ------------------------------------- a commit that chains, signed by another key
# forge: alice's export imported into another database (another key), its
# head set back to alice's, so that its next commit has alice's rev as
# since and her MST root as prevData
$s1->safe_psql('postgres', 'CREATE DATABASE forge');
my $exp = $s1->safe_psql('postgres', q{SELECT encode(string_agg(chunk, ''::bytea ORDER BY n), 'hex'),
	repo_stream.repo_key('did:plc:alice'), (SELECT head_rev FROM repo_stream.repos WHERE did = 'did:plc:alice')
	FROM repo_stream.export_repo('did:plc:alice') WITH ORDINALITY AS e(seq, rev, chunk, n)});
my ($car, $akey, $arev) = split /\|/, $exp;
my $forged = $s1->safe_psql('forge', qq{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.import_repo(decode('$car', 'hex'), '$akey');
	UPDATE repo_stream.repos SET head_rev = '$arev' WHERE did = 'did:plc:alice';
	SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'forged',
		'{"text": "FORGED chained", "createdAt": "2026-12-07T00:00:00.000Z"}');
	SELECT (repo_stream.frame_to_json(frame)->'body'->>'since') || ' ' || encode(frame, 'hex')
	  FROM repo_stream.event_log WHERE kind = 'commit' ORDER BY seq DESC LIMIT 1});
my ($since, $hex) = split / /, (split /\n/, $forged)[-1];
is($since, $arev, 'the forged commit names alice\'s head as since');
%stat_before = map { $_ => $relay->safe_psql('postgres', "SELECT $_ FROM repo_stream.relay_status WHERE shard = 's1'") }
	qw(rejected resyncs);
$alice_seq = $relay->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');
$s1->safe_psql('postgres', qq{$insert 'did:plc:alice', 'commit', decode('$hex', 'hex')});
so_wait_applied($relay, 's1', $s1);
cmp_ok($relay->safe_psql('postgres', q{SELECT rejected FROM repo_stream.relay_status WHERE shard = 's1'}), '>',
	$stat_before{rejected}, 'a commit that chains on but is signed by another key is rejected');
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.event_log
	WHERE repo_stream.frame_to_json(frame)->'body'->'ops' @> '[{"path": "app.bsky.feed.post/forged"}]'}), '0',
	'and never relayed');
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE rkey = 'forged'}), '0',
	'nor mirrored');
is($relay->safe_psql('postgres', $rec_sql), $s1->safe_psql('postgres', $rec_sql), 'alice\'s mirror is s1\'s');
is($relay->safe_psql('postgres', q{SELECT desynchronized FROM repo_stream.relay_repos WHERE did = 'did:plc:alice'}), 'f',
	'alice is in sync again (resynced from s1)');
$s1->safe_psql('postgres', post('did:plc:alice', 'a6', 'alice six'));
so_wait_applied($relay, 's1', $s1);
is($relay->safe_psql('postgres', $rec_sql), $s1->safe_psql('postgres', $rec_sql), 'and s1\'s next commit is relayed');

# -------------------------------------------- another shard takes nothing over
# s2's admin (not a superuser) makes its own copies while they are only
# deactivated on s1: bob from scratch (create, write, rotate: the probe's
# way) and alice as a perfect copy (her export imported: the same tree, so
# that only "a deactivation is not a move" stands in the way)
$s2->safe_psql('postgres', 'CREATE ROLE s2adm LOGIN IN ROLE repo_stream_admin');
my $s2adm = $s2->connstr('postgres') . ' user=s2adm';
$exp = $s1->safe_psql('postgres', q{SELECT encode(string_agg(chunk, ''::bytea ORDER BY n), 'hex'), repo_stream.repo_key('did:plc:alice')
	FROM repo_stream.export_repo('did:plc:alice') WITH ORDINALITY AS e(seq, rev, chunk, n)});
($car, $akey) = split /\|/, $exp;
$s1->safe_psql('postgres', q{SELECT repo_stream.deactivate_repo('did:plc:alice'); SELECT repo_stream.deactivate_repo('did:plc:bob')});
so_wait_applied($relay, 's1', $s1);
my $bob_sql = $rec_sql =~ s/alice/bob/r;
my $bob_state_sql = $state_sql =~ s/alice/bob/r;
%before = (rec => $relay->safe_psql('postgres', $rec_sql), state => $relay->safe_psql('postgres', $state_sql),
	bob_rec => $relay->safe_psql('postgres', $bob_sql), bob_state => $relay->safe_psql('postgres', $bob_state_sql),
	seq => $relay->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log'),
	s1_dropped => $relay->safe_psql('postgres', q{SELECT dropped_host FROM repo_stream.relay_status WHERE shard = 's1'}));
$s2->safe_psql('postgres', join(';', q{SELECT repo_stream.create_repo('did:plc:bob')},
	post('did:plc:bob', 'h1', 'HIJACKED by s2adm'), q{SELECT repo_stream.rotate_key('did:plc:bob')}), connstr => $s2adm);
$s2->safe_psql('postgres', qq{SELECT repo_stream.import_repo(decode('$car', 'hex'), '$akey')}, connstr => $s2adm);
$s2->safe_psql('postgres', join(';', post('did:plc:alice', 'h1', 'HIJACKED by s2adm'),
	q{SELECT repo_stream.rotate_key('did:plc:alice')}), connstr => $s2adm);
so_wait_applied($relay, 's2', $s2);
is($relay->safe_psql('postgres', q{SELECT string_agg(did || ' ' || shard || ' ' || coalesce(claim_shard, '-'), ',' ORDER BY did)
	FROM repo_stream.relay_repos WHERE did IN ('did:plc:alice', 'did:plc:bob')}),
	'did:plc:alice s1 s2,did:plc:bob s1 s2',
	'while alice and bob are deactivated on s1, s2\'s copies (made by an admin there) are claims, held: s1 hosts them');
is($relay->safe_psql('postgres', "SELECT count(*) FROM repo_stream.event_log WHERE seq > $before{seq}"), '0',
	'nothing of s2\'s copies was relayed');
is($relay->safe_psql('postgres', $rec_sql), $before{rec}, 'alice\'s mirror is unchanged');
is($relay->safe_psql('postgres', $state_sql), $before{state}, 'her key and head are unchanged');
is($relay->safe_psql('postgres', $bob_sql), $before{bob_rec}, 'bob\'s mirror is unchanged');
is($relay->safe_psql('postgres', $bob_state_sql), $before{bob_state}, 'his key and head are unchanged');
$s1->safe_psql('postgres', q{SELECT repo_stream.activate_repo('did:plc:alice'); SELECT repo_stream.activate_repo('did:plc:bob')});
$s1->safe_psql('postgres', post('did:plc:alice', 'a7', 'alice seven'));
$s1->safe_psql('postgres', post('did:plc:bob', 'b3', 'bob three'));
so_wait_applied($relay, 's1', $s1);
is(so_relay_events($relay, 'did:plc:alice', $before{seq}) =~ s/\d+ //gr, 'account,commit',
	's1 activates alice and writes: both relayed');
is(so_relay_events($relay, 'did:plc:bob', $before{seq}) =~ s/\d+ //gr, 'account,commit',
	'and bob\'s');
is($relay->safe_psql('postgres', $rec_sql), $s1->safe_psql('postgres', $rec_sql), 'alice\'s mirror is s1\'s');
is($relay->safe_psql('postgres', $bob_sql), $s1->safe_psql('postgres', $bob_sql), 'bob\'s mirror is s1\'s');
is($relay->safe_psql('postgres', q{SELECT dropped_host FROM repo_stream.relay_status WHERE shard = 's1'}), $before{s1_dropped},
	'none of s1\'s events was dropped');
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.relay_repos WHERE claim_shard IS NOT NULL}), '0',
	'the activation dropped s2\'s claims');
# a deletion on the host hands the repo to no copy that does not carry the
# relay's state: neither s2's earlier copy (its #sync signed by a key for a
# rev before the relay's head), nor a fresh one made after the deletion
# whose #sync verifies but carries another tree (the attacker's repo)
$s1->safe_psql('postgres', q{SELECT repo_stream.delete_repo('did:plc:alice')});
so_wait_applied($relay, 's1', $s1);
is($relay->safe_psql('postgres', q{SELECT r.shard || ' ' || p.status FROM repo_stream.relay_repos r JOIN repo_stream.repos p USING (did) WHERE did = 'did:plc:alice'}),
	's1 deleted', 's1 deletes alice: relayed as a deletion; s2\'s copy is not a move');
$evil->safe_psql('postgres', post('did:plc:alice', '3jzfcijpj2z2c', 'FORGED 3'));
($car, $akey) = split /\|/, $evil->safe_psql('postgres', q{SELECT encode(string_agg(chunk, ''::bytea ORDER BY n), 'hex'),
	repo_stream.repo_key('did:plc:alice') FROM repo_stream.export_repo('did:plc:alice') WITH ORDINALITY AS e(seq, rev, chunk, n)});
$s2->safe_psql('postgres', q{SELECT repo_stream.delete_repo('did:plc:alice')}, connstr => $s2adm);
$s2->safe_psql('postgres', qq{SELECT repo_stream.import_repo(decode('$car', 'hex'), '$akey')}, connstr => $s2adm);
so_wait_applied($relay, 's2', $s2);
is($relay->safe_psql('postgres', q{SELECT r.shard || ' ' || p.status FROM repo_stream.relay_repos r JOIN repo_stream.repos p USING (did) WHERE did = 'did:plc:alice'}),
	's1 deleted', 'nor is a copy of another tree that s2 imports after the deletion');
is($relay->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE record->>'text' LIKE 'HIJACKED%' OR record->>'text' LIKE 'FORGED%'}), '0',
	'nothing of s2\'s copies is mirrored');

done_testing();
