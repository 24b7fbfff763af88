// Event frames and their CAR blocks checked with third-party code:
// @ipld/car reads the CARs, @ipld/dag-cbor the frames and commits,
// multiformats hashes the blocks, node:crypto checks the Ed25519 signatures.
// The frames come from the C unit tests (test/fixtures/frames/frames.json);
// frames built here go the other way, into verify_frame().
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { CarReader, CarWriter } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { base58btc } from 'multiformats/bases/base58';
import { connect } from './db.mjs';

const fixtures = JSON.parse(readFileSync(
  new URL('../fixtures/frames/frames.json', import.meta.url)));
const frames = Object.fromEntries(fixtures.frames.map((f) => [f.name, f]));

let db;
before(async () => { db = await connect(); });
after(async () => { await db.end(); });

const hex = (b) => Buffer.from(b).toString('hex');
const bytesOf = (f) => new Uint8Array(Buffer.from(f.hex, 'hex'));

// A frame is two DAG-CBOR items.  CBOR is prefix-free, so the shortest
// prefix that decodes is the header.
function splitFrame(bytes) {
  for (let n = 1; n < Math.min(bytes.length, 64); n++) {
    let header;
    try { header = dagCbor.decode(bytes.subarray(0, n)); } catch { continue; }
    return { header, headerBytes: bytes.subarray(0, n), bodyBytes: bytes.subarray(n) };
  }
  throw new Error('no header');
}

function ed25519KeyFromDidKey(didKey) {
  const raw = base58btc.decode(didKey.slice('did:key:'.length));
  assert.equal(hex(raw.subarray(0, 2)), 'ed01', 'ed25519-pub multicodec');
  // SPKI DER for Ed25519: fixed 12-byte prefix, then the 32-byte key
  const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw.subarray(2)]);
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

async function readCar(bytes) {
  const reader = await CarReader.fromBytes(bytes);
  const blocks = [];
  for await (const b of reader.blocks()) blocks.push(b);
  return { roots: await reader.getRoots(), version: reader.version, blocks };
}

async function hashOk(block) {
  const digest = await sha256.digest(block.bytes);
  return CID.createV1(block.cid.code, digest).equals(block.cid);
}

function commitSignatureOk(commitBlock, key) {
  const commit = dagCbor.decode(commitBlock.bytes);
  const { sig, ...unsigned } = commit;
  return verify(null, dagCbor.encode(unsigned), key, Buffer.from(sig));
}

test('frames: header and body are canonical DAG-CBOR as @ipld/dag-cbor writes it', () => {
  for (const f of fixtures.frames) {
    const bytes = bytesOf(f);
    const { header, headerBytes, bodyBytes } = splitFrame(bytes);
    const body = dagCbor.decode(bodyBytes);
    assert.equal(hex(dagCbor.encode(header)), hex(headerBytes), `${f.name}: header re-encodes identically`);
    assert.equal(hex(dagCbor.encode(body)), hex(bodyBytes), `${f.name}: body re-encodes identically`);
    assert.equal(header.op, 1);
    assert.ok(header.t === '#commit' || header.t === '#sync');
  }
});

test('frames: @ipld/car reads the blocks; root, hashes and signature check out', async () => {
  const key = ed25519KeyFromDidKey(fixtures.did_key);
  for (const f of fixtures.frames) {
    const { header, bodyBytes } = splitFrame(bytesOf(f));
    const body = dagCbor.decode(bodyBytes);
    const car = await readCar(body.blocks);
    assert.equal(car.version, 1);
    assert.equal(car.roots.length, 1);
    if (header.t === '#commit') assert.ok(car.roots[0].equals(body.commit), `${f.name}: root is the commit`);
    const hashes = await Promise.all(car.blocks.map(hashOk));
    if (f.name === 'corrupt block') {
      assert.ok(hashes.includes(false), 'the corrupted block fails its hash');
      continue;
    }
    assert.ok(hashes.every(Boolean), `${f.name}: every block hashes to its CID`);
    const commitBlock = car.blocks.find((b) => b.cid.equals(car.roots[0]));
    assert.ok(commitBlock, `${f.name}: commit block present`);
    const commit = dagCbor.decode(commitBlock.bytes);
    assert.equal(commit.version, 3);
    assert.equal(commit.prev, null);
    assert.equal(commit.did, body.repo ?? body.did);
    assert.equal(commit.rev, body.rev);
    assert.equal(commitSignatureOk(commitBlock, key), f.name !== 'bad signature', `${f.name}: signature`);
    if (header.t === '#commit' && f.name !== 'record missing') {
      for (const op of body.ops) {
        if (op.action === 'delete') {
          assert.equal(op.cid, null);
          assert.ok(op.prev instanceof CID, 'delete carries prev');
        } else {
          assert.ok(car.blocks.some((b) => b.cid.equals(op.cid)), `${f.name}: record of ${op.path} present`);
          assert.equal('prev' in op, op.action === 'update', `${f.name}: prev only on updates`);
        }
      }
      assert.equal('prevData' in body, f.name !== 'first commit');
    }
  }
});

test('frames: frame_to_json lists the blocks @ipld/car reads, verify_frame agrees', async () => {
  await db.query("SET client_min_messages = warning");
  for (const f of fixtures.frames) {
    const bytes = Buffer.from(f.hex, 'hex');
    if (f.name === 'corrupt block') {
      // a block that no longer hashes to its CID: frame_to_json cannot list
      // the blocks (22P03), @ipld/car refuses them too, verify_frame says false
      await assert.rejects(db.query('SELECT repo_stream.frame_to_json($1)', [bytes]), (e) => e.code === '22P03');
      const v = await db.query('SELECT repo_stream.verify_frame($1, $2) AS v', [bytes, fixtures.did_key]);
      assert.equal(String(v.rows[0].v), f.verify);
      continue;
    }
    const r = await db.query('SELECT repo_stream.frame_to_json($1) AS j, repo_stream.verify_frame($1, $2) AS v',
      [bytes, fixtures.did_key]);
    const body = dagCbor.decode(splitFrame(new Uint8Array(bytes)).bodyBytes);
    const car = await readCar(body.blocks);
    assert.deepEqual(r.rows[0].j.blocks_cids, car.blocks.map((b) => b.cid.toString()), `${f.name}: blocks_cids`);
    assert.equal(String(r.rows[0].v), f.verify, `${f.name}: verify_frame`);
  }
});

// ---- the other way: frames assembled here with third-party encoders ----

async function carBytes(root, blocks) {
  const { writer, out } = CarWriter.create([root]);
  const chunks = [];
  const done = (async () => { for await (const c of out) chunks.push(c); })();
  for (const b of blocks) await writer.put(b);
  await writer.close();
  await done;
  return new Uint8Array(Buffer.concat(chunks));
}

async function block(value) {
  const bytes = dagCbor.encode(value);
  return { cid: CID.createV1(dagCbor.code, await sha256.digest(bytes)), bytes };
}

function didKeyOf(publicKey) {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  return 'did:key:' + base58btc.encode(Buffer.concat([Buffer.from([0xed, 0x01]), raw]));
}

async function signedCommit(privateKey, data, rev) {
  const unsigned = { did: 'did:plc:interop', rev, data, prev: null, version: 3 };
  const sig = new Uint8Array(sign(null, dagCbor.encode(unsigned), privateKey));
  return block({ ...unsigned, sig });
}

test('a #sync frame written with @ipld/car and @ipld/dag-cbor verifies', async () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const emptyNode = await block({ e: [], l: null });
  const commit = await signedCommit(privateKey, emptyNode.cid, '3kabcdefghij2');
  const frame = Buffer.concat([
    dagCbor.encode({ t: '#sync', op: 1 }),
    dagCbor.encode({ did: 'did:plc:interop', rev: '3kabcdefghij2', seq: 5,
      time: '2024-01-01T00:00:00.000Z', blocks: await carBytes(commit.cid, [commit]) }),
  ]);
  const r = await db.query('SELECT repo_stream.verify_frame($1, $2) AS v, repo_stream.verify_frame($1, $3) AS other',
    [frame, didKeyOf(publicKey), fixtures.did_key]);
  assert.equal(r.rows[0].v, true);
  assert.equal(r.rows[0].other, false);
});

test('an empty #commit frame written with @ipld/car verifies (no ops: prevData is data)', async () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const emptyNode = await block({ e: [], l: null });
  const commit = await signedCommit(privateKey, emptyNode.cid, '3kabcdefghij3');
  const body = {
    ops: [], rev: '3kabcdefghij3', seq: 6, repo: 'did:plc:interop', time: '2024-01-01T00:00:00.000Z',
    blobs: [], since: '3kabcdefghij2', blocks: await carBytes(commit.cid, [commit, emptyNode]),
    commit: commit.cid, rebase: false, tooBig: false, prevData: emptyNode.cid,
  };
  const frame = Buffer.concat([dagCbor.encode({ t: '#commit', op: 1 }), dagCbor.encode(body)]);
  const r = await db.query('SELECT repo_stream.verify_frame($1, $2) AS v, repo_stream.frame_to_json($1) AS j',
    [frame, didKeyOf(publicKey)]);
  assert.equal(r.rows[0].v, true);
  assert.deepEqual(r.rows[0].j.blocks_cids, [commit.cid.toString(), emptyNode.cid.toString()]);
  assert.equal(r.rows[0].j.body.commit.$link, commit.cid.toString());
});
