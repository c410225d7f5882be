// The sample plugins composed into components (`host-demo componentize`), transpiled by jco
// and run with extism-host.js, against `host-demo call` run as a process on the classic
// plugin (`sample:NAME`, the core kernel) and on the same composed component: the same
// output bytes, or the same one-line error.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import * as shim from '@bytecodealliance/preview2-shim';
import { CallError, ComposedPlugin, ExtismHost, LOG_OFF, USER_NAMESPACE, loadTranspiled, wasiImports } from '../extism-host.js';
import { OUT, closedPort, hostDemoCall, loopbackServer, transpiled } from './helpers.mjs';

const WASI_SAMPLES = ['wasi_print', 'wasi_files'];
const SAMPLES = ['echo', 'count_vowels', 'fail', 'alloc_churn', 'host_fn', 'http', ...WASI_SAMPLES];
const instantiate = {};

before(async () => {
  for (const s of SAMPLES) instantiate[s] = await loadTranspiled(transpiled(s));
});

/** What host-demo's `host_reverse` does: the characters of the (lossy UTF-8) input, reversed. */
function hostReverse(input) {
  return [...new TextDecoder().decode(input)].reverse().join('');
}

const FUNCTIONS = { [USER_NAMESPACE]: { host_reverse: hostReverse } };

/** A composed sample with the test's user functions; WASI (the shim) for the WASI samples,
 * with `wasi`'s options (`allowedPaths`, `stdout`). */
function plugin(sample, { wasi, ...options } = {}) {
  const w = WASI_SAMPLES.includes(sample) ? { wasi: { shim, ...wasi } } : {};
  return new ComposedPlugin(instantiate[sample], { functions: FUNCTIONS, ...w, ...options });
}

/** The JS call's result, as `{output}` (a Buffer) or `{error}` (the CallError). */
function jsCall(p, fn, input) {
  try {
    return { output: Buffer.from(p.call(fn, input)) };
  } catch (e) {
    if (!(e instanceof CallError)) throw e;
    return { error: e };
  }
}

/** The parts of a `jsCall` result that both entry lowerings must give alike. */
function comparable(r) {
  const printed = r.printed === undefined ? {} : { printed: r.printed };
  if (r.output !== undefined) return { output: r.output, ...printed };
  const { kind, message, code, pluginMessage, functionName } = r.error;
  return { kind, message, code, pluginMessage, functionName, ...printed };
}

/**
 * Calls `fn` `loop` times on one composed plugin in JS (stopping at the first error, as
 * `host-demo call --loop` does), once with the entry point lowered by extism-host.js and
 * once through jco's lift, and once per form with host-demo, and checks they all agree.
 * `errorPrefix`: compare only the start of the error line (messages from different HTTP
 * clients). A WASI sample runs with `--wasi` and `allowPaths` (`[{host, guest}]`), and what
 * it prints (the result's `printed`) and its output together must be host-demo's stdout.
 * Returns the JS result (of the direct lowering).
 */
function agree(sample, fn, input, { config = {}, allowHosts = [], allowPaths = [], loop = 1, errorPrefix } = {}) {
  const wasi = WASI_SAMPLES.includes(sample);
  const [js, viaJco] = ['direct', 'jco'].map((lowering) => {
    const printed = [];
    const p = plugin(sample, {
      config,
      allowedHosts: allowHosts,
      jcoEntry: lowering === 'jco',
      wasi: { allowedPaths: allowPaths, stdout: (b) => printed.push(b) },
    });
    assert.equal(p.entryLowering, lowering);
    let r;
    for (let i = 0; i < loop; i++) {
      r = jsCall(p, fn, input);
      if (r.error) break;
    }
    p.close();
    if (wasi) r.printed = Buffer.concat(printed);
    return r;
  });
  assert.deepEqual(comparable(js), comparable(viaJco), `${sample} ${fn}: the direct lowering and jco's differ`);
  for (const form of [`sample:${sample}`, join(OUT, `${sample}.component.wasm`)]) {
    const r = hostDemoCall(form, fn, { input, config, allowHosts, wasi, allowPaths, loop });
    const what = `${form} ${fn}`;
    if (js.output !== undefined) {
      assert.equal(r.status, 0, `${what}: host-demo failed: ${r.stderr}`);
      assert.deepEqual(r.stdout, wasi ? Buffer.concat([js.printed, js.output]) : js.output, `${what}: outputs differ`);
    } else {
      assert.equal(r.status, 1, `${what}: host-demo succeeded where JS failed with ${js.error.message}`);
      assert.equal(r.stdout.length, 0);
      const line = r.stderr.replace(/\n$/, '');
      assert.ok(!line.includes('\n'), `${what}: one line on stderr: ${r.stderr}`);
      if (errorPrefix === undefined) {
        assert.equal(line, `error: ${js.error.message}`, what);
      } else {
        assert.ok(line.startsWith(`error: ${errorPrefix}`), `${what}: ${line}`);
        assert.ok(js.error.message.startsWith(errorPrefix), `JS: ${js.error.message}`);
      }
    }
  }
  return js;
}

/** `n` bytes of every value, in a pattern that is not its own reverse. */
function bytes(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

describe('the entry point: lowered by extism-host.js, or by jco', () => {
  test('every composed sample is entered directly, unless `jcoEntry` asks for jco\'s lift', () => {
    for (const s of SAMPLES) {
      assert.equal(plugin(s).entryLowering, 'direct', s);
      assert.equal(plugin(s, { jcoEntry: true }).entryLowering, 'jco', s);
    }
  });

  test('both give the same results for inputs that grow the memory and for names of every kind', () => {
    // Names: empty, non-ASCII, a lone surrogate (UTF-8 of U+FFFD), not a string, and more
    // distinct names than the direct lowering keeps encoded.
    const names = ['', 'reverse', 'révérse', '\uD800', 42, ...Array.from({ length: 300 }, (_, i) => `f${i}`), 'echo'];
    const results = ['direct', 'jco'].map((lowering) => {
      const jcoEntry = lowering === 'jco';
      // A fresh plugin's memory is small: 8 MiB grows it while the arguments are lowered.
      const big = bytes(8 << 20);
      const grown = jsCall(plugin('echo', { jcoEntry }), 'reverse', big);
      assert.deepEqual(grown.output, Buffer.from(big).reverse(), lowering);
      const p = plugin('echo', { jcoEntry });
      return names.map((n) => comparable(jsCall(p, n, 'abc')));
    });
    assert.deepEqual(results[0], results[1]);
    const [direct] = results;
    assert.deepEqual(direct[1], { output: Buffer.from('cba') });
    assert.equal(direct[2].functionName, 'révérse');
    assert.equal(direct[3].functionName, '\uFFFD');
    assert.deepEqual(direct[4], { kind: 'trap', message: 'expected a string, received [number]', code: undefined, pluginMessage: undefined, functionName: undefined });
    assert.deepEqual(direct.at(-1), { output: Buffer.from('abc') });
  });

  test('the entry point\'s function-index and call-index agree with call (through jco)', () => {
    const entry = instantiate.echo(new ExtismHost().imports())['extism:kernel/entry@1.0.0'];
    const input = new TextEncoder().encode('abc');
    for (const name of ['echo', 'reverse']) {
      const i = entry.functionIndex(name);
      assert.equal(typeof i, 'number', name);
      assert.deepEqual(entry.callIndex(i, input), entry.call(name, input), name);
    }
    assert.equal(entry.functionIndex('nope'), undefined);
    assert.equal(entry.functionIndex(''), undefined);
    // A number that is no function's traps (in the glue, before the plugin runs).
    const fresh = instantiate.echo(new ExtismHost().imports())['extism:kernel/entry@1.0.0'];
    assert.throws(() => fresh.callIndex(2, input), WebAssembly.RuntimeError);
  });

  test('a component that is not a composed plugin is refused', async () => {
    const kernel = await loadTranspiled(transpiled('kernel'));
    assert.throws(() => new ComposedPlugin(kernel), /not a composed plugin/);
  });
});

describe('echo', () => {
  test('echo and reverse agree with host-demo, up to ~100 KB', () => {
    for (const input of ['', 'hello', Buffer.from([0, 255, 1, 254, 0xc3]), bytes(100_000)]) {
      const e = agree('echo', 'echo', input);
      assert.deepEqual(e.output, Buffer.from(input));
      const r = agree('echo', 'reverse', input);
      assert.deepEqual(r.output, Buffer.from(input).reverse());
    }
  });

  test('reverse is byte-wise: UTF-8 in, not UTF-8 out', () => {
    const r = agree('echo', 'reverse', 'héllo');
    assert.deepEqual(r.output, Buffer.from('héllo').reverse());
  });

  test('a function the plugin lacks', () => {
    const r = agree('echo', 'nope', 'x');
    assert.equal(r.error.kind, 'no-function');
    assert.equal(r.error.message, 'the plugin has no function `nope`');
    assert.equal(r.error.functionName, 'nope');
  });

  test('many calls on one instance; strings and bytes alike', () => {
    const p = plugin('echo');
    for (let i = 0; i < 1000; i++) assert.equal(p.callText('reverse', `call ${i}`), [...`call ${i}`].reverse().join(''));
    assert.deepEqual(p.call('echo', new Uint16Array([0x0201])), new Uint8Array([1, 2]));
  });
});

describe('count_vowels', () => {
  test('outputs agree; the total var is kept across calls', () => {
    const one = agree('count_vowels', 'count_vowels', 'Hello, World!');
    assert.equal(one.output.toString(), '{"count":3,"total":3,"vowels":"aeiouAEIOU"}');
    const three = agree('count_vowels', 'count_vowels', 'Hello, World!', { loop: 3 });
    assert.equal(three.output.toString(), '{"count":3,"total":9,"vowels":"aeiouAEIOU"}');
    agree('count_vowels', 'count_vowels', '');
  });

  test('config `vowels`', () => {
    const r = agree('count_vowels', 'count_vowels', 'Hello, World!', { config: { vowels: 'lo' } });
    assert.equal(r.output.toString(), '{"count":5,"total":5,"vowels":"lo"}');
    agree('count_vowels', 'count_vowels', 'ÄÖÜ äöü', { config: { vowels: 'äöü' }, loop: 2 });
  });

  test('input that is not UTF-8 fails in the plugin', () => {
    const r = agree('count_vowels', 'count_vowels', Buffer.from([0x61, 0xff, 0x62]));
    assert.equal(r.error.kind, 'failed');
    assert.equal(r.error.code, -1);
    assert.equal(r.error.pluginMessage, 'invalid utf-8 sequence of 1 bytes from index 1');
  });

  test('vars are the host\'s: readable, and given to the plugin', () => {
    const p = plugin('count_vowels');
    p.call('count_vowels', 'aaa');
    assert.equal(new TextDecoder().decode(p.vars.get('total')), '3');
    p.host.varSet('total', new TextEncoder().encode('100'));
    assert.equal(p.callText('count_vowels', 'a'), '{"count":1,"total":101,"vowels":"aeiouAEIOU"}');
  });

  test('a var over the limit traps the call; the plugin is made anew and keeps its vars', () => {
    // `total` (5 bytes) and "3" make 6 bytes: at the limit. "13" would make 7.
    const p = plugin('count_vowels', { varLimitBytes: 6 });
    assert.equal(p.callText('count_vowels', 'aei'), '{"count":3,"total":3,"vowels":"aeiouAEIOU"}');
    assert.throws(() => p.call('count_vowels', 'aaaaaaaaaa'), (e) => {
      assert.equal(e.kind, 'trap');
      assert.equal(e.message, 'var_set of `total` would make the vars 7 bytes, over the limit of 6 bytes');
      return true;
    });
    assert.equal(p.callText('count_vowels', 'a'), '{"count":1,"total":4,"vowels":"aeiouAEIOU"}');
  });

  test('log lines at the level kept, and get-log-level', () => {
    for (const [level, kept] of [['trace', 1], ['info', 1], ['warn', 0], [undefined, 0]]) {
      const lines = [];
      const p = plugin('count_vowels', { logLevel: level, logger: (l, m) => lines.push([l, m]) });
      p.call('count_vowels', 'Hello');
      assert.deepEqual(lines, kept ? [['info', 'counted 2 vowels']] : [], `level ${level}`);
    }
    assert.equal(new ExtismHost().getLogLevel(), LOG_OFF);
    assert.deepEqual(
      ['trace', 'debug', 'info', 'warn', 'error'].map((l) => new ExtismHost({ logLevel: l }).getLogLevel()),
      [0, 1, 2, 3, 4],
    );
  });
});

describe('fail', () => {
  test('fail: the error message the plugin set, code -1', () => {
    for (const input of ['hi', '', 'two\nlines  and   spaces']) {
      const r = agree('fail', 'fail', input);
      assert.equal(r.error.kind, 'failed');
      assert.equal(r.error.code, -1);
      assert.equal(r.error.pluginMessage, `this plugin always fails: ${input}`);
    }
  });

  test('fail_code: code 7 and no message', () => {
    const r = agree('fail', 'fail_code', '');
    assert.equal(r.error.message, 'the plugin returned code 7');
    assert.equal(r.error.code, 7);
    assert.equal(r.error.pluginMessage, undefined);
  });

  test('a failed call leaves the plugin usable', () => {
    const p = plugin('fail');
    for (let i = 0; i < 3; i++) assert.throws(() => p.call('fail', 'x'), /always fails: x/);
  });
});

describe('alloc_churn', () => {
  test('churn agrees with host-demo', () => {
    const r = agree('alloc_churn', 'churn', '10');
    assert.match(r.output.toString(), /^\{"rounds":10,"allocs":\d+,"frees":\d+,"checked_bytes":\d+\}$/);
    agree('alloc_churn', 'churn', ' 200\n');
    agree('alloc_churn', 'churn', '');
    const bad = agree('alloc_churn', 'churn', 'ten');
    assert.equal(bad.error.pluginMessage, 'churn: invalid number of rounds: "ten"');
  });
});

describe('host_fn', () => {
  test('call_host: host_reverse written in JS agrees with host-demo\'s', () => {
    for (const input of ['hello', '', 'héllo wörld ✓ 🎉 e\u0301']) {
      const r = agree('host_fn', 'call_host', input);
      assert.equal(r.output.toString(), `host says: ${hostReverse(Buffer.from(input))}`);
    }
  });

  test('a user function the host lacks traps the call', () => {
    const p = plugin('host_fn', { functions: {} });
    assert.throws(() => p.call('call_host', 'x'), (e) => {
      assert.equal(e.kind, 'trap');
      assert.equal(e.message, 'the host has no user function `extism:host/user::host_reverse`');
      return true;
    });
  });

  test('a user function that throws traps the call; the next call runs on a new instance', () => {
    let calls = 0;
    const p = plugin('host_fn', {
      functions: {
        [USER_NAMESPACE]: {
          host_reverse: (input) => {
            if (calls++ === 0) throw new Error('not this time');
            return hostReverse(input);
          },
        },
      },
    });
    assert.throws(() => p.call('call_host', 'abc'), (e) => {
      assert.equal(e.kind, 'trap');
      assert.equal(e.message, 'not this time');
      assert.equal(e.cause.message, 'not this time');
      return true;
    });
    assert.equal(p.callText('call_host', 'abc'), 'host says: cba');
    assert.equal(p.callText('call_host', 'xyz'), 'host says: zyx');
  });
});

describe('http', () => {
  let server;
  before(async () => {
    server = await loopbackServer();
  });
  after(async () => {
    await server?.close();
  });
  const url = (path) => `http://127.0.0.1:${server.port}${path}`;

  test('fetch: status and body agree with host-demo; redirects are not followed', () => {
    const allowHosts = ['127.0.0.1'];
    assert.equal(agree('http', 'fetch', url('/ok'), { allowHosts }).output.toString(), '200 hello from loopback');
    assert.equal(agree('http', 'fetch', url('/missing'), { allowHosts }).output.toString(), '404 ');
    assert.equal(agree('http', 'fetch', url('/redirect'), { allowHosts }).output.toString(), '302 ');
    assert.equal(agree('http', 'fetch', url('/ok'), { allowHosts: ['localhost', '127.0.0.*'] }).output.toString(), '200 hello from loopback');
  });

  test('a host not on the allow-list is refused', () => {
    const none = agree('http', 'fetch', url('/ok'));
    assert.equal(none.error.kind, 'trap');
    assert.equal(none.error.message, 'HTTP request to 127.0.0.1 is not allowed (allowed hosts: none)');
    const other = agree('http', 'fetch', url('/ok'), { allowHosts: ['*.example.com', '127.0.0.2'] });
    assert.equal(other.error.message, 'HTTP request to 127.0.0.1 is not allowed (allowed hosts: *.example.com, 127.0.0.2)');
  });

  test('a connection error traps the call, and the plugin can fetch again', async () => {
    const port = await closedPort();
    const bad = `http://127.0.0.1:${port}/`;
    const r = agree('http', 'fetch', bad, { allowHosts: ['127.0.0.1'], errorPrefix: `HTTP request to ${bad} failed: ` });
    assert.match(r.error.message, /ECONNREFUSED/);
    const p = plugin('http', { allowedHosts: ['127.0.0.1'] });
    assert.throws(() => p.call('fetch', bad), /failed/);
    assert.equal(p.callText('fetch', url('/ok')), '200 hello from loopback');
    p.close();
  });

  test('the host side: status, headers given once, method and body, limits', () => {
    const host = new ExtismHost({ allowedHosts: ['127.0.0.1'], httpMaxResponseBytes: 100, httpTimeoutMs: 200 });
    const req = (o) => new TextEncoder().encode(JSON.stringify(o));
    assert.equal(host.httpStatusCode(), 0);
    assert.equal(host.httpHeaders(), undefined);
    const body = host.httpRequest(req({ url: url('/ok'), headers: { Host: 'evil.example', 'X-Mine': '1' } }), undefined);
    assert.equal(new TextDecoder().decode(body), 'hello from loopback');
    assert.equal(host.httpStatusCode(), 200);
    const headers = JSON.parse(new TextDecoder().decode(host.httpHeaders()));
    assert.equal(headers['x-test'], 'yes');
    assert.equal(headers['content-length'], '19');
    assert.deepEqual(Object.keys(headers), Object.keys(headers).sort(), 'names sorted, as plugin-host');
    assert.equal(host.httpHeaders(), undefined, 'headers are given once');
    const posted = host.httpRequest(req({ url: url('/echo-method'), method: 'post' }), new TextEncoder().encode('data'));
    assert.equal(new TextDecoder().decode(posted), 'POST');
    assert.throws(() => host.httpRequest(req({ url: url('/big') }), undefined), {
      message: `HTTP response from ${url('/big')} exceeds 100 bytes`,
    });
    assert.equal(host.httpStatusCode(), 200, 'a response too large still has its status');
    assert.throws(() => host.httpRequest(req({ url: url('/slow') }), undefined), {
      message: `HTTP request to ${url('/slow')} failed: timed out after 200 ms`,
    });
    assert.throws(() => host.httpRequest(new TextEncoder().encode('{'), undefined), /^HostError: invalid HTTP request JSON/);
    assert.throws(() => host.httpRequest(req({ url: 'ftp://127.0.0.1/' }), undefined), {
      message: 'unsupported URL scheme "ftp" in "ftp://127.0.0.1/" (only http and https)',
    });
    host.close();
  });
});

describe('WASI: plugins built for wasm32-wasip1, on preview2-shim', () => {
  test('wasi_print: what it prints and returns agrees with host-demo --wasi', () => {
    for (const input of ['hello', '', 'héllo ✓', Buffer.from([0xff, 0x41])]) {
      const r = agree('wasi_print', 'print', input);
      assert.deepEqual(r.output, Buffer.from(input));
      assert.equal(r.printed.toString(), `hello from wasi: ${new TextDecoder().decode(Buffer.from(input))}\n`);
    }
    const three = agree('wasi_print', 'print', 'x', { loop: 3 });
    assert.equal(three.printed.toString(), 'hello from wasi: x\n'.repeat(3));
  });

  test('wasi_files: reads, writes and lists allowed paths only, as host-demo does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'extism-js-wasi-'));
    try {
      writeFileSync(join(dir, 'a.txt'), 'file A');
      mkdirSync(join(dir, 'sub'));
      const allowPaths = [{ host: dir, guest: '/data' }];
      assert.equal(agree('wasi_files', 'read_file', '/data/a.txt', { allowPaths }).output.toString(), 'file A');
      assert.equal(agree('wasi_files', 'write_file', '/data/b.txt\nnew B', { allowPaths }).output.toString(), '5');
      assert.equal(readFileSync(join(dir, 'b.txt'), 'utf8'), 'new B');
      assert.equal(agree('wasi_files', 'list_dir', '/data', { allowPaths }).output.toString(), 'a.txt\nb.txt\nsub');
      for (const path of ['/data/missing', '/etc/hostname', '/data/../../etc/hostname', '/data/sub/../../x']) {
        const r = agree('wasi_files', 'read_file', path, { allowPaths });
        assert.equal(r.error.kind, 'failed', path);
        assert.ok(r.error.pluginMessage.startsWith(`reading ${path}: `), r.error.pluginMessage);
      }
      assert.equal(agree('wasi_files', 'list_dir', '/', { allowPaths }).error.kind, 'failed');
      assert.equal(agree('wasi_files', 'read_file', '/data/a.txt').error.kind, 'failed', 'no allowed path: no file system');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('refused: WASI not enabled, a read-only or missing allowed path, a shim that is not one', () => {
    assert.throws(() => new ComposedPlugin(instantiate.wasi_print), {
      message: 'the composed plugin imports WASI: enable it (the `wasi` option)',
    });
    assert.throws(() => plugin('wasi_files', { wasi: { allowedPaths: [{ host: tmpdir(), guest: '/t', readOnly: true }] } }), /is read-only, which this host cannot give/);
    const missing = [{ host: '/nonexistent-extism-js', guest: '/x' }];
    const message = 'the allowed path /nonexistent-extism-js is not a directory that exists';
    assert.throws(() => plugin('wasi_files', { wasi: { allowedPaths: missing } }), { message });
    for (const form of ['sample:wasi_files', join(OUT, 'wasi_files.component.wasm')]) {
      const r = hostDemoCall(form, 'read_file', { input: '/x/a', wasi: true, allowPaths: missing });
      assert.equal(r.stderr, `error: ${message}\n`, form);
    }
    assert.throws(() => wasiImports({}), /has no `cli`/);
    const oldShim = { ...shim, filesystem: { ...shim.filesystem, _createPreopenDescriptor: undefined } };
    assert.throws(() => wasiImports(oldShim, { allowedPaths: [{ host: tmpdir(), guest: '/t' }] }), /no filesystem._createPreopenDescriptor/);
    assert.ok(wasiImports(oldShim)['wasi:filesystem/preopens'].getDirectories().length === 0, 'no allowed paths: not needed');
    // A plugin without WASI is given none: the option is harmless there.
    assert.equal(new ComposedPlugin(instantiate.echo, { wasi: { shim } }).callText('echo', 'x'), 'x');
  });

  test('without `stdout`, the plugin prints to the process\'s stdout; `load` imports the shim', () => {
    const script = `
      import { ComposedPlugin } from ${JSON.stringify(new URL('../extism-host.js', import.meta.url).href)};
      const p = await ComposedPlugin.load(${JSON.stringify(transpiled('wasi_print'))}, { wasi: true });
      process.stdout.write('[' + p.callText('print', 'to stdout') + ']');
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'hello from wasi: to stdout\n[to stdout]');
  });
});
