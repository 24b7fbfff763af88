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
use File::Temp;

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

# The checker itself, on a small tree with one fault of each kind it
# guards against (and links it must accept), so a checker that stopped
# looking would fail here rather than pass every real tree.
my $tmp = File::Temp->newdir();
my $fx = "$tmp/tree";
mkdir $fx or die $!;
mkdir "$fx/docs" or die $!;
sub put
{
	my ($path, $text) = @_;
	open my $fh, '>:encoding(UTF-8)', "$fx/$path" or die "$path: $!";
	print $fh $text;
	close $fh;
}
put('docs/a.md', "# A\n\n## Twice\n\n## Twice\n\n## `f(x bytea) \x{2192} int`\n\n"
	  . "[ok](#twice-1) [ok](#fx-bytea--int) [ok](../README.md#intro) [ok](b.md)\n"
	  . "[bad](#twice-2) [bad](../README.md#nowhere) [bad](c.md) [bad](../../outside.md)\n"
	  . "`[in code](nowhere.md)` and SPEC.md\n");
put('docs/b.md', "# B\n");
put('../outside.md', '');
put('README.md', "# R\n\n## Intro\n\n" . ('x' x 200) . "\n" . ('y' x 201) . "\n"
	  . "```\n" . ('z' x 300) . "\n```\n[bad](docs/a.md#a-b)\n[ref]: docs/none.md\n");
$out = `perl $top/tools/check_docs.pl $fx 2>&1`;
is($? >> 8, 1, 'check_docs.pl fails on a tree with faults');
is( join("\n", grep { !/^checked / } split /\n/, $out),
	join("\n",
		'README.md:6: 201 characters, more than 200',
		'README.md:10: link docs/a.md#a-b: no heading with that anchor',
		'README.md:11: link docs/none.md: no such file',
		'docs/a.md:10: link #twice-2: no heading with that anchor',
		'docs/a.md:10: link ../README.md#nowhere: no heading with that anchor',
		'docs/a.md:10: link c.md: no such file',
		'docs/a.md:10: link ../../outside.md leads outside the repository',
		'docs/a.md:11: names SPEC.md, which is not in the repository'),
	'check_docs.pl reports each fault, and only those');
put('README.md', "# R\n\n## Intro\n\n```\n" . ("z\n" x 20500) . "```\n");
$out = `perl $top/tools/check_docs.pl $fx 2>&1`;
like($out, qr/^README\.md is 41\d\d\d bytes, more than 40960$/m, 'check_docs.pl refuses a README over 40,960 bytes');

done_testing();
