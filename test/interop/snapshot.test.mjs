// Snapshots read with third-party code only: @ipld/car reads every export
// and proof, @atproto/repo walks and verifies the exported tree and a diff
// and finds records (or their absence) in proofs, @atcute/repo reads the
// export as a stream and verifies a proof, @noble/ed25519 verifies the
// commit.  And the other way: a repo built with @atproto/repo, re-signed
// with an Ed25519 key, imports.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CarReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import * as ed from '@noble/ed25519';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { base58btc } from 'multiformats/bases/base58';
import { MST, MemoryBlockstore, Repo, readCarWithRoot, verifyRepoCar, verifyDiffCar, blocksToCarFile, WriteOpAction } from '@atproto/repo';
import { Secp256k1Keypair } from '@atproto/crypto';
import { fromStream as atcuteFromStream, verifyRecord as atcuteVerifyRecord } from '@atcute/repo';
import { connect } from './db.mjs';

let db;
const DID = 'did:plc:interopsnapshot';
const COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.post.x', 'app.bsky.feed.like', 'app.bsky.graph.follow'];

before(async () => {
  db = await connect();
  const exists = await db.query('SELECT 1 FROM repo_stream.repos WHERE did = $1', [DID]);
  if (exists.rowCount > 0) return;
  await db.query('SELECT repo_stream.create_repo($1)', [DID]);
  // records of several collections (post.x sorts before post/ byte-wise),
  // links, bytes, nested values, and contents shared by several keys
  await db.query(`INSERT INTO repo_stream.records (did, collection, rkey, record)
    SELECT $1, ($2::text[])[i % 4 + 1], 'r' || lpad(i::text, 5, '0'),
           jsonb_build_object('$type', ($2::text[])[i % 4 + 1],
             'text', CASE WHEN i % 25 = 0 THEN 'same' ELSE 'record ' || i END,
             'subject', jsonb_build_object('uri', 'at://did:plc:x/app.bsky.feed.post/' || i,
                                          'cid', jsonb_build_object('$link', 'bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a')),
             'bytes', jsonb_build_object('$bytes', 'AQID'), 'n', i, 'pad', repeat(md5(i::text), 20))
    FROM generate_series(1, 2500) i`, [DID, COLLECTIONS]);
  await db.query(`DELETE FROM repo_stream.records WHERE did = $1 AND rkey LIKE 'r007%'`, [DID]);
});
after(async () => { await db.end(); });

function didKeyToPublic(didKey) {
  const bytes = base58btc.decode(didKey.slice('did:key:'.length));
  assert.equal(bytes[0], 0xed);
  assert.equal(bytes[1], 0x01);
  return bytes.slice(2);
}

async function exportChunks(did, since = null) {
  const r = await db.query(
    'SELECT seq, rev, chunk FROM repo_stream.export_repo($1, $2) WITH ORDINALITY AS e(seq, rev, chunk, n) ORDER BY n',
    [did, since]);
  return r.rows.map((row) => ({ seq: Number(row.seq), rev: row.rev, chunk: new Uint8Array(row.chunk) }));
}

function concat(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}

async function exportCar(did, since = null) {
  return concat((await exportChunks(did, since)).map((c) => c.chunk));
}

async function table(did) {
  const r = await db.query('SELECT collection || \'/\' || rkey AS key, cid FROM repo_stream.records WHERE did = $1', [did]);
  return new Map(r.rows.map((row) => [row.key, row.cid]));
}

// @ipld/car: every block in file order, each checked against its CID
async function ipldBlocks(bytes) {
  const car = await CarReader.fromBytes(bytes);
  const blocks = [];
  for await (const { cid, bytes: b } of car.blocks()) {
    const digest = await sha256.digest(b);
    assert.deepEqual(digest.bytes, cid.multihash.bytes, `${cid} hashes to its CID`);
    blocks.push({ cid, bytes: b });
  }
  return { roots: await car.getRoots(), blocks };
}

function links(value, out = []) {
  if (value instanceof CID || (value && value.asCID === value)) out.push(value.toString());
  else if (Array.isArray(value)) value.forEach((v) => links(v, out));
  else if (value && typeof value === 'object' && !(value instanceof Uint8Array)) Object.values(value).forEach((v) => links(v, out));
  return out;
}

test('@ipld/car reads the export: one root, the head commit, first; each block once, after the block linking to it', async () => {
  const bytes = await exportCar(DID);
  const { roots, blocks } = await ipldBlocks(bytes);
  const head = await db.query('SELECT head_cid FROM repo_stream.repos WHERE did = $1', [DID]);
  assert.equal(roots.length, 1);
  assert.equal(roots[0].toString(), head.rows[0].head_cid);
  assert.ok(blocks[0].cid.equals(roots[0]), 'the commit comes first');
  const linked = new Set([roots[0].toString()]);
  const seen = new Set();
  for (const b of blocks) {
    const id = b.cid.toString();
    assert.ok(linked.has(id), `${id} comes after a block that links to it`);
    assert.ok(!seen.has(id), `${id} only once`);
    seen.add(id);
    for (const l of links(dagCbor.decode(b.bytes))) linked.add(l);
  }
  const distinct = new Set((await table(DID)).values());
  const nodes = await db.query('SELECT count(*)::int AS n FROM repo_stream.mst_nodes WHERE did = $1', [DID]);
  assert.equal(blocks.length, 1 + nodes.rows[0].n + distinct.size, 'commit + every node + every distinct record');
});

test('@noble/ed25519 verifies the exported commit with the repo key', async () => {
  const { roots, blocks } = await ipldBlocks(await exportCar(DID));
  const commit = dagCbor.decode(blocks.find((b) => b.cid.equals(roots[0])).bytes);
  assert.equal(commit.did, DID);
  assert.equal(commit.version, 3);
  const { sig, ...unsigned } = commit;
  const key = await db.query('SELECT repo_stream.repo_key($1) AS k', [DID]);
  assert.ok(await ed.verifyAsync(sig, dagCbor.encode(unsigned), didKeyToPublic(key.rows[0].k)));
});

test('@atproto/repo verifies the export and walks exactly the records of the table', async () => {
  const bytes = await exportCar(DID);
  const verified = await verifyRepoCar(bytes, DID);
  const fromCar = new Map(verified.creates.map((w) => [`${w.collection}/${w.rkey}`, w.cid.toString()]));
  assert.deepEqual(fromCar, await table(DID));

  const { root, blocks } = await readCarWithRoot(bytes);
  const repo = await Repo.load(new MemoryBlockstore(blocks), root);
  const listed = new Map((await repo.data.list()).map((e) => [e.key, e.value.toString()]));
  assert.deepEqual(listed, await table(DID));
});

test('@atcute/repo reads the export as a stream, chunk by chunk, with no block missing', async () => {
  // rows of a cursor, fed to the reader as they arrive
  await db.query('BEGIN');
  await db.query(`DECLARE snap NO SCROLL CURSOR FOR
                  SELECT (x).chunk FROM (SELECT repo_stream.export_repo($1) AS x) s`, [DID]);
  let rows = 0;
  const stream = new ReadableStream({
    async pull(controller) {
      const r = await db.query('FETCH 1 FROM snap');
      if (r.rowCount === 0) { controller.close(); return; }
      rows++;
      controller.enqueue(new Uint8Array(r.rows[0].chunk));
    },
  });
  const repo = atcuteFromStream(stream);
  const got = new Map();
  for await (const entry of repo) got.set(`${entry.collection}/${entry.rkey}`, entry.cid.$link);
  await repo.dispose();
  await db.query('COMMIT');
  assert.deepEqual(repo.missingBlocks, []);
  assert.deepEqual(got, await table(DID));
  assert.ok(rows >= 2, `${rows} chunks of 1 MiB`);
});

test('@atproto/repo applies a diff (since) to the old export and gets the new tree', async () => {
  const old = await exportCar(DID);
  const [{ rev: oldRev }] = await exportChunks(DID);
  await db.query('BEGIN');
  await db.query(`UPDATE repo_stream.records SET record = record || '{"edited": true}' WHERE did = $1 AND rkey LIKE 'r001%'`, [DID]);
  await db.query(`DELETE FROM repo_stream.records WHERE did = $1 AND rkey LIKE 'r002%'`, [DID]);
  await db.query(`INSERT INTO repo_stream.records (did, collection, rkey, record)
                  SELECT $1, 'app.bsky.feed.like', 'new' || i, jsonb_build_object('n', i) FROM generate_series(1, 30) i`, [DID]);
  await db.query('COMMIT');
  const diff = await exportCar(DID, oldRev);
  await ipldBlocks(diff);
  assert.ok(diff.length < old.length / 2, `the diff (${diff.length} bytes) is smaller than the export (${old.length})`);

  const { root, blocks } = await readCarWithRoot(old);
  const oldRepo = await Repo.load(new MemoryBlockstore(blocks), root);
  // ensureLeaves (the default): every created or updated record is in the diff
  const verified = await verifyDiffCar(oldRepo, diff, DID);
  const count = (action) => verified.writes.filter((w) => w.action === action).length;
  assert.equal(count(WriteOpAction.Create), 30);
  assert.ok(count(WriteOpAction.Update) >= 100 && count(WriteOpAction.Delete) >= 100,
    `${count(WriteOpAction.Update)} updates, ${count(WriteOpAction.Delete)} deletes`);
  const merged = new MemoryBlockstore(blocks);
  await merged.putMany(verified.commit.newBlocks);
  const newRoot = (await readCarWithRoot(diff)).root;
  const repo = await Repo.load(merged, newRoot);
  const listed = new Map((await repo.data.list()).map((e) => [e.key, e.value.toString()]));
  assert.deepEqual(listed, await table(DID), 'old export + diff = the whole new tree');
});

test('record proofs: @atproto/repo finds the record (or its absence) with the proof blocks alone; @atcute/repo verifies it', async () => {
  const rec = await db.query(`SELECT collection, rkey, cid, record FROM repo_stream.records WHERE did = $1
                              ORDER BY rkey LIMIT 1 OFFSET 777`, [DID]);
  const { collection, rkey, cid } = rec.rows[0];
  const proof = new Uint8Array((await db.query('SELECT repo_stream.record_proof($1, $2, $3) AS p',
    [DID, collection, rkey])).rows[0].p);
  const { blocks } = await ipldBlocks(proof);
  const { root, blocks: map } = await readCarWithRoot(proof);
  const commit = dagCbor.decode(blocks.find((b) => b.cid.equals(root)).bytes);
  const mst = MST.load(new MemoryBlockstore(map), commit.data);
  assert.equal((await mst.get(`${collection}/${rkey}`)).toString(), cid);

  const key = await db.query('SELECT repo_stream.repo_key($1) AS k', [DID]);
  const { sig, ...unsigned } = commit;
  assert.ok(await ed.verifyAsync(sig, dagCbor.encode(unsigned), didKeyToPublic(key.rows[0].k)));
  const verified = await atcuteVerifyRecord({ did: DID, collection, rkey, carBytes: proof });
  assert.equal(verified.cid, cid);
  assert.deepEqual(JSON.parse(JSON.stringify(verified.record)).text, rec.rows[0].record.text);

  const absent = new Uint8Array((await db.query('SELECT repo_stream.record_proof($1, $2, $3) AS p',
    [DID, 'app.bsky.feed.post', 'r00078'])).rows[0].p);
  const a = await readCarWithRoot(absent);
  await ipldBlocks(absent);
  const acommit = dagCbor.decode(a.blocks.get(a.root));
  assert.equal(await MST.load(new MemoryBlockstore(a.blocks), acommit.data).get('app.bsky.feed.post/r00078'), null,
    'an absent key: walking the proof ends without it');
  await assert.rejects(atcuteVerifyRecord({ did: DID, collection: 'app.bsky.feed.post', rkey: 'r00078', carBytes: absent }),
    /could not find record in car/, 'the proof is sound (blocks, commit) and shows the key absent');
});

// An Ed25519 keypair in the shape @atproto/repo signs with.
async function ed25519Keypair() {
  const secret = ed.utils.randomSecretKey();
  const pub = await ed.getPublicKeyAsync(secret);
  const didKey = 'did:key:' + base58btc.encode(new Uint8Array([0xed, 0x01, ...pub]));
  return { jwtAlg: 'EdDSA', did: () => didKey, sign: (msg) => ed.signAsync(msg, secret) };
}

test('a repo built with @atproto/repo and re-signed with Ed25519 imports, same records and root', async () => {
  const did = `did:plc:atprotobuilt${Date.now()}`;
  const storage = new MemoryBlockstore();
  const k256 = await Secp256k1Keypair.create();
  const link = CID.parse('bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a');
  const creates = [];
  for (let i = 0; i < 300; i++) {
    creates.push({
      action: WriteOpAction.Create, collection: COLLECTIONS[i % 4], rkey: `a${i}`,
      record: { $type: COLLECTIONS[i % 4], text: `built ${i % 50}`, n: i, ref: link, raw: new Uint8Array([i % 256, 1]) },
    });
  }
  let repo = await Repo.create(storage, did, k256, creates);
  repo = await repo.applyWrites([
    { action: WriteOpAction.Update, collection: COLLECTIONS[1], rkey: 'a1', record: { text: 'updated' } },
    { action: WriteOpAction.Delete, collection: COLLECTIONS[2], rkey: 'a2' },
  ], k256);
  const edKey = await ed25519Keypair();
  repo = await repo.resignCommit(repo.commit.rev, edKey);
  const car = await blocksToCarFile(repo.cid, storage.blocks);

  const r = await db.query('SELECT repo_stream.import_repo($1, $2) AS k', [Buffer.from(car), edKey.did()]);
  // the returned key is the repo's own, fresh (not the CAR's), and signs its #sync
  const newKey = r.rows[0].k;
  const own = await db.query(`SELECT repo_stream.repo_key($1) AS k, (SELECT did_key FROM repo_stream.repos WHERE did = $1) AS row_key,
                                     (SELECT bool_and(repo_stream.verify_frame(e.frame, $2)) FROM repo_stream.events_since(0, 100000, ARRAY[$1], ARRAY['sync']) e
                                       WHERE e.seq IS NOT NULL) AS sync_verifies,
                                     (SELECT count(*) FROM repo_stream.records WHERE did = $1) AS records`, [did, newKey]);
  assert.equal(own.rows[0].k, newKey, 'import_repo returns the repo\'s did:key');
  assert.equal(own.rows[0].row_key, newKey);
  assert.notEqual(newKey, edKey.did(), 'a fresh key, not the one that signed the CAR');
  assert.equal(own.rows[0].sync_verifies, true, 'the #sync announcing the import verifies with it');
  // 300 creates, one deleted by applyWrites
  assert.equal(Number(own.rows[0].records), 299, 'the imported repo holds 299 records');
  const listed = new Map((await repo.data.list()).map((e) => [e.key, e.value.toString()]));
  assert.deepEqual(await table(did), listed, 'the same records under the same CIDs');
  const head = await db.query('SELECT data_cid FROM repo_stream.repos WHERE did = $1', [did]);
  assert.ok(CID.decode(new Uint8Array(head.rows[0].data_cid)).equals(repo.commit.data), 'the same MST root');
  const ver = await db.query('SELECT bool_and(ok) AS ok FROM repo_stream.verify_repo($1)', [did]);
  assert.equal(ver.rows[0].ok, true, 'verify_repo');

  // and it exports again into something @atproto/repo verifies
  const again = await verifyRepoCar(await exportCar(did), did);
  assert.equal(again.creates.length, 299);
});
