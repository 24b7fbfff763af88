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
