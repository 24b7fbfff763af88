# Clusters for repo_stream's TAP tests.  PostgreSQL::Test::Cluster keeps
# postgresql.conf in the data directory, where repo_stream will not look
# for its master key file (a base backup would copy it), so every node
# names one beside the data directory: <basedir>/master.key.
package RepoStreamNode;
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use Exporter 'import';
our @EXPORT = qw(rs_node rs_keyfile);

# A new, initialized, not yet started cluster; %init goes to init().
sub rs_node
{
	my ($name, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%init);
	$node->append_conf('postgresql.conf', "repo_stream.master_key_file = '" . rs_keyfile($node) . "'\n");
	return $node;
}

# Where rs_node's cluster keeps its master key file.
sub rs_keyfile
{
	my ($node) = @_;
	return $node->basedir . '/master.key';
}

1;
