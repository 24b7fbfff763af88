// Shared connection for the interop tests: libpq environment variables
// (pg_virtualenv sets PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
import pg from 'pg';

export async function connect() {
  const client = new pg.Client();
  await client.connect();
  await client.query('CREATE EXTENSION IF NOT EXISTS repo_stream');
  // the cluster's master key file, made once (42710 once it exists)
  await client.query('SELECT repo_stream.create_master_key()').catch((e) => {
    if (e.code !== '42710') throw e;
  });
  return client;
}
