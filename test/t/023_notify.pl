# A NOTIFY on channel repo_stream_events fires when a transaction that wrote
# events commits (payload: its highest seq), not for one that aborts, and
# not when repo_stream.notify is off.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = rs_node('notify');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:notify');
});

my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN repo_stream_events');

$node->safe_psql('postgres', q{
	BEGIN;
	SELECT repo_stream.put_record('did:plc:notify', 'app.bsky.feed.post', 'aborted', '{"t": 0}');
	ROLLBACK;
});
$node->safe_psql('postgres',
	q{SELECT repo_stream.put_record('did:plc:notify', 'app.bsky.feed.post', 'a', '{"t": 1}')});
my $seq = $node->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');

# psql reports notifications when it next talks to the server
my $seen = $listener->query_safe('SELECT 1');
like($seen, qr/Asynchronous notification "repo_stream_events" with payload "$seq" received/,
	"listener got a notification with the committed seq $seq");
my @all = ($seen =~ /Asynchronous notification "repo_stream_events"/g);
is(scalar(@all), 1, 'exactly one notification: none for the aborted transaction');

# repo_stream.notify = off: commits stay silent (for logical decoding consumers)
$node->safe_psql('postgres', q{
	SET repo_stream.notify = off;
	SELECT repo_stream.put_record('did:plc:notify', 'app.bsky.feed.post', 'b', '{"t": 2}');
});
unlike($listener->query_safe('SELECT 2'), qr/Asynchronous notification/,
	'no notification with repo_stream.notify = off');

$listener->quit;
$node->stop;
done_testing();
