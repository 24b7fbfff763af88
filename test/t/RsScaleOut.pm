# Clusters for the scale-out TAP tests (056, 057): shards, a relay, a
# router, each a PostgreSQL::Test::Cluster with repo_stream's settings.
package RsScaleOut;
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use RepoStreamNode;
use Test::More;
use Time::HiRes qw(usleep);
use Exporter 'import';
our @EXPORT = qw(so_node so_shard conn_lit sqlstate_of so_wait so_wait_applied so_relay_events);

# A started node with logical WAL and room for a relay's workers.
sub so_node
{
	my ($name) = @_;
	my $n = rs_node($name, allows_streaming => 'logical');
	$n->append_conf('postgresql.conf', qq{
output_plugin_libraries = 'pgoutput, test_decoding, repo_stream'
max_connections = 40
max_worker_processes = 12
max_logical_replication_workers = 6
wal_retrieve_retry_interval = 500ms
restart_after_crash = on
});
	$n->start;
	return $n;
}

# A shard: a node with repo_stream and its master key.
sub so_shard
{
	my ($name) = @_;
	my $n = so_node($name);
	$n->safe_psql('postgres', 'CREATE EXTENSION repo_stream; SELECT repo_stream.create_master_key();');
	return $n;
}

# A node's connection string as an SQL literal.
sub conn_lit
{
	my ($node, $db) = @_;
	(my $c = $node->connstr($db // 'postgres')) =~ s/'/''/g;
	return "'$c'";
}

# The SQLSTATE an SQL script fails with, or "no error (...)".
sub sqlstate_of
{
	my ($node, $sql, %opts) = @_;
	my ($ret, $out, $err) = $node->psql($opts{db} // 'postgres', "\\set VERBOSITY verbose\n$sql",
		$opts{connstr} ? (connstr => $opts{connstr}) : ());
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : "no error ($ret): $err";
}

# Polls $sql on $node until it returns $want (default 't'); true if it did.
sub so_wait
{
	my ($node, $sql, $want, $seconds) = @_;
	$want //= 't';
	$seconds //= 60;
	for (1 .. $seconds * 5)
	{
		my ($rc, $out) = $node->psql('postgres', $sql);
		return 1 if $rc == 0 && $out eq $want;
		usleep(200_000);
	}
	return 0;
}

# Until the relay has received every event the shard logged so far.
sub so_wait_applied
{
	my ($relay, $name, $shard) = @_;
	my $max = $shard->safe_psql('postgres', 'SELECT coalesce(max(seq), 0) FROM repo_stream.event_log');
	return so_wait($relay, "SELECT last_shard_seq >= $max FROM repo_stream.relay_shards WHERE name = '$name'");
}

# The relay's events of a DID after relay seq $after: "seq kind" lines.
sub so_relay_events
{
	my ($relay, $did, $after) = @_;
	return $relay->safe_psql('postgres', qq{SELECT string_agg(seq || ' ' || kind, ',' ORDER BY seq)
		FROM repo_stream.event_log WHERE did = '$did' AND seq > $after});
}

1;
