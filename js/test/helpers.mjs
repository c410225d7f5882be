// What the tests share: where the built artifacts are, running `host-demo call` as a
// process, and a loopback HTTP server in a worker thread.
//
// `make test-js` builds everything first (see the top Makefile); the paths can be changed
// with EXTISM_JS_OUT (the folder of jco's output and the composed plugins, default
// `target/js` of the workspace) and HOST_DEMO (the host-demo binary, default
// `release/host-demo` in cargo's target folder).

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OUT = resolve(process.env.EXTISM_JS_OUT ?? join(ROOT, 'target', 'js'));

function cargoTargetDir() {
  const json = execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return JSON.parse(json).target_directory;
}

let hostDemoPath;
/** The host-demo binary (built by `make test-js`). */
export function hostDemo() {
  hostDemoPath ??= process.env.HOST_DEMO ?? join(cargoTargetDir(), 'release', 'host-demo');
  if (!existsSync(hostDemoPath)) {
    throw new Error(`no host-demo at ${hostDemoPath}: run \`make test-js\` (or set HOST_DEMO)`);
  }
  return hostDemoPath;
}

/** jco's output for `name` (the kernel: `kernel`; a composed sample: its name). */
export function transpiled(name) {
  const p = join(OUT, name, `${name}.js`);
  if (!existsSync(p)) throw new Error(`no ${p}: run \`make test-js\` first`);
  return p;
}

/**
 * `host-demo call PLUGIN FUNCTION --stdin` with `input` on stdin: `{status, stdout (a
 * Buffer), stderr (a string)}`. `plugin` is `sample:NAME` or a file; `config` an object;
 * `allowHosts` globs; `wasi` turns WASI on, `allowPaths` are `{host, guest}` (WASI's
 * allowed paths); `loop` the number of calls on one plugin (the last output is printed).
 */
export function hostDemoCall(plugin, fn, { input = '', config = {}, allowHosts = [], wasi = false, allowPaths = [], loop = 1, logLevel } = {}) {
  const args = ['call', plugin, fn, '--stdin'];
  for (const [k, v] of Object.entries(config)) args.push('--config', `${k}=${v}`);
  for (const h of allowHosts) args.push('--allow-host', h);
  if (wasi) args.push('--wasi');
  for (const { host, guest } of allowPaths) args.push('--allow-path', `${host}:${guest}`);
  if (loop !== 1) args.push('--loop', String(loop));
  if (logLevel !== undefined) args.push('--log-level', logLevel);
  const r = spawnSync(hostDemo(), args, { input: Buffer.from(input), maxBuffer: 256 << 20 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/**
 * A loopback HTTP server in a worker thread (the thread that runs a plugin blocks while its
 * HTTP request is made, so the server cannot share it). Routes: `/ok` (200, body
 * `hello from loopback`, header `x-test: yes`), `/echo-method` (200, the method),
 * `/redirect` (302 to another host), `/big` (200, 4096 bytes), `/slow` (200 after 3 s), anything else 404 with an
 * empty body. Resolves to `{port, close()}`.
 */
export async function loopbackServer() {
  const worker = new Worker(
    `
    const { parentPort } = require('node:worker_threads');
    const http = require('node:http');
    const server = http.createServer((req, res) => {
      res.setHeader('connection', 'close');
      if (req.url === '/ok') {
        res.setHeader('x-test', 'yes');
        res.end('hello from loopback');
      } else if (req.url === '/echo-method') {
        res.end(req.method);
      } else if (req.url === '/redirect') {
        res.statusCode = 302;
        res.setHeader('location', 'http://example.invalid/');
        res.end();
      } else if (req.url === '/big') {
        res.end('x'.repeat(4096));
      } else if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 3000);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
    parentPort.on('message', () => {
      server.close(() => process.exit(0));
      server.closeAllConnections();
    });
    `,
    { eval: true },
  );
  const [port] = await once(worker, 'message');
  return {
    port,
    async close() {
      worker.postMessage('close');
      await once(worker, 'exit');
    },
  };
}

/** A free loopback port with nothing listening on it (for connection errors). */
export async function closedPort() {
  const net = await import('node:net');
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}
