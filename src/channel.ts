/**
 * Channels: typed FIFO queues between fibers (and async functions), buffered or rendezvous.
 * @packageDocumentation
 */
import { ChannelClosedError, NotInFiberError } from './errors.js';
import { countArg, timeoutOption } from './options.js';
import { currentRecord } from './runtime.js';
import { type CaseResult, NOT_READY, SelectCase } from './select-case.js';
import { objectName } from './sync/owner.js';
import { Entry, WaitQueue, type Waiter, asyncWaiter, waitInQueue } from './sync/waiters.js';

/** Options of the blocking channel calls. */
export interface ChannelOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

/** What `tryRecv` returns. */
export type TryRecvResult<T> = { ok: true; value: T } | { ok: false; value: undefined };

const EMPTY: unique symbol = Symbol('empty');
const CLOSED: unique symbol = Symbol('closed');

/**
 * A channel in Go's sense. Capacity 0 is a rendezvous: `send` returns once a receiver has taken the
 * value. With capacity n, up to n values wait in a buffer. After `close`, buffered values are still
 * received, then `recv` throws `ChannelClosedError` and iteration ends; `send` throws it at once, and
 * senders blocked at the close wake with it (their values were not delivered). `send`, `recv` and
 * iteration are interruption points; an interrupted `send` has not delivered its value and an
 * interrupted `recv` has not consumed one. Buffered operations that need not wait stay in JavaScript.
 */
export class Channel<T> {
  readonly #capacity: number;
  /** The buffer: a ring that grows (doubling) up to the capacity, so a large capacity costs nothing up front. */
  #ring: Array<T | undefined>;
  #head = 0;
  #count = 0;
  #closed = false;
  /** @internal Receivers waiting (payload unused). */
  readonly recvq = new WaitQueue<undefined>();
  /** @internal Senders waiting, each with its value. */
  readonly sendq = new WaitQueue<T>();
  readonly #name: string;

  /** @param capacity buffered values, an integer >= 0 (0: rendezvous). */
  constructor(capacity = 0, name?: string) {
    this.#capacity = countArg(capacity, 'capacity');
    this.#ring = new Array<T | undefined>(Math.min(this.#capacity, 16));
    this.#name = name ?? objectName('Channel');
  }

  /** The buffer size given at construction. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Values buffered now. */
  get size(): number {
    return this.#count;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get name(): string {
    return this.#name;
  }

  /**
   * Sends `value`, suspending the running fiber until a receiver takes it (capacity 0) or there is
   * room in the buffer. An interruption point.
   * @throws ChannelClosedError if the channel is or gets closed (the value was not delivered);
   *   TimeoutError; NotInFiberError outside fibers when it would have to wait (use `sendAsync`).
   */
  send(value: T, opts?: ChannelOptions): void {
    const timeout = timeoutOption(opts);
    if (this.offer(value)) return;
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.send()`);
    const waiter = waitInQueue(self, `${this.#name}.send()`, {
      queue: this.sendq,
      payload: value,
      waitingOn: `send(${this.#name})`,
      timeoutMs: timeout,
      interruptible: true,
    });
    if (waiter.closed) throw new ChannelClosedError(this.#name);
  }

  /**
   * Receives the next value, suspending the running fiber until one is sent. An interruption point.
   * @throws ChannelClosedError once the channel is closed and drained; TimeoutError; NotInFiberError
   *   outside fibers when it would have to wait (use `recvAsync`).
   */
  recv(opts?: ChannelOptions): T {
    const timeout = timeoutOption(opts);
    const value = this.recvOrClosed(timeout);
    if (value === CLOSED) throw new ChannelClosedError(this.#name);
    return value;
  }

  /** Sends without waiting: false when it would have to wait. @throws ChannelClosedError if closed. */
  trySend(value: T): boolean {
    return this.offer(value);
  }

  /** Receives without waiting: `{ ok: false }` when nothing is there (or the channel is drained). */
  tryRecv(): TryRecvResult<T> {
    const value = this.take();
    return value === EMPTY || value === CLOSED ? { ok: false, value: undefined } : { ok: true, value };
  }

  /**
   * Closes the channel: no more sends. Waiting receivers wake (and, once the buffer is drained, see
   * the channel closed); waiting senders wake with ChannelClosedError. Closing twice does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (let e = this.recvq.shift(); e !== undefined; e = this.recvq.shift()) e.waiter.complete(e.index, undefined, true);
    for (let e = this.sendq.shift(); e !== undefined; e = this.sendq.shift()) e.waiter.complete(e.index, undefined, true);
  }

  /** The async twin of `send`, for code outside fibers. */
  sendAsync(value: T, opts?: ChannelOptions): Promise<void> {
    const timeout = timeoutOption(opts);
    try {
      if (this.offer(value)) return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
    let entry: Entry<T> | undefined;
    const { waiter, done } = asyncWaiter(`${this.#name}.sendAsync()`, timeout, () => this.sendq.remove(entry!));
    entry = this.sendq.push(new Entry(waiter, 0, value));
    return done.then((w) => {
      if (w.closed) throw new ChannelClosedError(this.#name);
    });
  }

  /** The async twin of `recv`, for code outside fibers. */
  recvAsync(opts?: ChannelOptions): Promise<T> {
    const timeout = timeoutOption(opts);
    const value = this.take();
    if (value === CLOSED) return Promise.reject(new ChannelClosedError(this.#name));
    if (value !== EMPTY) return Promise.resolve(value);
    let entry: Entry<undefined> | undefined;
    const { waiter, done } = asyncWaiter(`${this.#name}.recvAsync()`, timeout, () => this.recvq.remove(entry!));
    entry = this.recvq.push(new Entry(waiter, 0, undefined));
    return done.then((w) => {
      if (w.closed) throw new ChannelClosedError(this.#name);
      return w.value as T;
    });
  }

  /** Inside a fiber: receives until the channel is closed and drained. Each step suspends as `recv`. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (;;) {
      const value = this.recvOrClosed(-1);
      if (value === CLOSED) return;
      yield value;
    }
  }

  /** Outside fibers: `for await` receives until the channel is closed and drained. */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<T> {
    for (;;) {
      try {
        yield await this.recvAsync();
      } catch (error) {
        if (error instanceof ChannelClosedError && this.#closed) return;
        throw error;
      }
    }
  }

  /** A `select` case receiving from this channel. */
  recvCase(): RecvCase<T> {
    return new RecvCase(this);
  }

  /** A `select` case sending `value` on this channel. */
  sendCase(value: T): SendCase<T> {
    return new SendCase(this, value);
  }

  /** @internal Delivers `value` now (to a waiting receiver, else into the buffer); false if it must wait. */
  offer(value: T): boolean {
    if (this.#closed) throw new ChannelClosedError(this.#name);
    const receiver = this.recvq.shift();
    if (receiver !== undefined) {
      receiver.waiter.complete(receiver.index, value);
      return true;
    }
    if (this.#count === this.#capacity) return false;
    this.#push(value);
    return true;
  }

  #push(value: T): void {
    if (this.#count === this.#ring.length) {
      const grown = new Array<T | undefined>(Math.min(this.#capacity, this.#ring.length * 2));
      for (let i = 0; i < this.#count; i++) grown[i] = this.#ring[(this.#head + i) % this.#ring.length];
      this.#ring = grown;
      this.#head = 0;
    }
    this.#ring[(this.#head + this.#count) % this.#ring.length] = value;
    this.#count++;
  }

  /** @internal Takes a value now: from the buffer (refilled from a waiting sender) or a waiting sender. */
  take(): T | typeof EMPTY | typeof CLOSED {
    if (this.#count > 0) {
      const value = this.#ring[this.#head] as T;
      this.#ring[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.#ring.length;
      this.#count--;
      const sender = this.sendq.shift();
      if (sender !== undefined) {
        this.#push(sender.payload);
        sender.waiter.complete(sender.index);
      }
      return value;
    }
    const sender = this.sendq.shift();
    if (sender !== undefined) {
      sender.waiter.complete(sender.index);
      return sender.payload;
    }
    return this.#closed ? CLOSED : EMPTY;
  }

  private recvOrClosed(timeout: number): T | typeof CLOSED {
    const now = this.take();
    if (now !== EMPTY) return now;
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.recv()`);
    const waiter = waitInQueue(self, `${this.#name}.recv()`, {
      queue: this.recvq,
      payload: undefined,
      waitingOn: `recv(${this.#name})`,
      timeoutMs: timeout,
      interruptible: true,
    });
    return waiter.closed ? CLOSED : (waiter.value as T);
  }
}

/** `select` case: receive from a channel. Fires with `ok: false` once the channel is closed and drained. */
export class RecvCase<T> extends SelectCase {
  constructor(readonly channel: Channel<T>) {
    super();
  }
  poll(): CaseResult | typeof NOT_READY {
    const value = this.channel.take();
    if (value === EMPTY) return NOT_READY;
    return value === CLOSED ? { value: undefined, ok: false } : { value, ok: true };
  }
  register(waiter: Waiter, index: number): () => void {
    const entry = this.channel.recvq.push(new Entry(waiter, index, undefined));
    return () => this.channel.recvq.remove(entry);
  }
  resultOf(waiter: Waiter): CaseResult {
    return waiter.closed ? { value: undefined, ok: false } : { value: waiter.value, ok: true };
  }
  describe(): string {
    return `recv(${this.channel.name})`;
  }
}

/** `select` case: send a value on a channel. Throws `ChannelClosedError` from `select` if it is closed. */
export class SendCase<T> extends SelectCase {
  constructor(
    readonly channel: Channel<T>,
    readonly value: T,
  ) {
    super();
  }
  poll(): CaseResult | typeof NOT_READY {
    return this.channel.offer(this.value) ? { value: undefined, ok: true } : NOT_READY;
  }
  register(waiter: Waiter, index: number): () => void {
    const entry = this.channel.sendq.push(new Entry(waiter, index, this.value));
    return () => this.channel.sendq.remove(entry);
  }
  resultOf(waiter: Waiter): CaseResult {
    if (waiter.closed) throw new ChannelClosedError(this.channel.name);
    return { value: undefined, ok: true };
  }
  describe(): string {
    return `send(${this.channel.name})`;
  }
}

