# The extension in a server configured the way the README tells DBAs to:
# wal_level=logical and repo_stream listed in output_plugin_libraries (written
# unquoted through ALTER SYSTEM).  Values written before a crash restart read
# back identically, and concurrent backends agree on CIDs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = rs_node('main', allows_streaming => 'logical');
$node->start;

$node->safe_psql('postgres',
	'ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, repo_stream');
$node->reload;
is($node->safe_psql('postgres', 'SHOW output_plugin_libraries'),
	'pgoutput, test_decoding, repo_stream', 'unquoted list parses into three plugins');

$node->safe_psql('postgres', 'CREATE EXTENSION repo_stream');
is($node->safe_psql('postgres',
		"SELECT nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'repo_stream'"),
	'repo_stream', 'extension lives in schema repo_stream');

$node->safe_psql('postgres', q{
	CREATE TABLE docs AS
	SELECT i, repo_stream.json_to_cbor(jsonb_build_object('$type', 'com.example.doc', 'i', i,
		'text', repeat('x', i % 50))) AS cbor
	FROM generate_series(1, 2000) i});
my $before = $node->safe_psql('postgres',
	'SELECT md5(string_agg(repo_stream.cbor_cid(cbor), \',\' ORDER BY i)) FROM docs');

# Concurrent sessions compute the same CIDs for the same documents.
my @bg = map { $node->background_psql('postgres') } 1 .. 4;
my @digests = map {
	$_->query_safe('SELECT md5(string_agg(repo_stream.cbor_cid(cbor), \',\' ORDER BY i)) FROM docs')
} @bg;
$_->quit for @bg;
is_deeply(\@digests, [ ($before) x 4 ], 'four concurrent sessions agree on 2000 CIDs');

$node->stop('immediate');
$node->start;
my $after = $node->safe_psql('postgres',
	'SELECT md5(string_agg(repo_stream.cbor_cid(cbor), \',\' ORDER BY i)) FROM docs');
is($after, $before, 'CIDs identical after a crash restart');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM docs WHERE repo_stream.json_to_cbor(repo_stream.cbor_to_json(cbor)) <> cbor'),
	'0', 'every stored value round-trips after restart');

my ($rc, $out, $err) = $node->psql('postgres', q{SELECT repo_stream.cbor_to_json('\x1801')});
like($err, qr/invalid DAG-CBOR at byte 0 \(0x18\): integer or length not in shortest form/,
	'malformed CBOR is an ERROR, and the backend survives');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server still accepts queries');

$node->stop;
done_testing();
