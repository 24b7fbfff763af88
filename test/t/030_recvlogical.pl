# pg_recvlogical streams the repo_stream output plugin into a file while
# pgbench writes: first one writer, then several on several repos (some
# transactions spanning two repos or over 200 records, some rolled back).
# Midway pg_recvlogical is killed with SIGKILL and restarted from the slot.
#
# What "exactly once" means here: the slot resends every transaction whose
# commit is after the position pg_recvlogical last confirmed (it confirms
# what it has fsynced, every -F seconds), so after a crash the file holds
# an unconfirmed tail that arrives again.  The consumer's procedure, and
# this test's: cut the file back to its last complete frame, restart, and
# drop the resent frames: they are exactly the first frames of the new run
# that equal the old run's last ones, and they start at a transaction
# boundary.  After that, every event of the log arrives exactly once,
# byte-identical to events_since, and nothing else arrives.
#
# Order: with one writer, frames arrive in seq order.  With several, commit
# order may differ from seq order between transactions that commit at the
# same moment (docs/streaming.md, "Order"); what
# must hold is that each transaction's frames arrive together and in
# increasing seq.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use RepoStreamNode;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $seconds = $ENV{RS_STREAM_SECONDS} // 8;

my $node = rs_node('recvlogical', allows_streaming => 'logical');
$node->append_conf('postgresql.conf', qq{
max_connections = 40
output_plugin_libraries = 'pgoutput, test_decoding, repo_stream'
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION repo_stream;
	SELECT repo_stream.create_master_key();
	SELECT repo_stream.create_repo('did:plc:stream' || i) FROM generate_series(1, 6) i;
	SELECT pg_create_logical_replication_slot('tap', 'repo_stream');
});
my $base = $node->safe_psql('postgres', 'SELECT coalesce(max(seq), 0) FROM repo_stream.event_log');

# ---------------------------------------------------------------- frames

# End of the CBOR item at $pos in $$buf, or undef if the buffer ends first.
sub cbor_skip
{
	my ($buf, $pos) = @_;
	my $len = length($$buf);
	my $pending = 1;
	while ($pending > 0)
	{
		return undef if $pos >= $len;
		my $ib = ord(substr($$buf, $pos++, 1));
		my ($major, $info) = ($ib >> 5, $ib & 31);
		my $arg = $info;
		if ($info >= 24)
		{
			die "unexpected CBOR additional info $info at byte " . ($pos - 1) if $info > 27;
			my $n = 1 << ($info - 24);
			return undef if $pos + $n > $len;
			$arg = 0;
			$arg = $arg * 256 + ord(substr($$buf, $pos + $_, 1)) for 0 .. $n - 1;
			$pos += $n;
		}
		$pending--;
		if ($major == 2 || $major == 3)
		{
			return undef if $pos + $arg > $len;
			$pos += $arg;
		}
		$pending += $arg if $major == 4;
		$pending += 2 * $arg if $major == 5;
		$pending += 1 if $major == 6;
	}
	return $pos;
}

# pg_recvlogical writes each message and then "\n"; a frame is two
# self-delimiting CBOR items, so: item, item, exactly one newline.
# Returns the frames and the length of the complete part of the file.
sub split_frames
{
	my ($path) = @_;
	open my $fh, '<:raw', $path or return ([], 0);
	local $/;
	my $buf = <$fh> // '';
	close $fh;
	my ($pos, @frames) = (0);
	while ($pos < length($buf))
	{
		my $h = cbor_skip(\$buf, $pos);
		my $b = defined $h ? cbor_skip(\$buf, $h) : undef;
		last unless defined $b && $b < length($buf);
		die "no newline after the frame at byte $pos" unless substr($buf, $b, 1) eq "\n";
		push @frames, substr($buf, $pos, $b - $pos);
		$pos = $b + 1;
	}
	return (\@frames, $pos);
}

# ------------------------------------------------------------ the stream

my $file = $node->basedir . '/stream.cbor';
my @recv_cmd = ('pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 'tap',
	'--start', '--no-loop', '-f', $file, '-F', '1', '-s', '1');
my ($rout, $rerr) = ('', '');
my $recv = IPC::Run::start(\@recv_cmd, '>', \$rout, '2>', \$rerr);

sub pgbench
{
	my ($script, @args) = @_;
	my $path = $node->basedir . '/writer.sql';
	open my $fh, '>', $path or die;
	print $fh $script;
	close $fh;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'pgbench', '-n', @args, '-f', $path, $node->connstr('postgres') ],
		'>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# Each transaction writes into repo a, sometimes also into repo b > a (one
# frame per repo: a multi-frame transaction; the order avoids deadlocks),
# once in a while 250 records (two chained commits); one in six rolls back.
my $writer = q{
\set a random(1, 3)
\set b random(4, 6)
\set two random(0, 1)
\set big random(1, 40)
\set abort random(1, 6)
BEGIN;
SELECT repo_stream.put_record('did:plc:stream' || :a, 'app.bsky.feed.like', repo_stream.tid_now(),
	jsonb_build_object('$type', 'app.bsky.feed.like', 'by', :client_id));
\if :two
SELECT repo_stream.put_record('did:plc:stream' || :b, 'app.bsky.feed.like', repo_stream.tid_now(),
	jsonb_build_object('$type', 'app.bsky.feed.like', 'by', :client_id));
\endif
\if :big = 1
SELECT count(repo_stream.put_record('did:plc:stream' || :a, 'app.bsky.feed.like', repo_stream.tid_now() || '-' || i,
	jsonb_build_object('$type', 'app.bsky.feed.like', 'i', i))) FROM generate_series(1, 250) i;
\endif
\if :abort = 1
ROLLBACK;
\else
COMMIT;
\endif
};

# Phase 1: one writer.
my ($pb, $pbout, $pberr) = pgbench($writer, '-c', '1', '-t', '150');
ok($pb->finish, 'single writer finished') or diag($$pberr);
my $single_max = $node->safe_psql('postgres', 'SELECT max(seq) FROM repo_stream.event_log');

# Phase 2: six writers; pg_recvlogical is killed midway and restarted.
($pb, $pbout, $pberr) = pgbench($writer, '-c', '6', '-j', '3', '-T', $seconds);
sleep($seconds / 2);
my ($before_kill) = split_frames($file);
cmp_ok(scalar(@$before_kill), '>', 0, 'frames were arriving before the kill');
$recv->signal('KILL');
$recv->finish;
my $confirmed = $node->safe_psql('postgres',
	"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'tap'");

# cut a torn last frame, then restart from the slot, appending
my ($run1, $complete) = split_frames($file);
truncate($file, $complete) or die "truncate: $!";
note("run 1: " . scalar(@$run1) . " frames, slot confirmed through $confirmed");
$recv = IPC::Run::start(\@recv_cmd, '>', \$rout, '2>', \$rerr);

ok($pb->finish, 'concurrent writers finished') or diag($$pberr);
note('pgbench: ' . join(' ', grep { /tps|processed/ } split /\n/, $$pbout));

# What the log holds, through the SQL cursor API, and each event's transaction.
my (%expected, %xid_of, @log);
for my $line (split /\n/, $node->safe_psql('postgres', qq{
	SELECT e.seq, l.xmin, encode(e.frame, 'hex')
	  FROM repo_stream.events_since($base, 1000000) e JOIN repo_stream.event_log l USING (seq)
	 ORDER BY e.seq}))
{
	my ($seq, $xid, $hex) = split /\|/, $line;
	my $bytes = pack('H*', $hex);
	$expected{$bytes} = $seq;
	$xid_of{$seq} = $xid;
	push @log, $seq;
}
cmp_ok(scalar(@log), '>', 300, scalar(@log) . ' events logged');

# wait until every event has arrived (commit order is not seq order, so
# the highest seq is not necessarily the last frame), then stop
my $all;
for (1 .. 240)
{
	$all = (split_frames($file))[0];
	my %got = map { $_ => 1 } grep { exists $expected{$_} } @$all;
	last if keys(%got) == @log;
	usleep(250_000);
}
$recv->signal('INT');
$recv->finish;
$all = (split_frames($file))[0];
my @run2 = @$all[ scalar(@$run1) .. $#$all ];

# ----------------------------------------------------------- the checks

# The resent frames: run 2 starts with the last frames of run 1.
my $j = scalar(@$run1);
if (@run2)
{
	for my $i (0 .. $#$run1)
	{
		if ($run1->[$i] eq $run2[0]) { $j = $i; last; }
	}
}
my $resent = scalar(@$run1) - $j;
my $prefix_ok = 1;
for my $k (0 .. $resent - 1)
{
	$prefix_ok = 0 unless defined $run2[$k] && $run2[$k] eq $run1->[ $j + $k ];
}
ok($prefix_ok, "run 2 begins by resending run 1's last $resent frames (unconfirmed)");
if ($resent > 0)
{
	my $first = $expected{ $run2[0] };
	my ($min) = sort { $a <=> $b } grep { $xid_of{$_} eq $xid_of{$first} } @log;
	is($first, $min, 'the resent part starts at a transaction boundary');
}
note("resent after the restart: $resent frames");

my @stream = (@$run1[ 0 .. $j - 1 ], @run2);
my (%count, @unknown);
for my $f (@stream)
{
	if (exists $expected{$f}) { $count{ $expected{$f} }++ }
	else { push @unknown, $f }
}
is(scalar(@unknown), 0, 'every frame received is byte-identical to one from events_since');
my @missing = grep { !$count{$_} } @log;
my @dup = grep { $count{$_} > 1 } keys %count;
is(scalar(@missing), 0, 'no event lost') or diag("missing seqs: @missing[0 .. ($#missing < 9 ? $#missing : 9)]");
is(scalar(@dup), 0, 'no event twice') or diag("duplicate seqs: @dup");
is(scalar(@stream), scalar(@log), 'as many frames as events: ' . scalar(@log));

my @seqs = map { $expected{$_} // 0 } @stream;
my @single = grep { $_ <= $single_max } @seqs;
is_deeply(\@single, [ sort { $a <=> $b } @single], 'one writer: frames arrive in seq order');

# several writers: each transaction's frames together and increasing
my (%last_of, %closed, $split, $decreasing);
my $prev_xid = '';
my $inversions = 0;
for my $i (0 .. $#seqs)
{
	my $s = $seqs[$i];
	my $x = $xid_of{$s} // '?';
	if ($x ne $prev_xid)
	{
		$split++ if $closed{$x};
		$closed{$prev_xid} = 1;
	}
	elsif ($s <= $last_of{$x}) { $decreasing++ }
	$last_of{$x} = $s;
	$inversions++ if $i > 0 && $s < $seqs[ $i - 1 ];
	$prev_xid = $x;
}
ok(!$split, "each transaction's frames arrive together");
ok(!$decreasing, "within a transaction, seqs increase");
my $multi = grep { my $x = $_; (grep { $xid_of{$_} eq $x } @log) > 1 } keys %closed;
cmp_ok($multi, '>', 10, "$multi transactions had several frames");
note("seq order differed from commit order at $inversions places (concurrent commits)");

# ----------------------------------------------------- pg_recvlogical options

sub recv_once
{
	my (@opts) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pg_recvlogical', '-d', $node->connstr('postgres'), '-S', 'tap', '--start',
		'--no-loop', '-f', '-', @opts, '-E', $node->lsn('flush') ], '>', \$out, '2>', \$err,
		IPC::Run::timeout(120));
	return ($out, $err);
}

my ($out, $err) = recv_once('-o', 'format');
like($err, qr/repo_stream option "format" needs a value/, 'an option without a value is refused');
($out, $err) = recv_once('-o', 'colour=red');
like($err, qr/unrecognized repo_stream option "colour"/, 'an unknown option is refused');

# new repos, so that frames the main stream left unconfirmed are filtered out
$node->safe_psql('postgres', q{
	SELECT repo_stream.create_repo('did:plc:json' || i) FROM generate_series(1, 3) i;
	SELECT repo_stream.deactivate_repo('did:plc:json1');
	SELECT repo_stream.put_record('did:plc:json2', 'app.bsky.feed.like', 'json1', '{"$type": "app.bsky.feed.like"}')});
($out, $err) = recv_once('-o', 'format=json', '-o', 'blocks=false', '-o', 'kinds=account,commit',
	'-o', 'repos=did:plc:json1, did:plc:json2');
my @lines = grep { $_ ne '' } split /\n/, $out;
is(scalar(@lines), 4, 'format=json through pg_recvlogical: one line per event of the two repos') or diag($err);
like($lines[2] // '', qr/^\{"seq": \d+, "header": \{"t": "#account", "op": 1\}, "body": \{.*"status": "deactivated"/,
	'the #account event as JSON');
like($lines[3] // '', qr/"repo": "did:plc:json2"/, 'the #commit event as JSON');
unlike($out, qr/"blocks"/, 'blocks=false: no blocks');

$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('tap')");
$node->stop;
done_testing();
