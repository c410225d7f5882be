// Per-call time of composed plugins run by extism-host.js (jco's output), side by side with
// Extism's JS SDK running the same plugins as plain `.wasm` modules, in one Node process;
// and, for reference, the same composed plugins entered through jco's own lift of `call`
// (`jcoEntry: true`) and `host-demo call --loop` (wasmtime) on the same composed components.
// Not part of `make test`.
//
//   make js-artifacts && node js/bench.mjs            # from the workspace root
//   node js/bench.mjs --seconds 2 --no-host-demo      # longer runs; skip the wasmtime column
//
// Cases: `echo`'s `reverse` on "x" and on 1 MiB, `alloc_churn`'s `churn` with 10000 and 20000
// rounds. The SDK fails the 20000-round churn: its kernel (written in JavaScript) puts a
// block's number in the top 16 bits of its handle and never reuses a number within a call,
// and handles come back from wasm as signed i64, so a call gets about 32768 blocks; the
// failure is reported in the table.
// Each runtime runs each case after a warm-up call, repeating it for about `--seconds` (at
// least 3 calls); the table gives the median and the mean per call. The outputs of both
// runtimes are checked to be equal.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import createPlugin from '@extism/extism';
import { ComposedPlugin } from './extism-host.js';
import { OUT, hostDemo } from './test/helpers.mjs';

const args = process.argv.slice(2);
const seconds = Number(args[args.indexOf('--seconds') + 1] || 0) || 1;
const withHostDemo = !args.includes('--no-host-demo');

const version = (p) => JSON.parse(readFileSync(new URL(`./node_modules/${p}/package.json`, import.meta.url))).version;

const MIB = new Uint8Array(1 << 20).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
const CASES = [
  { sample: 'echo', fn: 'reverse', label: '`echo` `reverse`, "x"', input: new TextEncoder().encode('x'), loops: 10000 },
  { sample: 'echo', fn: 'reverse', label: '`echo` `reverse`, 1 MiB', input: MIB, loops: 100 },
  { sample: 'alloc_churn', fn: 'churn', label: '`alloc_churn` `churn`, 10000 rounds', input: new TextEncoder().encode('10000'), loops: 10 },
  { sample: 'alloc_churn', fn: 'churn', label: '`alloc_churn` `churn`, 20000 rounds', input: new TextEncoder().encode('20000'), loops: 10 },
];

/** Times `call` (sync or async): warm-up, then repeats for about `seconds`; µs per call. */
async function time(call) {
  const first = await call();
  const times = [];
  const end = performance.now() + seconds * 1000;
  while (times.length < 3 || (performance.now() < end && times.length < 100000)) {
    const t = performance.now();
    await call();
    times.push((performance.now() - t) * 1000);
  }
  times.sort((a, b) => a - b);
  return {
    output: first,
    median: times[times.length >> 1],
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    n: times.length,
  };
}

/** `host-demo call COMPONENT FN --loop N` (`loops` of the case): its median µs per call. */
function hostDemoMedian(c, loops) {
  const r = spawnSync(hostDemo(), ['call', join(OUT, `${c.sample}.component.wasm`), c.fn, '--stdin', '--loop', String(loops)], {
    input: Buffer.from(c.input),
    maxBuffer: 64 << 20,
  });
  const m = /median ([\d.]+) us/.exec(r.stderr.toString());
  if (r.status !== 0 || !m) throw new Error(`host-demo: ${r.stderr}`);
  return Number(m[1]);
}

const fmt = (us) => (us >= 10000 ? `${(us / 1000).toFixed(0)} ms` : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(us >= 100 ? 0 : 1)} µs`);

const ours = {};
const viaJco = {};
const sdk = {};
for (const s of new Set(CASES.map((c) => c.sample))) {
  ours[s] = await ComposedPlugin.load(join(OUT, s, `${s}.js`));
  viaJco[s] = await ComposedPlugin.load(join(OUT, s, `${s}.js`), { jcoEntry: true });
  if (ours[s].entryLowering !== 'direct' || viaJco[s].entryLowering !== 'jco') throw new Error(`${s}: not entered as asked`);
  sdk[s] = await createPlugin({ wasm: [{ data: readFileSync(join(OUT, 'artifacts', `plugin_${s}.wasm`)) }] }, { useWasi: false });
}

const rows = [];
for (const c of CASES) {
  const a = await time(() => ours[c.sample].call(c.fn, c.input));
  const j = await time(() => viaJco[c.sample].call(c.fn, c.input));
  if (Buffer.compare(Buffer.from(a.output), Buffer.from(j.output)) !== 0) throw new Error(`${c.label}: the two lowerings differ`);
  let b;
  try {
    b = await time(async () => (await sdk[c.sample].call(c.fn, c.input)).bytes());
  } catch (e) {
    b = { error: e.message };
  }
  if (b.error === undefined && Buffer.compare(Buffer.from(a.output), Buffer.from(b.output)) !== 0) {
    throw new Error(`${c.label}: the outputs differ`);
  }
  const w = withHostDemo ? hostDemoMedian(c, c.loops) : undefined;
  rows.push({ c, a, j, b, w });
  const sdkText = b.error === undefined ? `${fmt(b.median)} (${b.n} calls)` : `fails: ${b.error}`;
  console.error(`${c.label}: ours ${fmt(a.median)} (${a.n} calls), jco's lift ${fmt(j.median)}, SDK ${sdkText}${w === undefined ? '' : `, host-demo ${fmt(w)}`}`);
}
for (const s of Object.keys(sdk)) await sdk[s].close();

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`Node ${process.version}, ${cpu}, ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; jco ${version('@bytecodealliance/jco')}, @extism/extism ${version('@extism/extism')}\n`);
console.log(`| call | composed, extism-host.js (median / mean) | Extism JS SDK, plain plugin (median / mean) | composed ÷ SDK (medians) | composed, entered through jco's lift (median) |${withHostDemo ? ' composed, host-demo (wasmtime, median) |' : ''}`);
console.log(`|---|---:|---:|---:|---:|${withHostDemo ? '---:|' : ''}`);
for (const { c, a, j, b, w } of rows) {
  const sdkCells = b.error === undefined
    ? `${fmt(b.median)} / ${fmt(b.mean)} | ${(a.median / b.median).toFixed(2)}x`
    : `fails: ${b.error} | `;
  console.log(`| ${c.label} | ${fmt(a.median)} / ${fmt(a.mean)} | ${sdkCells} | ${fmt(j.median)} |${w === undefined ? '' : ` ${fmt(w)} |`}`);
}
