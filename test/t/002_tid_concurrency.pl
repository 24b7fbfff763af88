# tid_now() never repeats across backends: 4 pgbench clients in persistent
# sessions, then 4 that reconnect for every transaction so backend ids get
# reused; all write their TIDs into one table.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = rs_node('tid');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	CREATE TABLE tids (tid text, pid int, n bigserial);
});

my $sql = q{INSERT INTO tids (tid, pid)
	SELECT repo_stream.tid_now(), pg_backend_pid() FROM generate_series(1, 20);};
$node->pgbench('-n -c 4 -j 2 -t 500', 0, [qr/processed: 2000\/2000/], [qr/^$/],
	'persistent sessions', { 'tid_persistent' => $sql });
$node->pgbench('-n -C -c 4 -j 2 -t 100', 0, [qr/processed: 400\/400/], [qr/^$/],
	'a new session per transaction', { 'tid_reconnect' => $sql });

my ($total, $distinct, $invalid) = split /\|/, $node->safe_psql('postgres',
	'SELECT count(*), count(DISTINCT tid), count(*) FILTER (WHERE NOT repo_stream.is_valid_tid(tid)) FROM tids');
is($total, 48000, '48000 TIDs generated');
is($distinct, $total, 'no TID repeats across backends');
is($invalid, 0, 'every TID is valid');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
		SELECT tid, lag(tid) OVER (PARTITION BY pid ORDER BY n) AS prev FROM tids) s
	WHERE prev IS NOT NULL AND tid <= prev}),
	'0', 'within each backend, TIDs strictly increase in call order');
cmp_ok($node->safe_psql('postgres', 'SELECT count(DISTINCT pid) FROM tids'), '>', 400,
	'over 400 backends took part');

$node->stop;
done_testing();
