// The kernel contract on the kernel component transpiled by jco: the tests of
// kernel-core/src/contract.rs through `raw`, then every `bulk` function and its error codes
// (wit/extism-kernel.wit).

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { loadTranspiled } from '../extism-host.js';
import { transpiled } from './helpers.mjs';

const MAX_U64 = (1n << 64n) - 1n;
/** kernel-core's MAX_ALLOC: 4 GiB less one page. */
const MAX_ALLOC = (1n << 32n) - 65536n;

let instantiate;
/** A fresh kernel: `{raw, bulk}`. */
const make = () => instantiate({});

before(async () => {
  instantiate = await loadTranspiled(transpiled('kernel'));
});

const enc = (s) => new TextEncoder().encode(s);
/** The little-endian u64 of 8 ASCII bytes. */
const le = (s) => new DataView(enc(s).buffer).getBigUint64(0, true);

/** The error code a `bulk` function threw (jco throws a ComponentError holding it). */
function errorCode(f) {
  try {
    f();
  } catch (e) {
    assert.equal(e.constructor.name, 'ComponentError', `not a result error: ${e}`);
    return e.payload;
  }
  assert.fail('expected an error result');
}

/** A block holding `data`, set as the input (through `raw` and `bulk.write`). */
function setInput(k, data) {
  const h = k.raw.alloc(BigInt(data.length));
  k.bulk.write(h, 0n, data);
  k.raw.inputSet(h, BigInt(data.length));
  return h;
}

describe('raw: the contract suite', () => {
  test('alloc(0) is null and lengths are exact', () => {
    const { raw } = make();
    assert.equal(raw.alloc(0n), 0n);
    assert.equal(raw.length(0n), 0n);
    for (const n of [1n, 7n, 8n, 9n, 100n, 4096n, 65535n, 65536n, 65537n, 200000n, 300000n]) {
      const h = raw.alloc(n);
      assert.notEqual(h, 0n);
      assert.equal(raw.length(h), n);
      assert.equal(raw.lengthUnsafe(h), n);
      for (let off = 1n; off <= 4n; off++) assert.equal(raw.length(h + off), 0n, `length(h + ${off})`);
    }
    assert.equal(raw.length(0n), 0n);
  });

  test('a freed block is reused at once and a small excess stays with it', () => {
    const { raw } = make();
    const h = raw.alloc(65535n);
    raw.alloc(10n); // a guard, so the block does not merge with the free top
    raw.free(h);
    assert.equal(raw.length(h), 0n);
    assert.equal(raw.alloc(65535n), h);
    raw.free(h);
    assert.equal(raw.alloc(65535n - 24n), h);
    assert.equal(raw.length(h), 65535n - 24n);
  });

  test('reset gives the first handle of a fresh kernel', () => {
    for (const n of [1n, 100n, 65536n, 3n * 65536n + 5n]) {
      const first = make().raw.alloc(n);
      const { raw } = make();
      const old = [];
      for (let i = 0n; i < 500n; i++) old.push(raw.alloc(1n + ((i * 37n) % 3000n)));
      const h = raw.alloc(n);
      raw.reset();
      for (const o of old) assert.equal(raw.length(o), 0n);
      assert.equal(raw.length(h), 0n);
      assert.equal(raw.alloc(n), first, `first alloc(${n}) after reset`);
    }
  });

  test('loads and stores are little-endian', () => {
    const { raw } = make();
    const p = raw.alloc(16n);
    raw.storeU64(p, 999n);
    assert.equal(raw.loadU8(p), 0xe7);
    assert.equal(raw.loadU8(p + 1n), 0x03);
    for (let i = 0n; i < 8n; i++) raw.storeU8(p + 8n + i, Number(i));
    assert.equal(raw.loadU64(p + 8n), 0x0706050403020100n);
    raw.storeU64(p, MAX_U64);
    assert.equal(raw.loadU64(p), MAX_U64, 'a u64 round-trips through BigInt');
  });

  test('out of bounds never traps', () => {
    const { raw } = make();
    const h = raw.alloc(8n);
    for (const p of [MAX_U64, MAX_U64 - 7n, 1n << 32n, (1n << 32n) - 1n, (1n << 32n) - 7n, 0n]) {
      assert.equal(raw.loadU8(p), 0);
      assert.equal(raw.loadU64(p), 0n);
      raw.storeU8(p, 1);
      raw.storeU64(p, 1n);
    }
    raw.inputSet(h, 8n);
    assert.equal(raw.inputLoadU8(8n), 0);
    assert.equal(raw.inputLoadU64(1n), 0n);
    assert.equal(raw.inputLoadU64(MAX_U64), 0n);
  });

  test('error set, get and clear', () => {
    const { raw } = make();
    const h = raw.alloc(5n);
    assert.equal(raw.errorGet(), 0n);
    raw.errorSet(h);
    assert.equal(raw.errorGet(), h);
    raw.errorSet(h + 1n);
    assert.equal(raw.errorGet(), h, 'a non-handle is ignored');
    raw.errorSet(0n);
    assert.equal(raw.errorGet(), 0n);
  });

  test('input set, length and loads; freeing the input empties it', () => {
    const k = make();
    const { raw } = k;
    assert.equal(raw.inputLength(), 0n);
    assert.equal(raw.inputOffset(), 0n);
    const h = setInput(k, enc('hello'));
    assert.equal(raw.inputLength(), 5n);
    assert.equal(raw.inputOffset(), h);
    assert.equal(raw.inputLoadU8(1n), 'e'.charCodeAt(0));
    assert.equal(raw.inputLoadU8(4n), 'o'.charCodeAt(0));
    assert.equal(raw.inputLoadU8(5n), 0);
    assert.equal(raw.inputLoadU64(0n), 0n, 'only 5 bytes: a word would pass the end');
    raw.free(raw.inputOffset());
    assert.equal(raw.inputLength(), 0n);
    assert.equal(raw.length(h), 0n);
  });

  test('input words stop at the input end', () => {
    const k = make();
    setInput(k, enc('0123456789'));
    assert.equal(k.raw.inputLoadU64(2n), le('23456789'));
    assert.equal(k.raw.inputLoadU64(3n), 0n);
    assert.equal(k.raw.inputLoadU64(MAX_U64 - 3n), 0n);
  });

  test('output set, length and offset', () => {
    const { raw } = make();
    assert.equal(raw.outputLength(), 0n);
    assert.equal(raw.outputOffset(), 0n);
    const h = raw.alloc(10n);
    raw.outputSet(h + 2n, 5n);
    assert.equal(raw.outputOffset(), h + 2n);
    assert.equal(raw.outputLength(), 5n);
    raw.outputSet(MAX_U64 - 2n, 5n);
    assert.equal(raw.outputOffset(), h + 2n, 'a range outside the heap is ignored');
    raw.reset();
    assert.equal(raw.outputLength(), 0n);
  });

  test('sizes that cannot fit return 0, never a wrapped block', () => {
    const { raw } = make();
    raw.alloc(1n); // lays the heap out (the component makes its arena at the first call)
    const before = raw.memoryBytes();
    assert.notEqual(before, 0n);
    for (const n of [MAX_U64, MAX_U64 - 12n, MAX_U64 - 7n, 1n << 63n, 1n << 32n, MAX_ALLOC + 1n]) {
      assert.equal(raw.alloc(n), 0n, `alloc(${n})`);
    }
    assert.equal(raw.memoryBytes(), before, 'refused sizes never grow memory');
    const a = raw.alloc(8n);
    const b = raw.alloc(8n);
    assert.ok(b >= a + 8n, 'no overlap after refused sizes');
  });

  test('memory-bytes is 0 until the heap is laid out', () => {
    const { raw } = make();
    assert.equal(raw.memoryBytes(), 0n);
    raw.reset();
    assert.ok(raw.memoryBytes() > 0n);
  });

  test('freeing anything that is not a live handle is ignored', () => {
    const { raw } = make();
    const a = raw.alloc(16n);
    const b = raw.alloc(16n);
    for (const h of [0n, a + 1n, MAX_U64, 1n << 40n]) raw.free(h);
    raw.free(a);
    raw.free(a); // twice
    assert.equal(raw.length(b), 16n);
  });
});

describe('bulk', () => {
  test('alloc-bytes: a block holding a copy of the data; ok(0) for empty data', () => {
    const { raw, bulk } = make();
    assert.equal(bulk.allocBytes(new Uint8Array()), 0n);
    const data = enc('some bytes');
    const h = bulk.allocBytes(data);
    assert.notEqual(h, 0n);
    assert.equal(raw.length(h), BigInt(data.length));
    assert.deepEqual(bulk.read(h, 0n, BigInt(data.length)), data);
    assert.equal(raw.loadU8(h), data[0]);
  });

  test('read: a copy of a range of a live block', () => {
    const { bulk } = make();
    const h = bulk.allocBytes(enc('0123456789'));
    assert.deepEqual(bulk.read(h, 3n, 4n), enc('3456'));
    assert.deepEqual(bulk.read(h, 10n, 0n), new Uint8Array(), 'an empty range at the end');
    const big = new Uint8Array(300000).map((_, i) => i * 7);
    const g = bulk.allocBytes(big);
    assert.deepEqual(bulk.read(g, 0n, BigInt(big.length)), big);
  });

  test('read: invalid-handle unless the handle is live', () => {
    const { raw, bulk } = make();
    const h = bulk.allocBytes(enc('abcdefgh'));
    assert.equal(errorCode(() => bulk.read(0n, 0n, 0n)), 'invalid-handle');
    assert.equal(errorCode(() => bulk.read(h + 1n, 0n, 1n)), 'invalid-handle', 'inside a block');
    assert.equal(errorCode(() => bulk.read(MAX_U64, 0n, 1n)), 'invalid-handle');
    raw.free(h);
    assert.equal(errorCode(() => bulk.read(h, 0n, 1n)), 'invalid-handle', 'freed');
    const g = bulk.allocBytes(enc('x'));
    raw.reset();
    assert.equal(errorCode(() => bulk.read(g, 0n, 1n)), 'invalid-handle', 'cleared by reset');
  });

  test('read: out-of-bounds unless offset + len <= length', () => {
    const { bulk } = make();
    const h = bulk.allocBytes(enc('abcdefgh'));
    assert.equal(errorCode(() => bulk.read(h, 0n, 9n)), 'out-of-bounds');
    assert.equal(errorCode(() => bulk.read(h, 8n, 1n)), 'out-of-bounds');
    assert.equal(errorCode(() => bulk.read(h, 9n, 0n)), 'out-of-bounds');
    assert.equal(errorCode(() => bulk.read(h, MAX_U64, 2n)), 'out-of-bounds', 'offset + len overflows');
    assert.equal(errorCode(() => bulk.read(h, 1n, MAX_U64)), 'out-of-bounds', 'offset + len overflows');
  });

  test('write: copies into a live block, and the same errors as read', () => {
    const { raw, bulk } = make();
    const h = raw.alloc(8n);
    bulk.write(h, 0n, enc('abcdefgh'));
    bulk.write(h, 2n, enc('XY'));
    bulk.write(h, 8n, new Uint8Array());
    assert.deepEqual(bulk.read(h, 0n, 8n), enc('abXYefgh'));
    assert.equal(raw.loadU64(h), le('abXYefgh'));
    assert.equal(errorCode(() => bulk.write(0n, 0n, enc('a'))), 'invalid-handle');
    assert.equal(errorCode(() => bulk.write(h + 1n, 0n, enc('a'))), 'invalid-handle');
    assert.equal(errorCode(() => bulk.write(h, 7n, enc('ab'))), 'out-of-bounds');
    assert.equal(errorCode(() => bulk.write(h, MAX_U64, enc('ab'))), 'out-of-bounds');
    assert.deepEqual(bulk.read(h, 0n, 8n), enc('abXYefgh'), 'a refused write changes nothing');
    raw.free(h);
    assert.equal(errorCode(() => bulk.write(h, 0n, enc('a'))), 'invalid-handle');
  });

  test('set-input: a copy made the input; the previous input is not freed', () => {
    const { raw, bulk } = make();
    const a = bulk.setInput(enc('first'));
    assert.equal(raw.inputOffset(), a);
    assert.equal(raw.inputLength(), 5n);
    assert.equal(raw.inputLoadU8(0n), 'f'.charCodeAt(0));
    const b = bulk.setInput(enc('second input'));
    assert.notEqual(b, a);
    assert.equal(raw.inputLength(), 12n);
    assert.equal(raw.inputLoadU64(0n), le('second i'));
    assert.equal(raw.length(a), 5n, 'the previous input block is still live');
    assert.equal(bulk.setInput(new Uint8Array()), 0n);
    assert.equal(raw.inputLength(), 0n, 'empty data: an empty input');
  });

  test('prepare-call: clears the error, resets the heap, sets the input', () => {
    const { raw, bulk } = make();
    const first = make().raw.alloc(5n);
    raw.alloc(64n);
    const old = raw.alloc(100n); // not the first block: that one will hold the new input
    bulk.setError('an old error');
    raw.outputSet(old, 10n);
    bulk.prepareCall(enc('input'));
    assert.equal(raw.errorGet(), 0n);
    assert.equal(bulk.error(), undefined);
    assert.equal(raw.length(old), 0n, 'old handles are invalid');
    assert.equal(raw.outputLength(), 0n);
    assert.equal(raw.inputLength(), 5n);
    assert.equal(raw.inputOffset(), first, 'the input is the fresh heap\'s first block');
    assert.deepEqual(bulk.read(raw.inputOffset(), 0n, 5n), enc('input'));
    bulk.prepareCall(new Uint8Array());
    assert.equal(raw.inputLength(), 0n);
  });

  test('output: the bytes last given to output-set; empty when none', () => {
    const { raw, bulk } = make();
    assert.deepEqual(bulk.output(), new Uint8Array());
    const h = bulk.allocBytes(enc('the output!'));
    raw.outputSet(h + 4n, 6n);
    assert.deepEqual(bulk.output(), enc('output'));
    raw.outputSet(h, 0n);
    assert.deepEqual(bulk.output(), new Uint8Array());
  });

  test('output: out-of-bounds once the heap took the range back for its bookkeeping', () => {
    // The output range is a freed block; the allocator's record table, when it doubles,
    // takes a free block of its new size, and may take exactly that one. Where that happens
    // depends on how many records are in use, so try a range of counts: none may trap, the
    // output must be readable until the table moves, and at least one count must move it
    // onto the range.
    const S = 64n * 40n; // the table's size at 64 records (32 bytes of record, 8 of index)
    let seen = 0;
    for (let n = 0; n < 64; n++) {
      const { raw, bulk } = make();
      for (let i = 0; i < n; i++) raw.alloc(8n);
      const x = raw.alloc(S);
      raw.alloc(8n);
      raw.outputSet(x, S);
      raw.free(x);
      assert.equal(bulk.output().length, Number(S), `n = ${n}: freed, still in the heap`);
      raw.alloc(8n);
      try {
        assert.equal(bulk.output().length, Number(S));
      } catch (e) {
        if (e.constructor.name !== 'ComponentError') throw e;
        assert.equal(e.payload, 'out-of-bounds');
        seen++;
      }
    }
    assert.ok(seen > 0, 'the record table never moved onto the output range');
  });

  test('error: the message as UTF-8, lossily; none when unset, empty or freed', () => {
    const { raw, bulk } = make();
    assert.equal(bulk.error(), undefined);
    const h = bulk.allocBytes(new Uint8Array([0x61, 0xff, 0x62, 0xe2, 0x82]));
    raw.errorSet(h);
    assert.equal(bulk.error(), 'a\ufffdb\ufffd');
    raw.free(h);
    assert.equal(bulk.error(), undefined, 'a freed error block');
    raw.errorSet(0n);
    assert.equal(bulk.error(), undefined);
  });

  test('set-error: a new block holding the message; empty clears it', () => {
    const { raw, bulk } = make();
    bulk.setError('it failed: ünïcödé');
    const h = raw.errorGet();
    assert.notEqual(h, 0n);
    assert.equal(raw.length(h), BigInt(enc('it failed: ünïcödé').length));
    assert.equal(bulk.error(), 'it failed: ünïcödé');
    bulk.setError('');
    assert.equal(raw.errorGet(), 0n);
    assert.equal(bulk.error(), undefined);
  });

  test('no function traps for any argument, and the kernel stays usable', () => {
    const { raw, bulk } = make();
    const values = [0n, 1n, 7n, 8n, 1n << 31n, 1n << 32n, 1n << 63n, MAX_U64];
    for (const a of values) {
      raw.free(a);
      raw.length(a);
      raw.lengthUnsafe(a);
      raw.loadU8(a);
      raw.loadU64(a);
      raw.inputLoadU8(a);
      raw.inputLoadU64(a);
      raw.storeU8(a, 255);
      raw.storeU64(a, a);
      raw.errorSet(a);
      for (const b of values) {
        raw.inputSet(a, b);
        raw.outputSet(a, b);
        try {
          bulk.read(a, b, 1n);
        } catch (e) {
          assert.equal(e.constructor.name, 'ComponentError');
        }
      }
    }
    const h = bulk.allocBytes(enc('still fine'));
    assert.deepEqual(bulk.read(h, 0n, 10n), enc('still fine'));
  });
});
