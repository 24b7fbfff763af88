# Two refreshes of one view serialize, of different views do not.  With a
# small retention cap, stopped views fall out of the retained log:
# the next refresh rebuilds each from the records with the exact handoff
# (rebuilds + 1), and it is exact; view_count_live is exact meanwhile.
# Then the background worker does the same on its own.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use RsViews;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = rs_node('views_retention');
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'repo_stream'
repo_stream.views_refresh_interval = 0
repo_stream.retention_events = 500
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:r' || i) FROM generate_series(1, 4) i;
	INSERT INTO repo_stream.records (did, collection, rkey, record)
	SELECT 'did:plc:r' || (i % 4 + 1), 'app.bsky.feed.like', 'old' || i,
	       jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/' || i % 20))
	FROM generate_series(1, 400) i;
} . $MIRROR_SQL . q{
	SELECT repo_stream.create_count_view('like_counts', 'app.bsky.feed.like', 'subject.uri');
	SELECT repo_stream.create_count_view('likers', 'app.bsky.feed.like', '$did');
	SELECT repo_stream.create_handler_view('like_mirror', 'mirror_like(bigint,text,text,text,jsonb)',
	                                       'app.bsky.feed.like');
});

# two refreshes of one view serialize; refreshes of different views do not wait
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN; SELECT repo_stream.refresh_view('like_counts')});
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SET statement_timeout = '500ms'; SELECT repo_stream.refresh_view('like_counts')});
like($stderr, qr/canceling statement due to statement timeout/,
	'a second refresh of a view waits for the one in progress');
is($node->safe_psql('postgres', q{SET statement_timeout = '5s'; SELECT repo_stream.refresh_view('likers')}),
	'0', 'while another view refreshes without waiting');
$holder->query_safe('COMMIT');
$holder->quit;

# creates, moves and deletes, one record per transaction, each client in its own repo
my $writes = q{
\set n random(1, 300)
\set p random(0, 19)
\set op random(1, 3)
\if :op <= 2
SELECT repo_stream.put_record('did:plc:r' || :client_id + 1, 'app.bsky.feed.like', 'w' || :n,
	jsonb_build_object('subject', jsonb_build_object('uri', 'at://post/' || :p)));
\else
SELECT repo_stream.delete_record('did:plc:r' || :client_id + 1, 'app.bsky.feed.like', 'w' || :n);
\endif
};
$node->pgbench('-n -c 4 -j 2 -t 750', 0, [qr/processed: 3000\/3000/], [qr/^$/],
	'3000 writes with the views stopped', { 'writes1' => $writes });
my $pruned = $node->safe_psql('postgres', 'SELECT repo_stream.prune_events()');
cmp_ok($pruned, '>', $node->safe_psql('postgres', 'SELECT max(cursor) FROM repo_stream.view_status'),
	"the retained log (after seq $pruned) no longer reaches back to the views' cursors");

is($node->safe_psql('postgres', q{SELECT repo_stream.view_count_live('like_counts', 'at://post/7')}),
	$node->safe_psql('postgres', q{SELECT count(*) FROM repo_stream.records WHERE record->'subject'->>'uri' = 'at://post/7'}),
	'view_count_live of a view out of the window is exact');

is($node->safe_psql('postgres', q{SELECT string_agg(repo_stream.refresh_view(name)::text, ' ') FROM repo_stream.view_status}),
	'0 0 0', 'each refresh rebuilds instead of applying events');
is($node->safe_psql('postgres', q{SELECT string_agg(name || ':' || rebuilds || ':' || lag_events, ' ' ORDER BY name)
	FROM repo_stream.view_status}),
	'public.like_counts:1:0 public.like_mirror:1:0 public.likers:1:0', 'rebuilds went up by one, no lag');
views_exact($node, 'after the rebuild', qw(like_counts likers mirror));
ok($node->log_contains('view "public.like_counts": its cursor \d+ predates the retained log; rebuilding it'),
	'the rebuild is in the server log');

# the worker: views fall behind again with the worker off, then it rebuilds them
$node->pgbench('-n -c 4 -j 2 -t 750', 0, [qr/processed: 3000\/3000/], [qr/^$/],
	'3000 more writes with the views stopped', { 'writes2' => $writes });
$node->safe_psql('postgres', 'SELECT repo_stream.prune_events()');
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET repo_stream.views_refresh_interval = '200ms';
	SELECT pg_reload_conf();
});
my $state = '';
for (1 .. 200)
{
	$state = $node->safe_psql('postgres', q{SELECT string_agg(rebuilds || ':' || lag_events, ' ' ORDER BY name)
		FROM repo_stream.view_status});
	last if $state eq '2:0 2:0 2:0';
	usleep(100_000);
}
is($state, '2:0 2:0 2:0', 'the background worker rebuilt each view once more and caught up');
views_exact($node, 'after the worker\'s rebuild', qw(like_counts likers mirror));

$node->stop;
done_testing();
