# Where the master key file lives, and what that protects:
#  - in Debian's layout (postgresql.conf outside the data directory) the
#    default file goes next to postgresql.conf;
#  - a base backup taken by a role with nothing but REPLICATION carries no
#    copy of the master key, so the sealed keys in it stay sealed;
#  - a database restored into another cluster without the key file, plus a
#    second database there, never make a new key silently: both are told
#    to bring the file, and sign again once it is back.
use strict;
use warnings;
use File::Basename;
use File::Copy;
use File::Find;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;

# ---- Debian's layout: the node's postgresql.conf moves to its own
# directory, and the server starts with config_file pointing there (as
# pg_ctlcluster does); nothing names the key file.
my $node = PostgreSQL::Test::Cluster->new('debian');
$node->init(allows_streaming => 1);
my $pgdata = $node->data_dir;
my $confdir = $node->basedir . '/etc';
make_path($confdir);
move("$pgdata/postgresql.conf", "$confdir/postgresql.conf") or die "move: $!";
PostgreSQL::Test::Utils::system_or_bail('pg_ctl', '-w', '-D', $pgdata, '-l', $node->logfile,
	'-o', "-c config_file=$confdir/postgresql.conf", 'start');
$node->_update_pid(1);
is($node->safe_psql('postgres', 'SHOW config_file'), "$confdir/postgresql.conf", 'postgresql.conf lives outside the data directory');

$node->safe_psql('postgres', 'CREATE EXTENSION repo_stream');
is($node->safe_psql('postgres', 'SELECT repo_stream.create_master_key()'), "$confdir/repo_stream_master.key",
	'by default the master key file goes next to postgresql.conf');
my $master = slurp_file("$confdir/repo_stream_master.key");
is(length($master), 32, 'it holds 32 bytes');
$node->safe_psql('postgres', q{
	SELECT repo_stream.create_repo('did:plc:bb' || i) FROM generate_series(1, 3) i;
	SELECT repo_stream.put_record('did:plc:bb1', 'app.bsky.feed.post', 'p', '{"text": "hi"}');
	CHECKPOINT;});
my $sealed = $node->safe_psql('postgres', q{SELECT string_agg(encode(sealed, 'hex'), ',' ORDER BY did) FROM repo_stream.repo_keys});

# ---- pg_basebackup by a role with LOGIN REPLICATION and nothing else.
$node->safe_psql('postgres', 'CREATE ROLE repl LOGIN REPLICATION');
my $backup = $node->basedir . '/backup';
$node->command_ok([ 'pg_basebackup', '-d', $node->connstr('postgres') . ' user=repl', '-D', $backup,
		'-X', 'fetch', '--no-sync' ],
	'a REPLICATION role takes a base backup');
my ($files, $holding_key, $holding_sealed) = (0, 0, 0);
my @sealed_bytes = map { pack('H*', $_) } split /,/, $sealed;
find(sub {
		return unless -f $_;
		$files++;
		my $data = slurp_file($_);
		$holding_key++ if index($data, $master) >= 0;
		for my $s (@sealed_bytes) { $holding_sealed++ if index($data, $s) >= 0 }
	}, $backup);
ok($files > 100, "the backup holds the data directory ($files files)");
ok($holding_sealed > 0, 'the sealed repo keys are in it');
is($holding_key, 0, 'no file in it holds the master key, so they stay sealed');
ok(!-e "$backup/repo_stream_master.key", 'no key file by name either');
$node->stop;

# ---- Restore into a new cluster without the key file.
my $old = rs_node('old');
$old->start;
$old->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:moved');
	SELECT repo_stream.put_record('did:plc:moved', 'app.bsky.feed.post', 'p', '{"text": "before"}');});
my $dump = $old->basedir . '/dump.sql';
$old->command_ok([ 'pg_dump', '-f', $dump, '-d', $old->connstr('postgres') ], 'pg_dump of the old cluster');

my $new = rs_node('new');
$new->start;
my $newkey = rs_keyfile($new);
$new->safe_psql('postgres', 'CREATE DATABASE restored; CREATE DATABASE fresh');
$new->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $dump,
	'-d', $new->connstr('restored') . ' options=-csession_replication_role=replica' ],
	'the dump restores into the new cluster');
ok(!-e $newkey, 'restoring made no master key file');

# a second database of the new cluster: its first repo is refused, not
# signed under a new key that would strand the restored database
$new->safe_psql('fresh', 'CREATE EXTENSION repo_stream');
my ($rc, $out, $err) = $new->psql('fresh', q{SELECT repo_stream.create_repo('did:plc:second')});
like($err, qr/ERROR:  repo_stream master key file "\Q$newkey\E" does not exist/,
	'create_repo in another database: the key file is missing');
like($err, qr/DETAIL:  .*a database of this cluster may hold keys sealed under a file that was not brought along/,
	'... and why it is not made there and then');
like($err, qr/HINT:  If no database of this cluster holds repo keys yet, create it with SELECT repo_stream.create_master_key\(\); otherwise restore the file from a backup/,
	'... and what to do');
ok(!-e $newkey, 'no master key file was created');
($rc, $out, $err) = $new->psql('restored',
	q{SELECT repo_stream.put_record('did:plc:moved', 'app.bsky.feed.post', 'q', '{"text": "after"}')});
like($err, qr/does not exist/, 'the restored database cannot sign either, and says so');

# bring the file along: both databases sign with it
copy(rs_keyfile($old), $newkey) or die;
chmod(0600, $newkey);
is($new->safe_psql('restored', q{
	SELECT repo_stream.put_record('did:plc:moved', 'app.bsky.feed.post', 'q', '{"text": "after"}') IS NOT NULL}),
	't', 'with the file restored, the restored repo signs again');
is($new->safe_psql('restored', q{SELECT bool_and(ok) FROM repo_stream.verify_repo('did:plc:moved')}), 't',
	'... and verifies');
like($new->safe_psql('fresh', q{SELECT repo_stream.create_repo('did:plc:second')}), qr/^did:key:z6Mk/,
	'the second database makes repos under the same file');
$old->stop;
$new->stop;
done_testing();
