// The event log read with third-party code only: @ipld/dag-cbor (via cborg's
// decodeFirst) splits and decodes every frame, @ipld/car parses `blocks`,
// @noble/ed25519 checks the commit signature against the did:key, and
// @atproto/repo rebuilds the MST from the records and inverts each commit's
// ops over the proof blocks to get back `prevData`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFirst } from 'cborg';
import * as dagCbor from '@ipld/dag-cbor';
import { CarReader } from '@ipld/car';
import * as ed from '@noble/ed25519';
import { CID } from 'multiformats/cid';
import { base58btc } from 'multiformats/bases/base58';
import { MST, MemoryBlockstore } from '@atproto/repo';
import { connect } from './db.mjs';

let db;
const DIDS = ['did:plc:interop1', 'did:web:interop2.example.com'];

before(async () => {
  db = await connect();
  for (const did of DIDS) {
    const exists = await db.query('SELECT 1 FROM repo_stream.repos WHERE did = $1', [did]);
    if (exists.rowCount === 0) await db.query('SELECT repo_stream.create_repo($1)', [did]);
  }
  // creates, updates and deletes, some transactions with many ops
  for (let t = 0; t < 30; t++) {
    await db.query('BEGIN');
    for (let i = 0; i < 1 + (t % 7); i++) {
      const did = DIDS[(t + i) % 2];
      await db.query('SELECT repo_stream.put_record($1, $2, $3, $4)', [
        did, 'app.bsky.feed.post', `p${(t * 7 + i) % 40}`,
        JSON.stringify({ $type: 'app.bsky.feed.post', text: `post ${t}/${i}`, createdAt: '2026-11-26T04:00:00.000Z' }),
      ]);
    }
    if (t % 3 === 0) {
      await db.query('SELECT repo_stream.delete_record($1, $2, $3)', [DIDS[t % 2], 'app.bsky.feed.post', `p${t % 40}`]);
    }
    await db.query('COMMIT');
  }
  // one transaction over 200 ops: several chained commits
  await db.query(`SELECT repo_stream.put_record($1, 'app.bsky.feed.like', 'l' || i,
                    jsonb_build_object('$type', 'app.bsky.feed.like', 'i', i))
                  FROM generate_series(1, 450) i`, [DIDS[0]]);
});
after(async () => { await db.end(); });

function splitFrame(bytes) {
  const [header, rest] = decodeFirst(bytes, dagCbor.decodeOptions);
  const body = dagCbor.decode(rest);
  return { header, body };
}

function didKeyToPublic(didKey) {
  const bytes = base58btc.decode(didKey.slice('did:key:'.length));
  assert.equal(bytes[0], 0xed);
  assert.equal(bytes[1], 0x01);
  return bytes.slice(2);
}

async function frames() {
  const r = await db.query('SELECT seq, frame FROM repo_stream.events_since(0, 100000) WHERE seq IS NOT NULL');
  return r.rows.map((row) => ({ seq: Number(row.seq), bytes: new Uint8Array(row.frame) }));
}

async function keyFor(did) {
  const r = await db.query('SELECT repo_stream.repo_key($1) AS k', [did]);
  return didKeyToPublic(r.rows[0].k);
}

test('every frame decodes with @ipld/dag-cbor and carries its seq', async () => {
  const all = await frames();
  assert.ok(all.length > 30);
  for (const f of all) {
    const { header, body } = splitFrame(f.bytes);
    assert.equal(header.op, 1);
    assert.ok(['#commit', '#account', '#sync'].includes(header.t));
    assert.equal(body.seq, f.seq);
  }
});

test('@ipld/car parses blocks, @noble/ed25519 verifies every commit signature', async () => {
  let checked = 0;
  for (const f of await frames()) {
    const { header, body } = splitFrame(f.bytes);
    if (header.t !== '#commit' || !DIDS.includes(body.repo)) continue;
    const car = await CarReader.fromBytes(body.blocks);
    const [root] = await car.getRoots();
    assert.ok(root.equals(body.commit), 'CAR root is the commit');
    const block = await car.get(body.commit);
    const commit = dagCbor.decode(block.bytes);
    assert.equal(commit.version, 3);
    assert.equal(commit.did, body.repo);
    assert.equal(commit.rev, body.rev);
    assert.equal(commit.prev, null);
    const { sig, ...unsigned } = commit;
    const ok = await ed.verifyAsync(sig, dagCbor.encode(unsigned), await keyFor(body.repo));
    assert.ok(ok, `signature of seq ${f.seq}`);
    for (const op of body.ops) {
      if (op.action !== 'delete') assert.ok(await car.get(op.cid), `record block of ${op.path}`);
    }
    assert.ok(body.ops.length <= 200);
    checked++;
  }
  assert.ok(checked > 30, `${checked} commits checked`);
});

test('@atproto/repo: inverting each commit over its proof blocks gives prevData', async () => {
  let inverted = 0;
  for (const f of await frames()) {
    const { header, body } = splitFrame(f.bytes);
    if (header.t !== '#commit' || !DIDS.includes(body.repo) || body.ops.length === 0) continue;
    const car = await CarReader.fromBytes(body.blocks);
    const store = new MemoryBlockstore();
    for await (const { cid, bytes } of car.blocks()) await store.putBlock(cid, bytes);
    const commit = dagCbor.decode((await car.get(body.commit)).bytes);
    let mst = MST.load(store, commit.data);
    for (const op of body.ops) {
      if (op.action === 'create') mst = await mst.delete(op.path);
      else if (op.action === 'update') mst = await mst.update(op.path, op.prev);
      else mst = await mst.add(op.path, op.prev);
    }
    const prev = await mst.getPointer();
    assert.ok(body.prevData && prev.equals(body.prevData), `seq ${f.seq} inverts to prevData`);
    inverted++;
  }
  assert.ok(inverted > 30, `${inverted} commits inverted`);
});

test('@atproto/repo computes the same MST root from the records as the head commit', async () => {
  for (const did of DIDS) {
    const recs = await db.query(
      'SELECT collection || \'/\' || rkey AS path, cid FROM repo_stream.records WHERE did = $1', [did]);
    let mst = await MST.create(new MemoryBlockstore());
    for (const r of recs.rows) mst = await mst.add(r.path, CID.parse(r.cid));
    const head = await db.query('SELECT head_commit FROM repo_stream.repos WHERE did = $1', [did]);
    const commit = dagCbor.decode(new Uint8Array(head.rows[0].head_commit));
    assert.ok((await mst.getPointer()).equals(commit.data), `${did}: ${recs.rowCount} records`);
  }
});

test('a transaction with 450 ops became chained commits of at most 200 ops', async () => {
  const chain = [];
  for (const f of await frames()) {
    const { header, body } = splitFrame(f.bytes);
    if (header.t === '#commit' && body.repo === DIDS[0] && body.ops.some((o) => o.path.startsWith('app.bsky.feed.like/'))) {
      chain.push(body);
    }
  }
  assert.deepEqual(chain.map((c) => c.ops.length), [200, 200, 50]);
  for (let i = 1; i < chain.length; i++) {
    assert.equal(chain[i].since, chain[i - 1].rev, 'since chains to the previous rev');
    assert.ok(chain[i].rev > chain[i - 1].rev, 'revs increase');
    assert.ok(chain[i].seq > chain[i - 1].seq, 'seqs increase');
  }
});
