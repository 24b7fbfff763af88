// json_to_cbor / cbor_cid checked against third-party IPLD code:
// @ipld/dag-cbor decodes and re-encodes our bytes, multiformats hashes them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { base64 } from 'multiformats/bases/base64';
import { connect } from './db.mjs';

const fixtures = JSON.parse(readFileSync(
  new URL('../fixtures/atproto-interop/data-model/data-model-fixtures.json', import.meta.url)));

let db;
before(async () => { db = await connect(); });
after(async () => { await db.end(); });

async function ours(json) {
  const r = await db.query(
    'SELECT repo_stream.json_to_cbor($1::jsonb) AS cbor, repo_stream.cbor_cid(repo_stream.json_to_cbor($1::jsonb)) AS cid',
    [JSON.stringify(json)]);
  return { bytes: new Uint8Array(r.rows[0].cbor), cid: r.rows[0].cid };
}

const hex = (b) => Buffer.from(b).toString('hex');

async function theirCid(bytes) {
  return CID.createV1(dagCbor.code, await sha256.digest(bytes)).toString();
}

// atproto JSON -> IPLD data model, done here independently of the extension.
function jsonToIpld(v) {
  if (Array.isArray(v)) return v.map(jsonToIpld);
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$link') return CID.parse(v.$link);
    if (keys.length === 1 && keys[0] === '$bytes') return base64.baseDecode(v.$bytes);
    return Object.fromEntries(keys.map((k) => [k, jsonToIpld(v[k])]));
  }
  return v;
}

test('data-model fixtures: @ipld/dag-cbor reads our bytes and gets the same CID', async () => {
  for (const f of fixtures) {
    const { bytes, cid } = await ours(f.json);
    const decoded = dagCbor.decode(bytes);
    assert.equal(hex(dagCbor.encode(decoded)), hex(bytes), 'dag-cbor re-encodes to identical bytes');
    assert.equal(await theirCid(bytes), cid);
    assert.equal(cid, f.cid);
    assert.deepEqual(decoded, jsonToIpld(f.json));
  }
});

// Deterministic PRNG so a failure can be replayed.
function rng(seed) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

const KEY_CHARS = Array.from('abcdefgXYZ_-é☃😀');

async function randomDoc(rand, depth) {
  const r = rand();
  if (depth > 0 && r < 0.25) {
    const o = {};
    for (let i = Math.floor(rand() * 5); i > 0; i--) {
      const key = Array.from({ length: 1 + Math.floor(rand() * 8) },
        () => KEY_CHARS[Math.floor(rand() * KEY_CHARS.length)]).join('');
      o[key] = await randomDoc(rand, depth - 1);
    }
    return o;
  }
  if (depth > 0 && r < 0.45) {
    const a = [];
    for (let i = Math.floor(rand() * 5); i > 0; i--) a.push(await randomDoc(rand, depth - 1));
    return a;
  }
  const s = rand();
  if (s < 0.15) return Math.floor((rand() - 0.5) * Number.MAX_SAFE_INTEGER);
  if (s < 0.3) return Math.floor(rand() * 1000) - 500;
  if (s < 0.5) return 'str ' + Math.floor(rand() * 1e9).toString(36) + ' ☃';
  if (s < 0.6) return rand() < 0.5;
  if (s < 0.7) return null;
  const data = Uint8Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256));
  if (s < 0.85) return { $bytes: base64.baseEncode(data) };
  return { $link: CID.createV1(dagCbor.code, await sha256.digest(data)).toString() };
}

test('500 random documents: our encoder and @ipld/dag-cbor produce identical bytes', async () => {
  const rand = rng(20261126);
  for (let i = 0; i < 500; i++) {
    const doc = { $type: 'com.example.random', n: i, v: await randomDoc(rand, 4) };
    const { bytes, cid } = await ours(doc);
    const expected = dagCbor.encode(jsonToIpld(doc));
    assert.equal(hex(bytes), hex(expected), `document ${i}: ${JSON.stringify(doc)}`);
    assert.equal(cid, await theirCid(expected));
    const back = await db.query('SELECT repo_stream.cbor_to_json($1) AS j', [Buffer.from(expected)]);
    assert.deepEqual(jsonToIpld(back.rows[0].j), jsonToIpld(doc), `document ${i} back to JSON`);
  }
});

test('bytes written by @ipld/dag-cbor with non-canonical key order are rejected', async () => {
  // Hand-made map {"b":1,"a":2}: dag-cbor's encoder would sort it, so write raw bytes.
  await assert.rejects(
    db.query('SELECT repo_stream.cbor_to_json($1)', [Buffer.from([0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02])]),
    (e) => e.code === '22P03' && /map keys are not in canonical order/.test(e.message));
});

// Our own decode cases (test/fixtures/dagcbor-cases): @ipld/dag-cbor and
// the extension each do what the file records; where they differ the file
// names the atproto-subset (or PostgreSQL) reason, which docs/data-model.md lists.
const cases = JSON.parse(readFileSync(
  new URL('../fixtures/dagcbor-cases/cases.json', import.meta.url))).cases;

async function outcome(sql, bytes) {
  try {
    await db.query(sql, [Buffer.from(bytes)]);
    return 'accept';
  } catch (e) {
    return e.code;
  }
}

test('own DAG-CBOR cases: @ipld/dag-cbor and we do what cases.json records', async () => {
  for (const c of cases) {
    const bytes = Uint8Array.from(Buffer.from(c.hex, 'hex'));
    let ipld = 'accept';
    try { dagCbor.decode(bytes); } catch { ipld = 'reject'; }
    assert.equal(ipld, c.ipld, `${c.name}: @ipld/dag-cbor`);
    assert.equal(await outcome('SELECT repo_stream.cbor_to_json($1)', bytes), c.ours, `${c.name}: cbor_to_json`);
    assert.equal(await outcome('SELECT repo_stream.cbor_cid($1)', bytes), c.cid, `${c.name}: cbor_cid`);
    if ((ipld === 'accept') !== (c.ours === 'accept')) assert.ok(c.deviation, `${c.name}: a difference without a reason`);
    if (c.cid === 'accept') {
      const r = await db.query('SELECT repo_stream.cbor_cid($1) AS cid', [Buffer.from(bytes)]);
      assert.equal(r.rows[0].cid, await theirCid(bytes), `${c.name}: CID`);
    }
    if (c.ours === 'accept') {
      // round trip in SQL: JavaScript numbers would lose int64 precision
      const back = await db.query('SELECT repo_stream.json_to_cbor(repo_stream.cbor_to_json($1)) AS b',
        [Buffer.from(bytes)]);
      assert.equal(hex(back.rows[0].b), c.hex, `${c.name}: CBOR -> JSON -> CBOR`);
    }
  }
});

test('U+0000: @ipld/dag-cbor writes it, cbor_to_json refuses it (22P05), cbor_cid hashes it', async () => {
  for (const v of ['a\u0000b', { k: 'a\u0000' }, { 'a\u0000': 1 }, ['\u0000']]) {
    const bytes = dagCbor.encode(v);
    await assert.rejects(db.query('SELECT repo_stream.cbor_to_json($1)', [Buffer.from(bytes)]),
      (e) => e.code === '22P05' && /U\+0000/.test(e.message));
    const r = await db.query('SELECT repo_stream.cbor_cid($1) AS cid', [Buffer.from(bytes)]);
    assert.equal(r.rows[0].cid, await theirCid(bytes));
  }
});

test('depth: 128 nested arrays pass both ways, 129 are refused by us on both sides', async () => {
  const nest = (n, leaf) => { let v = leaf; for (let i = 0; i < n; i++) v = [v]; return v; };
  const at = dagCbor.encode(nest(128, 1));
  const r = await db.query('SELECT repo_stream.cbor_to_json($1) AS j, repo_stream.cbor_cid($1) AS cid, ' +
    'repo_stream.json_to_cbor($2::jsonb) AS b', [Buffer.from(at), JSON.stringify(nest(128, 1))]);
  assert.equal(r.rows[0].cid, await theirCid(at));
  assert.equal(hex(r.rows[0].b), hex(at), 'json_to_cbor writes what @ipld/dag-cbor writes');
  assert.deepEqual(dagCbor.decode(new Uint8Array(r.rows[0].b)), nest(128, 1));
  // a record holding 127 arrays: the case that used to be written but not read back
  const rec = { a: nest(127, 1) };
  const w = await db.query('SELECT repo_stream.json_to_cbor($1::jsonb) AS b', [JSON.stringify(rec)]);
  assert.equal(hex(w.rows[0].b), hex(dagCbor.encode(rec)));
  await db.query('SELECT repo_stream.cbor_to_json($1), repo_stream.cbor_cid($1)', [w.rows[0].b]);

  const over = dagCbor.encode(nest(129, 1));	// @ipld/dag-cbor has no depth limit
  await assert.rejects(db.query('SELECT repo_stream.cbor_to_json($1)', [Buffer.from(over)]),
    (e) => e.code === '22P03' && /more than 128 nested/.test(e.message));
  await assert.rejects(db.query('SELECT repo_stream.cbor_cid($1)', [Buffer.from(over)]), (e) => e.code === '22P03');
  await assert.rejects(db.query('SELECT repo_stream.json_to_cbor($1::jsonb)', [JSON.stringify(nest(129, 1))]),
    (e) => e.code === '54000' && /more than 128 nested/.test(e.message));
});

test('values that are not objects: @ipld/dag-cbor and json_to_cbor write the same bytes', async () => {
  const link = CID.parse('bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a');
  const values = [[1, 2], 'a string', '', 0, -1, 9007199254740991, true, false, null, [], [[], {}, [null]],
    new Uint8Array([104, 105]), link, [link, new Uint8Array([])]];
  for (const v of values) {
    const theirs = dagCbor.encode(v);
    const r = await db.query('SELECT repo_stream.cbor_to_json($1) AS j, repo_stream.cbor_cid($1) AS cid',
      [Buffer.from(theirs)]);
    const ours = await db.query('SELECT repo_stream.json_to_cbor($1::jsonb) AS b', [JSON.stringify(r.rows[0].j)]);
    assert.equal(hex(ours.rows[0].b), hex(theirs), `${JSON.stringify(r.rows[0].j)}`);
    assert.equal(r.rows[0].cid, await theirCid(theirs));
    assert.deepEqual(dagCbor.decode(new Uint8Array(ours.rows[0].b)), v);
  }
});
