# Helpers for the views TAP tests (test/t/05x_views*.pl): a handler view
# that mirrors likes into a table, and the checks that a view equals the
# GROUP BY over the current records.
package RsViews;
use strict;
use warnings;
use Test::More;
use Exporter 'import';
our @EXPORT = qw($MIRROR_SQL views_exact);

# Table mirror and handler mirror_like, which keeps it equal to the likes.
# An update or delete of a row it does not have is an error, so a handler
# view that skipped or repeated an op fails its refresh.
our $MIRROR_SQL = q{
	CREATE TABLE mirror (did text, path text, uri text, PRIMARY KEY (did, path));
	CREATE FUNCTION mirror_like(seq bigint, did text, action text, path text, record jsonb)
	RETURNS void LANGUAGE plpgsql SET search_path = public AS $$
	BEGIN
		CASE action
		WHEN 'create' THEN INSERT INTO mirror VALUES (did, path, record->'subject'->>'uri');
		WHEN 'update' THEN UPDATE mirror m SET uri = record->'subject'->>'uri' WHERE m.did = $2 AND m.path = $4;
		WHEN 'delete' THEN DELETE FROM mirror m WHERE m.did = $2 AND m.path = $4;
		WHEN 'delete_repo' THEN DELETE FROM mirror m WHERE m.did = $2;
		WHEN 'reset' THEN DELETE FROM mirror;
		END CASE;
		IF action IN ('update', 'delete') AND NOT FOUND THEN
			RAISE EXCEPTION '% of % which the mirror does not have', action, path;
		END IF;
	END $$;
};

# The GROUP BY each kind of view must equal, by plain jsonb operators.
my %truth = (
	like_counts => q{SELECT record->'subject'->>'uri', count(*) FROM repo_stream.records
		WHERE collection = 'app.bsky.feed.like' AND jsonb_typeof(record->'subject'->'uri') = 'string' GROUP BY 1},
	likers => q{SELECT did, count(*) FROM repo_stream.records WHERE collection = 'app.bsky.feed.like' GROUP BY 1},
	follower_counts => q{SELECT record->>'subject', count(*) FROM repo_stream.records
		WHERE collection = 'app.bsky.graph.follow' AND jsonb_typeof(record->'subject') = 'string' GROUP BY 1},
	mirror => q{SELECT did, collection || '/' || rkey, record->'subject'->>'uri' FROM repo_stream.records
		WHERE collection = 'app.bsky.feed.like'},
);

# One test per table (a count view, or mirror): it equals its GROUP BY.
sub views_exact
{
	my ($node, $what, @tables) = @_;
	for my $t (@tables)
	{
		my $q = $truth{$t} or die "no truth for $t";
		is($node->safe_psql('postgres',
			qq{SELECT count(*) FROM ((TABLE $t EXCEPT $q) UNION ALL ($q EXCEPT TABLE $t)) d}),
			'0', "$t equals the records' GROUP BY $what");
	}
}

1;
