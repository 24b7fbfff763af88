# The master key file that seals repo signing keys: made only by an
# explicit create_master_key(), never inside the data directory, checked
# for size, mode and kind, never silently replaced; a wrong, missing or
# loose file is a clear ERROR.  Also the superuser-only setting that names
# the file.  (011_key_placement.pl covers the default place in Debian's
# layout, base backups and restores into another cluster.)
use strict;
use warnings;
use File::Copy;
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# postgresql.conf in the data directory (initdb's layout), no setting yet
my $node = PostgreSQL::Test::Cluster->new('keys');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	CREATE TABLE repos (id int PRIMARY KEY, sealed bytea NOT NULL, did_key text NOT NULL);
});

my $pgdata = $node->data_dir;
my $keyfile = $node->basedir . '/master.key';
my $tmp = PostgreSQL::Test::Utils::tempdir;

sub mode_of { return sprintf('%04o', (stat($_[0]))[2] & 07777); }

sub slurp_bin
{
	my ($path) = @_;
	open(my $fh, '<:raw', $path) or die "open $path: $!";
	local $/;
	my $data = <$fh>;
	close($fh);
	return $data;
}

sub write_bin
{
	my ($path, $data, $mode) = @_;
	open(my $fh, '>:raw', $path) or die "open $path: $!";
	print $fh $data;
	close($fh);
	chmod($mode, $path) or die "chmod $path: $!";
}

sub random_bytes { return slurp_n('/dev/urandom', $_[0]); }

sub slurp_n
{
	my ($path, $n) = @_;
	open(my $fh, '<:raw', $path) or die "open $path: $!";
	read($fh, my $data, $n) == $n or die "short read from $path";
	close($fh);
	return $data;
}

# Signs a message with repo $id's sealed key in a new session and checks it
# against the repo's did:key.  Returns 'ok', or psql's stderr.
sub sign_check
{
	my ($id) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', qq{
		SELECT repo_stream.verify_signature(did_key, 'commit $id'::bytea,
			repo_stream._keys_sign(sealed, 'commit $id'::bytea))
		FROM repos WHERE id = $id});
	return $rc == 0 && $out eq 't' ? 'ok' : "rc=$rc out=$out err=$err";
}

# PostgreSQL 15's ALTER SYSTEM accepts only parameters it knows, so a
# session loads the library first (docs/keys.md says the same).
my ($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET repo_stream.master_key_file = '$tmp/x.key'");
like($err, qr/unrecognized configuration parameter "repo_stream.master_key_file"/,
	'ALTER SYSTEM without the library loaded: unrecognized parameter (PostgreSQL 15)');

# ---- The default place is next to postgresql.conf, which initdb puts in
# the data directory: refused, and nothing is created there.
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream.create_master_key()');
like($err, qr/ERROR:  repo_stream.master_key_file is not set, and the default place is inside the data directory/,
	'with postgresql.conf in the data directory, the default place is refused');
like($err, qr/HINT:  Set repo_stream.master_key_file to a path outside the data directory/,
	'... with a hint to set the path');
($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM repo_stream._keys_generate()');
like($err, qr/default place is inside the data directory/, 'generating a key is refused the same way');
is(join(',', glob("$pgdata/repo_stream_master.key*")), '', 'no key file appears in the data directory');

# Paths inside the data directory are refused: absolute, relative (to the
# directory of postgresql.conf, here the data directory), or through a
# symlink to it.
symlink($pgdata, "$tmp/datalink") or die;
for my $inside ("$pgdata/master.key", 'master.key', "$pgdata/global/../master.key", "$tmp/datalink/master.key")
{
	$node->safe_psql('postgres', "LOAD 'repo_stream'; ALTER SYSTEM SET repo_stream.master_key_file = '$inside'");
	$node->reload;
	($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream.create_master_key()');
	like($err, qr/ERROR:  repo_stream master key file ".*" is inside the data directory/,
		"a path inside the data directory is refused: $inside");
}
like($err, qr/DETAIL:  A base backup \(pg_basebackup\), which a role with only the REPLICATION attribute can take/,
	'the detail says why');
is(join(',', grep { -e } ("$pgdata/master.key", "$pgdata/global/master.key")), '', 'no key file was created');

$node->safe_psql('postgres', "LOAD 'repo_stream'; ALTER SYSTEM SET repo_stream.master_key_file = '$keyfile'");
$node->reload;

# ---- Missing file: every use is an ERROR that says how to make one, and
# nothing is created: only create_master_key() does that.
($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM repo_stream._keys_generate()');
isnt($rc, 0, 'generating without a master key file fails');
like($err, qr/ERROR:  repo_stream master key file "\Q$keyfile\E" does not exist/,
	'the error names the missing file');
like($err, qr/HINT:  If no database of this cluster holds repo keys yet, create it with SELECT repo_stream.create_master_key\(\); otherwise restore the file from a backup/,
	'the hint says how to make one, or to restore it');
($rc, $out, $err) = $node->psql('postgres', q{SELECT repo_stream.create_repo('did:plc:nokey')});
like($err, qr/ERROR:  repo_stream master key file "\Q$keyfile\E" does not exist/,
	'create_repo without the file fails the same way');
is($node->safe_psql('postgres', 'SELECT count(*) FROM repo_stream.repos'), '0', '... and leaves no repo');
ok(!-e $keyfile, 'no master key file was created');

# ---- create_master_key(): 32 bytes, 0600, logged, once.
my $log_offset = -s $node->logfile;
is($node->safe_psql('postgres', 'SELECT repo_stream.create_master_key()'), $keyfile,
	'create_master_key() returns the path it created');
ok(-f $keyfile, 'the file exists');
is(-s $keyfile, 32, 'the master key file holds 32 bytes');
is(mode_of($keyfile), '0600', 'the master key file has mode 0600');
is((stat($keyfile))[4], $>, 'the master key file belongs to the server OS user');
ok($node->log_contains(qr/LOG:  repo_stream created master key file "\Q$keyfile\E"/, $log_offset),
	'its creation is logged');
is(join(',', glob("$keyfile.*")), '', 'no temporary file left behind');
my $master = slurp_bin($keyfile);
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream.create_master_key()');
like($err, qr/ERROR:  repo_stream master key file "\Q$keyfile\E" already exists/, 'a second call is refused');
is(slurp_bin($keyfile), $master, '... and the file is untouched');

$node->safe_psql('postgres',
	'INSERT INTO repos SELECT 1, sealed, did_key FROM repo_stream._keys_generate()');

# Later generations use the same file, untouched.
$node->safe_psql('postgres', q{
	INSERT INTO repos SELECT 2, sealed, did_key FROM repo_stream._keys_generate();
	INSERT INTO repos SELECT 3, sealed, did_key FROM repo_stream._keys_generate();});
is(slurp_bin($keyfile), $master, 'later generations keep the existing master key');

is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE length(sealed) = 73 AND get_byte(sealed, 0) = 1
	                          AND repo_stream.is_valid_did(did_key) AND did_key LIKE 'did:key:z6Mk%'),
	       count(DISTINCT sealed), count(DISTINCT did_key)
	FROM repos}), '3|3|3', 'three distinct 73-byte version-1 sealed keys with did:keys');

is(sign_check($_), 'ok', "repo $_: signature by the sealed key verifies against its did:key") for 1 .. 3;
is($node->safe_psql('postgres', q{
	SELECT repo_stream.verify_signature(b.did_key, 'commit'::bytea, repo_stream._keys_sign(a.sealed, 'commit'::bytea))
	FROM repos a, repos b WHERE a.id = 1 AND b.id = 2}), 'f', "repo 1's signature does not verify as repo 2's");
is($node->safe_psql('postgres', q{
	SELECT repo_stream._keys_sign(sealed, 'same') = repo_stream._keys_sign(sealed, 'same')
	FROM repos WHERE id = 1}), 't', 'signatures are deterministic (Ed25519)');

my $sealed_hex = $node->safe_psql('postgres', q{SELECT string_agg(encode(sealed, 'hex'), '') FROM repos});
my $master_hex = unpack('H*', $master);
ok(index($sealed_hex, $master_hex) < 0, 'no sealed key contains the master key');

# A pg_dump holds the sealed keys and nothing that opens them.
my $dump = "$tmp/dump.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump runs');
my $dumped = slurp_bin($dump);
ok(index(lc($dumped), $master_hex) < 0 && index($dumped, $master) < 0,
	'the dump does not contain the master key');

# ---- Another key in the file: signing fails clearly, nothing changes.
my $other = random_bytes(32);
write_bin($keyfile, $other, 0600);
my $repos_before = $node->safe_psql('postgres', 'SELECT md5(string_agg(sealed::text || did_key, \',\' ORDER BY id)) FROM repos');
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream._keys_sign(sealed, \'x\') FROM repos WHERE id = 1');
isnt($rc, 0, 'signing with a replaced master key file fails');
like($err, qr/ERROR:  repo_stream master key file "\Q$keyfile\E" does not match the key that sealed this repo's signing key/,
	'the error says the file does not match, naming it');
like($err, qr/HINT:  Restore the master key file that was in use/, 'the hint says to restore the file');
is(slurp_bin($keyfile), $other, 'the replaced file is left as it is');
is($node->safe_psql('postgres', 'SELECT md5(string_agg(sealed::text || did_key, \',\' ORDER BY id)) FROM repos'),
	$repos_before, 'the sealed keys are left as they are');

# Sessions cache the key.  One that read the right key before the swap
# keeps signing; one that read the wrong file recovers once the right file
# is back (a failed unseal re-reads the file before giving up).
my $cached = $node->background_psql('postgres', on_error_stop => 0);
write_bin($keyfile, $master, 0600);
$cached->query_safe('SELECT repo_stream._keys_sign(sealed, \'warm\') FROM repos WHERE id = 1');
my $stale = $node->background_psql('postgres', on_error_stop => 0);
write_bin($keyfile, $other, 0600);
$stale->query('SELECT repo_stream._keys_sign(sealed, \'x\') FROM repos WHERE id = 1');
like($stale->{stderr}, qr/does not match the key that sealed/, 'a session reading the wrong file fails');
$stale->{stderr} = '';
is($cached->query_safe('SELECT length(repo_stream._keys_sign(sealed, \'x\')) FROM repos WHERE id = 1'), '64',
	'a session that cached the right key keeps signing');
write_bin($keyfile, $master, 0600);
is($stale->query('SELECT length(repo_stream._keys_sign(sealed, \'x\')) FROM repos WHERE id = 1'), '64',
	'the failed session signs once the right file is restored');
is($stale->{stderr}, '', '... without an error');
$stale->quit;

# Key generation always reads the file afresh: a session with a cached
# key must not seal a new repo key under a key that is no longer on disk.
write_bin($keyfile, $other, 0600);
$cached->query_safe('INSERT INTO repos SELECT 99, sealed, did_key FROM repo_stream._keys_generate()');
$cached->quit;
is(sign_check(99), 'ok', 'a key generated after the swap opens under the file now on disk');
write_bin($keyfile, $master, 0600);
$node->safe_psql('postgres', 'DELETE FROM repos WHERE id = 99');
is(sign_check(1), 'ok', 'with the original file back, repo 1 signs again');

# ---- Deleted file: signing and generating fail, and nothing is created in
# its place.
unlink($keyfile) or die;
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream._keys_sign(sealed, \'x\') FROM repos WHERE id = 1');
like($err, qr/ERROR:  repo_stream master key file "\Q$keyfile\E" does not exist/,
	'signing without the file: clear error naming it');
($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM repo_stream._keys_generate()');
like($err, qr/does not exist/, 'generating: same error');
ok(!-e $keyfile, 'no new master key was created');
write_bin($keyfile, $master, 0600);

# ---- Bad files are refused.
chmod(0644, $keyfile);
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream._keys_sign(sealed, \'x\') FROM repos WHERE id = 1');
like($err, qr/ERROR:  repo_stream master key file "\Q$keyfile\E" has permissions 0644, which allow too much/,
	'a 0644 file is refused');
like($err, qr/HINT:  Run chmod 600 on the file/, '... with a hint');
chmod(0640, $keyfile);
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream._keys_sign(sealed, \'x\') FROM repos WHERE id = 1');
like($err, qr/has permissions 0640/, 'a group-readable file is refused');
chmod(0400, $keyfile);
is(sign_check(1), 'ok', 'a 0400 file is accepted');
chmod(0600, $keyfile);

write_bin($keyfile, $master . "\n", 0600);
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream._keys_sign(sealed, \'x\') FROM repos WHERE id = 1');
like($err, qr/ERROR:  repo_stream master key file "\Q$keyfile\E" is 33 bytes long, not 32/,
	'a 33-byte file is refused');
write_bin($keyfile, '', 0600);
($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM repo_stream._keys_generate()');
like($err, qr/is 0 bytes long, not 32/, 'an empty file is refused when generating');
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream.create_master_key()');
like($err, qr/already exists/, '... and create_master_key() does not replace it');
unlink($keyfile);
mkdir($keyfile, 0700);
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream._keys_sign(sealed, \'x\') FROM repos WHERE id = 1');
like($err, qr/ERROR:  repo_stream master key file "\Q$keyfile\E" is not a regular file/,
	'a directory in its place is refused');
rmdir($keyfile);
write_bin($keyfile, $master, 0600);

# A symlink to a proper file elsewhere is followed (secret mounts are often links).
move($keyfile, "$tmp/linked.key") or die;
symlink("$tmp/linked.key", $keyfile) or die;
is(sign_check(1), 'ok', 'a symlink to the key file works');
unlink($keyfile);
move("$tmp/linked.key", $keyfile) or die;

# ---- A custom path via ALTER SYSTEM, after reload.
my $custom = "$tmp/custom.key";
$node->safe_psql('postgres', "LOAD 'repo_stream'; ALTER SYSTEM SET repo_stream.master_key_file = '$custom'");
$node->reload;
is($node->safe_psql('postgres', 'SHOW repo_stream.master_key_file'), $custom, 'SHOW gives the custom path');
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream._keys_sign(sealed, \'x\') FROM repos WHERE id = 1');
like($err, qr/ERROR:  repo_stream master key file "\Q$custom\E" does not exist/,
	'with the custom path set, signing looks there and names it');
is($node->safe_psql('postgres', 'SELECT repo_stream.create_master_key()'), $custom,
	'create_master_key() makes the file at the custom path');
$node->safe_psql('postgres',
	'INSERT INTO repos SELECT 10, sealed, did_key FROM repo_stream._keys_generate()');
ok(-f $custom && -s $custom == 32 && mode_of($custom) eq '0600', 'the custom file is created, 32 bytes, 0600');
is(sign_check(10), 'ok', 'a key sealed under the custom file signs');
isnt(slurp_bin($custom), $master, 'the custom file holds a new master key');
is(slurp_bin($keyfile), $master, 'the default file is untouched');
like(sign_check(1), qr/"\Q$custom\E" does not match/, 'an older key sealed under the first file does not open');

# A relative path is relative to the directory of postgresql.conf.
my $confrel = File::Spec->abs2rel($keyfile, $pgdata);
$node->safe_psql('postgres', "LOAD 'repo_stream'; ALTER SYSTEM SET repo_stream.master_key_file = '$confrel'");
$node->reload;
is(sign_check(1), 'ok', "a relative path ($confrel) resolves next to postgresql.conf");
$node->safe_psql('postgres', "LOAD 'repo_stream'; ALTER SYSTEM SET repo_stream.master_key_file = '$keyfile'");
$node->reload;

# ---- A non-superuser can neither see nor set the setting.
$node->safe_psql('postgres', q{
	CREATE ROLE regress_app LOGIN;
	GRANT USAGE ON SCHEMA repo_stream TO regress_app;});
my $app = $node->connstr('postgres') . ' user=regress_app';
($rc, $out, $err) = $node->psql('postgres', 'SELECT repo_stream.tid_now() IS NOT NULL; SHOW repo_stream.master_key_file',
	connstr => $app);
like($err, qr/ERROR:  must be superuser or have privileges of pg_read_all_settings to examine "repo_stream.master_key_file"/,
	'a non-superuser cannot SHOW it');
($rc, $out, $err) = $node->psql('postgres', "SELECT repo_stream.tid_now() IS NOT NULL; SET repo_stream.master_key_file = '$tmp/evil.key'",
	connstr => $app);
like($err, qr/ERROR:  permission denied to set parameter "repo_stream.master_key_file"/, 'a non-superuser cannot SET it');

# Set before the library is loaded, the value is only a placeholder; at load
# time PostgreSQL drops it because a non-superuser set it.
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION repo_stream._keys_generate() TO regress_app');
($rc, $out, $err) = $node->psql('postgres',
	"SET repo_stream.master_key_file = '$tmp/evil.key';"
	  . " SELECT encode(sealed, 'hex') || '|' || did_key FROM repo_stream._keys_generate()",
	connstr => $app);
like($err, qr/WARNING:  permission denied to set parameter "repo_stream.master_key_file"/,
	'a placeholder set by a non-superuser is rejected when the library loads');
ok(!-e "$tmp/evil.key", 'no key file was created at the path the non-superuser chose');
my ($app_sealed, $app_did) = split /\|/, $out;
$node->safe_psql('postgres', "INSERT INTO repos VALUES (20, '\\x$app_sealed', '$app_did')");
is(sign_check(20), 'ok', 'the key was sealed under the configured master key');
$node->safe_psql('postgres', 'REVOKE EXECUTE ON FUNCTION repo_stream._keys_generate() FROM regress_app');
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION repo_stream.create_master_key() TO regress_app');
($rc, $out, $err) = $node->psql('postgres', "SET repo_stream.master_key_file = '$tmp/evil.key'; SELECT repo_stream.create_master_key()",
	connstr => $app);
like($err, qr/ERROR:  only superusers may create the repo_stream master key file/,
	'a non-superuser granted create_master_key() still cannot make a key file');
ok(!-e "$tmp/evil.key", '... at the path it chose or anywhere');
$node->safe_psql('postgres', 'REVOKE EXECUTE ON FUNCTION repo_stream.create_master_key() FROM regress_app');
my $sealed1 = $node->safe_psql('postgres', 'SELECT encode(sealed, \'hex\') FROM repos WHERE id = 1');
($rc, $out, $err) = $node->psql('postgres', "SELECT repo_stream._keys_sign('\\x$sealed1', 'x')",
	connstr => $app);
like($err, qr/permission denied for function _keys_sign/, 'a non-superuser cannot sign');

# ---- Concurrent create_master_key(): of 8 sessions racing on a missing
# file, exactly one makes it and the others get 42710; every key generated
# afterwards opens under the one file.
my $race = "$tmp/race.key";
$node->safe_psql('postgres', "LOAD 'repo_stream'; ALTER SYSTEM SET repo_stream.master_key_file = '$race'");
$node->reload;
$node->safe_psql('postgres', 'CREATE TABLE race_result (r text)');
$log_offset = -s $node->logfile;
$node->pgbench('-n -c 8 -j 8 -t 1', 0, [qr/processed: 8\/8/], [qr/^$/],
	'8 sessions call create_master_key() at once',
	{ 'race' => q{DO $$ BEGIN PERFORM repo_stream.create_master_key(); INSERT INTO race_result VALUES ('created'); EXCEPTION WHEN duplicate_object THEN INSERT INTO race_result VALUES ('42710'); END $$;
} });
is($node->safe_psql('postgres', q{SELECT string_agg(r || ':' || n, ',' ORDER BY r) FROM
	(SELECT r, count(*) n FROM race_result GROUP BY r) s}), '42710:7,created:1',
	'one session creates the file, seven are told it exists');
ok(-f $race && -s $race == 32 && mode_of($race) eq '0600', 'one 32-byte 0600 file results');
my @created = (slurp_file($node->logfile, $log_offset) =~ /created master key file "\Q$race\E"/g);
is(scalar(@created), 1, 'exactly one session reports creating it');
is(join(',', glob("$tmp/race.key.*")), '', 'no temporary file left behind');
$node->safe_psql('postgres', 'CREATE SEQUENCE race_ids START 1000');
$node->pgbench('-n -c 8 -j 8 -t 1', 0, [qr/processed: 8\/8/], [qr/^$/],
	'8 sessions then generate keys at once',
	{ 'gen' => "INSERT INTO repos SELECT nextval('race_ids'), sealed, did_key FROM repo_stream._keys_generate();\n" });
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE repo_stream.verify_signature(did_key, 'race'::bytea,
	                                                           repo_stream._keys_sign(sealed, 'race'::bytea)))
	FROM repos WHERE id >= 1000}), '8', 'all 8 keys open under that file and sign');

# ---- Restart: the file persists and keys still sign.
$node->safe_psql('postgres', "LOAD 'repo_stream'; ALTER SYSTEM SET repo_stream.master_key_file = '$keyfile'");
$node->restart;
is(sign_check(1), 'ok', 'after a restart, repo 1 still signs');
is(slurp_bin($keyfile), $master, 'the master key file is unchanged');

$node->stop;
done_testing();
