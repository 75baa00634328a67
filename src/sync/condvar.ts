/**
 * Condition variables: wait for a state change under a Mutex.
 * @packageDocumentation
 */
import { FiberStateError, NotInFiberError, TimeoutError, invalidArg, outOfRange } from '../errors.js';
import { type FiberRecord, checkInterruptOf, currentRecord } from '../runtime.js';
import { Mutex } from './mutex.js';
import { LOOP, currentOwner, objectName } from './owner.js';
import { Entry, WaitQueue, Waiter, asyncWaiter, blockOn } from './waiters.js';

function mutexArg(mutex: unknown): Mutex {
  if (!(mutex instanceof Mutex)) throw invalidArg('mutex', 'a Mutex or RecursiveMutex', mutex);
  return mutex;
}

function predicateArg(predicate: unknown): (() => boolean) | undefined {
  if (predicate !== undefined && typeof predicate !== 'function') throw invalidArg('predicate', 'of type function', predicate);
  return predicate as (() => boolean) | undefined;
}

/** A deadline (performance.now() based) `ms` from now; Infinity for `ms = Infinity`. */
function deadlineArg(ms: unknown): number {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw invalidArg('ms', 'a number', ms);
  if (ms < 0) throw outOfRange('ms', '>= 0', ms);
  return performance.now() + ms;
}

/** What is left until `deadline`, as blockOn and asyncWaiter take it (-1: no timeout). */
function remaining(deadline: number): number {
  return deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
}

/**
 * A condition variable for fibers and async functions: `wait` releases the mutex, suspends until a
 * `notifyOne`/`notifyAll`, then takes the mutex again before returning. Waiters are woken in arrival
 * order. A wait never returns without a notification (no spurious wake-ups), but a notification only
 * says "look again": pass a `predicate` (or loop) to wait for a condition.
 *
 * The mutex must be held exactly once by the caller: a RecursiveMutex held more than once is
 * refused (`FiberStateError`) rather than released all the way, since the outer holders would see
 * their invariants broken while they think they hold the lock.
 */
export class ConditionVariable {
  readonly #waiters = new WaitQueue<undefined>();
  readonly #name: string;

  constructor(name?: string) {
    this.#name = name ?? objectName('ConditionVariable');
  }

  /** @internal For deadlock reports. */
  get name(): string {
    return this.#name;
  }

  /**
   * Releases `mutex`, suspends the running fiber until notified, then relocks `mutex`. With a
   * `predicate`, returns at once if it holds, and otherwise waits until a notification finds it true
   * (it is called with the mutex held). An interruption point each time it is about to wait (a pending
   * interruption then throws before the mutex is released). The mutex is relocked before it returns
   * or throws (that relock is not an interruption point); a notification that arrives with an
   * interruption wins, and the interruption waits for the next interruption point.
   * @throws NotInFiberError outside fibers (use `waitAsync`); FiberStateError unless the fiber holds
   *   `mutex` exactly once; FiberInterruptedError when interrupted; whatever `predicate` throws.
   */
  wait(mutex: Mutex, predicate?: () => boolean): void {
    this.#waitUntil(mutexArg(mutex), Infinity, predicateArg(predicate), 'wait()');
  }

  /**
   * `wait` with a timeout of `ms` milliseconds (Infinity: none). Without a predicate, returns false if
   * the time elapsed before a notification; with one, returns the predicate's final value (checked
   * once more after the timeout). Suspends, relocks and throws as `wait` does (a timeout is a return
   * value, never a TimeoutError).
   * @throws TypeError / RangeError for a bad `ms`.
   */
  waitFor(mutex: Mutex, ms: number, predicate?: () => boolean): boolean {
    const m = mutexArg(mutex);
    return this.#waitUntil(m, deadlineArg(ms), predicateArg(predicate), 'waitFor()');
  }

  /**
   * The async twin of `wait`, for code outside fibers that holds `mutex` through `lockAsync`:
   * releases it, resolves once notified and the mutex is held again (by code outside fibers). With a
   * `predicate`, as `wait`. Not interruptible (no fiber waits).
   * @throws FiberStateError (synchronously) inside a fiber, or unless code outside fibers holds `mutex`
   *   exactly once. The promise rejects with whatever `predicate` throws (the mutex held again).
   */
  waitAsync(mutex: Mutex, predicate?: () => boolean): Promise<void> {
    const m = mutexArg(mutex);
    const pred = predicateArg(predicate);
    this.#checkAsyncCaller(m, 'waitAsync()');
    return this.#waitUntilAsync(m, Infinity, pred).then(() => undefined);
  }

  /**
   * The async twin of `waitFor`: resolves to false on timeout without a predicate, or to the
   * predicate's final value with one. As `waitAsync` otherwise.
   * @throws TypeError / RangeError for a bad `ms`; FiberStateError as `waitAsync`.
   */
  waitForAsync(mutex: Mutex, ms: number, predicate?: () => boolean): Promise<boolean> {
    const m = mutexArg(mutex);
    const deadline = deadlineArg(ms);
    const pred = predicateArg(predicate);
    this.#checkAsyncCaller(m, 'waitForAsync()');
    return this.#waitUntilAsync(m, deadline, pred);
  }

  /** Wakes the longest-waiting waiter, if any. Never suspends; the mutex need not be held. */
  notifyOne(): void {
    this.#waiters.shift()?.waiter.complete(0);
  }

  /** Wakes every current waiter (in arrival order). Never suspends; the mutex need not be held. */
  notifyAll(): void {
    this.#waiters.completeAll();
  }

  #checkAsyncCaller(mutex: Mutex, operation: string): void {
    if (currentOwner() !== LOOP) {
      throw new FiberStateError(`${this.#name}.${operation} is for code outside fibers (fibers use ${operation.replace('Async', '')})`);
    }
    this.#checkHeld(mutex, operation);
  }

  #checkHeld(mutex: Mutex, operation: string): void {
    if (mutex.owner_ !== currentOwner()) throw new FiberStateError(`${this.#name}.${operation} needs ${mutex.name} held by the caller`);
    if (mutex.depth_ !== 1) throw new FiberStateError(`${this.#name}.${operation} needs ${mutex.name} held once, not ${mutex.depth_} times`);
  }

  /** Waits (with or without predicate) until `deadline`; false on timeout (the predicate's value). */
  #waitUntil(mutex: Mutex, deadline: number, predicate: (() => boolean) | undefined, operation: string): boolean {
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.${operation}`);
    this.#checkHeld(mutex, operation);
    if (predicate === undefined) return this.#waitOnce(self, mutex, deadline);
    while (!predicate()) {
      if (!this.#waitOnce(self, mutex, deadline)) return predicate();
    }
    return true;
  }

  /** One wait for a notification, the mutex released meanwhile; false if `deadline` came first. */
  #waitOnce(self: FiberRecord, mutex: Mutex, deadline: number): boolean {
    checkInterruptOf(self);
    const waiter = Waiter.forFiber(self);
    const entry = this.#waiters.push(new Entry<undefined>(waiter, 0, undefined));
    mutex.unlock();
    try {
      // No blockers: a condition variable has no owner that could be waited for.
      return blockOn(self, waiter, `wait(${this.#name})`, remaining(deadline), true);
    } finally {
      if (!waiter.done) this.#waiters.remove(entry);
      mutex.lock();
    }
  }

  async #waitUntilAsync(mutex: Mutex, deadline: number, predicate: (() => boolean) | undefined): Promise<boolean> {
    if (predicate === undefined) return this.#waitOnceAsync(mutex, deadline);
    while (!predicate()) {
      if (!(await this.#waitOnceAsync(mutex, deadline))) return predicate();
    }
    return true;
  }

  async #waitOnceAsync(mutex: Mutex, deadline: number): Promise<boolean> {
    let entry: Entry<undefined> | undefined;
    const { waiter, done } = asyncWaiter(`${this.#name}.waitAsync()`, remaining(deadline), () => this.#waiters.remove(entry!));
    entry = this.#waiters.push(new Entry<undefined>(waiter, 0, undefined));
    mutex.unlock();
    try {
      await done;
      return true;
    } catch (error) {
      if (error instanceof TimeoutError) return false;
      throw error;
    } finally {
      await mutex.lockAsync();
    }
  }
}
