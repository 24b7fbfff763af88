# Moving a repo between two clusters with the command-line client: export
# from the first, import into the second (same records, same MST root, a
# fresh key), the second streams a #sync for it (event log and logical
# slot), the first can then delete it, and the repo takes writes where it
# landed.  Also: backup and restore of a whole database (manifest, skipped
# inactive repos, a refused repo not stopping the others), and the progress
# a DBA sees in pg_stat_activity during a long export and import.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use RepoStreamCar;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use File::Temp qw(tempdir);
use Time::HiRes qw(usleep);

my @nodes;
for my $name ('origin', 'target')
{
	my $node = rs_node($name, allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', "output_plugin_libraries = 'pgoutput, test_decoding, repo_stream'\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION repo_stream; SELECT repo_stream.create_master_key();');
	push @nodes, $node;
}
my ($origin, $target) = @nodes;
my $dir = tempdir(CLEANUP => 1);

sub cli
{
	my ($node, @args) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ 'repo_stream_car', @args, '-d', $node->connstr('postgres') ],
		'>', \$out, '2>', \$err);
	return ($ok, $out, $err);
}

# ------------------------------------------------------------- the origin

$origin->safe_psql('postgres', q{
	SELECT repo_stream.create_repo(d) FROM unnest(ARRAY['did:plc:mig', 'did:plc:stay', 'did:plc:off']) d;
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:mig', c, 'r' || i, jsonb_build_object('$type', c, 'text', 'post ' || (i % 500), 'i', i % 17)
	FROM generate_series(1, 3000) i,
	     LATERAL (SELECT (ARRAY['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.graph.follow'])[i % 3 + 1] AS c) col;
	UPDATE repo_stream.records SET record = record || '{"edited": true}' WHERE did = 'did:plc:mig' AND rkey LIKE 'r1%';
	DELETE FROM repo_stream.records WHERE did = 'did:plc:mig' AND rkey LIKE 'r2%';
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:stay', 'app.bsky.feed.post', 's' || i, jsonb_build_object('text', 'stay ' || i)
	FROM generate_series(1, 50) i;
	SELECT repo_stream.deactivate_repo('did:plc:off');
});
my $origin_key = $origin->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:mig')});

# -------------------------------------------------------- export, import

my ($ok, $out, $err) = cli($origin, 'export', 'did:plc:mig', "$dir/mig.car");
ok($ok, 'repo_stream_car export') or diag($err);
like($err, qr/did:plc:mig, rev \w{13}, seq \d+, \d+ bytes/, 'export reports rev, seq and size');
my $car = slurp_file("$dir/mig.car");
my $sql_car = car_from_hex($origin->safe_psql('postgres',
	q{SELECT string_agg(chunk, ''::bytea ORDER BY n) FROM repo_stream.export_repo('did:plc:mig') WITH ORDINALITY AS e(s, r, chunk, n)}));
ok($car eq $sql_car, 'the file is export_repo\'s CAR, byte for byte (' . length($car) . ' bytes)');
my ($records) = car_records($car);
is(scalar(keys %$records), $origin->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE did = 'did:plc:mig'}),
	'the CAR holds every record');

($ok, $out, $err) = cli($origin, 'export', 'did:plc:mig', '-P', '-');
ok($ok && $out eq $car, 'export to stdout');
like($err, qr/did:plc:mig [\d.]+ MB/, 'export shows progress with -P');

$target->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('arrivals', 'repo_stream')});
($ok, $out, $err) = cli($target, 'import', '--did-key', $origin_key, "$dir/mig.car");
ok($ok, 'repo_stream_car import') or diag($err);
chomp(my $new_key = $out);
like($new_key, qr/^did:key:z6Mk/, 'import prints the new did:key');
isnt($new_key, $origin_key, 'the repo has a fresh signing key where it landed');
is($target->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:mig')}), $new_key, 'and it is the repo key');

my $records_sql = q{SELECT collection, rkey, cid, record::text FROM repo_stream.records WHERE did = 'did:plc:mig' ORDER BY 1, 2};
is($target->safe_psql('postgres', $records_sql), $origin->safe_psql('postgres', $records_sql),
	'the same records, CIDs and JSON');
my $root_sql = q{SELECT encode(data_cid, 'hex') FROM repo_stream.repos WHERE did = 'did:plc:mig'};
is($target->safe_psql('postgres', $root_sql), $origin->safe_psql('postgres', $root_sql), 'the same MST root');
is($target->safe_psql('postgres', q{SELECT string_agg(check_name || '=' || ok, ' ') FROM repo_stream.verify_repo('did:plc:mig')}),
	'repo=true records=true mst=true mst_nodes=true head_commit=true events=true', 'the imported repo verifies');

# the #sync: in the log, and through the slot
is($target->safe_psql('postgres', qq{
	SELECT string_agg(j->'header'->>'t' || ' ' || (j->'body'->>'did') || ' ' || repo_stream.verify_frame(e.frame, '$new_key'), ',')
	FROM repo_stream.events_since(0) e, repo_stream.frame_to_json(e.frame) j}),
	'#sync did:plc:mig true', 'the target logs one #sync, signed by the new key');
is($target->safe_psql('postgres', qq{
	SELECT string_agg(j->'header'->>'t' || ' ' || (j->'body'->>'did') || ' ' || repo_stream.verify_frame(c.data, '$new_key'), ',')
	FROM pg_logical_slot_get_binary_changes('arrivals', NULL, NULL) c, repo_stream.frame_to_json(c.data) j}),
	'#sync did:plc:mig true', 'and streams it through its logical slot');

# the origin lets go; the repo lives on at the target
$origin->safe_psql('postgres', q{SELECT repo_stream.delete_repo('did:plc:mig')});
my ($rc, $o, $e) = $origin->psql('postgres', q{SELECT count(*) FROM repo_stream.export_repo('did:plc:mig')});
like($e, qr/does not exist/, 'the origin deleted the repo: no more export there');
$target->safe_psql('postgres', q{SELECT repo_stream.put_record('did:plc:mig', 'app.bsky.feed.post', 'after', '{"text": "moved"}')});
is($target->safe_psql('postgres', qq{
	SELECT j->'body'->>'since' = (SELECT j2->'body'->>'rev' FROM repo_stream.events_since(0) e2, repo_stream.frame_to_json(e2.frame) j2
	                               WHERE j2->'header'->>'t' = '#sync')
	       AND repo_stream.verify_frame(e.frame, '$new_key')
	FROM repo_stream.events_since(0) e, repo_stream.frame_to_json(e.frame) j WHERE j->'header'->>'t' = '#commit'}),
	't', 'the next write is a #commit chained to the #sync');

# importing it again is refused (42710), and the failure leaves nothing
($ok, $out, $err) = cli($target, 'import', '--did-key', $origin_key, "$dir/mig.car");
ok(!$ok, 'a second import of the same DID fails');
like($err, qr/already exists/, 'with "already exists"');
is($target->safe_psql('postgres', q{SELECT count(*) FROM pg_largeobject_metadata}), '0', 'and leaves no large object behind');

# --------------------------------------------------------- backup, restore

($ok, $out, $err) = cli($origin, 'backup', '-P', "$dir/backup");
ok($ok, 'repo_stream_car backup') or diag($err);
like($err, qr/backup \[#+\]\s+100%/, 'backup shows a progress bar with -P');
my @manifest = grep { !/^#/ } split /\n/, slurp_file("$dir/backup/manifest.tsv");
is(scalar(@manifest), 3, 'the manifest lists every repo of the origin');
like(join("\n", @manifest), qr/^did:plc:off\t\t\t\t\t\tdeactivated$/m, 'a deactivated repo is listed, not exported');
like(join("\n", @manifest), qr/^did:plc:stay\tdid:plc:stay\.car\t\w{13}\t\d+\tdid:key:z6Mk\w+\t\d+\tactive$/m,
	'an active repo: file, rev, seq, the key that signed it, size');
ok(-s "$dir/backup/did:plc:stay.car", 'its CAR is there');

# restore into the target, where did:plc:stay is refused because it exists
$target->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:stay')});
($ok, $out, $err) = cli($target, 'restore', "$dir/backup");
ok(!$ok, 'restore reports a refused repo with a failing exit status');
like($err, qr/did:plc:stay.*already exists/s, 'and names it');
$target->safe_psql('postgres', q{SELECT repo_stream.delete_repo('did:plc:stay')});
my $third = rs_node('third');
$third->start;
$third->safe_psql('postgres', 'CREATE EXTENSION repo_stream; SELECT repo_stream.create_master_key();');
($ok, $out, $err) = cli($third, 'restore', "$dir/backup");
ok($ok, 'restore into an empty database') or diag($err);
is($third->safe_psql('postgres', q{SELECT string_agg(did || ':' || status, ',' ORDER BY did) FROM repo_stream.repos}),
	'did:plc:stay:active', 'restored the active repo');
my $stay_sql = q{SELECT rkey, cid, record::text FROM repo_stream.records WHERE did = 'did:plc:stay' ORDER BY 1};
is($third->safe_psql('postgres', $stay_sql), $origin->safe_psql('postgres', $stay_sql), 'with the same records');
($ok, $out, $err) = cli($third, 'list');
like($out, qr/^did:plc:stay\t\w{13}\t\d+\tactive$/m, 'list prints the repos');

# ------------------------------------------------- progress in pg_stat_activity

$origin->safe_psql('postgres', q{
	SELECT repo_stream.create_repo('did:plc:big');
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:big', 'app.bsky.feed.post', 'b' || i, jsonb_build_object('text', md5(i::text)) FROM generate_series(1, 60000) i;
});
my $exporter = $origin->background_psql('postgres');
$exporter->query_safe(q{BEGIN; DECLARE c NO SCROLL CURSOR FOR SELECT x FROM (SELECT repo_stream.export_repo('did:plc:big') AS x) s});
$exporter->query_safe('FETCH 1 FROM c');
like($origin->safe_psql('postgres', q{SELECT query FROM pg_stat_activity WHERE query LIKE 'repo_stream export_repo%'}),
	qr/^repo_stream export_repo\(did:plc:big\): \d+ records, \d+ MST nodes, [\d.]+ MB sent$/,
	'an export in progress shows its counts in pg_stat_activity.query');
$exporter->query_safe('COMMIT');
$exporter->quit;

($ok, $out, $err) = cli($origin, 'export', 'did:plc:big', "$dir/big.car");
my $big_key = $origin->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:big')});
my $importer = IPC::Run::start([ 'repo_stream_car', 'import', '-q', '--did-key', $big_key, "$dir/big.car",
	'-d', $target->connstr('postgres') ], '>', \$out, '2>', \$err);
my %seen;
while ($importer->pumpable)
{
	my $q = $target->safe_psql('postgres', q{SELECT query FROM pg_stat_activity WHERE query LIKE 'repo_stream import_repo%'});
	$seen{reading} = 1 if $q =~ /^repo_stream import_repo: reading the CAR/;
	$seen{checking} = 1 if $q =~ /^repo_stream import_repo\(did:plc:big\): checking records, \d+ done$/;
	$seen{writing} = 1 if $q =~ /^repo_stream import_repo\(did:plc:big\): writing records, \d+ of 60000$/;
	$importer->pump_nb;
	usleep(5_000);
}
ok($importer->finish, 'the big import finished') or diag($err);
ok($seen{checking} || $seen{writing},
	'an import in progress shows its phase in pg_stat_activity.query (' . join(', ', sort keys %seen) . ')');
is($target->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE did = 'did:plc:big'}), '60000',
	'60,000 records imported');

# the same CAR with its blocks in reverse order, bigger than the large
# object reader's window: order does not matter, reads are by offset
{
	my ($root, $blocks) = car_read(slurp_file("$dir/big.car"));
	open my $fh, '>:raw', "$dir/big-reversed.car" or die;
	print $fh car_write($root, [ reverse @$blocks ]);
	close $fh;
	cmp_ok(-s "$dir/big-reversed.car", '>', 4 * 1024 * 1024, 'the reversed CAR is over 4 MB');
	($ok, $out, $err) = cli($third, 'import', '--did-key', $big_key, "$dir/big-reversed.car");
	ok($ok, 'a CAR in reverse block order imports') or diag($err);
	is($third->safe_psql('postgres', q{SELECT encode(data_cid, 'hex') FROM repo_stream.repos WHERE did = 'did:plc:big'}),
		$origin->safe_psql('postgres', q{SELECT encode(data_cid, 'hex') FROM repo_stream.repos WHERE did = 'did:plc:big'}),
		'with the same MST root');
}

done_testing();
