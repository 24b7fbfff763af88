// Shared connection for the interop tests: libpq environment variables
// (pg_virtualenv sets PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
import pg from 'pg';

export async function connect() {
  const client = new pg.Client();
  await client.connect();
  await client.query('CREATE EXTENSION IF NOT EXISTS repo_stream');
  return client;
}
