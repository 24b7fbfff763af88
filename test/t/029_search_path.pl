# Every SQL body of repo_stream and repo_stream_router pins search_path, or
# qualifies every name (pg_catalog's functions, operators and types too), so
# look-alikes in a schema on the caller's search_path never run with the
# caller's rights (issue 17: move_repo ran a public.format(text, text, text,
# text) as the superuser moving a repo).
#
# Look-alikes of every function and operator name the sources call
# (RsLookalikes.pm derives the names from src/sql, the router and the SQL
# strings of the C code) are planted in public and in the superuser's own
# schema of every database, each logging its calls.  Then, with search_path
# = "$user", public, pg_catalog (look-alikes first, even over pg_catalog's
# exact signatures), a superuser calls every function of both extensions:
# two shards, a relay and a router (whose connections to the shards are
# sessions with that search_path too), the views worker in a database whose
# default search_path is that one, the logical decoding plugin; and the
# install and upgrade scripts run with look-alikes in the extension's
# schema.  No look-alike may have been called, and each function of both
# extensions must have been called (a new one needs a call here).
use strict;
use warnings;
use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RepoStreamNode;
use RsLookalikes;
use Test::More;
use Time::HiRes qw(usleep);

my $top = "$FindBin::Bin/../..";
my $names = lookalike_names($top);
ok(scalar(grep { $_ eq 'format' } @{ $names->{funcs} }) && scalar(@{ $names->{ops} }) > 10,
	scalar(@{ $names->{funcs} }) . ' names of functions and ' . scalar(@{ $names->{ops} })
	  . ' of operators found in the sources');

my $hostile = q{SET search_path = "$user", public, pg_catalog;};

sub node
{
	my ($name, $conf) = @_;
	my $n = rs_node($name, allows_streaming => 'logical');
	$n->append_conf('postgresql.conf', qq{
output_plugin_libraries = 'pgoutput, test_decoding, repo_stream'
max_worker_processes = 16
max_logical_replication_workers = 6
wal_retrieve_retry_interval = 500ms
} . ($conf // ''));
	$n->start;
	return $n;
}

sub conn_lit
{
	my ($node, $db, $extra) = @_;
	(my $c = $node->connstr($db) . ($extra // '')) =~ s/'/''/g;
	return "'$c'";
}

# s1 runs the views worker in database views
my $s1 = node('sp_shard1', qq{
shared_preload_libraries = 'repo_stream'
repo_stream.views_database = 'views'
repo_stream.views_refresh_interval = 200
});
my $s2 = node('sp_shard2');
my $rt = node('sp_router');		# database router: the router; postgres: a relay
my $su = $s1->safe_psql('postgres', 'SELECT current_user');

for my $s ($s1, $s2)
{
	$s->safe_psql('postgres', q{
		CREATE EXTENSION repo_stream;
		SELECT repo_stream.create_master_key();
		-- the relay's and the router's sessions on the shards: look-alikes first too
		CREATE ROLE rs_router LOGIN SUPERUSER;
		ALTER ROLE rs_router SET search_path = "$user", public, pg_catalog;
	});
}
$s1->safe_psql('postgres', q{
	CREATE DATABASE views;
	SELECT pg_catalog.pg_create_logical_replication_slot('decoded', 'repo_stream');
	CREATE TABLE public.hv_log (seq bigint, did text, action text, path text);
	CREATE FUNCTION public.hv_handler(seq bigint, did text, action text, path text, record jsonb) RETURNS void
		LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
	BEGIN
		INSERT INTO public.hv_log VALUES (seq, did, action, path);
	END $$;
});
$s1->safe_psql('views', q{
	CREATE EXTENSION repo_stream;
	CREATE TABLE public.hv_log (seq bigint, did text, action text, path text);
	CREATE FUNCTION public.hv_handler(seq bigint, did text, action text, path text, record jsonb) RETURNS void
		LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
	BEGIN
		INSERT INTO public.hv_log VALUES (seq, did, action, path);
	END $$;
});
$s2->safe_psql('postgres', 'CREATE DATABASE spare');
$s2->safe_psql('spare', 'CREATE EXTENSION repo_stream');
$rt->safe_psql('postgres', 'CREATE DATABASE router; CREATE EXTENSION repo_stream; CREATE EXTENSION dblink;');
$rt->safe_psql('router', 'CREATE EXTENSION repo_stream_router CASCADE');

# ------------------------------------------------------------ look-alikes

my @planted = (
	[ $s1, 'postgres', 'public', $su, 'rs_router' ], [ $s1, 'views', 'public', $su ],
	[ $s2, 'postgres', 'public', $su, 'rs_router' ], [ $s2, 'spare', 'public', $su, 'rs_router' ],
	[ $rt, 'router', 'public', $su ], [ $rt, 'postgres', 'public', $su ]);
for my $p (@planted)
{
	my ($node, $db, @schemas) = @$p;
	my $made = plant_lookalikes($node, $db, $names, @schemas);
	like($made, qr/^aggregate=\d{2,}\/.*^function=\d{3,}\/.*^operator=\d{3,}\//ms, "look-alikes planted in $db of " . $node->name)
	  or diag $made;
}
my $n_format = $s1->safe_psql('postgres', q{SELECT count(*) FROM pg_catalog.pg_proc
	WHERE proname = 'format' AND pronamespace = 'public'::regnamespace
	  AND proargtypes = '25 25 25 25'::oidvector});
is($n_format, '1', 'among them public.format(text, text, text, text)');

# the views worker's database: every session there, the worker's included
$s1->safe_psql('postgres', q{ALTER DATABASE views SET search_path = "$user", public, pg_catalog});
$s1->restart;

# ------------------------------------------------------- hostile calls

my %covered;	# "<extension> <regprocedure>" => 1

# Run $sql as the superuser with the look-alikes first on search_path;
# it must succeed ($want '') or fail with SQLSTATE $want.
sub hcall
{
	my ($node, $db, $ext, $sql, $want, @sigs) = @_;
	my ($out, $err) = ('', '');
	$node->psql($db, "\\set VERBOSITY verbose\n$hostile\n$sql", stdout => \$out, stderr => \$err,
		on_error_stop => 1);
	my ($state) = $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
	is($state // '', $want, "$sigs[0]: " . ($want ? "SQLSTATE $want" : 'runs') . ' (look-alikes first)')
	  or diag($err);
	$covered{"$ext $_"} = 1 for @sigs;
	return $out;
}
my $R = 'repo_stream';
my $post = '{"text": "hello", "createdAt": "2026-12-07T00:00:00.000Z"}';

# ---- single node (shard s1)
my $key_a = hcall($s1, 'postgres', $R, q{SELECT repo_stream.create_repo('did:plc:pa')}, '',
	'repo_stream.create_repo(text)');
hcall($s1, 'postgres', $R, "SELECT repo_stream.create_repo('did:plc:$_')", '', 'repo_stream.create_repo(text)')
  for qw(pb pc pd);
hcall($s1, 'postgres', $R, "SELECT repo_stream.put_record('did:plc:$_', 'app.bsky.feed.post', 'p1', '$post')", '',
	'repo_stream.put_record(text,text,text,jsonb)') for qw(pa pb pc pd);
hcall($s1, 'postgres', $R, q{SELECT * FROM repo_stream.create_record('did:plc:pa', 'app.bsky.feed.like',
	'{"subject": {"uri": "at://did:plc:pb/app.bsky.feed.post/p1"}, "createdAt": "2026-12-07T00:00:00.000Z"}')},
	'', 'repo_stream.create_record(text,text,jsonb)');
hcall($s1, 'postgres', $R, qq{
	INSERT INTO repo_stream.records (did, collection, rkey, record, cid)
	VALUES ('did:plc:pa', 'app.bsky.feed.post', 'p2', '$post', '');
	UPDATE repo_stream.records SET record = '{"text": "edited"}'
	 WHERE did OPERATOR(pg_catalog.=) 'did:plc:pa' AND rkey OPERATOR(pg_catalog.=) 'p2';
	BEGIN;
	INSERT INTO repo_stream.records (did, collection, rkey, record, cid)
	VALUES ('did:plc:pa', 'app.bsky.feed.post', 'p3', '$post', '');
	DELETE FROM repo_stream.records WHERE did OPERATOR(pg_catalog.=) 'did:plc:pa' AND rkey OPERATOR(pg_catalog.=) 'p3';
	COMMIT;}, '', 'repo_stream.records_trigger()');
hcall($s1, 'postgres', $R, 'TRUNCATE repo_stream.records', '0A000', 'repo_stream.records_trigger()');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.delete_record('did:plc:pa', 'app.bsky.feed.post', 'p2')}, '',
	'repo_stream.delete_record(text,text,text)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.get_record('did:plc:pa', 'app.bsky.feed.post', 'p1')}, '',
	'repo_stream.get_record(text,text,text)');
hcall($s1, 'postgres', $R, q{SELECT * FROM repo_stream.list_records('did:plc:pa', 'app.bsky.feed.post')}, '',
	'repo_stream.list_records(text,text,text,integer)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.repo_key('did:plc:pa')}, '', 'repo_stream.repo_key(text)');
my ($seq1, $frame) = split /\|/, hcall($s1, 'postgres', $R,
	q{SELECT seq, frame FROM repo_stream.events_since(0, 1, ARRAY['did:plc:pa'], ARRAY['commit'])}, '',
	'repo_stream.events_since(bigint,integer,text[],text[])');
hcall($s1, 'postgres', $R, "SELECT repo_stream.frame_to_json('$frame')", '', 'repo_stream.frame_to_json(bytea)');
is(hcall($s1, 'postgres', $R, "SELECT repo_stream.verify_frame('$frame', '$key_a')", '',
	'repo_stream.verify_frame(bytea,text)'), 't', 'the frame verifies');
hcall($s1, 'postgres', $R, "SELECT repo_stream.verify_frame('$frame')", '', 'repo_stream.verify_frame(bytea)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.rotate_key('did:plc:pa')}, '', 'repo_stream.rotate_key(text)');
hcall($s1, 'postgres', $R, q{SELECT * FROM repo_stream.repo_keys('did:plc:pa')}, '', 'repo_stream.repo_keys(text)');
hcall($s1, 'postgres', $R, q{SELECT * FROM repo_stream.verify_repo('did:plc:pa')}, '',
	'repo_stream.verify_repo(text)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.deactivate_repo('did:plc:pc')}, '',
	'repo_stream.deactivate_repo(text)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.activate_repo('did:plc:pc')}, '', 'repo_stream.activate_repo(text)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.delete_repo('did:plc:pc')}, '', 'repo_stream.delete_repo(text)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.prune_events()}, '', 'repo_stream.prune_events()');
hcall($s1, 'postgres', $R, q{SELECT * FROM repo_stream.log_status}, '', 'repo_stream._log_status()');
my $rev = hcall($s1, 'postgres', $R, q{SELECT rev FROM repo_stream.export_repo('did:plc:pa')}, '',
	'repo_stream.export_repo(text,text)');
hcall($s1, 'postgres', $R, "SELECT seq FROM repo_stream.export_repo('did:plc:pa', '$rev')", '',
	'repo_stream.export_repo(text,text)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.record_proof('did:plc:pa', 'app.bsky.feed.post', 'p1')}, '',
	'repo_stream.record_proof(text,text,text)');
hcall($s1, 'postgres', $R, q{SELECT * FROM repo_stream.list_repos()}, '', 'repo_stream.list_repos(text,integer)');
my $cbor = hcall($s1, 'postgres', $R, q{SELECT repo_stream.json_to_cbor('{"a": [1, "x"]}')}, '',
	'repo_stream.json_to_cbor(jsonb)');
hcall($s1, 'postgres', $R, "SELECT repo_stream.cbor_to_json('$cbor')", '', 'repo_stream.cbor_to_json(bytea)');
my $cid = hcall($s1, 'postgres', $R, "SELECT repo_stream.cbor_cid('$cbor')", '', 'repo_stream.cbor_cid(bytea)');
hcall($s1, 'postgres', $R, "SELECT repo_stream.mst_root(ARRAY['app.bsky.feed.post/p1'], ARRAY['$cid'])", '',
	'repo_stream.mst_root(text[],text[])');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.is_valid_did('did:plc:pa'), repo_stream.is_valid_nsid('app.bsky.feed.post'),
	repo_stream.is_valid_rkey('p1'), repo_stream.is_valid_tid(repo_stream.tid_now()),
	repo_stream.is_valid_datetime('2026-12-07T00:00:00Z')}, '',
	'repo_stream.is_valid_did(text)', 'repo_stream.is_valid_nsid(text)', 'repo_stream.is_valid_rkey(text)',
	'repo_stream.is_valid_tid(text)', 'repo_stream.tid_now()', 'repo_stream.is_valid_datetime(text)');
my $pub = hcall($s1, 'postgres', $R, "SELECT repo_stream.did_key_to_public('$key_a')", '',
	'repo_stream.did_key_to_public(text)');
is(hcall($s1, 'postgres', $R, "SELECT repo_stream.did_key_from_public('$pub')", '',
	'repo_stream.did_key_from_public(bytea)'), $key_a, 'did:key round trip');
my ($sealed, $gen_key) = split /\|/, hcall($s1, 'postgres', $R, q{SELECT * FROM repo_stream._keys_generate()}, '',
	'repo_stream._keys_generate()');
my $sig = hcall($s1, 'postgres', $R, "SELECT repo_stream._keys_sign('$sealed', '\\x0102')", '',
	'repo_stream._keys_sign(bytea,bytea)');
is(hcall($s1, 'postgres', $R, "SELECT repo_stream.verify_signature('$gen_key', '\\x0102', '$sig')", '',
	'repo_stream.verify_signature(text,bytea,bytea)'), 't', 'the signature verifies');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.create_master_key()}, '42710', 'repo_stream.create_master_key()');

# views, refreshed by hand
hcall($s1, 'postgres', $R, q{SELECT repo_stream.create_count_view('public.h_counts', 'app.bsky.feed.post', '$did')},
	'', 'repo_stream.create_count_view(text,text,text)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.create_handler_view('public.h_view',
	'public.hv_handler(bigint,text,text,text,jsonb)')}, '', 'repo_stream.create_handler_view(text,regprocedure,text)');
hcall($s1, 'postgres', $R, "SELECT repo_stream.put_record('did:plc:pb', 'app.bsky.feed.post', 'p9', '$post')", '',
	'repo_stream.put_record(text,text,text,jsonb)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.view_count_live('public.h_counts', 'did:plc:pb')}, '',
	'repo_stream.view_count_live(text,text)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.refresh_view('public.h_counts'), repo_stream.refresh_view('public.h_view');
	SELECT * FROM repo_stream.view_status}, '', 'repo_stream.refresh_view(text,integer)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream._view_key('{"a": {"b": "c"}}', ARRAY['a', 'b'])}, '',
	'repo_stream._view_key(jsonb,text[])');
hcall($s1, 'postgres', $R, q{SELECT repo_stream._view_handler_digest('public.hv_handler(bigint,text,text,text,jsonb)')},
	'', 'repo_stream._view_handler_digest(regprocedure)');
hcall($s1, 'postgres', $R, q{SELECT repo_stream.drop_view('public.h_view')}, '', 'repo_stream.drop_view(text)');
# the record helpers' other path: SQL as the caller (another trigger on
# records), whose search_path that SQL runs with
$s1->safe_psql('postgres', q{
	CREATE FUNCTION public.noop_trigger() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
		AS $$ BEGIN RETURN NULL; END $$;
	CREATE TRIGGER user_trigger AFTER INSERT ON repo_stream.records FOR EACH ROW EXECUTE FUNCTION public.noop_trigger();
});
hcall($s1, 'postgres', $R, qq{
	SELECT repo_stream.put_record('did:plc:pb', 'app.bsky.feed.post', 'sql1', '$post');
	SELECT * FROM repo_stream.create_record('did:plc:pb', 'app.bsky.feed.post', '$post');
	SELECT repo_stream.get_record('did:plc:pb', 'app.bsky.feed.post', 'sql1');
	SELECT repo_stream.delete_record('did:plc:pb', 'app.bsky.feed.post', 'sql1');}, '',
	'repo_stream.put_record(text,text,text,jsonb)', 'repo_stream.create_record(text,text,jsonb)',
	'repo_stream.get_record(text,text,text)', 'repo_stream.delete_record(text,text,text)');
$s1->safe_psql('postgres', 'DROP TRIGGER user_trigger ON repo_stream.records');
# the output plugin
hcall($s1, 'postgres', $R,
	q{SELECT pg_catalog.count(*) FROM pg_catalog.pg_logical_slot_get_binary_changes('decoded', NULL, NULL)}, '',
	'the output plugin');

# ---- imports, into shard s2: repos exported from s1
for my $d (qw(pb pd))
{
	my $car = hcall($s1, 'postgres', $R,
		"SELECT pg_catalog.string_agg(chunk, '' ORDER BY n) FROM repo_stream.export_repo('did:plc:$d')"
		  . ' WITH ORDINALITY AS e(seq, rev, chunk, n)', '',
		'repo_stream.export_repo(text,text)');
	my $key = $s1->safe_psql('postgres', "SELECT repo_stream.repo_key('did:plc:$d')");
	if ($d eq 'pb')
	{
		hcall($s2, 'postgres', $R, "SELECT repo_stream.import_repo('$car', '$key')", '',
			'repo_stream.import_repo(bytea,text)');
	}
	else
	{
		hcall($s2, 'postgres', $R, "SELECT pg_catalog.lo_from_bytea(0, '$car') AS lo \\gset\n"
			  . "SELECT repo_stream.import_repo_lo(:lo, '$key')", '',
			'repo_stream.import_repo_lo(oid,text)');
	}
}

# ---- the views worker, in a database whose sessions all have the
# look-alikes first: views made and written there, refreshed by it
hcall($s1, 'views', $R, qq{
	SELECT repo_stream.create_repo('did:plc:vw');
	SELECT repo_stream.create_count_view('public.w_counts', 'app.bsky.feed.post', '\$did');
	SELECT repo_stream.create_handler_view('public.w_view', 'public.hv_handler(bigint,text,text,text,jsonb)');
	SELECT repo_stream.put_record('did:plc:vw', 'app.bsky.feed.post', 'w' OPERATOR(pg_catalog.||) i, '$post')
	  FROM pg_catalog.generate_series(1, 5) i;}, '', 'views in the worker\'s database');
my $caught_up = 0;
for (1 .. 300)
{
	$caught_up = $s1->safe_psql('views', q{SET search_path = pg_catalog;
		SELECT count(*) FROM public.hv_log WHERE path LIKE 'app.bsky.feed.post/w%'}) eq '5' and last;
	usleep(100_000);
}
ok($caught_up, 'the views worker refreshed the handler view in that database');

# ---- relay (database postgres of sp_router)
# the relay's sessions on the shards as rs_router too
hcall($rt, 'postgres', $R,
	"SELECT repo_stream.relay_add_shard('s$_->[0]', " . conn_lit($_->[1], 'postgres', ' user=rs_router') . ')', '',
	'repo_stream.relay_add_shard(text,text)') for [ 1, $s1 ], [ 2, $s2 ];
hcall($rt, 'postgres', $R, q{SELECT * FROM repo_stream._relay_query('s1', 'SELECT 1') AS t(x int)}, '',
	'repo_stream._relay_query(text,text)');
hcall($rt, 'postgres', $R, q{SELECT repo_stream._relay_mask_conninfo('postgresql://u:pw@h/db'),
	repo_stream._relay_mask_conninfo('host=h password=pw')}, '', 'repo_stream._relay_mask_conninfo(text)');
hcall($rt, 'postgres', $R, "SELECT repo_stream._relay_ingest('s1', $seq1, '$frame')", '',
	'repo_stream._relay_ingest(text,bigint,bytea)');
hcall($rt, 'postgres', $R, q{SELECT repo_stream._relay_sync_repo('s1', 'did:plc:pa', false)}, '',
	'repo_stream._relay_sync_repo(text,text,boolean)');
hcall($rt, 'postgres', $R, q{SELECT repo_stream._relay_finish_backfill('s1')}, '',
	'repo_stream._relay_finish_backfill(text)');
hcall($rt, 'postgres', $R, q{SELECT repo_stream.relay_resync('did:plc:pa'), repo_stream.relay_resync()}, '',
	'repo_stream.relay_resync(text)');
hcall($rt, 'postgres', $R, q{SELECT * FROM repo_stream._relay_lag('s1'); SELECT * FROM repo_stream.relay_status}, '',
	'repo_stream._relay_lag(text)');
# a new event on s1 reaches the relay through its subscription (the trigger
# in the apply worker), and the trigger outside an apply worker
hcall($s1, 'postgres', $R, "SELECT repo_stream.put_record('did:plc:pa', 'app.bsky.feed.post', 'late', '$post')", '',
	'repo_stream.put_record(text,text,text,jsonb)');
my $relayed = 0;
for (1 .. 300)
{
	$relayed = $rt->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records
		WHERE did = 'did:plc:pa' AND rkey = 'late'}) eq '1' and last;
	usleep(100_000);
}
ok($relayed, 'the relay applied the new event');
hcall($rt, 'postgres', $R, qq{SET session_replication_role = replica;
	INSERT INTO repo_stream.event_log (seq, segment, did, kind, frame) VALUES (900000000, 0, 'did:plc:pa', 'commit', '$frame')},
	'', 'repo_stream.relay_event_trigger()');

# ---- router (database router of sp_router), its sessions on the shards
# as rs_router too
hcall($rt, 'router', 'router', "SELECT repo_stream.router_add_shard('$_->[0]', "
	  . conn_lit($_->[1], $_->[2], ' user=rs_router') . ')', '',
	'repo_stream.router_add_shard(text,text)') for [ 's1', $s1, 'postgres' ], [ 's2', $s2, 'postgres' ],
  [ 'spare', $s2, 'spare' ];
hcall($rt, 'router', 'router', q{SELECT repo_stream.router_remove_shard('spare')}, '',
	'repo_stream.router_remove_shard(text)');
hcall($rt, 'router', 'router', q{SELECT repo_stream._router_configure()}, '', 'repo_stream._router_configure()');
hcall($rt, 'router', 'router', q{SELECT repo_stream._router_connections(repo_stream._router_dblink())}, '',
	'repo_stream._router_connections(text)', 'repo_stream._router_dblink()');
hcall($rt, 'router', 'router', "SELECT repo_stream.create_repo('did:plc:$_')", '', 'repo_stream.create_repo(text)')
  for qw(ra rb);
hcall($rt, 'router', 'router', "SELECT repo_stream.put_record('did:plc:$_', 'app.bsky.feed.post', 'r1', '$post')", '',
	'repo_stream.put_record(text,text,text,jsonb)') for qw(ra rb);
hcall($rt, 'router', 'router', q{SELECT * FROM repo_stream.create_record('did:plc:ra', 'app.bsky.feed.post',
	'{"text": "x"}')}, '', 'repo_stream.create_record(text,text,jsonb)');
hcall($rt, 'router', 'router', q{SELECT repo_stream.delete_record('did:plc:ra', 'app.bsky.feed.post', 'r1')}, '',
	'repo_stream.delete_record(text,text,text)');
hcall($rt, 'router', 'router', q{SELECT repo_stream.get_record('did:plc:rb', 'app.bsky.feed.post', 'r1'),
	repo_stream.repo_key('did:plc:rb')}, '', 'repo_stream.get_record(text,text,text)', 'repo_stream.repo_key(text)');
hcall($rt, 'router', 'router', q{SELECT repo_stream._route('did:plc:ra', true), repo_stream._route_new('did:plc:rz')},
	'', 'repo_stream._route(text,boolean)', 'repo_stream._route_new(text)');
my %where = map { split /\|/ } split /\n/,
  $rt->safe_psql('router', q{SELECT did, shard FROM repo_stream.directory WHERE did IN ('did:plc:ra', 'did:plc:rb')});
my %other = (s1 => 's2', s2 => 's1');
SKIP:
{
	skip 'the router has no repos to move', 7
	  unless ($where{'did:plc:ra'} // '') =~ /^s[12]$/ && ($where{'did:plc:rb'} // '') =~ /^s[12]$/;
# a move runs every step (each a function of the router's schema)
my @move_steps = map { "repo_stream.$_" } split ' ', 'move_repo(text,text) _move_begin(text,text) _move_settle(text)
  _move_connect(text,text) _move_disconnect(text) _move_query(text,text) _move_app(text) _move_lock_key(text)
  _move_fence(text,text,text) _move_unlock(text) _move_copy(text) _move_settle_locked(text)
  _move_end(text,text,text[])';
hcall($rt, 'router', 'router', "CALL repo_stream.move_repo('did:plc:ra', '$other{$where{'did:plc:ra'}}')", '',
	@move_steps);
is($rt->safe_psql('router', q{SELECT shard FROM repo_stream.directory WHERE did = 'did:plc:ra'}),
	$other{ $where{'did:plc:ra'} }, 'the repo moved');
# a move refused up front: the new shard holds another repo of the DID
my %shard_node = (s1 => $s1, s2 => $s2);
my $rb_to = $shard_node{ $other{ $where{'did:plc:rb'} } };
$rb_to->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:rb')});
hcall($rt, 'router', 'router', "CALL repo_stream.move_repo('did:plc:rb', '$other{$where{'did:plc:rb'}}')", '42710',
	'repo_stream.move_repo(text,text)');
is($rt->safe_psql('router', q{SELECT shard || ' ' || (moving_to IS NULL) FROM repo_stream.directory WHERE did = 'did:plc:rb'}),
	"$where{'did:plc:rb'} true", 'the refused move left the repo where it was');
# a move that fails on the new shard (a deleted repo of the DID there, at a
# later rev than the CAR's: import_repo refuses it) is rolled back: the old
# copy activated again
$rb_to->safe_psql('postgres', q{SELECT repo_stream.delete_repo('did:plc:rb')});
hcall($rt, 'router', 'router', "CALL repo_stream.move_repo('did:plc:rb', '$other{$where{'did:plc:rb'}}')", '42710',
	@move_steps);
is($rt->safe_psql('router', q{SELECT shard || ' ' || (moving_to IS NULL) FROM repo_stream.directory WHERE did = 'did:plc:rb'}),
	"$where{'did:plc:rb'} true", 'the failed move left the repo where it was');
is($shard_node{ $where{'did:plc:rb'} }->safe_psql('postgres',
	q{SELECT status FROM repo_stream.repos WHERE did = 'did:plc:rb'}), 'active', 'active again');
}
# a move left marked (as a crash leaves it): recovery rolls it back
$rt->safe_psql('router', q{UPDATE repo_stream.directory SET moving_to = CASE shard WHEN 's1' THEN 's2' ELSE 's1' END
	WHERE did = 'did:plc:rb'});
like(hcall($rt, 'router', 'router', q{SELECT outcome FROM repo_stream.router_recover_moves()}, '',
	'repo_stream.router_recover_moves()', 'repo_stream._move_settle(text)'), qr/^rolled back$/,
	'router_recover_moves() rolls back a move whose import never ran');

# ------------------------------------------------- install and upgrade scripts
# CREATE EXTENSION and ALTER EXTENSION UPDATE run with search_path = the
# extension's schema (pg_catalog implicitly first): a look-alike there only
# wins where pg_catalog's is not exact, as format(text, int, int) over
# format(text, VARIADIC "any").
for my $case ([ $s2, 'inst', 'repo_stream', '' ], [ $s2, 'upg', 'repo_stream', '0.1.0' ],
	[ $rt, 'rinst', 'repo_stream_router', '' ], [ $rt, 'rupg', 'repo_stream_router', '0.1.0' ])
{
	my ($node, $db, $ext, $from) = @$case;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	if ($from)
	{
		$node->safe_psql($db, "CREATE EXTENSION $ext VERSION '$from' CASCADE");
		plant_lookalikes($node, $db, $names, 'repo_stream');
		my ($ret, $out, $err) = $node->psql($db, "ALTER EXTENSION $ext UPDATE");
		is($ret, 0, "ALTER EXTENSION $ext UPDATE from $from with look-alikes in its schema") or diag $err;
	}
	else
	{
		plant_lookalikes($node, $db, $names, 'repo_stream');
		my ($ret, $out, $err) = $node->psql($db, "CREATE EXTENSION $ext CASCADE");
		is($ret, 0, "CREATE EXTENSION $ext with look-alikes in its schema") or diag $err;
	}
	push @planted, [ $node, $db ];
}
# and the upgrade gives the SQL bodies and settings a fresh install has
my $bodies = q{SELECT string_agg(p.oid::regprocedure || ' ' || coalesce(p.proconfig::text, '') || ' ' || p.prosrc,
		E'\n' ORDER BY p.oid::regprocedure::text)
	  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid JOIN pg_language l ON l.oid = p.prolang
	 WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = '%s') AND l.lanname IN ('sql', 'plpgsql')};
is($s2->safe_psql('upg', sprintf($bodies, 'repo_stream')), $s2->safe_psql('inst', sprintf($bodies, 'repo_stream')),
	'repo_stream: the upgraded SQL bodies are the installed ones');
is($rt->safe_psql('rupg', sprintf($bodies, 'repo_stream_router')),
	$rt->safe_psql('rinst', sprintf($bodies, 'repo_stream_router')),
	'repo_stream_router: the upgraded SQL bodies are the installed ones');

# ------------------------------------------------------------- verdicts

for my $p (@planted)
{
	my ($node, $db) = @$p;
	is(lookalike_hits($node, $db), '', "no look-alike was called in $db of " . $node->name);
}
for my $node ($s1, $s2, $rt)
{
	is(lookalike_warnings($node), '', 'nor in a rolled-back transaction (server log of ' . $node->name . ')');
}

# every function of both extensions was called above
for my $e ([ $s1, 'postgres', 'repo_stream', $R ], [ $rt, 'router', 'repo_stream_router', 'router' ])
{
	my ($node, $db, $ext, $tag) = @$e;
	my @all = split /\n/, $node->safe_psql($db, qq{
		SELECT p.oid::regprocedure FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
		 WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
		   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = '$ext') ORDER BY 1});
	ok(@all > 10, "$ext has " . scalar(@all) . ' functions');
	is(join(', ', grep { !$covered{"$tag $_"} } @all), '', "every function of $ext was called with look-alikes first");
	# and every SQL body but a procedure's (which cannot have SET and
	# commits) pins search_path
	is($node->safe_psql($db, qq{
		SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
		  JOIN pg_language l ON l.oid = p.prolang
		 WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
		   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = '$ext')
		   AND l.lanname IN ('sql', 'plpgsql') AND p.prokind <> 'p'
		   AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)}), '',
		"every SQL and PL/pgSQL function of $ext has SET search_path = pg_catalog, pg_temp");
}

done_testing();
