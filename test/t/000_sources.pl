# Checks of the source tree that need no server: every SQL install or
# upgrade script's C symbols exist in the built library (so a database still
# on an older version keeps working with the new library), and the upgrade
# scripts are up to date with the SQL sources (tools/check_upgrade.sh), and
# the README stays short with every link of it and docs/ resolving
# (tools/check_docs.pl).
use strict;
use warnings;
use FindBin;
use Test::More;

my $top = "$FindBin::Bin/../..";
my $so = "$top/repo_stream.so";
ok(-f $so, 'repo_stream.so is built');

# the library's defined dynamic symbols
my %have = map { (split)[-1] => 1 } grep { / T / } `nm -D --defined-only $so`;
ok(scalar(keys %have) > 0, 'nm lists the library\'s symbols');

my @scripts = (glob("$top/upgrade/*.sql"), glob("$top/src/sql/*.sql"));
my ($n, @missing) = (0);
for my $f (@scripts)
{
	open my $fh, '<', $f or die "$f: $!";
	local $/;
	my $sql = <$fh>;
	while ($sql =~ /'MODULE_PATHNAME'\s*,\s*'(\w+)'/g)
	{
		$n++;
		push @missing, "$1 (" . ($f =~ s{.*/}{}r) . ")"
		  unless $have{$1} && $have{"pg_finfo_$1"};
	}
}
ok($n > 50, "the scripts name $n C functions");
is(join(', ', @missing), '', 'each C function of every install and upgrade script is in the library, with its pg_finfo');

my $out = `bash $top/tools/check_upgrade.sh 2>&1`;
is($? >> 8, 0, 'the upgrade scripts are up to date with the SQL sources') or diag $out;

$out = `perl $top/tools/check_docs.pl $top 2>&1`;
is($? >> 8, 0, 'README.md is at most 40,960 bytes, has no line over 200 characters outside code blocks, '
	  . 'and every relative link of README.md and docs/*.md leads to a file and heading that exist')
  or diag $out;

done_testing();
