# A consumer's view of CAR files for the snapshot TAP tests, in plain Perl
# (no code of the extension): a DAG-CBOR decoder, a CARv1 reader, CIDs in
# text, and the records (key -> CID) of a repo CAR read from its MST nodes.
package RepoStreamCar;
use strict;
use warnings;
use Digest::SHA qw(sha256);
use Exporter 'import';
our @EXPORT = qw(cbor_decode car_read cid_text car_records car_from_hex car_write cid_of car_replace_block);

# One DAG-CBOR item at $$pos of $buf.  Maps become hashes, byte strings
# { bytes => ... }, links (tag 42) { link => binary CID }, null undef.
sub cbor_decode
{
	my ($buf, $pos) = @_;
	my $ib = ord(substr($buf, $$pos++, 1));
	my ($major, $info) = ($ib >> 5, $ib & 31);
	my $arg = $info;
	if ($info >= 24 && $info <= 27)
	{
		my $n = 1 << ($info - 24);
		$arg = 0;
		$arg = $arg * 256 + ord(substr($buf, $$pos++, 1)) for 1 .. $n;
	}
	elsif ($info > 27)
	{
		die "unsupported CBOR additional info $info";
	}
	return $arg if $major == 0;
	return -1 - $arg if $major == 1;
	if ($major == 2 || $major == 3)
	{
		my $s = substr($buf, $$pos, $arg);
		$$pos += $arg;
		return $major == 2 ? { bytes => $s } : $s;
	}
	if ($major == 4)
	{
		return [ map { cbor_decode($buf, $pos) } 1 .. $arg ];
	}
	if ($major == 5)
	{
		my %h;
		for (1 .. $arg)
		{
			my $k = cbor_decode($buf, $pos);
			$h{$k} = cbor_decode($buf, $pos);
		}
		return \%h;
	}
	if ($major == 6)
	{
		die "unexpected CBOR tag $arg" unless $arg == 42;
		my $b = cbor_decode($buf, $pos);
		return { link => substr($b->{bytes}, 1) };
	}
	return undef if $ib == 0xf6;
	return 1 if $ib == 0xf5;
	return 0 if $ib == 0xf4;
	die sprintf("unsupported CBOR initial byte 0x%02x", $ib);
}

sub varint
{
	my ($buf, $pos) = @_;
	my ($v, $shift) = (0, 0);
	while (1)
	{
		my $b = ord(substr($buf, $$pos++, 1));
		$v += ($b & 0x7f) << $shift;
		$shift += 7;
		return $v if $b < 0x80;
	}
}

# (root CID, [ [CID, data], ... ]) of a CARv1 file, blocks in file order;
# dies unless every block hashes to its CID.
sub car_read
{
	my ($car) = @_;
	my $pos = 0;
	my $hlen = varint($car, \$pos);
	my $hpos = 0;
	my $header = cbor_decode(substr($car, $pos, $hlen), \$hpos);
	$pos += $hlen;
	my @blocks;
	while ($pos < length($car))
	{
		my $len = varint($car, \$pos);
		my $cid = substr($car, $pos, 36);
		my $data = substr($car, $pos + 36, $len - 36);
		die 'block does not hash to its CID' unless substr($cid, 4) eq sha256($data);
		push @blocks, [ $cid, $data ];
		$pos += $len;
	}
	return ($header->{roots}[0]{link}, \@blocks);
}

# base32 (RFC 4648, lower case, no padding) with the "b" multibase prefix.
sub cid_text
{
	my ($bin) = @_;
	my $bits = unpack('B*', $bin);
	$bits .= '0' x ((5 - length($bits) % 5) % 5);
	return 'b' . join('', map { ('a' .. 'z', '2' .. '7')[ oct("0b$_") ] } $bits =~ /(.{5})/g);
}

sub car_from_hex
{
	my ($hex) = @_;
	$hex =~ s/^\\x//;
	return pack('H*', $hex);
}

# The records of a repo CAR as { key => CID text }, from every MST node
# reachable from the commit (keys rebuilt from their prefix compression);
# and the commit.
sub car_records
{
	my ($car) = @_;
	my ($root, $blocks) = car_read($car);
	my %by_cid = map { ($_->[0] => $_->[1]) } @$blocks;
	my $p = 0;
	my $commit = cbor_decode($by_cid{$root}, \$p);
	my %records;
	my @todo = ($commit->{data}{link});
	while (my $cid = pop @todo)
	{
		my $q = 0;
		my $node = cbor_decode($by_cid{$cid} // die('missing node ' . cid_text($cid)), \$q);
		push @todo, $node->{l}{link} if $node->{l};
		my $prev = '';
		for my $e (@{ $node->{e} })
		{
			my $key = substr($prev, 0, $e->{p}) . $e->{k}{bytes};
			$records{$key} = cid_text($e->{v}{link});
			push @todo, $e->{t}{link} if $e->{t};
			$prev = $key;
		}
	}
	return (\%records, $commit);
}

sub put_varint
{
	my ($v) = @_;
	my $out = '';
	while ($v >= 0x80)
	{
		$out .= chr(($v & 0x7f) | 0x80);
		$v >>= 7;
	}
	return $out . chr($v);
}

# Binary CID (dag-cbor, sha2-256) of bytes.
sub cid_of
{
	my ($data) = @_;
	return "\x01\x71\x12\x20" . sha256($data);
}

# A CARv1 file rooted at $root (binary CID) holding [CID, data] blocks.
sub car_write
{
	my ($root, $blocks) = @_;
	# {roots: [root], version: 1}
	my $header = "\xa2\x65roots\x81\xd8\x2a\x58\x25\x00" . $root . "\x67version\x01";
	my $out = put_varint(length($header)) . $header;
	$out .= put_varint(36 + length($_->[1])) . $_->[0] . $_->[1] for @$blocks;
	return $out;
}

# Replace the bytes of block $old_cid by $new_data and re-link every MST
# node above it (their links are rewritten and re-hashed, up to the root):
# returns (new blocks, new root node CID, new block CID).  The commit is
# left as it was: the caller re-signs one over the new root.
sub car_replace_block
{
	my ($blocks, $data_root, $old_cid, $new_data) = @_;
	my @out = map { [ $_->[0], $_->[1] ] } @$blocks;
	my $new_cid = cid_of($new_data);
	my @todo = ([ $old_cid, $new_cid ]);
	my $root = $data_root;
	for (@out)
	{
		$_ = [ $new_cid, $new_data ] if $_->[0] eq $old_cid;
	}
	while (my $pair = shift @todo)
	{
		my ($from, $to) = @$pair;
		$root = $to if $from eq $root;
		for my $b (@out)
		{
			next if $b->[0] eq $to;
			my $link = "\xd8\x2a\x58\x25\x00" . $from;
			next unless index($b->[1], $link) >= 0;
			my $nd = $b->[1];
			$nd =~ s/\Q$link\E/\xd8\x2a\x58\x25\x00$to/g;
			my $nc = cid_of($nd);
			push @todo, [ $b->[0], $nc ];
			$b = [ $nc, $nd ];
		}
	}
	return (\@out, $root, $new_cid);
}

1;
