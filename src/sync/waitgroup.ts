/**
 * WaitGroup: wait for a collection of tasks to finish.
 * @packageDocumentation
 */
import { FiberStateError, NotInFiberError, invalidArg, outOfRange } from '../errors.js';
import { timeoutOption } from '../options.js';
import { currentRecord } from '../runtime.js';
import { objectName } from './owner.js';
import { WaitQueue, waitForRelease, waitForReleaseAsync } from './waiters.js';

/** Options of `WaitGroup.wait`. */
export interface WaitGroupWaitOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

/**
 * A counter of outstanding tasks, as Go's `sync.WaitGroup`: `add` before starting tasks, `done` as
 * each finishes, `wait` until the counter is zero. When it reaches zero every current waiter is
 * released; a later `add` starts a new round that later waiters wait for. Fibers and async functions
 * (through `waitAsync`) can share one group.
 */
export class WaitGroup {
  #count = 0;
  readonly #waiters = new WaitQueue<void>();
  readonly #name: string;

  constructor(name?: string) {
    this.#name = name ?? objectName(this.constructor.name);
  }

  /** The current value of the counter. */
  get count(): number {
    return this.#count;
  }

  /** @internal For deadlock reports. */
  get name(): string {
    return this.#name;
  }

  /**
   * Adds `n` (which may be negative, as in Go) to the counter; when it reaches zero, releases every
   * waiter. Never suspends; works outside fibers too.
   * @throws TypeError / RangeError naming `n` unless it is an integer; FiberStateError when the counter
   *   would go below zero (it is then left unchanged).
   */
  add(n = 1): void {
    if (typeof n !== 'number') throw invalidArg('n', 'of type number', n);
    if (!Number.isInteger(n)) throw outOfRange('n', 'an integer', n);
    this.#change(n, () => `${this.#name}.add(${n}) would take the counter below zero (it is ${this.#count})`);
  }

  /**
   * Subtracts one from the counter: `add(-1)`. Never suspends.
   * @throws FiberStateError when the counter is already zero (more `done` calls than added).
   */
  done(): void {
    this.#change(-1, () => `${this.#name}.done() called more times than added: the counter is already zero`);
  }

  /**
   * Suspends the running fiber until the counter is zero; returns at once if it is. An interruption
   * point when it has to wait (unless the counter reached zero at the same moment: then it returns
   * normally and the interruption waits for the next interruption point).
   * @throws NotInFiberError outside fibers (use `waitAsync`); TimeoutError when `timeout` elapses
   *   first.
   */
  wait(opts?: WaitGroupWaitOptions): void {
    const timeout = timeoutOption(opts);
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.wait()`);
    if (this.#count === 0) return;
    waitForRelease(self, this.#name, this.#waiters, timeout);
  }

  /**
   * The async twin of `wait`, for code outside fibers: resolves when the counter is zero; rejects with
   * TimeoutError when `timeout` elapses first.
   */
  waitAsync(opts?: WaitGroupWaitOptions): Promise<void> {
    const timeout = timeoutOption(opts);
    if (this.#count === 0) return Promise.resolve();
    return waitForReleaseAsync(this.#name, this.#waiters, timeout, undefined);
  }

  #change(delta: number, underflow: () => string): void {
    const next = this.#count + delta;
    if (next < 0) throw new FiberStateError(underflow());
    this.#count = next;
    if (next !== 0) return;
    this.#waiters.completeAll();
  }
}
