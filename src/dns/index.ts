/**
 * spindle/dns: name resolution that suspends the calling fiber, on libuv's `uv_getaddrinfo` (the
 * system resolver in libuv's threadpool, like Node's `dns.lookup`), not on Node's `dns` module.
 *
 * ```js
 * import { spawn } from 'spindle';
 * import { lookup, lookupAll } from 'spindle/dns';
 * spawn(() => {
 *   const { address, family } = lookup('localhost');
 *   const all = lookupAll('localhost', { family: 6 });
 * });
 * ```
 * @packageDocumentation
 */
import { isIP } from 'node:net';
import { getSystemErrorMap } from 'node:util';

import { invalidArg } from '../errors.js';
import { type NativeIo, NativeOp, awaitIo } from '../io/wait.js';
import { nativeModule } from '../native.js';
import { timeoutOption } from '../options.js';
import { checkInterruptOf, requireCurrent } from '../runtime.js';

/** One resolved address, as Node's `dns.lookup` reports it. */
export interface LookupAddress {
  /** The address in text form: `'127.0.0.1'`, `'::1'`. */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
}

/** Options of {@link lookup} and {@link lookupAll}. */
export interface LookupOptions {
  /**
   * The address family to resolve: `4` (IPv4), `6` (IPv6), or `0` (either; the default). `'IPv4'` and
   * `'IPv6'` are accepted too, as by Node.
   */
  family?: 0 | 4 | 6 | 'IPv4' | 'IPv6';
  /**
   * Milliseconds to wait before throwing `TimeoutError`. A lookup that a threadpool thread already
   * runs cannot be stopped: it is abandoned (its result, when it comes, is discarded).
   */
  timeout?: number;
}

/**
 * The Node-style error of a failed lookup: `code` (`'ENOTFOUND'` when the name does not exist or has
 * no address of the family asked for, else libuv's name such as `'EAI_AGAIN'`), `errno` (libuv's
 * negative error number), `syscall` (`'getaddrinfo'`) and `hostname`; the same shape as the errors of
 * Node's `dns.lookup`.
 */
export interface LookupError extends Error {
  code: string;
  errno: number;
  syscall: 'getaddrinfo';
  hostname: string;
}

/** A lookup in flight (a napi_external). */
type OpHandle = object;

interface DnsNative extends NativeIo<OpHandle> {
  /** The lookup, a libuv error number if it could not start, or undefined (the environment is going away). */
  getaddrinfo(host: string, family: number): OpHandle | number | undefined;
  status(op: OpHandle): number;
  addresses(op: OpHandle): LookupAddress[];
}

const dnsNative = nativeModule<DnsNative>('dns');

function familyOption(opts: LookupOptions | undefined): number {
  if (opts === undefined) return 0;
  if (opts === null || typeof opts !== 'object') throw invalidArg('opts', 'an object', opts);
  const family = opts.family;
  if (family === undefined || family === 0) return 0;
  if (family === 4 || family === 'IPv4') return 4;
  if (family === 6 || family === 'IPv6') return 6;
  const err = new TypeError(`The property 'opts.family' must be one of: 0, 4, 6, 'IPv4', 'IPv6'. Received ${String(family)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  throw err;
}

let errorMap: Map<number, [string, string]> | undefined;

function dnsError(errno: number, hostname: string): LookupError {
  errorMap ??= getSystemErrorMap();
  const name = errorMap.get(errno)?.[0] ?? `Unknown system error ${errno}`;
  const code = name === 'EAI_NODATA' || name === 'EAI_NONAME' ? 'ENOTFOUND' : name;
  const err = new Error(`getaddrinfo ${code} ${hostname}`) as LookupError;
  err.errno = errno;
  err.code = code;
  err.syscall = 'getaddrinfo';
  err.hostname = hostname;
  return err;
}

/** The EAI_NODATA errno (an empty answer), for the "no address of that family" case. */
function noDataErrno(): number {
  errorMap ??= getSystemErrorMap();
  for (const [errno, [name]] of errorMap) if (name === 'EAI_NODATA' || name === 'EAI_NONAME') return errno;
  return -3008;
}

function resolve(host: unknown, opts: LookupOptions | undefined, operation: string): LookupAddress[] {
  if (typeof host !== 'string') throw invalidArg('hostname', 'of type string', host);
  const family = familyOption(opts);
  const timeout = timeoutOption(opts);
  const self = requireCurrent(`${operation}()`);
  checkInterruptOf(self);
  // A numeric address needs no resolver (as in Node, whatever the family option says).
  const literal = isIP(host);
  if (literal !== 0) return [{ address: host, family: literal as 4 | 6 }];
  const started = dnsNative.getaddrinfo(host, family);
  if (typeof started === 'number') throw dnsError(started, host);
  const op = new NativeOp(dnsNative, started);
  awaitIo(self, op, `getaddrinfo(${host})`, timeout, `${operation}(${host})`);
  const status = dnsNative.status(op.handle);
  if (status !== 0) throw dnsError(status, host);
  const addresses = dnsNative.addresses(op.handle);
  if (addresses.length === 0) throw dnsError(noDataErrno(), host);
  return addresses;
}

/**
 * Resolves `hostname` to its first address, like Node's `dns.lookup` (the system resolver: hosts
 * file, then DNS, in the order getaddrinfo returns them). Suspends the calling fiber; an interruption
 * point. A numeric address is returned as is, without a lookup.
 * @throws NotInFiberError outside a fiber; TypeError for bad arguments; a {@link LookupError}
 *   (`ENOTFOUND`, `EAI_AGAIN`, ...) when the lookup fails; TimeoutError when `timeout` elapses;
 *   FiberInterruptedError when interrupted.
 */
export function lookup(hostname: string, opts?: LookupOptions): LookupAddress {
  return resolve(hostname, opts, 'lookup')[0];
}

/**
 * Resolves `hostname` to all its addresses (Node's `dns.lookup` with `all: true`), in the resolver's
 * order. Otherwise as {@link lookup}.
 * @throws as {@link lookup}.
 */
export function lookupAll(hostname: string, opts?: LookupOptions): LookupAddress[] {
  return resolve(hostname, opts, 'lookupAll');
}
