/**
 * spindle/fs: file system calls that suspend the calling fiber, not the process. Each call runs its
 * operation on libuv's threadpool (the one Node's own `fs` uses) while other fibers keep running, and
 * returns its result directly: `const n = file.read(buf)`.
 *
 * Reads from the page cache do not suspend (Linux): a read first asks the kernel for what is already
 * cached (`preadv2` with `RWF_NOWAIT`, which returns `EAGAIN` instead of waiting for the disk) and
 * returns at once when the range is there; otherwise it goes to the threadpool as above. The result is
 * what a blocking read returns: a regular file's read is full unless it reaches the end of the file.
 * Files on file systems that do not support `RWF_NOWAIT` (tmpfs and procfs on Linux 6.18, for
 * instance), FIFOs, and files opened with `O_DIRECT` always use the threadpool. So that a fiber reading a cached file in a loop cannot starve
 * the others, a fiber that completed 64 reads (or 4 MiB) without suspending suspends before its next
 * read until the event loop has turned once (as `sleep(0)`), so other fibers, timers and IO callbacks
 * run; that suspension is an interruption point too.
 *
 * Shared semantics:
 * - Every function here must be called inside a fiber; outside one it throws `NotInFiberError` (use
 *   `node:fs/promises` there).
 * - Arguments are checked before any IO: a wrong type throws a `TypeError` (`ERR_INVALID_ARG_TYPE`,
 *   `ERR_INVALID_ARG_VALUE`), a value out of range a `RangeError` (`ERR_OUT_OF_RANGE`), naming the argument.
 * - System errors are Node's: an `Error` with `code` (`ENOENT`...), `errno` (negative, as Node's),
 *   `syscall`, `path` (and `dest` for rename and copyFile), and Node's message
 *   (`ENOENT: no such file or directory, open '/x'`).
 * - Every call that does IO is an interruption point: an interrupted call cancels its operation and
 *   throws `FiberInterruptedError` once the cancellation took effect. An operation libuv already started
 *   cannot be cancelled; the fiber then waits for it and gets its result, and the interruption is
 *   delivered at the next interruption point (so a completed read or write is never lost). The check
 *   comes before the operation starts: a read served from the page cache completes without suspending,
 *   and an interruption that arrives meanwhile is delivered at the next interruption point.
 * - `{ timeout }` (ms) bounds a whole call (all its operations); when it elapses the operation in
 *   flight is cancelled the same way and `TimeoutError` is thrown.
 * - File descriptors are never leaked by a failing, interrupted or timed-out call.
 * @packageDocumentation
 */
import { Buffer } from 'node:buffer';
import { Dirent, Stats, constants } from 'node:fs';
import nodePath from 'node:path';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { getSystemErrorMap } from 'node:util';

import { NotInFiberError, TimeoutError, invalidArg, outOfRange } from '../errors.js';
import { NativeOp, awaitIo } from '../io/wait.js';
import { nativeModule } from '../native.js';
import { type FiberRecord, checkInterruptOf, currentRecord, endWait, park, waker } from '../runtime.js';

/** Node's own `fs.Stats` and `fs.Dirent` classes: results are instances of them. */
export { Dirent, Stats };

/** A path argument: a string, a Buffer (UTF-8) or a `file:` URL, as Node's `fs` takes. */
export type PathLike = string | Buffer | URL;

/** `{ timeout }` in milliseconds; see the module's shared semantics. */
export interface TimeoutOptions {
  timeout?: number;
}

// ---------------------------------------------------------------------------------------------------
// The native half (native/fs.cc)

type OpHandle = object;
interface FsNative {
  open(path: string, flags: number, mode: number): OpHandle;
  close(fd: number): OpHandle;
  closeSync(fd: number): number;
  /** A number: completed inline (bytes read), or YIELD; otherwise the operation. */
  read(fd: number, buffer: ArrayBufferView, offset: number, length: number, position: number, cursorOk: boolean): OpHandle | number;
  write(fd: number, buffer: ArrayBufferView, offset: number, length: number, position: number): OpHandle;
  stat(path: string): OpHandle;
  lstat(path: string): OpHandle;
  fstat(fd: number): OpHandle;
  ftruncate(fd: number, length: number): OpHandle;
  fsync(fd: number): OpHandle;
  scandir(path: string): OpHandle;
  mkdir(path: string, mode: number): OpHandle;
  rmdir(path: string): OpHandle;
  unlink(path: string): OpHandle;
  rename(from: string, to: string): OpHandle;
  copyfile(from: string, to: string, flags: number): OpHandle;
  access(path: string, mode: number): OpHandle;
  realpath(path: string): OpHandle;
  done(op: OpHandle): boolean;
  cancel(op: OpHandle): void;
  cancelled(op: OpHandle): boolean;
  result(op: OpHandle, out?: Float64Array | number[]): number | string | string[];
  inFlight(): number;
  size(fd: number): number;
  counters(): IoCounters;
}

/** @internal Process-wide counts of the read paths (tests, benchmarks). */
export interface IoCounters {
  /** Reads completed inline, from the page cache. */
  inlineReads: number;
  /** Reads sent to the threadpool, for any reason. */
  pooledReads: number;
  /** readFile sizes read inline (instead of an fstat on the threadpool). */
  inlineSizes: number;
  /** Descriptors whose file system refused RWF_NOWAIT (remembered: later reads go to the threadpool). */
  refusedFds: number;
  /** Reads that first let the event loop turn because the fiber had spent its inline budget. */
  budgetSpent: number;
  /** Inline reads are off for the process (not Linux, or the kernel lacks preadv2/statx). */
  inlineOff: boolean;
}

const fsNative = nativeModule<FsNative>('fs');

/** What `fsNative.read` returns when the fiber spent its inline budget: yield to the loop, then call again. */
const YIELD = -1;

/** One public call in progress: its fiber, its name (for errors and timeouts) and its deadline. */
class Call {
  readonly deadline: number;
  constructor(
    readonly self: FiberRecord,
    readonly operation: string,
    readonly timeout: number,
  ) {
    this.deadline = timeout >= 0 ? performance.now() + timeout : Infinity;
  }

  /**
   * Starts an operation and waits for it; returns its raw result (negative: errno). An interruption
   * point before it starts too: a pending interruption, or a deadline already passed, starts nothing.
   * `start` returns a number when the operation completed at once (an inline read): that is the result;
   * or YIELD: the fiber first lets the event loop turn (other fibers, timers and IO run), then calls
   * `start` again.
   */
  wait(start: () => OpHandle | number, waitingOn: string, out?: Float64Array | number[]): number | string | string[] {
    checkInterruptOf(this.self);
    let remaining = -1;
    if (this.deadline !== Infinity) {
      remaining = this.deadline - performance.now();
      if (remaining <= 0) throw new TimeoutError(this.operation, this.timeout);
    }
    let begun = start();
    while (begun === YIELD) {
      park(this.self, waitingOn, 0, true);
      begun = start();
    }
    if (typeof begun === 'number') return begun;
    const op = new NativeOp(fsNative, begun);
    if (!op.done()) {
      try {
        awaitIo(this.self, op, waitingOn, remaining, this.operation);
      } catch (error) {
        if (error instanceof TimeoutError) throw new TimeoutError(this.operation, this.timeout);
        throw error;
      }
    }
    return fsNative.result(op.handle, out);
  }

  /** Like wait, for operations whose result is a number; a negative one is thrown as a Node error. */
  num(start: () => OpHandle | number, waitingOn: string, syscall: string, p?: string, dest?: string): number {
    const r = this.wait(start, waitingOn) as number;
    if (r < 0) throw uvError(r, syscall, p, dest);
    return r;
  }
}

function begin(operation: string, opts: TimeoutOptions | undefined, optsName = 'options'): Call {
  const timeout = timeoutOf(opts, optsName);
  const self = currentRecord();
  if (self === undefined) {
    const error = new NotInFiberError(`fs.${operation}`);
    error.message += '; outside fibers, use node:fs/promises';
    throw error;
  }
  return new Call(self, `fs.${operation}`, timeout);
}

// Waits for an operation that must complete (close): not an interruption point, no timeout.
function waitUninterruptibly(self: FiberRecord, start: OpHandle | undefined, waitingOn: string): number {
  const { handle } = new NativeOp(fsNative, start);
  while (!fsNative.done(handle)) park(self, waitingOn, -1, false);
  return fsNative.result(handle) as number;
}

// ---------------------------------------------------------------------------------------------------
// Errors and argument checks

const errorMap = getSystemErrorMap();

/** Node's error for a failed system call (as `fs` builds it). */
function uvError(errno: number, syscall: string, p?: string, dest?: string): NodeJS.ErrnoException & { dest?: string } {
  const [code, description] = errorMap.get(errno) ?? ['UNKNOWN', 'unknown error'];
  let message = `${code}: ${description}, ${syscall}`;
  if (p !== undefined) message += ` '${p}'`;
  if (dest !== undefined) message += ` -> '${dest}'`;
  const error = new Error(message) as NodeJS.ErrnoException & { dest?: string };
  error.errno = errno;
  error.code = code;
  error.syscall = syscall;
  if (p !== undefined) error.path = p;
  if (dest !== undefined) error.dest = dest;
  return error;
}

function invalidValue(name: string, value: unknown, reason: string): TypeError {
  const error = new TypeError(`The argument '${name}' ${reason}. Received ${typeof value === 'string' ? `'${value}'` : String(value)}`);
  (error as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
  return error;
}

function timeoutOf(opts: TimeoutOptions | undefined, name: string): number {
  if (opts === undefined || opts === null) return -1;
  if (typeof opts !== 'object') throw invalidArg(name, 'an object', opts);
  const t = opts.timeout;
  if (t === undefined) return -1;
  if (typeof t !== 'number' || Number.isNaN(t)) throw invalidArg(`${name}.timeout`, 'of type number', t);
  if (t < 0) throw outOfRange(`${name}.timeout`, '>= 0', t);
  return t;
}

function pathArg(value: unknown, name = 'path'): string {
  let p: string;
  if (typeof value === 'string') p = value;
  else if (Buffer.isBuffer(value)) p = value.toString('utf8');
  else if (value instanceof URL) {
    if (value.protocol !== 'file:') throw invalidArg(name, 'a file: URL', value.href);
    p = fileURLToPath(value);
  } else throw invalidArg(name, 'of type string or an instance of Buffer or URL', value);
  if (p.includes('\u0000')) throw invalidValue(name, p, 'must be a string without null bytes');
  return p;
}

function objectArg<T extends object>(value: unknown, name: string): T | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') throw invalidArg(name, 'of type object', value);
  return value as T;
}

function intArg(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArg(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer >= ${min} and <= ${max}`, value);
  return value;
}

function bufferArg(value: unknown, name: string): ArrayBufferView {
  if (!ArrayBuffer.isView(value)) throw invalidArg(name, 'an instance of Buffer, TypedArray, or DataView', value);
  return value;
}

/** A position: null/undefined/-1 for the file's current position, else an integer >= 0 (or bigint). */
function positionArg(value: unknown, name = 'position'): number {
  if (value === undefined || value === null) return -1;
  if (typeof value === 'bigint') value = Number(value);
  if (typeof value !== 'number') throw invalidArg(name, 'of type number or bigint', value);
  if (value === -1) return -1;
  if (!Number.isSafeInteger(value) || value < 0) throw outOfRange(name, 'an integer >= 0, or -1 or null for the current position', value);
  return value;
}

const kIoMax = 2 ** 31 - 1;

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_EXCL, O_SYNC } = constants;
const FLAGS: Record<string, number> = {
  r: O_RDONLY,
  rs: O_RDONLY | O_SYNC,
  sr: O_RDONLY | O_SYNC,
  'r+': O_RDWR,
  'rs+': O_RDWR | O_SYNC,
  'sr+': O_RDWR | O_SYNC,
  w: O_TRUNC | O_CREAT | O_WRONLY,
  wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR,
  'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  a: O_APPEND | O_CREAT | O_WRONLY,
  ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  sa: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  'a+': O_APPEND | O_CREAT | O_RDWR,
  'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
  'sa+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
};

function flagsArg(value: unknown, name = 'flags'): number {
  if (value === undefined || value === null) return O_RDONLY;
  if (typeof value === 'number') return intArg(value, name, -(2 ** 31), 2 ** 31 - 1);
  if (typeof value === 'string') {
    const f = FLAGS[value];
    if (f === undefined) throw invalidValue(name, value, 'is invalid');
    return f;
  }
  throw invalidArg(name, 'of type string or number', value);
}

function modeArg(value: unknown, name: string, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'string') {
    if (!/^[0-7]+$/.test(value)) throw invalidValue(name, value, 'must be a 32-bit unsigned integer or an octal string');
    value = Number.parseInt(value, 8);
  }
  return intArg(value, name, 0, 2 ** 32 - 1);
}

function encodingArg(value: unknown, name = 'encoding'): BufferEncoding | undefined {
  if (value === undefined || value === null || value === 'buffer') return undefined;
  if (typeof value !== 'string' || !Buffer.isEncoding(value)) throw invalidValue(name, value, 'is invalid encoding');
  return value;
}

/** Data to write: a string (encoded) or an ArrayBufferView, as a Uint8Array-compatible view. */
function dataArg(value: unknown, encoding: BufferEncoding | undefined, name = 'data'): ArrayBufferView {
  if (typeof value === 'string') return Buffer.from(value, encoding ?? 'utf8');
  if (ArrayBuffer.isView(value)) return value;
  throw invalidArg(name, 'of type string or an instance of Buffer, TypedArray, or DataView', value);
}

const quote = (p: string): string => JSON.stringify(p);

// ---------------------------------------------------------------------------------------------------
// Stats

const statValues = new Float64Array(14);
const direntTypes = constants as unknown as Record<string, number>;
const lazyDates = typeof Object.getOwnPropertyDescriptor(Stats.prototype, 'mtime')?.get === 'function';

function dateFromMs(ms: number): Date {
  return new Date(Math.round(ms));
}

/** A `fs.Stats` (same prototype and fields as Node's) from the native operation's values. */
function makeStats(v: Float64Array): Stats {
  const s = Object.create(Stats.prototype) as Record<string, unknown>;
  s.dev = v[0];
  s.mode = v[1];
  s.nlink = v[2];
  s.uid = v[3];
  s.gid = v[4];
  s.rdev = v[5];
  s.blksize = v[6];
  s.ino = v[7];
  s.size = v[8];
  s.blocks = v[9];
  s.atimeMs = v[10];
  s.mtimeMs = v[11];
  s.ctimeMs = v[12];
  s.birthtimeMs = v[13];
  if (!lazyDates) {
    // Node 20 sets the dates as own properties; later versions compute them lazily on the prototype.
    s.atime = dateFromMs(v[10]);
    s.mtime = dateFromMs(v[11]);
    s.ctime = dateFromMs(v[12]);
    s.birthtime = dateFromMs(v[13]);
  }
  return s as unknown as Stats;
}

function statCall(call: Call, start: () => OpHandle, waitingOn: string, syscall: string, p?: string): Stats {
  const r = call.wait(start, waitingOn, statValues) as number;
  if (r < 0) throw uvError(r, syscall, p);
  return makeStats(statValues);
}

// ---------------------------------------------------------------------------------------------------
// File

/** Options of `File.read` in its object form. */
export interface ReadOptions extends TimeoutOptions {
  /** Where in `buffer` to start writing (default 0). */
  offset?: number;
  /** How many bytes to read at most (default: the rest of the buffer after `offset`). */
  length?: number;
  /** Where in the file to read from; null or -1 (default): the current position, which advances. */
  position?: number | bigint | null;
}

/** Options of `File.write` in its object form. */
export interface WriteOptions extends TimeoutOptions {
  /** Where in the file to write; null or -1 (default): the current position (the end with 'a' flags). */
  position?: number | bigint | null;
  /** The encoding of string data (default 'utf8'). */
  encoding?: BufferEncoding;
}

const leaked = new FinalizationRegistry<number>((fd) => {
  fsNative.closeSync(fd);
  process.emitWarning(`Closing file descriptor ${fd} on garbage collection (a spindle/fs File was not closed)`, { code: 'SPINDLE_FS_LEAK' });
});

function closedError(syscall: string): NodeJS.ErrnoException {
  const error = new Error('file closed') as NodeJS.ErrnoException;
  error.code = 'EBADF';
  error.errno = -osConstants.errno.EBADF;
  error.syscall = syscall;
  return error;
}

/**
 * An open file, from `open()`. Its methods suspend the calling fiber (see the module's shared
 * semantics) and must be called inside one. Several fibers may use one File; `close()` waits for their
 * calls in flight. Close it with `close()` or `using file = open(...)`; a File collected unclosed
 * has its descriptor closed with a warning.
 */
export class File {
  #fd: number;
  #closing = false;
  #pending = 0;
  #idle: Array<() => void> = [];
  /** The path the file was opened with. */
  readonly path: string;

  /** @internal */
  constructor(fd: number, p: string) {
    this.#fd = fd;
    this.path = p;
    leaked.register(this, fd, this);
  }

  /** The file descriptor; -1 once the file is closed (or closing). */
  get fd(): number {
    return this.#closing ? -1 : this.#fd;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing;
  }

  #enter(syscall: string): number {
    if (this.#closing) throw closedError(syscall);
    this.#pending++;
    return this.#fd;
  }

  #leave(): void {
    if (--this.#pending === 0 && this.#idle.length > 0) {
      const waiters = this.#idle;
      this.#idle = [];
      for (const wake of waiters) wake();
    }
  }

  /**
   * Reads up to `length` bytes into `buffer` at `offset`, from `position` (null/-1/absent: the current
   * position, which advances). Returns the number of bytes read: from a regular file, all `length`
   * unless the end of the file comes first; 0 at the end (or when `length` is 0). Returns at once when
   * the page cache holds the range (see the module's notes), else suspends the fiber until the read
   * completes. An interruption point: an interrupted read that was cancelled returned no bytes and moved
   * no position (the range of `buffer` it was given may have been written).
   * Also `read(buffer, { offset, length, position, timeout })`.
   * @throws TypeError/RangeError for a bad argument (a `length` beyond the buffer, a closed file: `EBADF`),
   *   a Node-style error when the read fails, FiberInterruptedError, TimeoutError, NotInFiberError.
   */
  read(buffer: ArrayBufferView, offset?: number, length?: number, position?: number | bigint | null, opts?: TimeoutOptions): number;
  read(buffer: ArrayBufferView, opts: ReadOptions): number;
  read(buffer: ArrayBufferView, offsetOrOpts?: number | ReadOptions, length?: number, position?: number | bigint | null, opts?: TimeoutOptions): number {
    const buf = bufferArg(buffer, 'buffer');
    let o: ReadOptions | undefined = opts;
    let off: unknown = offsetOrOpts;
    let len: unknown = length;
    let pos: unknown = position;
    if (offsetOrOpts !== null && typeof offsetOrOpts === 'object') {
      o = offsetOrOpts;
      ({ offset: off, length: len, position: pos } = offsetOrOpts);
    } else {
      o = objectArg(opts, 'options');
    }
    const offsetN = off === undefined || off === null ? 0 : intArg(off, 'offset', 0, buf.byteLength);
    const lengthN = len === undefined || len === null ? buf.byteLength - offsetN : intArg(len, 'length', 0, kIoMax);
    if (offsetN + lengthN > buf.byteLength) {
      throw outOfRange('length', `<= ${buf.byteLength - offsetN} (the buffer holds ${buf.byteLength} bytes from offset ${offsetN})`, lengthN);
    }
    const posN = positionArg(pos);
    const call = begin('read', o);
    const fd = this.#enter('read');
    try {
      if (lengthN === 0) return 0;
      // At the current position, an inline read may need to move the position back: only when no
      // other call on this File is in flight (asked at each start: the budget's yield lets others in).
      return call.num(() => fsNative.read(fd, buf, offsetN, lengthN, posN, this.#pending === 1), `fs.read(fd ${fd})`, 'read');
    } finally {
      this.#leave();
    }
  }

  /**
   * Writes all of `data` (a string is encoded, UTF-8 by default) at `position` (null/-1/absent: the
   * current position, which advances; with an 'a' flag, the end). Returns the number of bytes written
   * (all of them). Suspends the fiber until written; an interruption point: a cancelled write wrote
   * nothing. A large write may take several system calls; an interruption or timeout between them
   * throws after a prefix was written.
   * Also `write(data, { position, encoding, timeout })`.
   * @throws TypeError/RangeError for a bad argument, `EBADF` on a closed file, a Node-style error
   *   when the write fails, FiberInterruptedError, TimeoutError, NotInFiberError.
   */
  write(data: string | ArrayBufferView, position?: number | bigint | null, opts?: TimeoutOptions): number;
  write(data: string | ArrayBufferView, opts: WriteOptions): number;
  write(data: string | ArrayBufferView, positionOrOpts?: number | bigint | null | WriteOptions, opts?: TimeoutOptions): number {
    let o: WriteOptions | undefined;
    let pos: unknown = positionOrOpts;
    if (positionOrOpts !== null && typeof positionOrOpts === 'object') {
      o = positionOrOpts;
      pos = o.position;
    } else {
      o = objectArg(opts, 'options');
    }
    const bytes = dataArg(data, encodingArg(o?.encoding), 'data');
    const posN = positionArg(pos);
    const call = begin('write', o);
    const fd = this.#enter('write');
    try {
      return writeAll(call, fd, bytes, posN);
    } finally {
      this.#leave();
    }
  }

  /**
   * Reads from the current position to the end of the file and returns the bytes. Suspends the fiber
   * (one read at a time); each read is an interruption point.
   * @throws `EBADF` on a closed file, a Node-style error, FiberInterruptedError, TimeoutError, NotInFiberError.
   */
  readAll(opts?: TimeoutOptions): Buffer {
    const call = begin('readAll', objectArg(opts, 'options'));
    const fd = this.#enter('read');
    try {
      return readToEnd(call, fd, () => this.#pending === 1, false);
    } finally {
      this.#leave();
    }
  }

  /**
   * The file's `Stats` (fstat). Suspends the fiber; an interruption point.
   * @throws `EBADF` on a closed file, a Node-style error, FiberInterruptedError, TimeoutError, NotInFiberError.
   */
  stat(opts?: TimeoutOptions): Stats {
    const call = begin('fstat', objectArg(opts, 'options'));
    const fd = this.#enter('fstat');
    try {
      return statCall(call, () => fsNative.fstat(fd), `fs.fstat(fd ${fd})`, 'fstat');
    } finally {
      this.#leave();
    }
  }

  /**
   * Truncates (or extends with zeros) the file to `len` bytes (default 0). Suspends the fiber; an
   * interruption point.
   * @throws RangeError for a bad `len`, `EBADF` on a closed file, a Node-style error,
   *   FiberInterruptedError, TimeoutError, NotInFiberError.
   */
  truncate(len = 0, opts?: TimeoutOptions): void {
    const n = intArg(len, 'len', 0, Number.MAX_SAFE_INTEGER);
    const call = begin('ftruncate', objectArg(opts, 'options'));
    const fd = this.#enter('ftruncate');
    try {
      call.num(() => fsNative.ftruncate(fd, n), `fs.ftruncate(fd ${fd})`, 'ftruncate');
    } finally {
      this.#leave();
    }
  }

  /**
   * Flushes the file's data and metadata to the storage device (fsync). Suspends the fiber; an
   * interruption point.
   * @throws `EBADF` on a closed file, a Node-style error, FiberInterruptedError, TimeoutError, NotInFiberError.
   */
  sync(opts?: TimeoutOptions): void {
    const call = begin('fsync', objectArg(opts, 'options'));
    const fd = this.#enter('fsync');
    try {
      call.num(() => fsNative.fsync(fd), `fs.fsync(fd ${fd})`, 'fsync');
    } finally {
      this.#leave();
    }
  }

  /**
   * Closes the file; later calls throw `EBADF`, and closing again does nothing. Waits (suspending the
   * fiber) for other fibers' calls in flight on this file, then closes the descriptor. Not an
   * interruption point: it always completes, so it is safe in `finally` blocks of interrupted fibers
   * (their interruption stays pending). Outside a fiber (say, `using` on the loop thread) it closes
   * synchronously when no call is in flight.
   * @throws a Node-style error if the system's close fails (the descriptor is released anyway).
   */
  close(): void {
    if (this.#closing) return;
    const self = currentRecord();
    const fd = this.#fd;
    if (self === undefined) {
      if (this.#pending > 0) throw new NotInFiberError(`File.close with calls in flight`);
      this.#closing = true;
      leaked.unregister(this);
      const r = fsNative.closeSync(fd);
      if (r < 0) throw uvError(r, 'close');
      return;
    }
    this.#closing = true;
    leaked.unregister(this);
    while (this.#pending > 0) {
      this.#idle.push(waker(self));
      try {
        park(self, `fs.close(fd ${fd}): calls in flight`, -1, false);
      } finally {
        endWait(self);
      }
    }
    const r = waitUninterruptibly(self, fsNative.close(fd), `fs.close(fd ${fd})`);
    if (r < 0) throw uvError(r, 'close');
  }

  /** Closes the file (see close()); for `using file = open(...)`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function writeAll(call: Call, fd: number, bytes: ArrayBufferView, position: number): number {
  const total = bytes.byteLength;
  let done = 0;
  while (done < total) {
    const chunk = Math.min(total - done, kIoMax);
    const n = call.num(() => fsNative.write(fd, bytes, done, chunk, position), `fs.write(fd ${fd})`, 'write');
    done += n;
    if (position >= 0) position += n;
  }
  return total;
}

/**
 * Reads `fd` from its current position to the end. `cursorOk()`: whether no other call is in flight on
 * `fd` (see File.read). `fresh`: `fd` was just opened, so the size the kernel holds is current even on
 * network file systems (they revalidate at open) and may be read inline.
 */
function readToEnd(call: Call, fd: number, cursorOk: () => boolean, fresh: boolean): Buffer {
  let known = fresh ? fsNative.size(fd) : -2; // -1: not a regular file; -2: ask fstat
  if (known === -2) {
    const size = statCall(call, () => fsNative.fstat(fd), `fs.fstat(fd ${fd})`, 'fstat');
    known = size.isFile() ? size.size : 0;
  }
  if (known > 0) {
    // Known size (as Node's readFile): read until that many bytes or the end.
    const buf = Buffer.allocUnsafe(known);
    let total = 0;
    while (total < known) {
      const n = call.num(() => fsNative.read(fd, buf, total, known - total, -1, cursorOk()), `fs.read(fd ${fd})`, 'read');
      if (n === 0) break;
      total += n;
    }
    return total === known ? buf : buf.subarray(0, total);
  }
  // Unknown size (pipes, /proc): read chunks until the end.
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    const n = call.num(() => fsNative.read(fd, chunk, 0, chunk.length, -1, cursorOk()), `fs.read(fd ${fd})`, 'read');
    if (n === 0) break;
    chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    total += n;
  }
  return Buffer.concat(chunks, total);
}

// Opens for a whole-file helper and runs `body` on the fd; the fd is closed on every path.
function withFd<R>(call: Call, p: string, flags: number, mode: number, body: (fd: number) => R): R {
  const fd = call.num(() => fsNative.open(p, flags, mode), `fs.open(${quote(p)})`, 'open', p);
  let failed = true;
  try {
    const r = body(fd);
    failed = false;
    return r;
  } finally {
    const r = waitUninterruptibly(call.self, fsNative.close(fd), `fs.close(fd ${fd})`);
    if (r < 0 && !failed) throw uvError(r, 'close');
  }
}

// ---------------------------------------------------------------------------------------------------
// Functions

/** Options of `open`. */
export type OpenFlags = string | number;

/**
 * Opens a file and returns a `File`. `flags` are Node's ('r', 'r+', 'w', 'wx', 'a', 'a+', ... or a
 * number of `fs.constants.O_*`), `mode` the permissions of a created file (before the umask).
 * Suspends the fiber until the file is open; an interruption point (a cancelled open opened nothing;
 * an open that completed despite the interruption returns its File, and the interruption is thrown at
 * the next interruption point).
 * @throws TypeError/RangeError for bad arguments, a Node-style error (`ENOENT`, `EACCES`, `EEXIST`...),
 *   FiberInterruptedError, TimeoutError, NotInFiberError.
 */
export function open(path: PathLike, flags: OpenFlags = 'r', mode: number | string = 0o666, opts?: TimeoutOptions): File {
  const p = pathArg(path);
  const f = flagsArg(flags);
  const m = modeArg(mode, 'mode', 0o666);
  const call = begin('open', objectArg(opts, 'options'));
  const fd = call.num(() => fsNative.open(p, f, m), `fs.open(${quote(p)})`, 'open', p);
  return new File(fd, p);
}

/** Options of `readFile`. */
export interface ReadFileOptions extends TimeoutOptions {
  /** Decode the contents to a string with this encoding (default: return a Buffer). */
  encoding?: BufferEncoding | null;
  /** The open flags (default 'r'). */
  flag?: OpenFlags;
}

/**
 * Reads a whole file: a Buffer, or a string when an encoding is given (`readFile(p, 'utf8')` or
 * `{ encoding }`). Suspends the fiber for each operation (open, fstat, reads, close); each is an
 * interruption point except the close, which always runs, so no descriptor leaks.
 * @throws TypeError for bad arguments, a Node-style error (`ENOENT`, `EISDIR`...),
 *   FiberInterruptedError, TimeoutError (for the whole call), NotInFiberError.
 */
export function readFile(path: PathLike, options: BufferEncoding | (ReadFileOptions & { encoding: BufferEncoding })): string;
export function readFile(path: PathLike, options?: ReadFileOptions | null): Buffer;
export function readFile(path: PathLike, options?: BufferEncoding | ReadFileOptions | null): string | Buffer;
export function readFile(path: PathLike, options?: BufferEncoding | ReadFileOptions | null): string | Buffer {
  const p = pathArg(path);
  const o: ReadFileOptions | undefined = typeof options === 'string' ? { encoding: options } : objectArg(options, 'options');
  const encoding = encodingArg(o?.encoding);
  const flags = flagsArg(o?.flag ?? 'r', 'options.flag');
  const call = begin('readFile', o);
  const data = withFd(call, p, flags, 0o666, (fd) => readToEnd(call, fd, () => true, true));
  return encoding === undefined ? data : data.toString(encoding);
}

/** Options of `writeFile` and `appendFile`. */
export interface WriteFileOptions extends TimeoutOptions {
  /** The encoding of string data (default 'utf8'). */
  encoding?: BufferEncoding | null;
  /** Permissions of a created file (default 0o666, before the umask). */
  mode?: number | string;
  /** The open flags (default 'w' for writeFile, 'a' for appendFile). */
  flag?: OpenFlags;
}

function writeWhole(operation: string, path: PathLike, data: unknown, options: BufferEncoding | WriteFileOptions | null | undefined, flag: string): void {
  const p = pathArg(path);
  const o: WriteFileOptions | undefined = typeof options === 'string' ? { encoding: options } : objectArg(options, 'options');
  const bytes = dataArg(data, encodingArg(o?.encoding));
  const flags = flagsArg(o?.flag ?? flag, 'options.flag');
  const mode = modeArg(o?.mode, 'options.mode', 0o666);
  const call = begin(operation, o);
  withFd(call, p, flags, mode, (fd) => writeAll(call, fd, bytes, (flags & O_APPEND) !== 0 ? -1 : 0));
}

/**
 * Writes `data` (a string, UTF-8 unless `encoding` says otherwise, or an ArrayBufferView) to a file,
 * replacing it (flag 'w': created if missing, truncated). Suspends the fiber for each operation; each
 * is an interruption point except the close, which always runs. An interruption or timeout after the
 * open leaves the file truncated or partly written, as a failing write does.
 * @throws TypeError for bad arguments, a Node-style error, FiberInterruptedError, TimeoutError, NotInFiberError.
 */
export function writeFile(path: PathLike, data: string | ArrayBufferView, options?: BufferEncoding | WriteFileOptions | null): void {
  writeWhole('writeFile', path, data, options, 'w');
}

/**
 * Appends `data` to a file (flag 'a': created if missing). Suspends the fiber as `writeFile` does.
 * @throws TypeError for bad arguments, a Node-style error, FiberInterruptedError, TimeoutError, NotInFiberError.
 */
export function appendFile(path: PathLike, data: string | ArrayBufferView, options?: BufferEncoding | WriteFileOptions | null): void {
  writeWhole('appendFile', path, data, options, 'a');
}

/**
 * The `Stats` of `path`, following symbolic links (an `fs.Stats`: `isFile()`, `isDirectory()`, `size`,
 * `mtime`, `mtimeMs`...). Suspends the fiber; an interruption point.
 * @throws TypeError for a bad path, a Node-style error (`ENOENT`...), FiberInterruptedError,
 *   TimeoutError, NotInFiberError.
 */
export function stat(path: PathLike, opts?: TimeoutOptions): Stats {
  const p = pathArg(path);
  const call = begin('stat', objectArg(opts, 'options'));
  return statCall(call, () => fsNative.stat(p), `fs.stat(${quote(p)})`, 'stat', p);
}

/**
 * Like `stat`, but a symbolic link's own `Stats`. Suspends the fiber; an interruption point.
 * @throws as `stat`.
 */
export function lstat(path: PathLike, opts?: TimeoutOptions): Stats {
  const p = pathArg(path);
  const call = begin('lstat', objectArg(opts, 'options'));
  return statCall(call, () => fsNative.lstat(p), `fs.lstat(${quote(p)})`, 'lstat', p);
}

/** Options of `readdir`. */
export interface ReaddirOptions extends TimeoutOptions {
  /** Return `fs.Dirent`s instead of names. */
  withFileTypes?: boolean;
}

/**
 * The names of the entries of a directory (without '.' and '..'), in the order Node's `readdir`
 * returns them; `fs.Dirent`s with `{ withFileTypes: true }`. Suspends the fiber; an interruption point.
 * @throws TypeError for a bad path, a Node-style error (`ENOENT`, `ENOTDIR`...), FiberInterruptedError,
 *   TimeoutError, NotInFiberError.
 */
export function readdir(path: PathLike, options: ReaddirOptions & { withFileTypes: true }): Dirent[];
export function readdir(path: PathLike, options?: ReaddirOptions): string[];
export function readdir(path: PathLike, options?: ReaddirOptions): string[] | Dirent[] {
  const p = pathArg(path);
  const o = objectArg<ReaddirOptions>(options, 'options');
  const call = begin('readdir', o);
  const types: number[] | undefined = o?.withFileTypes ? [] : undefined;
  const r = call.wait(() => fsNative.scandir(p), `fs.readdir(${quote(p)})`, types);
  if (typeof r === 'number') throw uvError(r, 'scandir', p);
  const names = r as string[];
  if (types === undefined) return names;
  return names.map((name, i) => {
    let type = types[i];
    if (type === direntTypes.UV_DIRENT_UNKNOWN) {
      // The file system did not say: ask lstat, as Node does.
      type = lstatType(call, nodePath.join(p, name));
    }
    return new (Dirent as unknown as new (name: string, type: number, path: string) => Dirent)(name, type, p);
  });
}

function lstatType(call: Call, p: string): number {
  const r = call.wait(() => fsNative.lstat(p), `fs.lstat(${quote(p)})`, statValues) as number;
  if (r < 0) throw uvError(r, 'lstat', p);
  const fmt = statValues[1] & constants.S_IFMT;
  if (fmt === constants.S_IFREG) return direntTypes.UV_DIRENT_FILE;
  if (fmt === constants.S_IFDIR) return direntTypes.UV_DIRENT_DIR;
  if (fmt === constants.S_IFLNK) return direntTypes.UV_DIRENT_LINK;
  if (fmt === constants.S_IFIFO) return direntTypes.UV_DIRENT_FIFO;
  if (fmt === constants.S_IFSOCK) return direntTypes.UV_DIRENT_SOCKET;
  if (fmt === constants.S_IFCHR) return direntTypes.UV_DIRENT_CHAR;
  if (fmt === constants.S_IFBLK) return direntTypes.UV_DIRENT_BLOCK;
  return direntTypes.UV_DIRENT_UNKNOWN;
}

/** Options of `mkdir`. */
export interface MkdirOptions extends TimeoutOptions {
  /** Create missing parents too, and succeed if the directory exists (default false). */
  recursive?: boolean;
  /** Permissions (default 0o777, before the umask). */
  mode?: number | string;
}

/**
 * Creates a directory. With `{ recursive: true }`, creates missing parents and returns the first
 * directory it created (undefined if it existed), as Node does. Suspends the fiber for each operation;
 * each is an interruption point (an interrupted recursive mkdir may have created some parents).
 * @throws TypeError/RangeError for bad arguments, a Node-style error (`EEXIST`, `ENOENT`, `ENOTDIR`...),
 *   FiberInterruptedError, TimeoutError, NotInFiberError.
 */
export function mkdir(path: PathLike, options?: MkdirOptions | number | string): string | undefined {
  const p = pathArg(path);
  const o: MkdirOptions | undefined = typeof options === 'number' || typeof options === 'string' ? { mode: options } : objectArg(options, 'options');
  const mode = modeArg(o?.mode, 'options.mode', 0o777);
  const recursive = o?.recursive ?? false;
  if (typeof recursive !== 'boolean') throw invalidArg('options.recursive', 'of type boolean', recursive);
  const call = begin('mkdir', o);
  if (!recursive) {
    call.num(() => fsNative.mkdir(p, mode), `fs.mkdir(${quote(p)})`, 'mkdir', p);
    return undefined;
  }
  return mkdirp(call, p, mode);
}

const ENOENT = -osConstants.errno.ENOENT;
const EEXIST = -osConstants.errno.EEXIST;

function mkdirp(call: Call, p: string, mode: number): string | undefined {
  const r = call.wait(() => fsNative.mkdir(p, mode), `fs.mkdir(${quote(p)})`) as number;
  if (r === 0) return p;
  if (r === ENOENT) {
    const parent = nodePath.dirname(p);
    if (parent === p) throw uvError(r, 'mkdir', p);
    const first = mkdirp(call, parent, mode);
    const again = call.wait(() => fsNative.mkdir(p, mode), `fs.mkdir(${quote(p)})`) as number;
    if (again === 0) return first ?? p;
    if (again !== EEXIST || !isDirectory(call, p)) throw uvError(again, 'mkdir', p);
    return first;
  }
  // It exists (or cannot be created): fine if it is a directory.
  if (isDirectory(call, p)) return undefined;
  throw uvError(r, 'mkdir', p);
}

function isDirectory(call: Call, p: string): boolean {
  const r = call.wait(() => fsNative.stat(p), `fs.stat(${quote(p)})`, statValues) as number;
  return r === 0 && (statValues[1] & constants.S_IFMT) === constants.S_IFDIR;
}

/** Options of `rm`. */
export interface RmOptions extends TimeoutOptions {
  /** Remove directories and their contents (default false). */
  recursive?: boolean;
  /** Ignore a missing `path` (default false). */
  force?: boolean;
}

/**
 * Removes a file or symbolic link, or with `{ recursive: true }` a directory and its contents, as
 * Node's `fs.rm`; `{ force: true }` ignores a missing path. Suspends the fiber for each operation;
 * each is an interruption point (an interrupted recursive rm leaves what it did not reach).
 * @throws TypeError for bad arguments; `ERR_FS_EISDIR` for a directory without `recursive`; a
 *   Node-style error (`ENOENT` without `force`, `EACCES`...); FiberInterruptedError, TimeoutError,
 *   NotInFiberError.
 */
export function rm(path: PathLike, options?: RmOptions): void {
  const p = pathArg(path);
  const o = objectArg<RmOptions>(options, 'options');
  const recursive = o?.recursive ?? false;
  const force = o?.force ?? false;
  if (typeof recursive !== 'boolean') throw invalidArg('options.recursive', 'of type boolean', recursive);
  if (typeof force !== 'boolean') throw invalidArg('options.force', 'of type boolean', force);
  const call = begin('rm', o);
  const r = call.wait(() => fsNative.lstat(p), `fs.lstat(${quote(p)})`, statValues) as number;
  if (r < 0) {
    if (r === ENOENT && force) return;
    throw uvError(r, 'lstat', p);
  }
  if ((statValues[1] & constants.S_IFMT) === constants.S_IFDIR) {
    if (!recursive) throw eisdir(p);
    removeTree(call, p, true);
    return;
  }
  const u = call.wait(() => fsNative.unlink(p), `fs.unlink(${quote(p)})`) as number;
  if (u < 0 && !(u === ENOENT && force)) throw uvError(u, 'unlink', p);
}

function eisdir(p: string): Error {
  // Node's SystemError for rm on a directory without `recursive`.
  const errno = osConstants.errno.EISDIR;
  const error = new Error(`Path is a directory: rm returned EISDIR (is a directory) ${p}`) as NodeJS.ErrnoException & { info: object };
  error.name = 'SystemError';
  error.code = 'ERR_FS_EISDIR';
  error.info = { code: 'EISDIR', message: 'is a directory', path: p, syscall: 'rm', errno };
  error.errno = errno;
  error.syscall = 'rm';
  error.path = p;
  return error;
}

function removeTree(call: Call, p: string, isDir: boolean): void {
  if (isDir) {
    const names = call.wait(() => fsNative.scandir(p), `fs.readdir(${quote(p)})`);
    if (typeof names === 'number') {
      if (names === ENOENT) return;
      throw uvError(names, 'scandir', p);
    }
    for (const name of names as string[]) {
      const child = nodePath.join(p, name);
      const r = call.wait(() => fsNative.lstat(child), `fs.lstat(${quote(child)})`, statValues) as number;
      if (r === ENOENT) continue;
      if (r < 0) throw uvError(r, 'lstat', child);
      removeTree(call, child, (statValues[1] & constants.S_IFMT) === constants.S_IFDIR);
    }
    const r = call.wait(() => fsNative.rmdir(p), `fs.rmdir(${quote(p)})`) as number;
    if (r < 0 && r !== ENOENT) throw uvError(r, 'rmdir', p);
    return;
  }
  const r = call.wait(() => fsNative.unlink(p), `fs.unlink(${quote(p)})`) as number;
  if (r < 0 && r !== ENOENT) throw uvError(r, 'unlink', p);
}

/**
 * Removes an empty directory. Suspends the fiber; an interruption point.
 * @throws TypeError for a bad path, a Node-style error (`ENOENT`, `ENOTEMPTY`, `ENOTDIR`...),
 *   FiberInterruptedError, TimeoutError, NotInFiberError.
 */
export function rmdir(path: PathLike, opts?: TimeoutOptions): void {
  const p = pathArg(path);
  const call = begin('rmdir', objectArg(opts, 'options'));
  call.num(() => fsNative.rmdir(p), `fs.rmdir(${quote(p)})`, 'rmdir', p);
}

/**
 * Renames (moves) `oldPath` to `newPath`, replacing a file there. Suspends the fiber; an interruption point.
 * @throws TypeError for bad paths, a Node-style error with `path` and `dest`, FiberInterruptedError,
 *   TimeoutError, NotInFiberError.
 */
export function rename(oldPath: PathLike, newPath: PathLike, opts?: TimeoutOptions): void {
  const from = pathArg(oldPath, 'oldPath');
  const to = pathArg(newPath, 'newPath');
  const call = begin('rename', objectArg(opts, 'options'));
  call.num(() => fsNative.rename(from, to), `fs.rename(${quote(from)})`, 'rename', from, to);
}

/**
 * Removes a file or symbolic link. Suspends the fiber; an interruption point.
 * @throws TypeError for a bad path, a Node-style error (`ENOENT`, `EISDIR`...), FiberInterruptedError,
 *   TimeoutError, NotInFiberError.
 */
export function unlink(path: PathLike, opts?: TimeoutOptions): void {
  const p = pathArg(path);
  const call = begin('unlink', objectArg(opts, 'options'));
  call.num(() => fsNative.unlink(p), `fs.unlink(${quote(p)})`, 'unlink', p);
}

/**
 * Copies `src` to `dest` (replacing it unless `mode` has `fs.constants.COPYFILE_EXCL`; `COPYFILE_FICLONE`
 * and `COPYFILE_FICLONE_FORCE` as in Node). Suspends the fiber; an interruption point (a copy already
 * running completes).
 * @throws TypeError/RangeError for bad arguments, a Node-style error with `path` and `dest`,
 *   FiberInterruptedError, TimeoutError, NotInFiberError.
 */
export function copyFile(src: PathLike, dest: PathLike, mode = 0, opts?: TimeoutOptions): void {
  const from = pathArg(src, 'src');
  const to = pathArg(dest, 'dest');
  const m = intArg(mode, 'mode', 0, 7);
  const call = begin('copyFile', objectArg(opts, 'options'));
  call.num(() => fsNative.copyfile(from, to, m), `fs.copyFile(${quote(from)})`, 'copyfile', from, to);
}

/**
 * Checks that `path` exists and, with `mode` (`fs.constants.R_OK | W_OK | X_OK`; default `F_OK`),
 * that the process may access it so. Returns nothing; throws when it may not. Suspends the fiber; an
 * interruption point.
 * @throws TypeError/RangeError for bad arguments, a Node-style error (`ENOENT`, `EACCES`...),
 *   FiberInterruptedError, TimeoutError, NotInFiberError.
 */
export function access(path: PathLike, mode: number = constants.F_OK, opts?: TimeoutOptions): void {
  const p = pathArg(path);
  const m = intArg(mode, 'mode', 0, 7);
  const call = begin('access', objectArg(opts, 'options'));
  call.num(() => fsNative.access(p, m), `fs.access(${quote(p)})`, 'access', p);
}

/**
 * The canonical absolute path of `path` (symbolic links, '.' and '..' resolved), as
 * `fs.promises.realpath`. Suspends the fiber; an interruption point.
 * @throws TypeError for a bad path, a Node-style error (`ENOENT`, `ELOOP`...), FiberInterruptedError,
 *   TimeoutError, NotInFiberError.
 */
export function realpath(path: PathLike, opts?: TimeoutOptions): string {
  const p = pathArg(path);
  const call = begin('realpath', objectArg(opts, 'options'));
  const r = call.wait(() => fsNative.realpath(p), `fs.realpath(${quote(p)})`);
  if (typeof r === 'number') throw uvError(r, 'realpath', p);
  return r as string;
}

/** @internal Process-wide counts of the read paths: inline (page cache) or threadpool (tests, benchmarks). */
export function _ioCounters(): IoCounters {
  return fsNative.counters();
}

/** @internal Tracked native file system operations in flight in this environment (tests). */
export function _inFlight(): number {
  return fsNative.inFlight();
}
