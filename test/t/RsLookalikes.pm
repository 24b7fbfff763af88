# Look-alikes of pg_catalog's functions and operators, for the search_path
# tests (029_search_path.pl): a role that may create objects in a schema of
# a caller's search_path can shadow pg_catalog.format() or "=" with its own,
# which then run with the caller's rights.  The names come from the
# sources (every name that looks called in an SQL body or in an SQL string
# of the C code), so the list follows the code.
#
#   lookalike_names($top)               -> { funcs => [...], ops => [...] }
#   plant_lookalikes($node, $db, $names, @schemas)
#   lookalike_hits($node, $db)          -> calls logged (rows of plant.log)
#
# Each look-alike logs to plant.log (and a WARNING to the server log, which
# survives a rollback), then does what pg_catalog's does where it can (an
# aggregate raises an ERROR instead).
package RsLookalikes;
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(lookalike_names plant_lookalikes lookalike_hits lookalike_warnings);

# operators SQL syntax calls by name: IN, NOT IN, BETWEEN, LIKE, CASE x WHEN,
# IS DISTINCT FROM, NULLIF, = ANY
my @syntax_ops = qw(= <> < > <= >= ~~ !~~ ~~* !~~*);
# and names any SQL is likely to call, whether or not the sources do today
my @common_funcs = qw(now lower upper length octet_length substr left right replace split_part
  concat concat_ws format array_position array_length cardinality unnest string_agg array_agg
  count min max sum coalesce jsonb_build_object jsonb_build_array to_jsonb jsonb_typeof
  jsonb_array_elements jsonb_each jsonb_object_keys jsonb_extract_path_text set_config current_setting
  encode decode md5 sha256 quote_ident quote_literal quote_nullable pg_typeof generate_series
  lo_from_bytea lo_unlink pg_advisory_xact_lock pg_try_advisory_xact_lock clock_timestamp);
my @common_ops = split ' ', '|| -> ->> #> #>> @> <@ ? ?| ?& - #- + * /';

sub slurp
{
	my ($f) = @_;
	open my $fh, '<', $f or die "$f: $!";
	local $/;
	return scalar <$fh>;
}

# The function and operator names that SQL in the sources may call:
# identifiers before "(" and runs of operator characters, in the SQL files
# (comments removed) and in every string literal of the C files.
sub lookalike_names
{
	my ($top) = @_;
	my @texts;
	for my $f (glob("$top/src/sql/*.sql"), "$top/router/repo_stream_router.sql", glob("$top/upgrade/*.sql"))
	{
		my $s = slurp($f);
		$s =~ s{/\*.*?\*/}{}gs;
		$s =~ s{--[^\n]*}{}g;
		push @texts, $s;
	}
	for my $f (glob("$top/src/*.c"))
	{
		my $s = slurp($f);
		$s =~ s{/\*.*?\*/}{}gs;
		push @texts, join("\n", $s =~ /"((?:[^"\\\n]|\\.)*)"/g);
	}
	my (%f, %o);
	for my $t (@texts)
	{
		$f{ lc $1 } = 1 while $t =~ /\b([A-Za-z_][A-Za-z_0-9]*)\s*\(/g;
		$o{$1} = 1 while $t =~ m{([-+*/<>=~!@#%^&|`?]+)}g;
	}
	$o{$_} = 1 for @syntax_ops, @common_ops;
	$f{$_} = 1 for @common_funcs;
	return { funcs => [ sort keys %f ], ops => [ sort keys %o ] };
}

# The planting code: schema plant (outside every search_path) holds the
# log and plant.plant(target schema, function names, operator names).
my $plant_sql = <<'EOS';
CREATE SCHEMA IF NOT EXISTS plant;
GRANT USAGE ON SCHEMA plant TO PUBLIC;
CREATE TABLE IF NOT EXISTS plant.log (at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	who text NOT NULL, sig text NOT NULL);
CREATE SEQUENCE IF NOT EXISTS plant.calls;
CREATE TABLE IF NOT EXISTS plant.made (schema text, kind text, sig text, ok boolean, why text);

-- Log a call; a read-only transaction keeps only the WARNING.
CREATE OR REPLACE FUNCTION plant.hit(sig text) RETURNS void
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE WARNING 'planted look-alike called: % (by %)', sig, session_user;
	BEGIN
		PERFORM pg_catalog.nextval('plant.calls');
		INSERT INTO plant.log (who, sig) VALUES (session_user, sig);
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
END $$;
GRANT EXECUTE ON FUNCTION plant.hit(text) TO PUBLIC;

-- Types a PL/pgSQL look-alike can take or return.
CREATE OR REPLACE FUNCTION plant.usable(t oid, ret boolean) RETURNS boolean
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT typtype <> 'p' OR typname IN ('anyelement', 'anyarray', 'anynonarray', 'anyenum', 'anyrange',
		'anymultirange', 'anycompatible', 'anycompatiblearray', 'anycompatiblenonarray',
		'anycompatiblerange', 'anycompatiblemultirange')
		OR (ret AND typname IN ('void', 'record'))
	  FROM pg_type WHERE oid = t $$;

CREATE OR REPLACE FUNCTION plant.try(target text, kind text, sig text, VARIADIC ddl text[]) RETURNS boolean
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	d text;
BEGIN
	BEGIN
		FOREACH d IN ARRAY ddl LOOP
			EXECUTE d;
		END LOOP;
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO plant.made VALUES (target, kind, sig, false, SQLERRM);
		RETURN false;
	END;
	INSERT INTO plant.made VALUES (target, kind, sig, true, NULL);
	RETURN true;
END $$;

CREATE OR REPLACE FUNCTION plant.plant(target text, funcs text[], ops text[]) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET client_min_messages = warning AS $$
DECLARE
	p record;
	o record;
	ins oid[];
	outs oid[];
	sig text;
	params text;
	call text;
	body text;
	k int;
	n int := 0;
	fn text;
BEGIN
	FOR p IN SELECT pr.*, pr.oid AS poid, a.aggkind
			   FROM pg_proc pr LEFT JOIN pg_aggregate a ON a.aggfnoid = pr.oid
			  WHERE pr.pronamespace = 'pg_catalog'::regnamespace AND pr.proname = ANY (funcs)
				AND pr.prokind IN ('f', 'a') AND coalesce(a.aggkind, 'n') = 'n'
			  ORDER BY pr.oid LOOP
		-- "any" arguments: exact text look-alikes, which win over pg_catalog's
		-- ("any" is not exact), with 0 to 5 more for a VARIADIC "any"
		ins := ARRAY(SELECT CASE WHEN t = '"any"'::regtype THEN 'text'::regtype::oid ELSE t END
					   FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, i) ORDER BY i);
		SELECT array_agg(t ORDER BY i) INTO outs
		  FROM unnest(p.proallargtypes, p.proargmodes) WITH ORDINALITY u(t, m, i) WHERE m IN ('o', 't');
		IF cardinality(outs) = 1 THEN
			outs := NULL;		-- one OUT parameter: the result is its type
		END IF;
		IF NOT (SELECT bool_and(plant.usable(t, false)) FROM unnest(ins) t) IS NOT FALSE
		   OR NOT plant.usable(p.prorettype, true) THEN
			INSERT INTO plant.made VALUES (target, 'skip', p.poid::regprocedure::text, false, 'argument or result type');
			CONTINUE;
		END IF;
		FOR k IN 0 .. CASE WHEN p.provariadic = '"any"'::regtype THEN 5
						   ELSE p.pronargdefaults END LOOP
			IF p.provariadic = '"any"'::regtype THEN
				params := array_to_string(ARRAY(SELECT format_type(t, NULL) FROM unnest(ins[1:p.pronargs - 1]) t)
										  || array_fill('text'::text, ARRAY[k]), ', ');
				n := p.pronargs - 1 + k;
			ELSE
				n := p.pronargs - k;
				params := array_to_string(ARRAY(SELECT format_type(t, NULL) FROM unnest(ins[1:n]) t), ', ');
				IF p.provariadic <> 0 AND k = 0 THEN
					params := regexp_replace(params, '([^,]*)$', 'VARIADIC \1');
				END IF;
			END IF;
			call := array_to_string(ARRAY(SELECT CASE WHEN i = n AND p.provariadic NOT IN (0, '"any"'::regtype)
													 AND k = 0 THEN 'VARIADIC ' ELSE '' END || '$' || i
										   FROM generate_series(1, n) i), ', ');
			sig := format('%s(%s)', p.proname, params);
			IF p.prokind = 'a' THEN
				IF n = 0 THEN
					params := '*';
				END IF;
				fn := format('plant.agg_%s_%s_%s', target, p.poid, k);
				PERFORM plant.try(target, 'aggregate', sig,
					format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql AS %L', fn,
						   concat_ws(', ', format_type(p.prorettype, NULL), nullif(params, '*')),
						   format_type(p.prorettype, NULL),
						   -- an aggregate's result cannot be delegated: fail loudly
						   format('BEGIN PERFORM plant.hit(%L); RAISE EXCEPTION %L; END', target || '.' || sig,
								  'look-alike aggregate ' || target || '.' || sig || ' called')),
					format('CREATE AGGREGATE %I.%I(%s) (SFUNC = %s, STYPE = %s)', target, p.proname, params, fn,
						   format_type(p.prorettype, NULL)));
				CONTINUE;
			END IF;
			IF p.proretset THEN
				body := format('RETURN QUERY SELECT * FROM pg_catalog.%I(%s); RETURN;', p.proname, call);
			ELSIF outs IS NOT NULL THEN
				body := 'RETURN;';
			ELSIF p.prorettype = 'void'::regtype THEN
				body := format('PERFORM pg_catalog.%I(%s); RETURN;', p.proname, call);
			ELSE
				body := format('RETURN pg_catalog.%I(%s);', p.proname, call);
			END IF;
			body := format('BEGIN PERFORM plant.hit(%L); %s END', target || '.' || sig, body);
			IF NOT plant.try(target, 'function', sig,
					format('CREATE FUNCTION %I.%I(%s%s) RETURNS %s%s LANGUAGE plpgsql AS %L', target, p.proname,
						   params,
						   (SELECT string_agg(CASE WHEN params = '' AND i = 1 THEN '' ELSE ', ' END
											  || 'OUT ' || format_type(t, NULL), '' ORDER BY i)
							  FROM unnest(outs) WITH ORDINALITY u(t, i)),
						   CASE WHEN p.proretset THEN 'SETOF ' ELSE '' END,
						   CASE WHEN outs IS NOT NULL THEN 'record' ELSE format_type(p.prorettype, NULL) END,
						   body)) THEN
				-- a body that cannot call pg_catalog's the same way: log only
				PERFORM plant.try(target, 'function', sig || ' (log only)',
					format('CREATE FUNCTION %I.%I(%s%s) RETURNS %s%s LANGUAGE plpgsql AS %L', target, p.proname,
						   params,
						   (SELECT string_agg(CASE WHEN params = '' AND i = 1 THEN '' ELSE ', ' END
											  || 'OUT ' || format_type(t, NULL), '' ORDER BY i)
							  FROM unnest(outs) WITH ORDINALITY u(t, i)),
						   CASE WHEN p.proretset THEN 'SETOF ' ELSE '' END,
						   CASE WHEN outs IS NOT NULL THEN 'record' ELSE format_type(p.prorettype, NULL) END,
						   format('BEGIN PERFORM plant.hit(%L); RETURN%s; END', target || '.' || sig,
								  CASE WHEN p.proretset OR outs IS NOT NULL OR p.prorettype = 'void'::regtype
									   THEN '' ELSE ' NULL' END)));
			END IF;
		END LOOP;
		-- VARIADIC "any": a look-alike for every other mix of types makes the
		-- call ambiguous (an ERROR) rather than silently pg_catalog's
		IF p.provariadic = '"any"'::regtype AND p.prokind = 'f' THEN
			params := array_to_string(ARRAY(SELECT format_type(t, NULL) FROM unnest(ins[1:p.pronargs - 1]) t)
									  || 'VARIADIC anycompatiblearray'::text, ', ');
			sig := format('%s(%s)', p.proname, params);
			PERFORM plant.try(target, 'function', sig,
				format('CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L', target, p.proname, params,
					   CASE WHEN plant.usable(p.prorettype, true) AND p.prorettype <> 'void'::regtype
							THEN format_type(p.prorettype, NULL) ELSE 'text' END,
					   format('BEGIN PERFORM plant.hit(%L); RETURN NULL; END', target || '.' || sig)));
		END IF;
	END LOOP;

	FOR o IN SELECT op.*, op.oid AS ooid FROM pg_operator op
			  WHERE op.oprnamespace = 'pg_catalog'::regnamespace AND op.oprname = ANY (ops) AND op.oprcode <> 0
			  ORDER BY op.oid LOOP
		IF (o.oprleft <> 0 AND NOT plant.usable(o.oprleft, false)) OR NOT plant.usable(o.oprright, false)
		   OR NOT plant.usable(o.oprresult, false) THEN
			INSERT INTO plant.made VALUES (target, 'skip', o.ooid::regoperator::text, false, 'operand or result type');
			CONTINUE;
		END IF;
		sig := o.ooid::regoperator::text;
		fn := format('plant.op_%s_%s', target, o.ooid);
		PERFORM plant.try(target, 'operator', sig,
			format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql AS %L', fn,
				   concat_ws(', ', CASE WHEN o.oprleft <> 0 THEN format_type(o.oprleft, NULL) END,
							 format_type(o.oprright, NULL)),
				   format_type(o.oprresult, NULL),
				   format('BEGIN PERFORM plant.hit(%L); RETURN %s OPERATOR(pg_catalog.%s) %s; END',
						  target || '.' || sig, CASE WHEN o.oprleft <> 0 THEN '$1' ELSE '' END, o.oprname,
						  CASE WHEN o.oprleft <> 0 THEN '$2' ELSE '$1' END)),
			format('CREATE OPERATOR %I.%s (%sRIGHTARG = %s, FUNCTION = %s)', target, o.oprname,
				   CASE WHEN o.oprleft <> 0 THEN format('LEFTARG = %s, ', format_type(o.oprleft, NULL)) ELSE '' END,
				   format_type(o.oprright, NULL), fn));
	END LOOP;
END $$;
EOS

# Plant look-alikes of every name in $names (from lookalike_names) into
# each schema (made if missing) of database $db.
sub plant_lookalikes
{
	my ($node, $db, $names, @schemas) = @_;
	my $arr = sub { 'ARRAY[' . join(', ', map { my $x = $_; $x =~ s/'/''/g; "'$x'" } @{ $_[0] }) . ']::text[]' };
	my $sql = "SET search_path = pg_catalog, pg_temp;\n$plant_sql\n";
	$sql .= "CREATE SCHEMA IF NOT EXISTS \"$_\";\nSELECT plant.plant('$_', "
	  . $arr->($names->{funcs}) . ', ' . $arr->($names->{ops}) . ");\n"
	  for @schemas;
	$node->safe_psql($db, $sql);
	return $node->safe_psql($db, q{SELECT kind || '=' || count(*) FILTER (WHERE ok) || '/' || count(*)
		FROM plant.made GROUP BY kind ORDER BY kind});
}

# The look-alike calls plant.log holds, one "who: schema.sig" per line.
sub lookalike_hits
{
	my ($node, $db) = @_;
	return $node->safe_psql($db, q{SET search_path = pg_catalog, pg_temp;
		SELECT who || ': ' || sig FROM plant.log ORDER BY at});
}

# Lines of the server log saying a look-alike was called (rolled back ones too).
sub lookalike_warnings
{
	my ($node) = @_;
	return join('', grep { /WARNING:  planted look-alike called/ } split /^/, slurp($node->logfile));
}

1;
