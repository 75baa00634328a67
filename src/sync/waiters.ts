// Wait queues shared by every primitive: FIFO lists of waiters, where a waiter is a parked fiber or an
// async caller (a promise). A primitive completes a waiter (grants the lock, hands over a value) and
// wakes it; the waiter then finds its wait done. Completion always wins over a timeout or an
// interruption that arrives at the same time, so nothing granted or delivered is ever lost.
import { TimeoutError } from '../errors.js';
import { type FiberRecord, parkUntil, waker } from '../runtime.js';

/** One wait of one fiber or async caller. A select waits once on several queues (one entry each). */
export class Waiter {
  /** Set when a primitive completed this wait. */
  done = false;
  /** Which entry completed it (a select's case index; 0 for plain waits). */
  index = -1;
  /** The value handed over, if any. */
  value: unknown = undefined;
  /** Completed because the object was closed rather than by an operation. */
  closed = false;
  readonly #wake: () => void;

  constructor(
    /** The waiting fiber, or undefined for an async caller. */
    readonly fiber: FiberRecord | undefined,
    wake: () => void,
  ) {
    this.#wake = wake;
  }

  /** A waiter for the running fiber `self`. */
  static forFiber(self: FiberRecord): Waiter {
    return new Waiter(self, waker(self));
  }

  complete(index: number, value?: unknown, closed = false): void {
    this.done = true;
    this.index = index;
    this.value = value;
    this.closed = closed;
    this.#wake();
  }
}

/** One waiter's place in one queue; `payload` is what it brings (a value to send, permits wanted...). */
export class Entry<P = unknown> {
  prev: Entry<P> | undefined = undefined;
  next: Entry<P> | undefined = undefined;
  queue: WaitQueue<P> | undefined = undefined;
  constructor(
    readonly waiter: Waiter,
    readonly index: number,
    readonly payload: P,
  ) {}
}

/** A FIFO of entries with O(1) removal (for timeouts, interruptions and selects). */
export class WaitQueue<P = unknown> {
  #head: Entry<P> | undefined = undefined;
  #tail: Entry<P> | undefined = undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(entry: Entry<P>): Entry<P> {
    entry.queue = this;
    entry.prev = this.#tail;
    entry.next = undefined;
    if (this.#tail === undefined) this.#head = entry;
    else this.#tail.next = entry;
    this.#tail = entry;
    this.#size++;
    return entry;
  }

  remove(entry: Entry<P>): void {
    if (entry.queue !== this) return;
    if (entry.prev === undefined) this.#head = entry.next;
    else entry.prev.next = entry.next;
    if (entry.next === undefined) this.#tail = entry.prev;
    else entry.next.prev = entry.prev;
    entry.prev = entry.next = entry.queue = undefined;
    this.#size--;
  }

  /** The first entry whose waiter still waits (entries of waiters completed elsewhere are dropped). */
  first(): Entry<P> | undefined {
    let entry = this.#head;
    while (entry !== undefined && entry.waiter.done) {
      this.remove(entry);
      entry = this.#head;
    }
    return entry;
  }

  /** Completes every live entry's waiter, oldest first (a release of all waiters). */
  completeAll(): void {
    for (let entry = this.shift(); entry !== undefined; entry = this.shift()) entry.waiter.complete(0);
  }

  /** Removes and returns first(). */
  shift(): Entry<P> | undefined {
    const entry = this.first();
    if (entry !== undefined) this.remove(entry);
    return entry;
  }

  /** The live entries, oldest first. */
  *[Symbol.iterator](): IterableIterator<Entry<P>> {
    for (let entry = this.#head; entry !== undefined; entry = entry.next) if (!entry.waiter.done) yield entry;
  }
}

/**
 * Suspends the running fiber until `waiter` is completed or `timeoutMs` elapses (negative: never).
 * Returns false on timeout. A completed wait is reported completed even if an interruption or the
 * timeout came at the same moment (the interruption then stays pending for the next interruption
 * point). `blockers` names the fibers that could complete it, for deadlock reports.
 */
export function blockOn(
  self: FiberRecord,
  waiter: Waiter,
  operation: string,
  timeoutMs: number,
  interruptible: boolean,
  blockers?: () => Iterable<FiberRecord>,
): boolean {
  try {
    return parkUntil(self, waiter, operation, timeoutMs, interruptible, blockers);
  } catch (error) {
    if (waiter.done) return true;
    throw error;
  }
}

/** A fiber's place in one wait queue, as the primitives describe it to waitInQueue. */
export interface QueuedWait<P> {
  queue: WaitQueue<P>;
  /** What the waiter brings (a value to send, permits wanted...). */
  payload: P;
  /** What fibers() and deadlock reports show: "lock(Mutex #1)". */
  waitingOn: string;
  timeoutMs: number;
  interruptible: boolean;
  /** The fibers that could complete the wait, for deadlock reports. */
  blockers?: () => Iterable<FiberRecord>;
  /** How to leave the queue when giving up (default: just remove the entry). */
  withdraw?: (entry: Entry<P>) => void;
}

/**
 * Queues the running fiber `self` and suspends it until a primitive completes its entry (see
 * blockOn); on a timeout, an interruption or any other error the entry is withdrawn first.
 * @throws TimeoutError naming `operation` when `timeoutMs` elapses first.
 */
export function waitInQueue<P>(self: FiberRecord, operation: string, wait: QueuedWait<P>): Waiter {
  const waiter = Waiter.forFiber(self);
  const entry = wait.queue.push(new Entry(waiter, 0, wait.payload));
  try {
    if (!blockOn(self, waiter, wait.waitingOn, wait.timeoutMs, wait.interruptible, wait.blockers)) {
      throw new TimeoutError(operation, wait.timeoutMs);
    }
  } finally {
    if (!waiter.done) (wait.withdraw ?? ((e: Entry<P>) => wait.queue.remove(e)))(entry);
  }
  return waiter;
}

/**
 * The wait of Event, WaitGroup and Barrier: queues the running fiber `self` on `queue` until a release
 * completes it (`<name>.wait()` in a TimeoutError, `wait(<name>)` in fibers()). An interruption point.
 * @throws TimeoutError when `timeoutMs` elapses first.
 */
export function waitForRelease(self: FiberRecord, name: string, queue: WaitQueue<void>, timeoutMs: number): void {
  waitInQueue<void>(self, `${name}.wait()`, { queue, payload: undefined, waitingOn: `wait(${name})`, timeoutMs, interruptible: true });
}

/**
 * The async twin of waitForRelease: resolves with `value` once released; rejects with TimeoutError
 * (out of the queue) when `timeoutMs` elapses first.
 */
export function waitForReleaseAsync<T>(name: string, queue: WaitQueue<void>, timeoutMs: number, value: T): Promise<T> {
  let entry: Entry<void> | undefined;
  const { waiter, done } = asyncWaiter(`${name}.waitAsync()`, timeoutMs, () => queue.remove(entry!));
  entry = queue.push(new Entry<void>(waiter, 0, undefined));
  return done.then(() => value);
}

/**
 * The async twin of blockOn: a waiter for code outside fibers, and a promise that resolves when it is
 * completed or rejects with TimeoutError after `timeoutMs` (negative: never), calling `cancel` first.
 */
export function asyncWaiter(operation: string, timeoutMs: number, cancel: () => void): { waiter: Waiter; done: Promise<Waiter> } {
  let resolve!: (w: Waiter) => void;
  let reject!: (e: unknown) => void;
  const done = new Promise<Waiter>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  let timer: NodeJS.Timeout | undefined;
  const waiter = new Waiter(undefined, () => {
    if (timer !== undefined) clearTimeout(timer);
    resolve(waiter);
  });
  if (timeoutMs >= 0) {
    timer = setTimeout(() => {
      if (waiter.done) return;
      cancel();
      reject(new TimeoutError(operation, timeoutMs));
    }, timeoutMs);
  }
  return { waiter, done };
}
