/**
 * spindle/stream: Node streams and event emitters from fibers. {@link reader} and {@link writer} give
 * any Node stream (child_process stdio, zlib, http bodies, sockets, files) suspending
 * `read`/`readExactly`/`readUntil`/`write`/`end` calls; {@link once} suspends until an event fires.
 *
 * ```js
 * import { spawn } from 'spindle';
 * import { reader, writer } from 'spindle/stream';
 * spawn(() => {
 *   const child = childProcess.spawn('sort');
 *   const out = writer(child.stdin);
 *   out.write('b\na\n');
 *   out.end();
 *   const r = reader(child.stdout);
 *   for (let chunk; (chunk = r.read()) !== null; ) process.stdout.write(chunk);
 * });
 * ```
 *
 * Every call that waits is an interruption point and takes `{ timeout }` (milliseconds; `TimeoutError`
 * when it elapses). An error the stream emits is rethrown by the next call. Calls of several fibers on
 * one reader (or one writer) are served one at a time, in arrival order.
 * @packageDocumentation
 */
import type { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';

import { ReadLimitError, TimeoutError, UnexpectedEofError, invalidArg, outOfRange } from '../errors.js';

export { ReadLimitError, UnexpectedEofError } from '../errors.js';
import { timeoutOption } from '../options.js';
import { type FiberRecord, checkInterruptOf, parkUntil, requireCurrent, waker } from '../runtime.js';
import { WaitQueue, waitInQueue } from '../sync/waiters.js';

/** Options of the calls that wait. */
export interface StreamWaitOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

/** Options of {@link StreamReader.readUntil}. */
export interface ReadUntilOptions extends StreamWaitOptions {
  /**
   * The most bytes to buffer while looking for the delimiter (the delimiter included). Default 65536.
   * Past it, `readUntil` throws a `ReadLimitError` and leaves the bytes in the reader.
   */
  maxBytes?: number;
}

function prematureClose(): Error {
  const err = new Error('Premature close');
  (err as Error & { code: string }).code = 'ERR_STREAM_PREMATURE_CLOSE';
  return err;
}

function asBuffer(chunk: unknown, encoding?: BufferEncoding): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding ?? 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw invalidArg('chunk', 'a Buffer, Uint8Array or string', chunk);
}

/**
 * Serializes the calls on one reader (or writer): one at a time, the others queued in arrival order.
 * Waiting for one's turn is an interruption point and counts against the call's timeout.
 */
class Gate {
  #busy = false;
  readonly #queue = new WaitQueue<undefined>();

  enter(self: FiberRecord, operation: string, waitingOn: string, timeoutMs: number, deadline: number): void {
    if (!this.#busy) {
      this.#busy = true;
      return;
    }
    try {
      waitInQueue(self, operation, { queue: this.#queue, payload: undefined, waitingOn, timeoutMs: remainingOf(deadline), interruptible: true });
    } catch (error) {
      if (error instanceof TimeoutError) throw new TimeoutError(operation, timeoutMs);
      throw error;
    }
  }

  /** Hands the turn to the first queued call, if any. */
  leave(): void {
    const next = this.#queue.shift();
    if (next !== undefined) next.waiter.complete(0);
    else this.#busy = false;
  }
}

/**
 * Parks `self` until `ready()` holds, by `deadline` (then TimeoutError naming `operation` and its
 * `timeoutMs`); `setWake` makes the wake function known to the events that may make it ready.
 */
function waitFor(self: FiberRecord, ready: () => boolean, setWake: (wake: (() => void) | undefined) => void, what: string, timeoutMs: number, deadline: number, operation: string): void {
  if (ready()) return;
  setWake(waker(self));
  try {
    if (!parkUntil(self, { get done() { return ready(); } }, what, remainingOf(deadline), true)) throw new TimeoutError(operation, timeoutMs);
  } finally {
    setWake(undefined);
  }
}

function deadlineOf(timeoutMs: number): number {
  return timeoutMs >= 0 ? performance.now() + timeoutMs : Infinity;
}

function remainingOf(deadline: number): number {
  return deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
}

function isReadable(value: unknown): value is Readable {
  return value !== null && typeof value === 'object' && typeof (value as Readable).read === 'function' && typeof (value as Readable).on === 'function';
}

function isWritable(value: unknown): value is Writable {
  return value !== null && typeof value === 'object' && typeof (value as Writable).write === 'function' && typeof (value as Writable).end === 'function' && typeof (value as Writable).on === 'function';
}

/**
 * What a reader or writer knows of its stream, kept current by the stream's events (each wakes the call
 * waiting on the stream, if any), and the turns of the calls made on it.
 */
class StreamWatch {
  /** The stream completed: `'end'` (a reader's) or `'finish'` (a writer's). */
  complete: boolean;
  closed: boolean;
  error: unknown;
  /** Counts the stream's events: a wait ends when one came (then a reader's read() has news). */
  events = 0;
  readonly label: string;
  readonly #gate = new Gate();
  #wake: (() => void) | undefined = undefined;

  /** `progress`: the event after which the stream can do more (`'readable'`, `'drain'`). */
  constructor(stream: Readable | Writable, progress: 'readable' | 'drain', completion: 'end' | 'finish', completed: boolean) {
    this.label = stream.constructor?.name ?? 'stream';
    const notify = () => {
      this.events++;
      this.#wake?.();
    };
    const emitter = stream as EventEmitter;
    emitter.on(progress, notify);
    emitter.on(completion, () => {
      this.complete = true;
      notify();
    });
    emitter.on('error', (error: unknown) => {
      this.error ??= error;
      notify();
    });
    emitter.on('close', () => {
      this.closed = true;
      notify();
    });
    this.complete = completed;
    this.error = stream.errored ?? undefined;
    this.closed = stream.destroyed;
  }

  /** Runs `body` in its call's turn, with the timeout shared by the wait for the turn. */
  serialized<R>(operation: string, opts: StreamWaitOptions | undefined, body: (self: FiberRecord, timeout: number, deadline: number) => R): R {
    const timeout = timeoutOption(opts);
    const self = requireCurrent(`${operation}()`);
    checkInterruptOf(self);
    const deadline = deadlineOf(timeout);
    this.#gate.enter(self, operation, `${operation}(${this.label})`, timeout, deadline);
    try {
      return body(self, timeout, deadline);
    } finally {
      this.#gate.leave();
    }
  }

  /** waitFor, woken by the stream's events. */
  waitFor(self: FiberRecord, ready: () => boolean, what: string, timeout: number, deadline: number, operation: string): void {
    waitFor(self, ready, (wake) => (this.#wake = wake), what, timeout, deadline, operation);
  }
}

/**
 * Suspending reads over a Node `Readable` (made by {@link reader}). The reader takes the stream's
 * data in paused mode (`'readable'` and `read()`), so the stream's own backpressure applies: nothing
 * is read from the source faster than the fiber consumes it. A read that finds data already buffered
 * does not suspend. An interrupted or timed-out read consumes nothing.
 */
export class StreamReader {
  readonly #stream: Readable;
  readonly #watch: StreamWatch;
  #chunks: Buffer[] = [];
  #length = 0;

  /** @internal Use {@link reader}. */
  constructor(stream: Readable) {
    this.#stream = stream;
    this.#watch = new StreamWatch(stream, 'readable', 'end', stream.readableEnded);
  }

  /** The stream this reader reads. */
  get stream(): Readable {
    return this.#stream;
  }

  /** Bytes the reader holds already (taken from the stream, not yet returned by a read). */
  get buffered(): number {
    return this.#length;
  }

  /**
   * With `buf`: copies the next available bytes into it and returns how many (0 at the end of the
   * stream; at least 1 otherwise, waiting for data if none is there). Without: returns the next
   * available chunk as a Buffer, or `null` at the end of the stream.
   * @throws the stream's error; TimeoutError; FiberInterruptedError; NotInFiberError outside a fiber.
   */
  read(buf: Uint8Array, opts?: StreamWaitOptions): number;
  read(buf?: undefined, opts?: StreamWaitOptions): Buffer | null;
  read(buf?: Uint8Array, opts?: StreamWaitOptions): number | Buffer | null {
    if (buf !== undefined && !(buf instanceof Uint8Array)) throw invalidArg('buf', 'a Buffer or Uint8Array', buf);
    return this.#watch.serialized('read', opts, (self, timeout, deadline) => {
      if (buf !== undefined && buf.length === 0) return 0;
      if (!this.#fill(self, 1, timeout, deadline, 'read')) return buf === undefined ? null : 0;
      if (buf === undefined) return this.#take(this.#chunks[0].length);
      const n = Math.min(buf.length, this.#length);
      const out = this.#take(n);
      buf.set(out, 0);
      return n;
    });
  }

  /**
   * Returns exactly `n` bytes, waiting until they all arrived.
   * @throws UnexpectedEofError when the stream ends first (with the bytes that came); the stream's
   *   error; TimeoutError / FiberInterruptedError (then nothing is consumed); RangeError for a bad `n`.
   */
  readExactly(n: number, opts?: StreamWaitOptions): Buffer {
    if (typeof n !== 'number') throw invalidArg('n', 'of type number', n);
    if (!Number.isInteger(n) || n < 0) throw outOfRange('n', 'an integer >= 0', n);
    return this.#watch.serialized('readExactly', opts, (self, timeout, deadline) => {
      if (!this.#fill(self, n, timeout, deadline, `readExactly(${n})`)) {
        throw new UnexpectedEofError(`readExactly(${n})`, this.#take(this.#length));
      }
      return this.#take(n);
    });
  }

  /**
   * Returns the bytes up to and including the next `delimiter` (a string, in UTF-8, or bytes). Bytes
   * after it stay in the reader.
   * @throws UnexpectedEofError when the stream ends before a delimiter (it carries the bytes that
   *   came; `partial` is empty when nothing was left: the clean end of a line-by-line loop);
   *   ReadLimitError when `maxBytes` arrived without one (they stay in the reader); the stream's
   *   error; TimeoutError / FiberInterruptedError (then nothing is consumed).
   */
  readUntil(delimiter: string | Uint8Array, opts?: ReadUntilOptions): Buffer {
    if (typeof delimiter !== 'string' && !(delimiter instanceof Uint8Array)) throw invalidArg('delimiter', 'a string, Buffer or Uint8Array', delimiter);
    const delim = asBuffer(delimiter);
    if (delim.length === 0) throw outOfRange('delimiter', 'at least one byte long', "''");
    const maxBytes = opts?.maxBytes ?? 65536;
    if (typeof maxBytes !== 'number' || Number.isNaN(maxBytes)) throw invalidArg('opts.maxBytes', 'a number', maxBytes);
    if (maxBytes < delim.length) throw outOfRange('opts.maxBytes', `>= the delimiter's length (${delim.length})`, maxBytes);
    return this.#watch.serialized('readUntil', opts, (self, timeout, deadline) => {
      let searched = 0;  // bytes already searched, less what a delimiter could straddle
      for (;;) {
        const joined = this.#peekAll();
        const at = joined.indexOf(delim, searched);
        if (at >= 0 && at + delim.length <= maxBytes) return this.#take(at + delim.length);
        if (joined.length >= maxBytes) throw new ReadLimitError('readUntil', maxBytes);
        searched = Math.max(0, joined.length - delim.length + 1);
        if (!this.#fill(self, joined.length + 1, timeout, deadline, 'readUntil')) {
          throw new UnexpectedEofError('readUntil', this.#take(this.#length));
        }
      }
    });
  }

  /**
   * Waits until the reader holds at least `n` bytes; false if the stream ended first. Throws the
   * stream's error (once what was buffered before it is consumed... only if fewer than `n` bytes).
   */
  #fill(self: FiberRecord, n: number, timeout: number, deadline: number, operation: string): boolean {
    const watch = this.#watch;
    for (;;) {
      if (this.#length >= n) return true;
      watch.error ??= this.#stream.errored ?? undefined;
      const chunk: unknown = watch.error === undefined ? this.#stream.read() : null;
      if (chunk !== null && chunk !== undefined) {
        const b = asBuffer(chunk, this.#stream.readableEncoding ?? undefined);
        if (b.length > 0) {
          this.#chunks.push(b);
          this.#length += b.length;
        }
        continue;
      }
      if (watch.error !== undefined) throw watch.error;
      if (watch.complete || this.#stream.readableEnded) return false;
      if (watch.closed || this.#stream.destroyed) throw prematureClose();
      const seen = watch.events;
      watch.waitFor(self, () => watch.events !== seen || this.#stream.readableLength > 0, `read(${watch.label})`, timeout, deadline, operation);
    }
  }

  /** Everything buffered, as one Buffer (the chunks are merged, so this stays cheap when repeated). */
  #peekAll(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks, this.#length)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** Removes and returns the first `n` buffered bytes (n <= buffered). */
  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.#chunks[0];
        const k = Math.min(c.length, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (k === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(k);
      }
    }
    this.#length -= n;
    return out;
  }
}

/**
 * Suspending writes over a Node `Writable` (made by {@link writer}). `write` honours the stream's
 * backpressure: while the stream's buffer is over its highWaterMark (it asked for `'drain'`), the
 * next `write` suspends until `'drain'` before handing over its data. So the stream never holds more
 * than its highWaterMark plus one chunk, and a write that is interrupted or times out wrote nothing.
 */
export class StreamWriter {
  readonly #stream: Writable;
  readonly #watch: StreamWatch;

  /** @internal Use {@link writer}. */
  constructor(stream: Writable) {
    this.#stream = stream;
    this.#watch = new StreamWatch(stream, 'drain', 'finish', stream.writableFinished);
  }

  /** The stream this writer writes. */
  get stream(): Writable {
    return this.#stream;
  }

  /**
   * Hands `data` (a string is written as UTF-8) to the stream, first waiting for `'drain'` if the
   * stream asked for it. Returns once the stream took the data (not necessarily flushed: see
   * {@link StreamWriter.end}).
   * @throws the stream's error (also one from an earlier write); `ERR_STREAM_WRITE_AFTER_END` after
   *   end(); TimeoutError / FiberInterruptedError while waiting for `'drain'` (nothing was written).
   */
  write(data: string | Uint8Array, opts?: StreamWaitOptions): void {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) throw invalidArg('data', 'a string, Buffer or Uint8Array', data);
    this.#watch.serialized('write', opts, (self, timeout, deadline) => {
      this.#check();
      if (this.#stream.writableEnded) {
        const err = new Error('write after end');
        (err as Error & { code: string }).code = 'ERR_STREAM_WRITE_AFTER_END';
        throw err;
      }
      this.#drained(self, timeout, deadline, 'write');
      this.#stream.write(data, (error) => {
        if (error) this.#watch.error ??= error;
      });
    });
  }

  /**
   * Ends the stream (after writing `data`, if given) and waits until it finished: everything written
   * was flushed (`'finish'`). Calling it again waits again.
   * @throws the stream's error; TimeoutError / FiberInterruptedError while waiting for `'finish'` (the
   *   stream was ended all the same).
   */
  end(data?: string | Uint8Array, opts?: StreamWaitOptions): void {
    if (data !== undefined && typeof data !== 'string' && !(data instanceof Uint8Array)) throw invalidArg('data', 'a string, Buffer or Uint8Array', data);
    const watch = this.#watch;
    watch.serialized('end', opts, (self, timeout, deadline) => {
      this.#check();
      if (!this.#stream.writableEnded) {
        if (data !== undefined) {
          this.#drained(self, timeout, deadline, 'end');
          this.#stream.end(data);
        } else {
          this.#stream.end();
        }
      }
      watch.waitFor(self, () => watch.error !== undefined || watch.complete || watch.closed, `end(${watch.label})`, timeout, deadline, 'end');
      if (watch.error !== undefined) throw watch.error;
      if (!watch.complete) throw prematureClose();
    });
  }

  /** Waits until the stream takes more data (it asks for no `'drain'`), then checks it did not fail. */
  #drained(self: FiberRecord, timeout: number, deadline: number, operation: string): void {
    const watch = this.#watch;
    watch.waitFor(self, () => watch.error !== undefined || watch.closed || !this.#stream.writableNeedDrain, `write(${watch.label})`, timeout, deadline, operation);
    this.#check();
  }

  #check(): void {
    const watch = this.#watch;
    watch.error ??= this.#stream.errored ?? undefined;
    if (watch.error !== undefined) throw watch.error;
    if (watch.closed && !watch.complete) throw prematureClose();
  }
}

const readers = new WeakMap<object, StreamReader>();
const writers = new WeakMap<object, StreamWriter>();

/**
 * The {@link StreamReader} of `readable` (one per stream: asking again returns the same reader). From
 * now on the reader consumes the stream; do not also read it with `'data'` listeners or pipes.
 * Object-mode streams are refused.
 * @throws TypeError when `readable` is not a byte-mode Readable.
 */
export function reader(readable: Readable): StreamReader {
  if (!isReadable(readable)) throw invalidArg('readable', 'a Readable stream', readable);
  if (readable.readableObjectMode) throw invalidArg('readable', 'a byte stream (not in object mode)', readable);
  let r = readers.get(readable);
  if (r === undefined) {
    r = new StreamReader(readable);
    readers.set(readable, r);
  }
  return r;
}

/**
 * The {@link StreamWriter} of `writable` (one per stream: asking again returns the same writer).
 * @throws TypeError when `writable` is not a Writable.
 */
export function writer(writable: Writable): StreamWriter {
  if (!isWritable(writable)) throw invalidArg('writable', 'a Writable stream', writable);
  let w = writers.get(writable);
  if (w === undefined) {
    w = new StreamWriter(writable);
    writers.set(writable, w);
  }
  return w;
}

/** What {@link once} accepts: a Node `EventEmitter` or a DOM-style `EventTarget`. */
export type EmitterLike = Pick<EventEmitter, 'on' | 'removeListener'> | EventTarget;

/**
 * Suspends the calling fiber until `emitter` emits `event`, and returns the event's arguments as an
 * array (like `events.once`; for an `EventTarget`, `[event]`). An `'error'` event emitted meanwhile
 * is thrown instead (unless `event` is `'error'` itself). An interruption point.
 * @throws the emitted error; TimeoutError when `timeout` elapses; FiberInterruptedError;
 *   NotInFiberError outside a fiber; TypeError for bad arguments.
 */
export function once(emitter: EmitterLike, event: string | symbol, opts?: StreamWaitOptions): unknown[] {
  if (emitter === null || typeof emitter !== 'object') throw invalidArg('emitter', 'an EventEmitter or EventTarget', emitter);
  if (typeof event !== 'string' && typeof event !== 'symbol') throw invalidArg('event', 'a string or symbol', event);
  const timeout = timeoutOption(opts);
  const self = requireCurrent('once()');
  checkInterruptOf(self);
  let result: { ok: true; args: unknown[] } | { ok: false; error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const onEvent = (...args: unknown[]) => {
    result ??= { ok: true, args };
    wake?.();
  };
  const onError = (error: unknown) => {
    result ??= { ok: false, error };
    wake?.();
  };
  let remove: () => void;
  const ee = emitter as EventEmitter;
  if (typeof ee.on === 'function' && typeof ee.removeListener === 'function') {
    ee.on(event, onEvent);
    if (event !== 'error') ee.on('error', onError);
    remove = () => {
      ee.removeListener(event, onEvent);
      if (event !== 'error') ee.removeListener('error', onError);
    };
  } else if (typeof (emitter as EventTarget).addEventListener === 'function' && typeof event === 'string') {
    const et = emitter as EventTarget;
    et.addEventListener(event, onEvent, { once: true });
    remove = () => et.removeEventListener(event, onEvent);
  } else {
    throw invalidArg('emitter', 'an EventEmitter or EventTarget', emitter);
  }
  try {
    waitFor(self, () => result !== undefined, (w) => (wake = w), `once(${String(event)})`, timeout, deadlineOf(timeout), `once(${String(event)})`);
  } finally {
    remove();
  }
  if (!result!.ok) throw result!.error;
  return result!.args;
}
