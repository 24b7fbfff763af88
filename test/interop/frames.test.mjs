// Frames and the output plugin over the replication protocol, for what the
// SQL functions cannot reach: an option given without a value (the SQL
// functions refuse NULL values before the plugin sees them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect } from './db.mjs';

test('a bare option other than blocks is an ERROR 22023 with a hint, like every option error', async () => {
  const db = await connect();
  await db.query("SELECT pg_create_logical_replication_slot('interop_bare', 'repo_stream')");
  const repl = new pg.Client({ replication: 'database' });
  await repl.connect();
  try {
    for (const [opts, message, hint] of [
      ['("format")', /repo_stream option "format" needs a value/, /Valid formats are cbor and json/],
      ['("repos")', /repo_stream option "repos" needs a value/, /Give DIDs separated by commas/],
      ['("colour" \'red\')', /unrecognized repo_stream option "colour"/, /Valid options are/],
    ]) {
      await assert.rejects(repl.query(`START_REPLICATION SLOT interop_bare LOGICAL 0/0 ${opts}`),
        (e) => e.code === '22023' && message.test(e.message) && hint.test(e.hint));
    }
  } finally {
    await repl.end();
    await db.query("SELECT pg_drop_replication_slot('interop_bare')");
    await db.end();
  }
});
