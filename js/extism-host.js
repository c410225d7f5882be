// A JavaScript host for Extism plugins composed into one component.
//
// `host-demo componentize` turns an unmodified Extism plugin into a component of world
// `extism:kernel/plugin` (wit/extism-plugin.wit): it imports only the value-based host
// services `extism:kernel/host@1.0.0` and exports only `extism:kernel/entry@1.0.0`'s
// `call(name, input)`. `jco transpile --instantiation async` turns that component into an ES
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

/**
 * Loads the output of `jco transpile --instantiation async` (the path or URL of its `.js`
 * file): compiles its core modules once and returns `instantiate(imports)`, which makes a
 * new instance synchronously each time it is called (a fresh kernel, a fresh plugin).
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
  // The first instantiation finds and compiles every core module; it is thrown away.
  await mod.instantiate(compile, new Proxy({}, { get: () => new Proxy({}, { get: () => () => {} }) }));
  const getCoreModule = (name) => {
    const m = modules.get(name);
    if (m === undefined) throw new Error(`core module ${name} was not compiled`);
    return m;
  };
  const instantiateCore = (module, imports) => new WebAssembly.Instance(module, imports);
  return (imports) => mod.instantiate(getCoreModule, imports, instantiateCore);
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
 * own).
 */
export class ComposedPlugin {
  #instantiate;
  #entry;
  #broken;

  constructor(instantiate, options = {}) {
    this.#instantiate = instantiate;
    this.host = options.host ?? new ExtismHost(options);
    this.#entry = this.#make();
  }

  static async load(jsPath, options = {}) {
    return new ComposedPlugin(await loadTranspiled(jsPath), options);
  }

  #make() {
    const exports = this.#instantiate(this.host.imports());
    const entry = exports['extism:kernel/entry@1.0.0'] ?? exports.entry;
    if (typeof entry?.call !== 'function') {
      throw new Error('not a composed plugin: no extism:kernel/entry@1.0.0 export');
    }
    return entry;
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
      return this.#entry.call(name, bytes);
    } catch (e) {
      if (resultError(e)) throw entryError(e.payload);
      const error = trapError(e);
      // jco refuses to enter an instance again once an exception went through it.
      try {
        this.host.renewed();
        this.#entry = this.#make();
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
