-- Every function, table and view of the extension is documented in the
-- catalog (COMMENT ON), so \df+ and \d+ explain each one.
SELECT p.oid::regprocedure AS function_without_comment
  FROM pg_proc p
 WHERE p.pronamespace = 'repo_stream'::regnamespace
   AND obj_description(p.oid, 'pg_proc') IS NULL
 ORDER BY 1;
SELECT c.oid::regclass AS relation_without_comment
  FROM pg_class c
 WHERE c.relnamespace = 'repo_stream'::regnamespace
   AND c.relkind IN ('r', 'p', 'v')
   AND NOT c.relispartition
   AND obj_description(c.oid, 'pg_class') IS NULL
 ORDER BY 1;
