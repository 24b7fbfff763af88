# repo_stream_car treats every server value and every manifest line as
# untrusted (issue 17, probes 3.16-3.21).  Against fake servers (databases
# whose repo_stream schema is a few PL/pgSQL functions returning a DID with
# "../", a NULL or short seq, a rev with a tab, repeated DIDs, no row from
# import_repo_lo), and with hostile backup directories (manifest lines with
# "../", absolute paths, /dev/zero, SQL as the did:key, a long comment whose
# tail looks like an entry; symlinks, a FIFO, a file of the wrong size),
# each command stops with a clear message and a non-zero exit status, writes
# nothing outside its directory and uploads nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use File::Temp qw(tempdir);
use POSIX qw(mkfifo);

my $node = rs_node('car_untrusted');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo(d) FROM unnest(ARRAY['did:plc:alice', 'did:plc:bob']) d;
	SELECT repo_stream.put_record('did:plc:alice', 'app.bsky.feed.post', 'p' || i, '{"text": "hi"}')
	  FROM generate_series(1, 20) i;
	SELECT repo_stream.put_record('did:plc:bob', 'app.bsky.feed.post', 'b1', '{"text": "hey"}');
});
my $scratch = tempdir(CLEANUP => 1);
my $key = $node->safe_psql('postgres', q{SELECT repo_stream.repo_key('did:plc:alice')});

# Run the client (10 s at most: /dev/zero must not be read until killed).
sub cli
{
	my ($db, @args) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ 'repo_stream_car', @args, '-d', $node->connstr($db) ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(10));
	my $rc = eval { $h->finish; $h->full_result(0) };
	if ($@)
	{
		$h->kill_kill;
		return ('timeout', $out, $err);
	}
	return ($rc, $out, $err);
}

# exit status 1 (fail), not a signal (139 was the segfault) nor a timeout
sub refused
{
	my ($what, $rc, $err, $msg) = @_;
	is($rc, 256, "$what: exit status 1") or diag("rc $rc: $err");
	like($err, $msg, "$what: says why");
}

sub lobs { $node->safe_psql('postgres', 'SELECT count(*) FROM pg_largeobject_metadata') }
sub repos { $node->safe_psql('postgres', 'SELECT count(*) FROM repo_stream.repos') }

# A database whose repo_stream schema is a fake: list_repos lists $did,
# export_repo returns ($seq, $rev, 'owned'); import_repo_lo returns no row.
sub fake
{
	my ($db, %f) = @_;
	my $did = $f{did} // 'did:plc:fake';
	$did =~ s/'/''/g;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{
		CREATE SCHEMA repo_stream;
		CREATE TABLE repo_stream.repos (did text, did_key text);
		INSERT INTO repo_stream.repos SELECT '$did', '$key' FROM generate_series(1, @{[ $f{copies} // 1 ]});
		CREATE FUNCTION repo_stream.list_repos(after text DEFAULT NULL, max_repos int DEFAULT 1000)
		RETURNS TABLE (did text, head_cid text, rev text, seq bigint, status text) LANGUAGE sql AS
		\$\$ SELECT did, 'c', '3kgx2jqmvfk2a', 1::bigint, 'active' FROM repo_stream.repos
			 WHERE @{[ $f{ignore_after} ? 'true' : 'after IS NULL OR did > after' ]} LIMIT max_repos \$\$;
		CREATE FUNCTION repo_stream.export_repo(did text, since text DEFAULT NULL)
		RETURNS TABLE (seq @{[ $f{seq_type} // 'bigint' ]}, rev text, chunk bytea) LANGUAGE sql AS
		\$\$ SELECT @{[ $f{seq} // '7' ]}, @{[ $f{rev} // q{'3kgx2jqmvfk2a'} ]}, '\\x6f776e6564'::bytea \$\$;
		CREATE FUNCTION repo_stream.import_repo_lo(car oid, did_key text) RETURNS SETOF text LANGUAGE sql AS
		\$\$ SELECT 'x' WHERE false \$\$;
	});
}

# ------------------------------------------------ server values (3.19-3.21)

# 3.19: a DID with ../ would name a file outside the backup directory
fake('fake_dotdot', did => "../../../..$scratch/pwned");
my ($rc, $out, $err) = cli('fake_dotdot', 'backup', "$scratch/bk_dotdot");
refused('backup, a DID with ../', $rc, $err, qr/invalid DID .*\.\.\/.*pwned/);
ok(!-e "$scratch/pwned.car", 'nothing was written outside the backup directory');
is(join(',', glob("$scratch/bk_dotdot/*")), '', 'nor inside it (the DIDs are checked before any file is made)');
($rc, $out, $err) = cli('fake_dotdot', 'list');
refused('list, a DID with ../', $rc, $err, qr/invalid DID/);

# 3.20: a NULL seq, a seq of 4 bytes, a rev that would break the manifest
fake('fake_nullseq', seq => 'NULL::bigint');
($rc, $out, $err) = cli('fake_nullseq', 'backup', "$scratch/bk_nullseq");
refused('backup, a NULL seq', $rc, $err, qr/no valid seq with the export of "did:plc:fake"/);
ok(!-e "$scratch/bk_nullseq/manifest.tsv" || slurp_file("$scratch/bk_nullseq/manifest.tsv") !~ /did:plc:fake\t/,
	'the manifest got no line for it');
($rc, $out, $err) = cli('fake_nullseq', 'export', 'did:plc:fake', "$scratch/nullseq.car");
refused('export, a NULL seq', $rc, $err, qr/no valid seq/);
fake('fake_shortseq', seq_type => 'int');
($rc, $out, $err) = cli('fake_shortseq', 'export', 'did:plc:fake', "$scratch/shortseq.car");
refused('export, a 4-byte seq', $rc, $err, qr/no valid seq/);
fake('fake_badrev', rev => q{E'3kgx2jqmvfk2a\tinjected\n'});
($rc, $out, $err) = cli('fake_badrev', 'backup', "$scratch/bk_badrev");
refused('backup, a rev with a tab and a newline', $rc, $err, qr/invalid rev "3kgx2jqmvfk2a\?injected\?"/);

# a DID listed twice (two repos, one file), or pages that never end
fake('fake_twice', copies => 2);
($rc, $out, $err) = cli('fake_twice', 'backup', "$scratch/bk_twice");
refused('backup, a DID listed twice', $rc, $err, qr/listed twice/);
$node->safe_psql('postgres', 'CREATE DATABASE fake_loop');
$node->safe_psql('fake_loop', q{
	CREATE SCHEMA repo_stream;
	CREATE TABLE repo_stream.repos (did text, did_key text);
	CREATE FUNCTION repo_stream.list_repos(after text DEFAULT NULL, max_repos int DEFAULT 1000)
	RETURNS TABLE (did text, head_cid text, rev text, seq bigint, status text) LANGUAGE sql AS
	$$ SELECT 'did:plc:r' || i, 'c', '3kgx2jqmvfk2a', 1::bigint, 'active' FROM generate_series(1, 1000) i $$;
});
($rc, $out, $err) = cli('fake_loop', 'list');
refused('list, the same page again and again', $rc, $err, qr/listed twice/);

# 3.21: import_repo_lo returns no row
my $car = "$scratch/alice.car";
($rc, $out, $err) = cli('postgres', 'export', 'did:plc:alice', $car);
is($rc, 0, 'a real export for the imports below') or diag $err;
fake('fake_norow');
($rc, $out, $err) = cli('fake_norow', 'import', '--did-key', $key, $car);
refused('import, no row from import_repo_lo', $rc, $err, qr/the server returned no valid did:key/);

# export's default file name is DID.car: a DID that cannot name a file is refused
($rc, $out, $err) = cli('postgres', 'export', '../../x');
refused('export of an invalid DID', $rc, $err, qr/invalid DID/);

# ----------------------------------------------- files read (import)

($rc, $out, $err) = cli('postgres', 'import', '--did-key', $key, '/dev/zero');
refused('import of /dev/zero', $rc, $err, qr/not a regular file/);
($rc, $out, $err) = cli('postgres', 'import', '--did-key', $key, $scratch);
refused('import of a directory', $rc, $err, qr/not a regular file/);
($rc, $out, $err) = cli('postgres', 'import', '--did-key', q{'); DROP TABLE repo_stream.records; --}, $car);
refused('import with SQL as the did:key', $rc, $err, qr/invalid --did-key/);
is(lobs(), '0', 'no large object was left');

# ------------------------------------------- manifests (restore, 3.16-3.18)

# a backup directory whose manifest holds $lines (a real CAR of alice beside it)
my $bk = 0;
sub backup_dir
{
	my (@lines) = @_;
	my $d = "$scratch/restore" . $bk++;
	mkdir $d or die $!;
	system('cp', $car, "$d/did:plc:alice.car") == 0 or die;
	open my $m, '>', "$d/manifest.tsv" or die $!;
	print $m "# did\tfile\trev\tseq\tdid_key\tbytes\tstatus\n", map { "$_\n" } @lines;
	close $m;
	return $d;
}
my $size = -s $car;
my $rev = $node->safe_psql('postgres', q{SELECT head_rev FROM repo_stream.repos WHERE did = 'did:plc:alice'});
my $entry = "\t$rev\t1\t$key\t$size\tactive";
my ($lobs0, $repos0) = (lobs(), repos());
$node->safe_psql('postgres', 'CREATE DATABASE target; ');
$node->safe_psql('target', 'CREATE EXTENSION repo_stream');
for my $case (
	[ '3.16: ../ out of the directory', "did:plc:x1\t../../../../../etc/passwd$entry", qr/line 2: invalid file name "\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd"/ ],
	[ '3.16: an absolute path', "did:plc:x1\t/etc/passwd$entry", qr/line 2: invalid file name "\/etc\/passwd"/ ],
	[ '3.16: SQL as the did:key', "did:plc:alice\tdid:plc:alice.car\t$rev\t1\t'); DROP TABLE repo_stream.records; --\t$size\tactive",
		qr/line 2: invalid did:key/ ],
	[ '3.17: ../dev/zero', "did:plc:x1\t../../../../../dev/zero$entry", qr/line 2: invalid file name/ ],
	[ '3.18: a comment line over 8192 bytes', '#' . ('x' x 8189) . "\tx\tdid:plc:alice.car$entry",
		qr/line 2: longer than 8192 bytes/ ])
{
	my ($what, $line, $msg) = @$case;
	my $d = backup_dir($line, "did:plc:alice\tdid:plc:alice.car$entry");
	($rc, $out, $err) = cli('target', 'restore', $d);
	refused("restore, $what", $rc, $err, qr/manifest\.tsv: $msg.*nothing was restored/s);
}
is($node->safe_psql('target', 'SELECT count(*) FROM pg_largeobject_metadata'), '0', 'the refused manifests uploaded nothing');
is($node->safe_psql('target', 'SELECT count(*) FROM repo_stream.repos'), '0', 'and restored nothing, alice\'s good line neither');

# files of a manifest that passes: only regular files of the directory itself, of the size noted
{
	my $d = backup_dir("did:plc:l1\tl1.car$entry", "did:plc:f1\tf1.car$entry", "did:plc:s1\ts1.car$entry",
		"did:plc:alice\tdid:plc:alice.car$entry");
	symlink('/etc/passwd', "$d/l1.car") or die $!;
	mkfifo("$d/f1.car", 0600) or die $!;
	open my $f, '>', "$d/s1.car" or die $!;
	print $f 'short';
	close $f;
	($rc, $out, $err) = cli('target', 'restore', $d);
	is($rc, 256, 'restore with bad files: exit status 1') or diag("rc $rc: $err");
	like($err, qr{cannot read "\Q$d\E/l1\.car": it is a symbolic link}, 'a symlink is not followed');
	like($err, qr{cannot read "\Q$d\E/f1\.car": not a regular file}, 'a FIFO is not read (nor waited on)');
	like($err, qr{"\Q$d\E/s1\.car" has 5 bytes, the manifest says $size}, 'a file of another size is refused');
	like($err, qr/1 of 4 repos restored/, 'the good one is restored');
	is($node->safe_psql('target', q{SELECT string_agg(did, ',') FROM repo_stream.repos}), 'did:plc:alice',
		'only alice');
	is($node->safe_psql('target', 'SELECT count(*) FROM pg_largeobject_metadata'), '0', 'no large object left');
}

# ------------------------------------------------------ backup directories

# a symlink where backup writes (the manifest, a CAR) is not followed
{
	my $d = "$scratch/bk_links";
	mkdir $d or die $!;
	open my $f, '>', "$scratch/outside.txt" or die $!;
	print $f "untouched\n";
	close $f;
	symlink("$scratch/outside.txt", "$d/did:plc:bob.car") or die $!;
	($rc, $out, $err) = cli('postgres', 'backup', $d);
	refused('backup over a symlinked CAR', $rc, $err, qr{cannot create "\Q$d\E/did:plc:bob\.car": it is a symbolic link});
	is(slurp_file("$scratch/outside.txt"), "untouched\n", 'the file it pointed at is untouched');
	unlink "$d/did:plc:bob.car", "$d/manifest.tsv";
	symlink("$scratch/outside.txt", "$d/manifest.tsv") or die $!;
	($rc, $out, $err) = cli('postgres', 'backup', $d);
	refused('backup over a symlinked manifest', $rc, $err, qr{cannot create "\Q$d\E/manifest\.tsv": it is a symbolic link});
	is(slurp_file("$scratch/outside.txt"), "untouched\n", 'still untouched');
}

# and the real thing still works: backup, then restore into a fresh database
($rc, $out, $err) = cli('postgres', 'backup', "$scratch/bk_real");
is($rc, 0, 'backup of the real database') or diag $err;
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION repo_stream');
($rc, $out, $err) = cli('fresh', 'restore', "$scratch/bk_real");
is($rc, 0, 'restore of it') or diag $err;
is($node->safe_psql('fresh', q{SELECT string_agg(did, ',' ORDER BY did) FROM repo_stream.repos}),
	'did:plc:alice,did:plc:bob', 'every repo restored');
($rc, $out, $err) = cli('postgres', 'list');
like($out, qr/^did:plc:alice\t\w{13}\t\d+\tactive$/m, 'list shows the repos');

done_testing();
