// A JavaScript host for Extism plugins composed into one component.
//
// `host-demo componentize` turns an unmodified Extism plugin into a component of world
// `extism:kernel/plugin` (wit/extism-plugin.wit): it imports only the value-based host
// services `extism:kernel/host@1.0.0` and exports only `extism:kernel/entry@1.0.0`, whose
// `call(name, input)` this module uses. `jco transpile --instantiation async` turns that component into an ES
// module with an `instantiate(getCoreModule, imports)` function. This module is the other
// half: the host services, and a plugin object that calls the entry point and makes the
// plugin anew after a trap.
//
//   import { ComposedPlugin } from './extism-host.js';
//   const plugin = await ComposedPlugin.load('out/count_vowels/count_vowels.js', {
//     config: { vowels: 'aeiou' },
//     logLevel: 'info',
//   });
//   const out = plugin.call('count_vowels', 'Hello');   // Uint8Array
//
// What it serves, with the same rules and messages as plugin-host (the Rust host):
// - config: a map of strings;
// - vars: named byte values kept across calls (and across a trap), with one byte limit over
//   all keys and values (default 1 MiB);
// - logging: the plugin's lines at `logLevel` and above go to `logger(level, message)`;
//   `get-log-level` answers trace 0 ... error 4, 2147483647 when logging is off;
// - HTTP: Extism's JSON request through `fetch`, only to hosts matched by the `allowedHosts`
//   globs (`*` matches any run of characters; none by default), redirects not followed. A
//   component import is synchronous and `fetch` is not, so the request runs in a worker
//   thread while the calling thread waits on `Atomics.wait` (Node.js; where there are no
//   worker threads, for example a browser's main thread, every request fails with a
//   message saying so);
// - user host functions: `functions[namespace][name]`, a JavaScript function from the
//   argument's bytes (a Uint8Array) to the result's bytes (a Uint8Array or a string).
//
// A host service that fails (a var over the limit, a host not allowed, a network error, a
// user function that throws) traps the call, as an Extism host function that fails does.
// After an exception has gone through a jco instance it cannot be entered again, so
// `ComposedPlugin` instantiates the plugin anew (from the compiled modules it keeps),
// keeping its vars.
//
// - WASI 0.2, for a plugin built for wasm32-wasip1 (option `wasi`): jco's preview2-shim,
//   confined as plugin-host confines it (`wasiImports`).
//
// `call` lowers its arguments and lifts its result itself (`directEntry`), which is several
// times faster than jco's generated lift of that one function.
//
// What it does not do: timeouts of a whole call and memory limits (a synchronous wasm call
// cannot be interrupted from the thread it runs on; run the plugin in a worker to bound it).

const encoder = new TextEncoder();
const decoder = new TextDecoder(); // lossy: invalid UTF-8 becomes U+FFFD
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** The log levels, from the most verbose; their index is what `get-log-level` answers. */
export const LOG_LEVELS = Object.freeze(['trace', 'debug', 'info', 'warn', 'error']);

/** `get-log-level` when logging is off (Extism's `get_log_level`). */
export const LOG_OFF = 2147483647;

/** The default limit of a plugin's vars, keys and values together (as plugin-host). */
export const DEFAULT_VAR_LIMIT_BYTES = 1 << 20;

/** The default limit of an HTTP response body (as plugin-host). */
export const DEFAULT_HTTP_MAX_RESPONSE_BYTES = 64 << 20;

/** The namespace of Extism user host functions. */
export const USER_NAMESPACE = 'extism:host/user';

/** `s` with every run of white space made one space (as plugin-host's one-line errors). */
function oneLine(s) {
  return String(s).split(/\s+/).filter(Boolean).join(' ');
}

/** Bytes of a string (UTF-8) or of any ArrayBuffer view. */
export function toBytes(data) {
  if (data === undefined || data === null) return new Uint8Array();
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError('expected a string, a Uint8Array or an ArrayBuffer');
}

/** A config key's bytes as a string: one that is not UTF-8 matches nothing (as plugin-host). */
function configKey(bytes) {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A var key's bytes as a string: one that is not UTF-8 fails the call (as plugin-host). */
function varKey(bytes, what) {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new HostError(`${what}: the key is not valid UTF-8`);
  }
}

/** A failure of a host service: thrown into the plugin, it traps the call. */
export class HostError extends Error {
  constructor(message) {
    super(message);
    this.name = 'HostError';
  }
}

/**
 * Why a call failed. `kind` is one of:
 * - `'no-function'`: the plugin has no Extism function `functionName`;
 * - `'failed'`: the function returned the non-zero `code`, with the error message
 *   `pluginMessage` it set (`undefined` when none);
 * - `'trap'`: the plugin trapped, or a host service failed (`cause` holds the exception).
 * `message` is the line plugin-host's `CallError` prints for the same failure.
 */
export class CallError extends Error {
  constructor(kind, message, fields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'CallError';
    this.kind = kind;
    for (const [k, v] of Object.entries(fields)) if (k !== 'cause') this[k] = v;
  }
}

/** Whether the glob `pattern` (only `*` is special) matches all of `text`, ignoring ASCII case. */
export function globMatch(pattern, text) {
  const p = pattern.toLowerCase();
  const t = text.toLowerCase();
  let pi = 0;
  let ti = 0;
  let star = -1;
  let starText = 0;
  while (ti < t.length) {
    if (pi < p.length && p[pi] === '*') {
      star = pi++;
      starText = ti;
    } else if (pi < p.length && p[pi] === t[ti]) {
      pi++;
      ti++;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++starText;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

// ---- synchronous fetch: a worker thread does the request, the caller waits -------------

// `node:worker_threads` where it exists (Node.js, Deno, Bun); `null` elsewhere.
const threads = await import('node:worker_threads').catch(() => null);
// `node:fs` likewise: allowed paths are checked to be directories where it exists.
const nodeFs = await import('node:fs').catch(() => null);

// The worker: one request at a time, answered on `port`, then `signal` is raised.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { port } = workerData;
const describe = (e) => {
  if (e && e.name === 'TimeoutError') return 'timed out after ' + e.timeoutMs + ' ms';
  let s = String(e && e.message || e);
  for (let c = e && e.cause; c; c = c.cause) s += ': ' + (c.message || c.code || c);
  return s;
};
parentPort.on('message', async (r) => {
  let reply;
  const transfer = [];
  try {
    const init = { method: r.method, headers: r.headers, redirect: 'manual' };
    if (r.body) init.body = r.body;
    if (r.timeoutMs != null) init.signal = AbortSignal.timeout(r.timeoutMs);
    let response;
    try {
      response = await fetch(r.url, init);
    } catch (e) {
      if (e && e.name === 'TimeoutError') e.timeoutMs = r.timeoutMs;
      throw e;
    }
    const headers = {};
    for (const [k, v] of response.headers) headers[k] = k in headers ? headers[k] + ', ' + v : v;
    reply = { id: r.id, status: response.status, headers };
    const chunks = [];
    let n = 0;
    try {
      if (response.body) {
        for await (const c of response.body) {
          n += c.byteLength;
          if (n > r.maxBytes) { reply.tooLarge = true; break; }
          chunks.push(c);
        }
      }
    } catch (e) {
      if (e && e.name === 'TimeoutError') e.timeoutMs = r.timeoutMs;
      reply.error = describe(e);
    }
    if (!reply.tooLarge && !reply.error) {
      const body = new Uint8Array(n);
      let at = 0;
      for (const c of chunks) { body.set(c, at); at += c.byteLength; }
      reply.body = body;
      transfer.push(body.buffer);
    }
  } catch (e) {
    reply = { id: r.id, error: describe(e) };
  }
  port.postMessage(reply, transfer);
  Atomics.store(r.signal, 0, 1);
  Atomics.notify(r.signal, 0);
});
`;

/**
 * Runs `fetch` in a worker thread and waits for it: `request` is `{url, method, headers,
 * body, timeoutMs, maxBytes}`; the answer is `{status, headers, body}`, with `tooLarge` when
 * the body passed `maxBytes`, or `{error}` (and maybe status and headers) when the request
 * failed. One worker per `SyncFetch`, made at the first request, not keeping the process
 * alive.
 */
export class SyncFetch {
  #worker = null;
  #port = null;
  #seq = 0;

  /** Whether requests can be made synchronously here (worker threads exist). */
  static get available() {
    return threads !== null && typeof SharedArrayBuffer === 'function';
  }

  fetch(request) {
    if (!SyncFetch.available) {
      return { error: 'synchronous HTTP needs worker threads and Atomics.wait, which this JavaScript runtime lacks' };
    }
    if (this.#worker === null) {
      const { port1, port2 } = new threads.MessageChannel();
      this.#worker = new threads.Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { port: port2 },
        transferList: [port2],
      });
      this.#worker.unref();
      port1.unref();
      this.#port = port1;
    }
    const id = ++this.#seq;
    const signal = new Int32Array(new SharedArrayBuffer(4));
    this.#worker.postMessage({ ...request, id, signal });
    // The worker's own timeout ends the request; this one only guards against a stuck worker.
    const wait = request.timeoutMs == null ? Infinity : request.timeoutMs + 5000;
    if (Atomics.wait(signal, 0, 0, wait) === 'timed-out') {
      return { error: `no answer from the HTTP worker in ${wait} ms` };
    }
    for (;;) {
      const m = threads.receiveMessageOnPort(this.#port);
      if (m === undefined) return { error: 'the HTTP worker gave no answer' };
      if (m.message.id === id) return m.message; // older answers (timed out) are dropped
    }
  }

  /** Stops the worker (a later request starts a new one). */
  close() {
    if (this.#worker !== null) {
      this.#worker.terminate();
      this.#port.close();
      this.#worker = null;
      this.#port = null;
    }
  }
}

// ---- the host services -----------------------------------------------------------------

function defaultLogger(level, message) {
  console.error(`[${level.toUpperCase().padEnd(5)}] ${message}`); // as host-demo's lines
}

/**
 * The host side of `extism:kernel/host@1.0.0` for one plugin.
 *
 * Options (all optional):
 * - `config`: an object or Map of strings, read by the plugin's `config::get`;
 * - `varLimitBytes`: the limit of the vars, keys (UTF-8 bytes) and values together
 *   (default 1 MiB);
 * - `logLevel`: `'trace' | 'debug' | 'info' | 'warn' | 'error'`, the least severe level
 *   kept; absent: logging is off;
 * - `logger(level, message)`: where kept lines go (default: one line on stderr);
 * - `allowedHosts`: globs over the URL's host name the plugin may reach (`'*.example.com'`,
 *   `'127.0.0.1'`, `'*'`; case-insensitive; an IPv6 host without brackets); none by default;
 * - `httpTimeoutMs`: the longest an HTTP request may take, body included (default: none);
 * - `httpMaxResponseBytes`: the largest response body (default 64 MiB);
 * - `functions`: user host functions, `{ [namespace]: { [name]: (bytes) => bytes } }`
 *   (the Extism namespace is `'extism:host/user'`, `USER_NAMESPACE`).
 */
export class ExtismHost {
  constructor(options = {}) {
    this.config = new Map(
      options.config instanceof Map ? options.config : Object.entries(options.config ?? {}),
    );
    /** The vars, by name: Uint8Arrays. */
    this.vars = new Map();
    this.varBytes = 0;
    this.varLimitBytes = options.varLimitBytes ?? DEFAULT_VAR_LIMIT_BYTES;
    if (options.logLevel !== undefined && !LOG_LEVELS.includes(options.logLevel)) {
      throw new TypeError(`logLevel must be one of ${LOG_LEVELS.join(', ')}`);
    }
    this.logLevel = options.logLevel;
    this.logger = options.logger ?? defaultLogger;
    this.allowedHosts = [...(options.allowedHosts ?? [])];
    this.httpTimeoutMs = options.httpTimeoutMs;
    this.httpMaxResponseBytes = options.httpMaxResponseBytes ?? DEFAULT_HTTP_MAX_RESPONSE_BYTES;
    this.functions = options.functions ?? {};
    /** The last HTTP response: its status (0 for none) and its headers as JSON bytes. */
    this.http = { status: 0, headers: undefined };
    this.syncFetch = options.syncFetch ?? new SyncFetch();
  }

  /** The import object for jco's `instantiate`, under both names jco may look up. */
  imports() {
    const iface = {
      // Keys and log messages arrive as the plugin's bytes (Uint8Array).
      configGet: (key) => this.configGet(configKey(key)),
      varGet: (key) => this.varGet(varKey(key, 'var_get')),
      varSet: (key, value) => this.varSet(varKey(key, 'var_set'), value),
      getLogLevel: () => this.getLogLevel(),
      log: (level, message) => this.log(level, decoder.decode(message)),
      httpRequest: (request, body) => this.httpRequest(request, body),
      httpStatusCode: () => this.httpStatusCode(),
      httpHeaders: () => this.httpHeaders(),
      userCall: (namespace, name, input) => this.userCall(namespace, name, input),
    };
    // jco's generated code (1.17.0 and 1.35.0) reads `imports['extism:kernel/host']` (no version), while
    // its .d.ts names `'extism:kernel/host@1.0.0'`: give both.
    return { 'extism:kernel/host': iface, 'extism:kernel/host@1.0.0': iface };
  }

  /** `config-get`: the value of `key`, `undefined` when absent. */
  configGet(key) {
    if (key === undefined) return undefined;
    const v = this.config.get(key);
    return v === undefined ? undefined : String(v);
  }

  /** `var-get`: the var `key`, `undefined` when absent. */
  varGet(key) {
    return this.vars.get(key);
  }

  /** `var-set`: sets the var `key` or, for `undefined`, removes it; over the limit it throws
   * and the old value stays. */
  varSet(key, value) {
    const keyLen = encoder.encode(key).length;
    const had = this.vars.get(key);
    const old = had === undefined ? 0 : keyLen + had.length;
    if (value === undefined) {
      this.vars.delete(key);
      this.varBytes -= old;
      return;
    }
    const total = this.varBytes - old + keyLen + value.length;
    if (total > this.varLimitBytes) {
      throw new HostError(
        `var_set of \`${key}\` would make the vars ${total} bytes, over the limit of ${this.varLimitBytes} bytes`,
      );
    }
    this.varBytes = total;
    this.vars.set(key, new Uint8Array(value)); // a copy: the caller's buffer is not ours
  }

  /** `get-log-level`: the least severe level kept, trace 0 ... error 4; `LOG_OFF` when off. */
  getLogLevel() {
    return this.logLevel === undefined ? LOG_OFF : LOG_LEVELS.indexOf(this.logLevel);
  }

  /** `log`: passes the line on when its level is kept. */
  log(level, message) {
    if (this.logLevel !== undefined && LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(this.logLevel)) {
      this.logger(level, message);
    }
  }

  /** `http-request`: Extism's JSON request (`url`, `headers`, `method`) and the body; the
   * response body. Records the status and headers for the next two functions. */
  httpRequest(requestBytes, body) {
    this.http = { status: 0, headers: undefined };
    let req;
    try {
      req = JSON.parse(decoder.decode(requestBytes));
    } catch (e) {
      throw new HostError(`invalid HTTP request JSON: ${e.message}`);
    }
    if (req === null || typeof req !== 'object' || typeof req.url !== 'string') {
      throw new HostError('invalid HTTP request JSON: expected an object with a string `url`');
    }
    const url = req.url;
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw new HostError(`invalid URL ${JSON.stringify(url)}`);
    }
    const scheme = parsed.protocol.slice(0, -1);
    if (scheme !== 'http' && scheme !== 'https') {
      throw new HostError(`unsupported URL scheme ${JSON.stringify(scheme)} in ${JSON.stringify(url)} (only http and https)`);
    }
    let host = parsed.hostname;
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    if (host === '') throw new HostError(`invalid URL ${JSON.stringify(url)}: missing host`);
    if (!this.allowedHosts.some((p) => globMatch(p, host))) {
      const patterns = this.allowedHosts.length === 0 ? 'none' : this.allowedHosts.join(', ');
      throw new HostError(`HTTP request to ${host} is not allowed (allowed hosts: ${patterns})`);
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const headers = {};
    let encoding = false;
    for (const [name, value] of Object.entries(req.headers ?? {})) {
      const lower = name.toLowerCase();
      // The allow-list checked the URL's host: the request goes to that host, under that name.
      if (lower === 'host') continue;
      if (lower === 'accept-encoding') encoding = true;
      headers[name] = String(value);
    }
    // fetch would ask for compressed bodies and decompress them; plugin-host does neither.
    if (!encoding) headers['accept-encoding'] = 'identity';
    const r = this.syncFetch.fetch({
      url,
      method,
      headers,
      body: body === undefined ? undefined : new Uint8Array(body),
      timeoutMs: this.httpTimeoutMs,
      maxBytes: this.httpMaxResponseBytes,
    });
    if (r.status !== undefined) {
      this.http.status = r.status;
      const sorted = Object.fromEntries(Object.entries(r.headers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      this.http.headers = encoder.encode(JSON.stringify(sorted));
    }
    if (r.tooLarge) {
      throw new HostError(`HTTP response from ${url} exceeds ${this.httpMaxResponseBytes} bytes`);
    }
    if (r.error !== undefined) throw new HostError(`HTTP request to ${url} failed: ${oneLine(r.error)}`);
    return r.body;
  }

  /** `http-status-code`: the last response's status; 0 when there is none. */
  httpStatusCode() {
    return this.http.status;
  }

  /** `http-headers`: the last response's headers as a JSON object, given once. */
  httpHeaders() {
    const h = this.http.headers;
    this.http.headers = undefined;
    return h;
  }

  /** `user-call`: the user function `namespace`/`name` on the argument's bytes. */
  userCall(namespace, name, input) {
    const f = Object.hasOwn(this.functions, namespace) && Object.hasOwn(this.functions[namespace], name)
      ? this.functions[namespace][name]
      : undefined;
    if (typeof f !== 'function') {
      throw new HostError(`the host has no user function \`${namespace}::${name}\``);
    }
    return toBytes(f(input));
  }

  /** Forgets the last HTTP response (a plugin made anew starts without one). */
  renewed() {
    this.http = { status: 0, headers: undefined };
  }

  /** Stops the HTTP worker, if any. */
  close() {
    this.syncFetch.close();
  }
}

// ---- WASI, for plugins built for wasm32-wasip1 -------------------------------------------

/** The WASI 0.2 packages served to a composed plugin (from the shim), by package name. */
const WASI_PACKAGES = Object.freeze(['cli', 'clocks', 'filesystem', 'io', 'random']);

/**
 * The WASI 0.2 imports of one instance of a composed plugin that was built for
 * `wasm32-wasip1` (`host-demo componentize` adapts its preview 1 imports to WASI 0.2 with
 * wasmtime's adapter), over jco's shim `@bytecodealliance/preview2-shim` (`shim`: the
 * module's namespace, `await import('@bytecodealliance/preview2-shim')`), with what
 * plugin-host gives a plugin with `wasi` rather than the shim's process-wide defaults:
 * - no environment variables, no arguments, no initial directory;
 * - stdin is empty; stdout goes to `stdout(bytes)` when given, else to the process's
 *   stdout; stderr to the process's stderr; none of them is a terminal;
 * - the file system is only the `allowedPaths`, `[{ host, guest }]` (the shim's default
 *   preopen of `/` is not given), read-write: one with `readOnly: true` is refused, the shim
 *   has no read-only descriptors;
 * - `exit` traps the call instead of ending the process;
 * - clocks and random are the shim's. Sockets and HTTP are not served: a component that
 *   imports them is refused when it is instantiated.
 *
 * Each call makes new preopened descriptors: an instance made anew after a trap gets its
 * own.
 *
 * Not a sandbox like wasmtime's: the shim follows a symbolic link inside an allowed path to
 * wherever it points (`/data/link/hostname` read `/etc/hostname` when `link` pointed at
 * `/etc`; wasmtime refuses), and a plugin whose preview 1 imports include `path_symlink`
 * could make such a link where it may write. `..` out of an allowed path is refused.
 * Give allowed paths only to plugins you trust, or run the plugin in wasmtime.
 */
export function wasiImports(shim, { allowedPaths = [], stdout } = {}) {
  for (const p of WASI_PACKAGES) {
    if (shim?.[p] === undefined) throw new TypeError(`wasiImports: \`shim\` has no \`${p}\`: pass the namespace of @bytecodealliance/preview2-shim`);
  }
  const { InputStream, OutputStream } = shim.io.streams;
  const unsupported = (what) => () => {
    throw new HostError(`WASI ${what} is not supported by this host`);
  };
  // What wasmtime-wasi's default stdin is: a stream at its end.
  class EmptyInput extends InputStream {
    read() {
      throw { tag: 'closed' };
    }
    blockingRead() {
      throw { tag: 'closed' };
    }
    skip() {
      throw { tag: 'closed' };
    }
    blockingSkip() {
      throw { tag: 'closed' };
    }
  }
  EmptyInput.prototype.subscribe = unsupported('stdin subscribe');
  // stdout into `sink(bytes)`.
  class SinkOutput extends OutputStream {
    #sink;
    constructor(sink) {
      super();
      this.#sink = sink;
    }
    checkWrite() {
      return 1n << 20n;
    }
    write(bytes) {
      this.#sink(bytes);
    }
    blockingWriteAndFlush(bytes) {
      this.#sink(bytes);
    }
    flush() {}
    blockingFlush() {}
    writeZeroes(n) {
      this.#sink(new Uint8Array(Number(n)));
    }
    blockingWriteZeroesAndFlush(n) {
      this.#sink(new Uint8Array(Number(n)));
    }
  }
  for (const m of ['subscribe', 'splice', 'blockingSplice']) SinkOutput.prototype[m] = unsupported(`stdout ${m}`);

  if (allowedPaths.length > 0 && typeof shim.filesystem._createPreopenDescriptor !== 'function') {
    // An underscore function of the shim (0.17.x): a preopen of this instance's own.
    throw new TypeError('wasiImports: this preview2-shim has no filesystem._createPreopenDescriptor (0.17.x has it)');
  }
  const preopens = allowedPaths.map(({ host, guest, readOnly }) => {
    if (typeof host !== 'string' || typeof guest !== 'string') {
      throw new TypeError('allowedPaths: each is { host, guest } (strings)');
    }
    if (readOnly) {
      throw new Error(`the allowed path ${host} is read-only, which this host cannot give (preview2-shim has no read-only descriptors)`);
    }
    // The shim opens a preopen lazily, so a path that is not there would only fail the
    // plugin's first access; plugin-host refuses it at once, with this message.
    if (nodeFs !== null && !nodeFs.statSync(host, { throwIfNoEntry: false })?.isDirectory()) {
      throw new Error(`the allowed path ${host} is not a directory that exists`);
    }
    return [shim.filesystem._createPreopenDescriptor(host), guest];
  });
  const stdin = new EmptyInput();
  const out = stdout === undefined ? shim.cli.stdout.getStdout() : new SinkOutput((b) => stdout(new Uint8Array(b)));
  const imports = {};
  for (const p of WASI_PACKAGES) {
    for (const [name, value] of Object.entries(shim[p])) {
      if (!name.startsWith('_')) imports[`wasi:${p}/${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`] = value;
    }
  }
  Object.assign(imports, {
    'wasi:cli/environment': { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined },
    'wasi:cli/exit': {
      exit(status) {
        throw new HostError(`the plugin called WASI exit (${status?.tag === 'err' ? 'failure' : 'success'})`);
      },
      exitWithCode(code) {
        throw new HostError(`the plugin called WASI exit with code ${code}`);
      },
    },
    'wasi:cli/stdin': { InputStream, getStdin: () => stdin },
    'wasi:cli/stdout': { OutputStream, getStdout: () => out },
    'wasi:cli/stderr': shim.cli.stderr,
    'wasi:cli/terminal-stdin': { ...shim.cli.terminalStdin, getTerminalStdin: () => undefined },
    'wasi:cli/terminal-stdout': { ...shim.cli.terminalStdout, getTerminalStdout: () => undefined },
    'wasi:cli/terminal-stderr': { ...shim.cli.terminalStderr, getTerminalStderr: () => undefined },
    'wasi:filesystem/preopens': { ...shim.filesystem.preopens, getDirectories: () => preopens },
  });
  return imports;
}

/** Whether a component import (jco's key) is a WASI interface. */
const isWasi = (name) => name.startsWith('wasi:');

// ---- loading jco's output --------------------------------------------------------------

async function readBytes(url) {
  if (url.protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    return readFile(url);
  }
  const r = await fetch(url);
  if (!r.ok) throw new Error(`fetching ${url}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function moduleUrl(path) {
  if (path instanceof URL) return path;
  if (/^[a-z][a-z0-9+.-]*:/i.test(path) && !/^[a-z]:[\\/]/i.test(path)) return new URL(path);
  const { pathToFileURL } = await import('node:url');
  const { resolve } = await import('node:path');
  return pathToFileURL(resolve(path));
}

/** The core instances behind one `instantiate(imports)`, on its result (see `directEntry`). */
const CORE_INSTANCES = Symbol('core instances');

/**
 * Loads the output of `jco transpile --instantiation async` (the path or URL of its `.js`
 * file): compiles its core modules once and returns `instantiate(imports)`, which makes a
 * new instance synchronously each time it is called (a fresh kernel, a fresh plugin). Its
 * `imports` property lists the interfaces the component imports (`'wasi:cli/stdout'`,
 * `'extism:kernel/host'`: jco's keys, without versions).
 */
export async function loadTranspiled(jsPath) {
  const url = await moduleUrl(jsPath);
  const mod = await import(url.href);
  if (typeof mod.instantiate !== 'function') {
    throw new Error(`${url} has no instantiate(): transpile with jco --instantiation async`);
  }
  const modules = new Map();
  const compile = async (name) => {
    if (!modules.has(name)) modules.set(name, await WebAssembly.compile(await readBytes(new URL(name, url))));
    return modules.get(name);
  };
  // The first instantiation finds and compiles every core module, and the interfaces the
  // component imports; it is thrown away.
  const interfaces = new Set();
  const recorder = new Proxy({}, {
    get: (_, key) => {
      if (typeof key === 'string') interfaces.add(key);
      return new Proxy({}, { get: () => () => {} });
    },
  });
  await mod.instantiate(compile, recorder);
  const getCoreModule = (name) => {
    const m = modules.get(name);
    if (m === undefined) throw new Error(`core module ${name} was not compiled`);
    return m;
  };
  const instantiate = (imports) => {
    const instances = [];
    const instantiateCore = (module, coreImports) => {
      const instance = new WebAssembly.Instance(module, coreImports);
      instances.push({ instance, imports: coreImports });
      return instance;
    };
    const exports = mod.instantiate(getCoreModule, imports, instantiateCore);
    Object.defineProperty(exports, CORE_INSTANCES, { value: instances });
    return exports;
  };
  // The interfaces the component imports, as jco looks them up (without versions).
  instantiate.imports = Object.freeze([...interfaces].sort());
  return instantiate;
}

// ---- the entry point, lowered by this module --------------------------------------------

/**
 * `call(name, input)` of a composed plugin made by `host-demo componentize`, called on its
 * core function directly, or `undefined` when `exports` (of `loadTranspiled`'s
 * `instantiate`) does not have that layout.
 *
 * jco's generated lift of `call` does per call what a plugin does not need: it registers a
 * task for the component model's async machinery, logs through a function that reads
 * `process.env.JCO_DEBUG` (a `getenv` each time), counts the name's code points, and lifts
 * the output with `ArrayBuffer.prototype.slice`; on a trivial call that is over four fifths
 * of the time (`js/README.md`). This is the same canonical ABI for this one function:
 * the name's and the input's bytes are written into blocks from the component's `realloc`
 * (the entry glue's `entry-realloc`, whose first call resets the kernel), the core `call`
 * returns a pointer to the result, which is read as jco reads it. The host services stay
 * jco's lowerings. `js/test/composed.test.mjs` checks the two give the same results.
 *
 * The layout it looks for, which `plugin-host/src/componentize/glue.rs` defines: a core
 * instance exporting `entry-realloc` and `arguments-taken` (the `alloc` glue), whose
 * `kernel.memory` import is the memory of the canonical options, and one exporting `call`
 * that imports that instance's `arguments-taken` (the `entry` glue).
 */
function directEntry(exports) {
  const instances = exports?.[CORE_INSTANCES];
  if (instances === undefined) return undefined;
  const alloc = instances.find(({ instance }) =>
    typeof instance.exports['entry-realloc'] === 'function' && typeof instance.exports['arguments-taken'] === 'function');
  const memory = alloc?.imports?.kernel?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return undefined;
  const taken = alloc.instance.exports['arguments-taken'];
  const entry = instances.filter(({ instance, imports }) =>
    typeof instance.exports.call === 'function' && imports?.alloc?.['arguments-taken'] === taken);
  if (entry.length !== 1) return undefined;
  return new DirectEntry(entry[0].instance.exports.call, alloc.instance.exports['entry-realloc'], memory);
}

/** What `DirectEntry.call` throws for the function's `err`: its `CallError`, in a wrapper
 * no host service can throw, so it is told apart from a trap. */
class EntryErr {
  constructor(error) {
    this.error = error;
  }
}

/** The most names whose UTF-8 bytes a `DirectEntry` keeps (then it starts again). */
const NAME_CACHE_SIZE = 256;

class DirectEntry {
  #call;
  #realloc;
  #memory;
  #names = new Map();

  constructor(call, realloc, memory) {
    this.#call = call;
    this.#realloc = realloc;
    this.#memory = memory;
  }

  #nameBytes(name) {
    let b = this.#names.get(name);
    if (b === undefined) {
      if (typeof name !== 'string') throw new TypeError(`expected a string, received [${typeof name}]`);
      if (this.#names.size >= NAME_CACHE_SIZE) this.#names.clear();
      b = encoder.encode(name);
      this.#names.set(name, b);
    }
    return b;
  }

  /** The output's bytes. The function's `err` is thrown as an `EntryErr`; anything else
   * thrown is a trap. */
  call(name, input) {
    const n = this.#nameBytes(name);
    // Both blocks first: a `realloc` may grow the memory, which detaches an older view.
    const namePtr = this.#realloc(0, 0, 1, n.length);
    const inputPtr = this.#realloc(0, 0, 1, input.length);
    const heap = new Uint8Array(this.#memory.buffer);
    heap.set(n, namePtr);
    heap.set(input, inputPtr);
    const ret = this.#call(namePtr, n.length, inputPtr, input.length);
    const buffer = this.#memory.buffer;
    const view = new DataView(buffer);
    switch (view.getUint8(ret)) {
      case 0:
        return new Uint8Array(buffer, view.getUint32(ret + 4, true), view.getUint32(ret + 8, true)).slice();
      case 1:
        break;
      default:
        throw new TypeError('invalid variant discriminant for expected');
    }
    switch (view.getUint8(ret + 4)) {
      case 0: {
        const bytes = new Uint8Array(buffer, view.getUint32(ret + 8, true), view.getUint32(ret + 12, true));
        throw new EntryErr(entryError({ tag: 'no-function', val: decoder.decode(bytes) }));
      }
      case 1: {
        const code = view.getInt32(ret + 8, true);
        let message;
        switch (view.getUint8(ret + 12)) {
          case 0:
            break;
          case 1:
            message = new Uint8Array(buffer, view.getUint32(ret + 16, true), view.getUint32(ret + 20, true)).slice();
            break;
          default:
            throw new TypeError('invalid variant discriminant for option');
        }
        throw new EntryErr(entryError({ tag: 'failed', val: [code, message] }));
      }
      default:
        throw new TypeError('invalid variant discriminant for CallError');
    }
  }
}

/** Whether `e` is the error jco throws for a component function's `err` result. */
function resultError(e) {
  return e !== null && typeof e === 'object' && e.constructor?.name === 'ComponentError' &&
    e.payload !== null && typeof e.payload === 'object' && typeof e.payload.tag === 'string';
}

/** The CallError of the entry point's `call-error`, worded as plugin-host's CallError. */
function entryError(payload) {
  switch (payload.tag) {
    case 'no-function':
      return new CallError('no-function', `the plugin has no function \`${payload.val}\``, { functionName: payload.val });
    case 'failed': {
      const [code, bytes] = payload.val;
      const message = bytes === undefined ? undefined : decoder.decode(bytes);
      return message === undefined
        ? new CallError('failed', `the plugin returned code ${code}`, { code, pluginMessage: undefined })
        : new CallError('failed', `plugin error (code ${code}): ${oneLine(message)}`, { code, pluginMessage: message });
    }
    default:
      return new CallError('trap', `unknown call error ${JSON.stringify(payload)}`);
  }
}

/** The CallError of an exception that went through the plugin (a trap). */
function trapError(e) {
  if (e instanceof HostError) return new CallError('trap', oneLine(e.message), { cause: e });
  if (e instanceof WebAssembly.RuntimeError || e instanceof RangeError) {
    return new CallError('trap', `the plugin trapped: ${oneLine(e.message)}`, { cause: e });
  }
  return new CallError('trap', oneLine(e?.message ?? String(e)), { cause: e });
}

/**
 * A composed plugin with its host services. `ComposedPlugin.load(jsPath, options)` loads
 * jco's output; `options` are `ExtismHost`'s (or pass `{ host }`, an `ExtismHost` of your
 * own), and:
 * - `wasi`: for a plugin built for `wasm32-wasip1` (which needs it, as in plugin-host):
 *   `true`, or `{ allowedPaths, stdout, shim }`, `wasiImports`' options and the shim; `load`
 *   imports `@bytecodealliance/preview2-shim` when no `shim` is given, the constructor
 *   needs it;
 * - `jcoEntry: true`, which calls the entry point through jco's generated lift instead of
 *   lowering it here (see `directEntry`; slower, the results are the same).
 */
export class ComposedPlugin {
  #instantiate;
  #jcoEntry;
  #wasi;
  #entry;
  #direct;
  #broken;

  constructor(instantiate, options = {}) {
    this.#instantiate = instantiate;
    this.#jcoEntry = options.jcoEntry === true;
    this.host = options.host ?? new ExtismHost(options);
    const wasi = options.wasi === true ? {} : options.wasi || undefined;
    const imported = instantiate.imports ?? [];
    if (imported.some(isWasi)) {
      if (wasi === undefined) throw new Error('the composed plugin imports WASI: enable it (the `wasi` option)');
      if (wasi.shim === undefined) {
        throw new Error('the composed plugin imports WASI: `wasi.shim` must be @bytecodealliance/preview2-shim (ComposedPlugin.load imports it)');
      }
      this.#wasi = wasi;
    }
    const imports = this.#imports();
    const missing = imported.filter((name) => !Object.hasOwn(imports, name));
    if (missing.length > 0) throw new Error(`the composed plugin imports ${missing.join(', ')}, which this host does not serve`);
    this.#make(imports);
  }

  static async load(jsPath, options = {}) {
    let o = options;
    if (o.wasi && o.wasi.shim === undefined) {
      o = { ...o, wasi: { ...(o.wasi === true ? {} : o.wasi), shim: await import('@bytecodealliance/preview2-shim') } };
    }
    return new ComposedPlugin(await loadTranspiled(jsPath), o);
  }

  /** The import object of one instance: the host services, and WASI when it is served. */
  #imports() {
    const host = this.host.imports();
    return this.#wasi === undefined ? host : { ...wasiImports(this.#wasi.shim, this.#wasi), ...host };
  }

  #make(imports = this.#imports()) {
    const exports = this.#instantiate(imports);
    const entry = exports['extism:kernel/entry@1.0.0'] ?? exports.entry;
    if (typeof entry?.call !== 'function') {
      throw new Error('not a composed plugin: no extism:kernel/entry@1.0.0 export');
    }
    this.#entry = entry;
    this.#direct = this.#jcoEntry ? undefined : directEntry(exports);
  }

  /** How `call` enters the plugin: `'direct'` (lowered by this module) or `'jco'` (jco's
   * lift: asked for with `jcoEntry`, or the component is not laid out as `directEntry`
   * expects). */
  get entryLowering() {
    return this.#direct === undefined ? 'jco' : 'direct';
  }

  /** The plugin's vars, by name (Uint8Arrays). */
  get vars() {
    return this.host.vars;
  }

  /**
   * Calls the Extism function `name` with `input` (a string, read as UTF-8, or bytes); its
   * output as a Uint8Array. Throws a `CallError` when the call fails.
   */
  call(name, input) {
    if (this.#broken !== undefined) throw new CallError('trap', this.#broken);
    const bytes = toBytes(input);
    try {
      return this.#direct === undefined ? this.#entry.call(name, bytes) : this.#direct.call(name, bytes);
    } catch (e) {
      if (e instanceof EntryErr) throw e.error;
      if (resultError(e)) throw entryError(e.payload);
      const error = trapError(e);
      // jco refuses to enter an instance again once an exception went through it.
      try {
        this.host.renewed();
        this.#make();
      } catch (r) {
        this.#broken = `the plugin cannot be called again: making it anew after a trap failed: ${oneLine(r?.message ?? r)}`;
        error.message = `${error.message}; ${this.#broken}`;
      }
      throw error;
    }
  }

  /** `call`, with the output read as UTF-8 (lossily). */
  callText(name, input) {
    return decoder.decode(this.call(name, input));
  }

  /** Stops the HTTP worker, if one was started. */
  close() {
    this.host.close();
  }
}
