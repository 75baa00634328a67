/**
 * Counting semaphores.
 * @packageDocumentation
 */
import { NotInFiberError } from '../errors.js';
import { countArg, timeoutOption } from '../options.js';
import { currentRecord } from '../runtime.js';
import { objectName } from './owner.js';
import { Entry, WaitQueue, asyncWaiter, waitInQueue } from './waiters.js';

/** Options of the blocking acquire calls. */
export interface AcquireOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

/**
 * A counting semaphore with FIFO order: waiters are served strictly in arrival order, so a large
 * request at the head of the queue is never overtaken by smaller later ones (it cannot starve), and
 * `tryAcquire` does not barge ahead of anyone waiting. Permits are not owned: any fiber (or code outside
 * fibers) may release them, and `release` may raise the count above the initial `n`. Fibers and async
 * functions (through `acquireAsync`) can share one semaphore. Nothing here leaves JavaScript unless a
 * fiber has to suspend.
 */
export class Semaphore {
  #permits: number;
  /** Each entry's payload is the number of permits it wants. */
  readonly #waiters = new WaitQueue<number>();
  readonly #name: string;

  /**
   * @param n The initial number of permits.
   * @throws TypeError / RangeError naming `n` unless it is an integer >= 0.
   */
  constructor(n: number, name?: string) {
    this.#permits = countArg(n, 'n');
    this.#name = name ?? objectName(this.constructor.name);
  }

  /** The permits that are free right now. */
  get available(): number {
    return this.#permits;
  }

  /** @internal For deadlock reports. */
  get name(): string {
    return this.#name;
  }

  /**
   * Takes `k` permits, suspending the running fiber until they are free and every earlier waiter has
   * been served. An interruption point when it has to wait: an interrupted acquire throws
   * `FiberInterruptedError` having taken no permits, unless the permits were granted at the same moment
   * (then it returns normally and the interruption waits for the next interruption point).
   * @throws NotInFiberError outside fibers (use `acquireAsync`); TypeError / RangeError naming `k`
   *   unless it is an integer >= 1; TimeoutError (with no permits taken) when `timeout` elapses first.
   */
  acquire(k = 1, opts?: AcquireOptions): void {
    countArg(k, 'k', 1);
    const timeout = timeoutOption(opts);
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.acquire()`);
    if (this.#take(k)) return;
    waitInQueue(self, `${this.#name}.acquire(${k})`, {
      queue: this.#waiters,
      payload: k,
      waitingOn: `acquire(${this.#name})`,
      timeoutMs: timeout,
      interruptible: true,
      withdraw: (entry) => this.#withdraw(entry),
    });
  }

  /**
   * Takes `k` permits if they are free and nobody is waiting; never suspends. Works outside fibers too.
   * @throws TypeError / RangeError naming `k` unless it is an integer >= 1.
   */
  tryAcquire(k = 1): boolean {
    countArg(k, 'k', 1);
    return this.#take(k);
  }

  /**
   * The async twin of `acquire`, for code outside fibers: resolves once the `k` permits are taken, in
   * the same FIFO order as the fibers waiting. Rejects with TimeoutError (having taken nothing) when
   * `timeout` elapses first.
   * @throws TypeError / RangeError naming `k` or `opts.timeout` (synchronously).
   */
  acquireAsync(k = 1, opts?: AcquireOptions): Promise<void> {
    countArg(k, 'k', 1);
    const timeout = timeoutOption(opts);
    if (this.#take(k)) return Promise.resolve();
    let entry: Entry<number> | undefined;
    const { waiter, done } = asyncWaiter(`${this.#name}.acquireAsync(${k})`, timeout, () => this.#withdraw(entry!));
    entry = this.#waiters.push(new Entry(waiter, 0, k));
    return done.then(() => undefined);
  }

  /**
   * Returns `k` permits and hands them to the waiters at the head of the queue whose requests they now
   * cover. Never suspends; works outside fibers too.
   * @throws TypeError / RangeError naming `k` unless it is an integer >= 1.
   */
  release(k = 1): void {
    countArg(k, 'k', 1);
    this.#permits += k;
    this.#grant();
  }

  /** Takes `k` permits if that needs no wait (and overtakes nobody). */
  #take(k: number): boolean {
    if (this.#permits < k || this.#waiters.first() !== undefined) return false;
    this.#permits -= k;
    return true;
  }

  /** Serves the queue from its head while the free permits cover the head's request. */
  #grant(): void {
    for (let head = this.#waiters.first(); head !== undefined && head.payload <= this.#permits; head = this.#waiters.first()) {
      this.#waiters.remove(head);
      this.#permits -= head.payload;
      head.waiter.complete(0);
    }
  }

  /** A waiter gave up (timeout, interruption): the requests behind it may now be served. */
  #withdraw(entry: Entry<number>): void {
    this.#waiters.remove(entry);
    this.#grant();
  }
}
