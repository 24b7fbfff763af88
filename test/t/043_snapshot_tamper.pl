# import_repo refuses a tampered CAR for each of its checks, before it
# writes anything: no row anywhere (repos, keys, key history, records,
# nodes, events, large objects), no seq drawn, and no row even written and
# rolled back (a test trigger on the tables would say so).  The CARs are a
# real 600-record export from another cluster, changed deep inside (the
# last record in key order, with every node above it re-linked and the
# commit re-signed with the repo's own key, so only the check under test
# can catch it), or small CARs built with test/snapshot_car.sql.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use RepoStreamCar;
use PostgreSQL::Test::Utils;
use Test::More;

my $origin = rs_node('tamper_origin');
$origin->start;
my $target = rs_node('tamper_target');
$target->start;
for my $node ($origin, $target)
{
	$node->safe_psql('postgres', 'CREATE EXTENSION repo_stream; SELECT repo_stream.create_master_key();');
	$node->psql('postgres', undef, extra_params => [ '-f', 'test/snapshot_car.sql' ], on_error_die => 1);
}

$origin->safe_psql('postgres', q{
	SELECT repo_stream.create_repo('did:plc:t1');
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:t1', c, 'r' || lpad(i::text, 4, '0'), jsonb_build_object('$type', c, 'text', 'post ' || i)
	FROM generate_series(1, 600) i,
	     LATERAL (SELECT (ARRAY['app.bsky.feed.post', 'app.bsky.feed.like'])[i % 2 + 1] AS c) col;
});
my $key = $origin->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:t1')});
my $car = car_from_hex($origin->safe_psql('postgres',
	q{SELECT snaptest.export('did:plc:t1')}));
my ($root, $blocks) = car_read($car);
my ($records, $commit) = car_records($car);
my $last_key = (sort keys %$records)[-1];
note("last key $last_key");

# the tables an import writes, and the seq, as one string
my $state_sql = q{
	SELECT format('repos=%s keys=%s history=%s records=%s nodes=%s events=%s lo=%s seq=%s',
		(SELECT count(*) FROM repo_stream.repos), (SELECT count(*) FROM repo_stream.repo_keys),
		(SELECT count(*) FROM repo_stream.repo_key_history), (SELECT count(*) FROM repo_stream.records),
		(SELECT count(*) FROM repo_stream.mst_nodes), (SELECT count(*) FROM repo_stream.event_log),
		(SELECT count(*) FROM pg_largeobject_metadata),
		(SELECT CASE WHEN is_called THEN last_value END FROM repo_stream.event_seq))};

# a row written to any of them, even one rolled back later, says so
$target->safe_psql('postgres', q{
	CREATE FUNCTION public.written() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN RAISE WARNING 'row written to %', TG_TABLE_NAME; RETURN NEW; END $$;
	CREATE TRIGGER zz_written BEFORE INSERT ON repo_stream.repos FOR EACH ROW EXECUTE FUNCTION public.written();
	CREATE TRIGGER zz_written BEFORE INSERT ON repo_stream.repo_keys FOR EACH ROW EXECUTE FUNCTION public.written();
	CREATE TRIGGER zz_written BEFORE INSERT ON repo_stream.mst_nodes FOR EACH ROW EXECUTE FUNCTION public.written();
	CREATE TRIGGER zz_written BEFORE INSERT ON repo_stream.records FOR EACH ROW EXECUTE FUNCTION public.written();
});
my $before = $target->safe_psql('postgres', $state_sql);

# A commit over a new root, signed by did:plc:t1's own key at the origin.
sub resign
{
	my ($data_root, %opt) = @_;
	my $did = $opt{did} // 'did:plc:t1';
	my $version = $opt{version} // 3;
	my $hex = $origin->safe_psql('postgres', qq{
		WITH c AS (SELECT jsonb_build_object('did', '$did', 'rev', '$commit->{rev}',
		               'data', jsonb_build_object('\$link', '} . cid_text($data_root) . qq{'),
		               'prev', null, 'version', $version) AS c)
		SELECT repo_stream.json_to_cbor(c || jsonb_build_object('sig', jsonb_build_object('\$bytes',
		         snaptest.b64(repo_stream._keys_sign(k.sealed, repo_stream.json_to_cbor(c))))))
		FROM c, repo_stream.repo_keys k WHERE k.did = 'did:plc:t1'});
	return car_from_hex($hex);
}

# The export with the last record's bytes replaced, everything re-linked and re-signed.
sub with_last_record
{
	my ($bytes) = @_;
	my $old = (grep { cid_text($_->[0]) eq $records->{$last_key} } @$blocks)[0][0];
	my ($nb, $new_root) = car_replace_block([ grep { $_->[0] ne $root } @$blocks ], $commit->{data}{link}, $old, $bytes);
	my $c = resign($new_root);
	return car_write(cid_of($c), [ [ cid_of($c), $c ], @$nb ]);
}


# name => [CAR, SQLSTATE, message pattern]
my @cases = (
	[ 'truncated', substr($car, 0, length($car) - 10), '22P03', qr/malformed at byte \d+/ ],
	[ 'trailing garbage', $car . "\x05\x01", '22P03', qr/malformed at byte \d+/ ],
	[ 'a byte of the last block flipped', substr($car, 0, -1) . chr(ord(substr($car, -1)) ^ 1), '22P03',
	  qr/CAR block bafyrei\w+ at byte \d+: its bytes do not hash to its CID/ ],
	[ 'a commit signed by another key', $car, '22023', qr/does not verify/ ],
	[ 'a version 2 commit', do { my $c = resign($commit->{data}{link}, version => 2);
		car_write(cid_of($c), [ [ cid_of($c), $c ], grep { $_->[0] ne $root } @$blocks ]) },
	  '22023', qr/not a valid signed v3 commit: commit version is not 3/ ],
	[ 'a commit whose tree is not in the CAR', do { my $c = resign(cid_of("\xa0"));
		car_write(cid_of($c), [ [ cid_of($c), $c ], grep { $_->[0] ne $root } @$blocks ]) },
	  '22023', qr/MST node bafyrei\w+ is missing/ ],
	[ 'a non-canonical MST (root is a lone left link)', do {
		my $lone = "\xa2\x61e\x80\x61l\xd8\x2a\x58\x25\x00" . $commit->{data}{link};
		my $c = resign(cid_of($lone));
		car_write(cid_of($c), [ [ cid_of($c), $c ], [ cid_of($lone), $lone ], grep { $_->[0] ne $root } @$blocks ]) },
	  '22023', qr/only a left subtree/ ],
	[ 'the last record missing', car_write($root, [ grep { cid_text($_->[0]) ne $records->{$last_key} } @$blocks ]),
	  '22023', qr/record "\Q$last_key\E" \(bafyrei\w+\) is not in the CAR/ ],
	[ 'the last record not DAG-CBOR (a float)', with_last_record("\xa1\x61a\xf9\x3c\x00"),
	  '22P03', qr/record "\Q$last_key\E" .* is not valid DAG-CBOR at byte 3: floats are not allowed/ ],
	[ 'the last record not a map', with_last_record("\x82\x01\x02"),
	  '22023', qr/record "\Q$last_key\E" .* is not a map/ ],
	[ 'the last record over 1,000,000 bytes', with_last_record("\xa1\x61b\x5a\x00\x0f\x42\x39" . ("\0" x 999993)),
	  '54000', qr/record "\Q$last_key\E" .* is 1000001 bytes of DAG-CBOR; the limit is 1000000/ ],
	[ 'the last record using the reserved key "$link" for a string', with_last_record("\xa1\x65\$link\x78\x3b"
		  . 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a'),
	  '22023', qr/(?s)the key "\$link", which the atproto data model reserves.*CONTEXT:  record "\Q$last_key\E"/ ],
	[ 'a record under an invalid key', car_from_hex($origin->safe_psql('postgres', q{
		SELECT snaptest.one_record_car('did:plc:t1', 'nocollection/a', repo_stream.json_to_cbor('{"text": "a"}'),
		       (SELECT sealed FROM repo_stream.repo_keys WHERE did = 'did:plc:t1'))})),
	  '22023', qr{MST key "nocollection/a" is not <collection NSID>/<record key>} ],
	[ 'the last record holding a NUL character', with_last_record("\xa1\x61t\x63a\x00b"),
	  '22P05', qr/\Q$last_key\E/ ],
);
# the signature case: the CAR as it is, checked with a key that did not sign it
my $other_key = $target->safe_psql('postgres', q{SELECT did_key FROM repo_stream._keys_generate()});

for my $c (@cases)
{
	my ($name, $bytes, $state, $pattern) = @$c;
	my $hex = unpack('H*', $bytes);
	my $did_key = $name eq 'a commit signed by another key' ? $other_key : $key;
	my ($rc, $out, $err) = $target->psql('postgres',
		"\\set VERBOSITY verbose\nBEGIN;\nSELECT repo_stream.import_repo('\\x$hex'::bytea, '$did_key');\nCOMMIT;");
	like($err, qr/ERROR:  $state: cannot import the CAR: |ERROR:  $state: /, "$name: refused with $state");
	like($err, $pattern, "$name: the message names what is wrong");
	unlike($err, qr/row written/, "$name: checked before any row was written");
	is($target->safe_psql('postgres', $state_sql), $before, "$name: no row, no seq");
}

# the large object path and a caller's savepoint: the same
{
	my $hex = unpack('H*', with_last_record("\x82\x01\x02"));
	my ($rc, $out, $err) = $target->psql('postgres', qq{
		BEGIN;
		SELECT lo_from_bytea(4242, '\\x$hex');
		SAVEPOINT s;
		SELECT repo_stream.import_repo_lo(4242, '$key');
		ROLLBACK TO s;
		SELECT lo_unlink(4242);
		COMMIT;});
	like($err, qr/is not a map/, 'from a large object: refused');
	unlike($err, qr/row written/, 'from a large object: checked before any row was written');
	is($target->safe_psql('postgres', $state_sql), $before, 'from a large object, in a savepoint: no row, no seq');
}

# a DID that is already here: 42710, nothing changed
$target->safe_psql('postgres', q{SELECT repo_stream.create_repo('did:plc:t1')});
my $with_t1 = $target->safe_psql('postgres', $state_sql);
my ($rc, $out, $err) = $target->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT repo_stream.import_repo('\\x" . unpack('H*', $car) . "'::bytea, '$key')");
like($err, qr/ERROR:  42710: repo "did:plc:t1" already exists/, 'an existing DID: 42710');
is($target->safe_psql('postgres', $state_sql), $with_t1, 'an existing DID: nothing changed');
$target->safe_psql('postgres', q{SELECT repo_stream.delete_repo('did:plc:t1')});
$target->safe_psql('postgres', q{DELETE FROM repo_stream.repos WHERE did = 'did:plc:t1'});

# and the untampered CAR imports (the trigger speaks, the rows are there)
($rc, $out, $err) = $target->psql('postgres',
	"SELECT repo_stream.import_repo('\\x" . unpack('H*', $car) . "'::bytea, '$key') IS NOT NULL");
is($out, 't', 'the untampered CAR imports');
like($err, qr/row written to records/, 'and writes its rows');
is($target->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE did = 'did:plc:t1'}), '600', '600 records');

done_testing();
