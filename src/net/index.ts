/**
 * `spindle/net`: TCP and Unix-domain sockets whose blocking calls suspend only the calling fiber.
 * Built directly on libuv (native/tcp.cc), not on Node's `net`.
 *
 * ```js
 * const server = listen({ port: 8080, host: '127.0.0.1' });
 * for (const socket of server) {
 *   spawn(() => {
 *     using s = socket;
 *     const buf = Buffer.alloc(4096);
 *     for (let n; (n = s.read(buf)) > 0; ) s.write(buf.subarray(0, n));
 *   });
 * }
 * ```
 *
 * Semantics shared by every blocking call (`accept`, `connect`, `read`, `readExactly`, `readUntil`,
 * `write`, `shutdown`):
 * - it must run inside a fiber (`NotInFiberError` otherwise) and is an interruption point: a pending
 *   interruption is thrown before any IO starts; an interruption (or the `timeout`) that arrives while
 *   the call waits cancels the libuv operation and the fiber resumes once that cancellation took
 *   effect; if the operation completed first, its result is returned and the interruption waits for
 *   the next interruption point;
 * - `{ timeout }` (ms) covers the whole call, including the wait for a concurrent call on the same
 *   socket to finish; it throws `TimeoutError`;
 * - two fibers may read and write one socket at the same time; concurrent reads (or writes, or
 *   accepts) are served one whole call at a time, in arrival order;
 * - no data is lost to a cancelled read, `readExactly` or `readUntil`: the bytes they had taken are
 *   returned to the socket and the next read gets them; a cancelled `accept` loses no connection;
 * - a write that libuv has queued cannot be taken back: cancelling it (interruption, timeout) closes
 *   the socket, and the thrown error carries `bytesWritten`, the bytes of that call the kernel took;
 *   a write that returns delivered everything to the kernel. `shutdown` and `connect` likewise close
 *   the socket when cancelled;
 * - `close()` wakes every fiber blocked on the socket (or server) with `SocketClosedError`
 *   (`ServerClosedError`).
 *
 * Hosts are IP addresses (v4 or v6) or `'localhost'`; resolve other names first (`spindle/dns`).
 * @packageDocumentation
 */
import { isIP } from 'node:net';
import { getSystemErrorName } from 'node:util';

import { NotInFiberError, ReadLimitError, SpindleError, TimeoutError, UnexpectedEofError, invalidArg, outOfRange } from '../errors.js';

export { ReadLimitError, UnexpectedEofError } from '../errors.js';
import { type IoOperation, awaitIo, settleIo } from '../io/wait.js';
import { nativeModule } from '../native.js';
import { countArg, timeoutOption } from '../options.js';
import { type FiberRecord, beginPark, checkInterruptOf, currentRecord, endPark, startRuntime, wakeFailure } from '../runtime.js';
import { WaitQueue, waitInQueue } from '../sync/waiters.js';

// ---- the native handle (native/tcp.cc) ----

type Address = [address: string, port: number, family: string];

/** The native functions (native/tcp.cc); `h` is the handle's napi_external. */
interface NetNative {
  open(isPipe: boolean): unknown;
  read(h: unknown, buf: Uint8Array, offset: number, length: number): number;
  write(h: unknown, buf: Uint8Array, offset: number, length: number): number;
  written(h: unknown): number;
  shutdown(h: unknown): number;
  connect(h: unknown, hostOrPath: string, port?: number): number;
  listen(h: unknown, hostOrPath: string, portOrBacklog: number, backlog?: number, ipv6Only?: boolean): number;
  accept(h: unknown): number;
  acceptResult(h: unknown): unknown;
  opDone(h: unknown, slot: number): boolean;
  opCancel(h: unknown, slot: number): void;
  opCancelled(h: unknown, slot: number): boolean;
  opResult(h: unknown, slot: number): number;
  wait(h: unknown, slot: number, timeoutMs: number): number;
  close(h: unknown): void;
  setNoDelay(h: unknown, enable: boolean): number;
  setKeepAlive(h: unknown, enable: boolean, delaySeconds: number): number;
  sockname(h: unknown): string | number;
  peername(h: unknown): string | number;
  buffered(h: unknown): number;
  pending: number;
  closed: number;
  ready: number;
}

const fns = nativeModule<NetNative>('net');
const { pending: PENDING, closed: CLOSED, ready: READY } = fns;

/** "IPv4 80 127.0.0.1" (TCP) or a path (Unix socket) or an errno, as an address or the path. */
function parseName(name: string | number, isPipe: boolean): Address | string | undefined {
  if (typeof name !== 'string') return undefined;
  if (isPipe) return name;
  const [family, port, address] = name.split(' ');
  return [address, Number(port), family];
}

/** One native socket or listener (its napi_external). */
class NetHandle {
  readonly ext: unknown;
  constructor(readonly isPipe: boolean, ext?: unknown) {
    if (ext === undefined) startRuntime('spindle/net listen()');  // the one call that works outside fibers
    this.ext = ext ?? fns.open(isPipe);
  }
  read(buf: Uint8Array, offset: number, length: number): number {
    return fns.read(this.ext, buf, offset, length);
  }
  write(buf: Uint8Array, offset: number, length: number): number {
    return fns.write(this.ext, buf, offset, length);
  }
  written(): number {
    return fns.written(this.ext);
  }
  shutdown(): number {
    return fns.shutdown(this.ext);
  }
  connect(hostOrPath: string, port?: number): number {
    return fns.connect(this.ext, hostOrPath, port);
  }
  listen(hostOrPath: string, portOrBacklog: number, backlog?: number, ipv6Only?: boolean): number {
    return fns.listen(this.ext, hostOrPath, portOrBacklog, backlog, ipv6Only);
  }
  accept(): number {
    return fns.accept(this.ext);
  }
  acceptResult(): NetHandle | null {
    const ext = fns.acceptResult(this.ext);
    return ext === null || ext === undefined ? null : new NetHandle(this.isPipe, ext);
  }
  opDone(slot: number): boolean {
    return fns.opDone(this.ext, slot);
  }
  opCancel(slot: number): void {
    fns.opCancel(this.ext, slot);
  }
  opCancelled(slot: number): boolean {
    return fns.opCancelled(this.ext, slot);
  }
  opResult(slot: number): number {
    return fns.opResult(this.ext, slot);
  }
  wait(slot: number, timeoutMs: number): number {
    return fns.wait(this.ext, slot, timeoutMs);
  }
  close(): void {
    fns.close(this.ext);
  }
  setNoDelay(enable: boolean): number {
    return fns.setNoDelay(this.ext, enable);
  }
  setKeepAlive(enable: boolean, delaySeconds: number): number {
    return fns.setKeepAlive(this.ext, enable, delaySeconds);
  }
  sockname(): Address | string | undefined {
    return parseName(fns.sockname(this.ext), this.isPipe);
  }
  peername(): Address | string | undefined {
    return parseName(fns.peername(this.ext), this.isPipe);
  }
  buffered(): number {
    return fns.buffered(this.ext);
  }
}

const READ = 0;
const WRITE = 1;
/** uv_buf_t lengths are 32-bit: larger writes go in chunks of this size. */
const MAX_CHUNK = 1 << 30;
const DEFAULT_BACKLOG = 511;
const DEFAULT_MAX_BYTES = 64 * 1024;
/** sun_path is 108 bytes on Linux (107 and a NUL), 104 on the BSDs and macOS. */
const MAX_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

/** One operation slot of a native handle, as awaitIo sees it. */
class SlotOp implements IoOperation {
  constructor(
    private readonly h: NetHandle,
    private readonly slot: number,
  ) {}
  done(): boolean {
    return this.h.opDone(this.slot);
  }
  cancel(): void {
    this.h.opCancel(this.slot);
  }
  cancelled(): boolean {
    return this.h.opCancelled(this.slot);
  }
  /** The finished operation's result; the slot is free again. */
  result(): number {
    return this.h.opResult(this.slot);
  }
  /** Parks until the operation is done and returns its result, or PENDING when woken before that. */
  wait(timeoutMs: number): number {
    return this.h.wait(this.slot, timeoutMs);
  }
}

// ---- errors ----

/** A system error from a socket call, shaped like Node's (`code`, `errno`, `syscall`, `address`, `port`, `path`). */
export interface NetErrnoException extends Error {
  /** The system error name, for example `ECONNREFUSED`. */
  code: string;
  /** The (negative) libuv error number. */
  errno: number;
  /** The call that failed: `connect`, `listen`, `read`, `write`, `shutdown`, `accept`. */
  syscall: string;
  address?: string;
  port?: number;
  path?: string;
  /** On a failed or cancelled write: the bytes of that call that reached the kernel. */
  bytesWritten?: number;
}

/** Thrown by calls on a closed socket, and at fibers blocked on a socket when it is closed. */
export class SocketClosedError extends SpindleError {
  /** On a write cut short by the close: the bytes of that call that reached the kernel. */
  bytesWritten?: number;
  constructor(operation: string) {
    super('ERR_SOCKET_CLOSED', `${operation}: the socket is closed`);
  }
}

/** Thrown by `accept()` on a closed server, and at fibers blocked in `accept()` when it is closed. */
export class ServerClosedError extends SpindleError {
  constructor(operation: string) {
    super('ERR_SERVER_NOT_RUNNING', `${operation}: the server is closed`);
  }
}

interface Where {
  address?: string;
  port?: number;
  path?: string;
}

function systemError(errno: number, syscall: string, where: Where = {}): NetErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(errno);
  } catch {
    code = `Unknown system error ${errno}`;
  }
  const detail = where.path !== undefined ? ` ${where.path}` : where.address !== undefined ? ` ${where.address}${where.port !== undefined ? `:${where.port}` : ''}` : '';
  const err = new Error(`${syscall} ${code}${detail}`) as NetErrnoException;
  err.errno = errno;
  err.code = code;
  err.syscall = syscall;
  if (where.address !== undefined) err.address = where.address;
  if (where.port !== undefined) err.port = where.port;
  if (where.path !== undefined) err.path = where.path;
  return err;
}

function setBytesWritten(error: unknown, n: number): void {
  if (error !== null && typeof error === 'object' && Object.isExtensible(error)) {
    Object.defineProperty(error, 'bytesWritten', { value: n, enumerable: true, configurable: true, writable: true });
  }
}

// ---- argument checks ----

/** Options of every blocking call. */
export interface TimeoutOptions {
  /** Milliseconds before the call gives up with `TimeoutError`. Default: no limit. */
  timeout?: number;
}

/** Options of {@link Socket.readUntil}. */
export interface ReadUntilOptions extends TimeoutOptions {
  /** The most bytes the result (delimiter included) may have. Default 64 KiB. */
  maxBytes?: number;
}

function bytesArg(value: unknown, name: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw invalidArg(name, 'an instance of Buffer, TypedArray, or DataView', value);
}

function portArg(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number') throw invalidArg(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > 65535) throw outOfRange(name, `an integer >= ${min} and <= 65535`, value);
  return value;
}

function stringArg(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidArg(name, 'of type string', value);
  return value;
}

function booleanArg(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArg(name, 'of type boolean', value);
  return value;
}

function pathArg(value: unknown, name: string): string {
  const path = stringArg(value, name);
  const bytes = Buffer.byteLength(path);
  if (bytes === 0 || path.includes('\0')) throw invalidArg(name, 'a non-empty string without NUL bytes', value);
  if (bytes > MAX_PATH_BYTES) throw outOfRange(`${name}.length`, `at most ${MAX_PATH_BYTES} bytes (the limit of a Unix socket path)`, bytes);
  return path;
}

/** The addresses to try for `host`: an IP as is; 'localhost' as 127.0.0.1, then ::1. */
function hostArg(value: unknown, name: string): string[] {
  const host = stringArg(value, name);
  if (isIP(host) !== 0) return [host];
  if (host.toLowerCase() === 'localhost') return ['127.0.0.1', '::1'];
  const err = new TypeError(
    `The "${name}" argument must be an IP address or 'localhost' (resolve other names first, e.g. with spindle/dns). Received '${host}'`,
  ) as TypeError & { code: string };
  err.code = 'ERR_INVALID_ARG_VALUE';
  throw err;
}

function optionsArg<T extends object>(value: unknown, name: string): T {
  if (value === null || typeof value !== 'object') throw invalidArg(name, 'an object', value);
  return value as T;
}

function requireFiber(operation: string): FiberRecord {
  const self = currentRecord();
  if (self === undefined) throw new NotInFiberError(operation);
  checkInterruptOf(self);
  return self;
}

function deadlineOf(timeout: number): number {
  return timeout >= 0 ? performance.now() + timeout : Infinity;
}

function remainingOf(deadline: number): number {
  return deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
}

/** awaitIo, with the TimeoutError naming the call's own timeout (not what was left of it). */
function awaitOp(self: FiberRecord, op: IoOperation, waitingOn: string, deadline: number, timeout: number, operation: string): void {
  try {
    awaitIo(self, op, waitingOn, remainingOf(deadline), operation);
  } catch (error) {
    if (error instanceof TimeoutError) throw new TimeoutError(operation, timeout);
    throw error;
  }
}

/**
 * Waits for the operation just started in `op`'s slot and returns its result (what opResult gives).
 * Usually one native call: netWait parks the fiber and takes the result when it wakes. A wake-up
 * before the operation completed (an interruption, a deadlock report, the timeout) ends as awaitOp's
 * does: the operation is cancelled unless it completed after all, and the error is thrown.
 */
function awaitSlot(self: FiberRecord, op: SlotOp, waitingOn: string, deadline: number, timeout: number, operation: string): number {
  if (!self.interrupted || self.noInterrupt > 0) {
    let canInterrupt: boolean;
    try {
      canInterrupt = beginPark(self, waitingOn, true);
    } catch (error) {
      settleIo(self, op, waitingOn, error, timeout, operation); // it cannot suspend here (async scope)
      return op.result();
    }
    let r: number;
    try {
      r = op.wait(remainingOf(deadline));
    } finally {
      endPark(self);
    }
    if (r !== PENDING) {
      self.wakeError = undefined; // completed: delivered, as awaitIo does (an interruption stays pending)
      return r;
    }
    const failure = wakeFailure(self, canInterrupt);
    if (failure !== undefined || performance.now() >= deadline) {
      settleIo(self, op, waitingOn, failure, timeout, operation);
      return op.result();
    }
  }
  awaitOp(self, op, waitingOn, deadline, timeout, operation);
  return op.result();
}

/**
 * One call at a time on one side of a socket (reads, writes, accepts), in arrival order. An uncontended
 * enter never parks.
 */
class Turnstile {
  #busy = false;
  readonly #queue = new WaitQueue<null>();

  enter(self: FiberRecord, waitingOn: string, deadline: number, timeout: number, operation: string): void {
    if (!this.#busy) {
      this.#busy = true;
      return;
    }
    try {
      waitInQueue(self, operation, { queue: this.#queue, payload: null, waitingOn, timeoutMs: remainingOf(deadline), interruptible: true });
    } catch (error) {
      if (error instanceof TimeoutError) throw new TimeoutError(operation, timeout);
      throw error;
    }
  }

  leave(): void {
    const next = this.#queue.shift();
    if (next === undefined) this.#busy = false;
    else next.waiter.complete(0);
  }
}

// ---- sockets ----

/**
 * A connected TCP or Unix-domain stream socket (from {@link connect} or {@link Server.accept}). Blocking
 * calls suspend the calling fiber only. Close it with `close()` or a `using` declaration; a socket
 * that becomes unreachable is closed when collected.
 */
export class Socket implements Disposable {
  readonly #h: NetHandle;
  readonly #readOp: SlotOp;
  readonly #writeOp: SlotOp;
  readonly #reads = new Turnstile();
  readonly #writes = new Turnstile();
  readonly #label: string;
  /** What fibers() shows for a read or write waiting on this socket (made once: reads are hot). */
  readonly #readLabel: string;
  readonly #writeLabel: string;
  #closed = false;
  /** Bytes given back by a cancelled or over-reading call; served before the native buffer. */
  #rest: Buffer | undefined;

  /** The peer's IP address (undefined for Unix sockets). */
  readonly remoteAddress: string | undefined;
  /** The peer's port (undefined for Unix sockets). */
  readonly remotePort: number | undefined;
  /** `'IPv4'` or `'IPv6'` (undefined for Unix sockets). */
  readonly remoteFamily: string | undefined;
  /** The local IP address (undefined for Unix sockets). */
  readonly localAddress: string | undefined;
  /** The local port (undefined for Unix sockets). */
  readonly localPort: number | undefined;
  /** For Unix sockets: the socket path (the server's path on both ends); undefined for TCP. */
  readonly path: string | undefined;

  /** @internal Sockets come from {@link connect} and {@link Server.accept}. */
  constructor(handle: NetHandle, path?: string) {
    this.#h = handle;
    this.#readOp = new SlotOp(handle, READ);
    this.#writeOp = new SlotOp(handle, WRITE);
    const peer = handle.peername();
    const local = handle.sockname();
    if (Array.isArray(peer)) [this.remoteAddress, this.remotePort, this.remoteFamily] = peer;
    if (Array.isArray(local)) [this.localAddress, this.localPort] = local;
    if (path !== undefined) this.path = path;
    else if (typeof local === 'string' && local !== '') this.path = local;
    else if (typeof peer === 'string' && peer !== '') this.path = peer;
    this.#label = this.path !== undefined ? `unix ${this.path}` : `tcp ${this.remoteAddress}:${this.remotePort}`;
    this.#readLabel = `read(${this.#label})`;
    this.#writeLabel = `write(${this.#label})`;
  }

  /** Whether `close()` was called (or a cancelled write closed it). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads into `buf`, suspending until at least one byte arrived; returns the number of bytes read,
   * 0 at the end of the stream (after the peer's `shutdown()` or close). Bytes already buffered (read
   * ahead, or waiting in the kernel) are returned without suspending; otherwise libuv reads straight
   * into `buf`. An interruption point.
   * @throws SocketClosedError when closed (before or during the call); a system error (`ECONNRESET`...);
   *   TimeoutError; FiberInterruptedError; TypeError for a bad `buf`.
   */
  read(buf: ArrayBufferView, opts?: TimeoutOptions): number {
    const view = bytesArg(buf, 'buf');
    const timeout = timeoutOption(opts);
    this.#checkOpen('Socket.read()');
    const self = requireFiber('Socket.read()');
    const deadline = deadlineOf(timeout);
    this.#reads.enter(self, this.#readLabel, deadline, timeout, 'Socket.read()');
    try {
      return this.#readSome(self, view, 0, view.length, deadline, timeout, 'Socket.read()');
    } finally {
      this.#reads.leave();
    }
  }

  /**
   * Reads exactly `n` bytes into a new Buffer, suspending as often as needed. On a timeout or an
   * interruption the bytes read so far are kept for the next read.
   * @throws UnexpectedEofError when the stream ends first (with the bytes read, which are consumed);
   *   the errors of `read`; RangeError for a bad `n`.
   */
  readExactly(n: number, opts?: TimeoutOptions): Buffer {
    countArg(n, 'n');
    const timeout = timeoutOption(opts);
    this.#checkOpen('Socket.readExactly()');
    const self = requireFiber('Socket.readExactly()');
    const deadline = deadlineOf(timeout);
    this.#reads.enter(self, `readExactly(${this.#label})`, deadline, timeout, 'Socket.readExactly()');
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    try {
      while (got < n) {
        const k = this.#readSome(self, out, got, n - got, deadline, timeout, 'Socket.readExactly()');
        if (k === 0) {
          const partial = out.subarray(0, got);
          got = 0;
          throw new UnexpectedEofError('Socket.readExactly()', Buffer.from(partial));
        }
        got += k;
      }
      return out;
    } catch (error) {
      if (got > 0) this.#unread(Buffer.from(out.subarray(0, got)));
      throw error;
    } finally {
      this.#reads.leave();
    }
  }

  /**
   * Reads until `delimiter` and returns the bytes up to and including it. Bytes after the delimiter
   * stay readable. On a timeout, an interruption or when `maxBytes` is reached without the delimiter,
   * nothing is consumed.
   * @throws ReadLimitError when `maxBytes` (default 64 KiB) bytes arrived without the delimiter;
   *   UnexpectedEofError when the stream ends first (its bytes are consumed); the errors of `read`.
   */
  readUntil(delimiter: string | ArrayBufferView, opts?: ReadUntilOptions): Buffer {
    const delim = typeof delimiter === 'string' ? Buffer.from(delimiter) : Buffer.from(bytesArg(delimiter, 'delimiter'));
    if (delim.length === 0) throw outOfRange('delimiter.length', '>= 1', 0);
    const timeout = timeoutOption(opts);
    const maxBytes = opts?.maxBytes === undefined ? DEFAULT_MAX_BYTES : countArg(opts.maxBytes, 'opts.maxBytes', 1);
    this.#checkOpen('Socket.readUntil()');
    const self = requireFiber('Socket.readUntil()');
    const deadline = deadlineOf(timeout);
    this.#reads.enter(self, `readUntil(${this.#label})`, deadline, timeout, 'Socket.readUntil()');
    let acc = this.#rest ?? Buffer.alloc(0);
    this.#rest = undefined;
    try {
      let from = 0;
      for (;;) {
        const at = acc.indexOf(delim, from);
        if (at >= 0 && at + delim.length <= maxBytes) {
          const end = at + delim.length;
          const line = Buffer.from(acc.subarray(0, end));
          if (end < acc.length) this.#unread(acc.subarray(end));
          acc = Buffer.alloc(0);
          return line;
        }
        if (acc.length >= maxBytes) throw new ReadLimitError('Socket.readUntil()', maxBytes);
        from = Math.max(0, acc.length - delim.length + 1);
        const chunk = Buffer.allocUnsafe(Math.min(DEFAULT_MAX_BYTES, maxBytes - acc.length));
        const k = this.#readSome(self, chunk, 0, chunk.length, deadline, timeout, 'Socket.readUntil()');
        if (k === 0) {
          const partial = acc;
          acc = Buffer.alloc(0);
          throw new UnexpectedEofError('Socket.readUntil()', partial);
        }
        acc = acc.length === 0 ? chunk.subarray(0, k) : Buffer.concat([acc, chunk.subarray(0, k)]);
      }
    } catch (error) {
      if (acc.length > 0) this.#unread(acc);
      throw error;
    } finally {
      this.#reads.leave();
    }
  }

  /**
   * Writes all of `data` (a string is written as UTF-8), suspending while the kernel's send buffer is
   * full (backpressure: only `data` itself is held, never a growing queue). Returns the number of
   * bytes written once the kernel has taken them all; when the kernel takes them at once, it does not
   * suspend. Do not modify `data` until the call returns. If the wait is interrupted or times out,
   * the socket is closed (libuv cannot take back a queued write) and the error carries
   * `bytesWritten`.
   * @throws SocketClosedError when closed (before or during the call; then with `bytesWritten`); a
   *   system error (`EPIPE`, `ECONNRESET`...); TimeoutError; FiberInterruptedError; TypeError for bad data.
   */
  write(data: string | ArrayBufferView, opts?: TimeoutOptions): number {
    const bytes = typeof data === 'string' ? Buffer.from(data) : bytesArg(data, 'data');
    const timeout = timeoutOption(opts);
    this.#checkOpen('Socket.write()');
    const self = requireFiber('Socket.write()');
    const deadline = deadlineOf(timeout);
    this.#writes.enter(self, this.#writeLabel, deadline, timeout, 'Socket.write()');
    let done = 0;
    try {
      while (done < bytes.length) {
        const len = Math.min(MAX_CHUNK, bytes.length - done);
        let r = this.#h.write(bytes, done, len);
        if (r === PENDING) {
          try {
            r = awaitSlot(self, this.#writeOp, this.#writeLabel, deadline, timeout, 'Socket.write()');
          } catch (error) {
            this.#closed = true;  // the cancelled write closed the socket
            setBytesWritten(error, done + this.#h.written());
            throw error;
          }
        }
        if (r === CLOSED) {
          const err = new SocketClosedError('Socket.write()');
          err.bytesWritten = done + this.#h.written();
          throw err;
        }
        if (r < 0) {
          const err = this.#error(r, 'write');
          err.bytesWritten = done;
          throw err;
        }
        done += len;
      }
      return done;
    } finally {
      this.#writes.leave();
    }
  }

  /**
   * Half-closes the socket: waits until the queued writes are flushed, then sends FIN; the peer reads
   * EOF, and this side can still read. An interruption point (if cancelled, the socket is closed).
   * @throws SocketClosedError; a system error (`ENOTCONN`...); TimeoutError; FiberInterruptedError.
   */
  shutdown(opts?: TimeoutOptions): void {
    const timeout = timeoutOption(opts);
    this.#checkOpen('Socket.shutdown()');
    const self = requireFiber('Socket.shutdown()');
    const deadline = deadlineOf(timeout);
    this.#writes.enter(self, `shutdown(${this.#label})`, deadline, timeout, 'Socket.shutdown()');
    try {
      let r = this.#closed ? CLOSED : this.#h.shutdown();
      if (r === PENDING) {
        try {
          awaitOp(self, this.#writeOp, `shutdown(${this.#label})`, deadline, timeout, 'Socket.shutdown()');
        } catch (error) {
          this.#closed = true;
          throw error;
        }
        r = this.#h.opResult(WRITE);
      }
      if (r === CLOSED) throw new SocketClosedError('Socket.shutdown()');
      if (r < 0) throw this.#error(r, 'shutdown');
    } finally {
      this.#writes.leave();
    }
  }

  /**
   * Closes the socket at once (idempotent). Fibers blocked on it wake with SocketClosedError; bytes
   * of a write still queued in libuv are dropped. Never suspends.
   */
  close(): void {
    if (this.#closed) {
      this.#h.close();
      return;
    }
    this.#closed = true;
    this.#rest = undefined;
    this.#h.close();
  }

  /** Disables (or, with `false`, re-enables) Nagle's algorithm. A no-op on Unix sockets. Returns `this`. */
  setNoDelay(noDelay = true): this {
    const enable = booleanArg(noDelay, 'noDelay', true);
    this.#checkOpen('Socket.setNoDelay()');
    const r = this.#h.setNoDelay(enable);
    if (r < 0) throw this.#error(r, 'setNoDelay');
    return this;
  }

  /**
   * Enables (or disables) TCP keep-alive probes, the first after `initialDelay` ms of idleness
   * (rounded to seconds, at least 1). A no-op on Unix sockets. Returns `this`.
   */
  setKeepAlive(enable = true, initialDelay = 0): this {
    const on = booleanArg(enable, 'enable', true);
    countArg(initialDelay, 'initialDelay');
    this.#checkOpen('Socket.setKeepAlive()');
    const r = this.#h.setKeepAlive(on, Math.max(1, Math.round(initialDelay / 1000)));
    if (r < 0) throw this.#error(r, 'setKeepAlive');
    return this;
  }

  /** Bytes received and not yet read (read ahead natively, or given back by a cancelled call). */
  get bufferedLength(): number {
    return (this.#rest?.length ?? 0) + (this.#closed ? 0 : this.#h.buffered());
  }

  /** Closes the socket (`using socket = connect(...)`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #checkOpen(operation: string): void {
    if (this.#closed) throw new SocketClosedError(operation);
  }

  #unread(bytes: Buffer): void {
    this.#rest = this.#rest === undefined ? bytes : Buffer.concat([bytes, this.#rest]);
  }

  #error(errno: number, syscall: string): NetErrnoException {
    return this.path !== undefined
      ? systemError(errno, syscall, { path: this.path })
      : systemError(errno, syscall, { address: this.remoteAddress, port: this.remotePort });
  }

  /** One read into view[offset, offset + length): given-back bytes first, then the native side. */
  #readSome(self: FiberRecord, view: Uint8Array, offset: number, length: number, deadline: number, timeout: number, operation: string): number {
    const rest = this.#rest;
    if (rest !== undefined) {
      const n = Math.min(length, rest.length);
      view.set(rest.subarray(0, n), offset);
      this.#rest = n === rest.length ? undefined : rest.subarray(n);
      return n;
    }
    if (this.#closed) throw new SocketClosedError(operation);
    if (length === 0) return 0;
    let r = this.#h.read(view, offset, Math.min(length, MAX_CHUNK));
    if (r === PENDING) r = awaitSlot(self, this.#readOp, this.#readLabel, deadline, timeout, operation);
    if (r >= 0) return r;
    if (r === CLOSED) throw new SocketClosedError(operation);
    throw this.#error(r, 'read');
  }
}

// ---- connect ----

/** Options of {@link connect}. */
export interface ConnectOptions extends TimeoutOptions {
  /** TCP: the server's port (1-65535). */
  port?: number;
  /** TCP: an IP address or `'localhost'` (tries 127.0.0.1, then ::1). Default `'localhost'`. */
  host?: string;
  /** A Unix-domain socket path (instead of `port`/`host`). */
  path?: string;
  /** Disable Nagle's algorithm on the new socket. Default false. */
  noDelay?: boolean;
}

/**
 * Connects to a TCP server (`{ port, host }`) or a Unix-domain socket (`{ path }`), suspending the
 * calling fiber until connected. An interruption point: an interrupted or timed-out connect closes
 * the half-open socket before it throws.
 * @throws a system error (`ECONNREFUSED`, `ENOENT`...) with `address`/`port` or `path`; TimeoutError;
 *   FiberInterruptedError; NotInFiberError; TypeError / RangeError for bad options.
 */
export function connect(opts: ConnectOptions): Socket {
  const o = optionsArg<ConnectOptions>(opts, 'opts');
  const timeout = timeoutOption(o);
  const noDelay = booleanArg(o.noDelay, 'opts.noDelay', false);
  let targets: Array<{ host: string; port: number } | { path: string }>;
  if (o.path !== undefined) {
    if (o.port !== undefined || o.host !== undefined) throw invalidArg('opts', 'either { path } or { port, host }', o);
    targets = [{ path: pathArg(o.path, 'opts.path') }];
  } else {
    const port = portArg(o.port, 'opts.port', 1);
    targets = hostArg(o.host ?? 'localhost', 'opts.host').map((host) => ({ host, port }));
  }
  const self = requireFiber('connect()');
  const deadline = deadlineOf(timeout);
  for (let i = 0; ; i++) {
    const target = targets[i];
    const isPipe = 'path' in target;
    const h = new NetHandle(isPipe);
    const label = isPipe ? `unix ${target.path}` : `tcp ${target.host}:${target.port}`;
    let r = isPipe ? h.connect(target.path) : h.connect(target.host, target.port);
    if (r === PENDING) {
      try {
        awaitOp(self, new SlotOp(h, WRITE), `connect(${label})`, deadline, timeout, 'connect()');
      } catch (error) {
        h.close();
        throw error;
      }
      r = h.opResult(WRITE);
    }
    if (r === 0) {
      const socket = new Socket(h, isPipe ? target.path : undefined);
      if (noDelay) socket.setNoDelay(true);
      return socket;
    }
    h.close();
    const name = r === CLOSED ? '' : getSystemErrorName(r);
    if (i + 1 < targets.length && ['ECONNREFUSED', 'EADDRNOTAVAIL', 'EAFNOSUPPORT', 'ENETUNREACH'].includes(name)) continue;
    throw systemError(r, 'connect', isPipe ? { path: target.path } : { address: target.host, port: target.port });
  }
}

// ---- servers ----

/** Options of {@link listen}. */
export interface ListenOptions {
  /** TCP: the port, 0 for any free one (see `address()`). */
  port?: number;
  /**
   * TCP: the IP address to bind, or `'localhost'` (127.0.0.1). Default: every interface (`::` in
   * dual-stack mode where IPv6 is available, else `0.0.0.0`).
   */
  host?: string;
  /** A Unix-domain socket path to listen on (instead of `port`/`host`); removed again by `close()`. */
  path?: string;
  /** The kernel's queue of connections not yet accepted. Default 511. */
  backlog?: number;
  /** For an IPv6 host: accept IPv6 connections only (no IPv4-mapped ones). Default false. */
  ipv6Only?: boolean;
  /**
   * SO_REUSEADDR (rebinding a port in TIME_WAIT). Default true. libuv always sets it on Unix TCP
   * listeners, so `false` has no effect there (accepted for portability).
   */
  reuseAddress?: boolean;
}

/** Where a TCP server listens, as Node's `server.address()` reports it. */
export interface ServerAddress {
  address: string;
  family: string;
  port: number;
}

/**
 * A listening TCP or Unix-domain socket (from {@link listen}). `accept()` suspends the calling fiber
 * until a connection arrives; `for (const socket of server)` accepts until the server is closed.
 */
export class Server implements Disposable, Iterable<Socket> {
  readonly #h: NetHandle;
  readonly #op: SlotOp;
  readonly #accepts = new Turnstile();
  readonly #path: string | undefined;
  readonly #label: string;
  #closed = false;

  /** @internal Servers come from {@link listen}. */
  constructor(handle: NetHandle, path: string | undefined) {
    this.#h = handle;
    this.#op = new SlotOp(handle, READ);
    this.#path = path;
    const a = this.address();
    this.#label = typeof a === 'string' ? `unix ${a}` : `tcp ${a.address}:${a.port}`;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Takes the next connection, suspending the calling fiber until one arrives. Concurrent accepts are
   * served in arrival order. An interruption point: a cancelled accept loses no connection (the next
   * accept gets it).
   * @throws ServerClosedError when the server is (or gets) closed; a system error (`EMFILE`...);
   *   TimeoutError; FiberInterruptedError; NotInFiberError.
   */
  accept(opts?: TimeoutOptions): Socket {
    const timeout = timeoutOption(opts);
    if (this.#closed) throw new ServerClosedError('Server.accept()');
    const self = requireFiber('Server.accept()');
    const deadline = deadlineOf(timeout);
    this.#accepts.enter(self, `accept(${this.#label})`, deadline, timeout, 'Server.accept()');
    try {
      if (this.#closed) throw new ServerClosedError('Server.accept()');
      let r = this.#h.accept();
      if (r === PENDING) {
        awaitOp(self, this.#op, `accept(${this.#label})`, deadline, timeout, 'Server.accept()');
        r = this.#h.opResult(READ);
        if (r === 0) r = READY;
      }
      if (r === READY) {
        const h = this.#h.acceptResult();
        if (h === null) throw new ServerClosedError('Server.accept()');
        return new Socket(h, this.#path);
      }
      if (r === CLOSED) throw new ServerClosedError('Server.accept()');
      throw systemError(r, 'accept', this.#where());
    } finally {
      this.#accepts.leave();
    }
  }

  /** `{ address, family, port }` for TCP (the real port when listening on port 0); the path for Unix sockets. */
  address(): ServerAddress | string {
    if (this.#path !== undefined) return this.#path;
    const a = this.#h.sockname();
    if (!Array.isArray(a)) throw new ServerClosedError('Server.address()');
    return { address: a[0], family: a[2], port: a[1] };
  }

  /**
   * Stops listening (idempotent); a Unix socket's path is removed. Fibers blocked in `accept()` wake
   * with ServerClosedError; accepted sockets stay open. Never suspends.
   */
  close(): void {
    this.#closed = true;
    this.#h.close();
  }

  /** Accepts connections until the server is closed (then the loop ends). Breaking out does not close it. */
  *[Symbol.iterator](): Iterator<Socket> {
    for (;;) {
      let socket: Socket;
      try {
        socket = this.accept();
      } catch (error) {
        if (error instanceof ServerClosedError) return;
        throw error;
      }
      yield socket;
    }
  }

  /** Closes the server (`using server = listen(...)`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #where(): Where {
    if (this.#path !== undefined) return { path: this.#path };
    const a = this.address() as ServerAddress;
    return { address: a.address, port: a.port };
  }
}

/**
 * Listens on a TCP port (`{ port, host }`) or a Unix-domain socket (`{ path }`). Does not suspend and
 * works outside fibers; `accept()` then needs a fiber.
 * @throws a system error (`EADDRINUSE`, `EACCES`...) with `address`/`port` or `path`; TypeError /
 *   RangeError for bad options (a port out of range, a bad path).
 */
export function listen(opts: ListenOptions): Server {
  const o = optionsArg<ListenOptions>(opts, 'opts');
  const backlog = o.backlog === undefined ? DEFAULT_BACKLOG : countArg(o.backlog, 'opts.backlog');
  const ipv6Only = booleanArg(o.ipv6Only, 'opts.ipv6Only', false);
  booleanArg(o.reuseAddress, 'opts.reuseAddress', true);
  if (o.path !== undefined) {
    if (o.port !== undefined || o.host !== undefined) throw invalidArg('opts', 'either { path } or { port, host }', o);
    const path = pathArg(o.path, 'opts.path');
    const h = new NetHandle(true);
    const r = h.listen(path, backlog);
    if (r !== 0) {
      h.close();
      throw systemError(r, 'listen', { path });
    }
    return new Server(h, path);
  }
  const port = portArg(o.port, 'opts.port', 0);
  let hosts: string[];
  if (o.host === undefined) hosts = ['::', '0.0.0.0'];
  else hosts = [hostArg(o.host, 'opts.host')[0]];
  for (let i = 0; ; i++) {
    const h = new NetHandle(false);
    const r = h.listen(hosts[i], port, backlog, ipv6Only);
    if (r === 0) return new Server(h, undefined);
    h.close();
    const name = getSystemErrorName(r);
    if (i + 1 < hosts.length && ['EAFNOSUPPORT', 'EADDRNOTAVAIL'].includes(name)) continue;
    throw systemError(r, 'listen', { address: hosts[i], port });
  }
}
