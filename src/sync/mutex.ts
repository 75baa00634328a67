/**
 * Mutual exclusion: Mutex and RecursiveMutex.
 * @packageDocumentation
 */
import { FiberStateError, NotInFiberError } from '../errors.js';
import { type Fiber } from '../fiber.js';
import { timeoutOption } from '../options.js';
import { type FiberRecord, currentRecord } from '../runtime.js';
import { LOOP, type Owner, currentOwner, fiberOwners, objectName, ownerFiber } from './owner.js';
import { Entry, WaitQueue, asyncWaiter, waitInQueue } from './waiters.js';

/** Options of the blocking lock calls. */
export interface LockOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

/** What `guard()` returns: unlocks once, on `unlock()` or at the end of a `using` block. */
export interface LockGuard extends Disposable {
  unlock(): void;
}

/** @internal A guard that calls `release` once, on `unlock()` or disposal. */
export function lockGuard(release: () => void): LockGuard {
  let held = true;
  const unlock = () => {
    if (!held) return;
    held = false;
    release();
  };
  return { unlock, [Symbol.dispose]: unlock };
}

function label(owner: Owner): string {
  return owner === LOOP ? (owner as typeof LOOP).label : `fiber ${(owner as FiberRecord).label}`;
}

/**
 * A fiber mutex with FIFO hand-off: `unlock` gives the lock to the first waiter, so a fiber that
 * unlocks and relocks at once cannot starve it. Fibers and async functions (through `lockAsync`) can
 * share one mutex; code outside fibers counts as one owner. An uncontended lock/unlock never leaves
 * JavaScript.
 */
export class Mutex {
  /** @internal */ owner_: Owner | undefined = undefined;
  /** @internal */ depth_ = 0;
  readonly #waiters = new WaitQueue<Owner>();
  readonly #name: string;

  constructor(name?: string) {
    this.#name = name ?? objectName(this.constructor.name);
  }

  /** Whether some fiber (or code outside fibers) holds it. */
  get locked(): boolean {
    return this.owner_ !== undefined;
  }

  /** The fiber holding it; undefined when unlocked or held by code outside fibers. */
  get owner(): Fiber<unknown> | undefined {
    return ownerFiber(this.owner_);
  }

  /** @internal For deadlock reports. */
  get name(): string {
    return this.#name;
  }

  /**
   * Takes the lock, suspending the running fiber while another holds it. Not an interruption point
   * (an interruption waits for the next one).
   * @throws NotInFiberError outside fibers (use `lockAsync`); FiberStateError when the fiber already
   *   holds it; TimeoutError when `timeout` elapses first.
   */
  lock(opts?: LockOptions): void {
    const timeout = timeoutOption(opts);
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.lock()`);
    if (this.#enter(self)) return;
    waitInQueue<Owner>(self, `${this.#name}.lock()`, {
      queue: this.#waiters,
      payload: self,
      waitingOn: `lock(${this.#name})`,
      timeoutMs: timeout,
      interruptible: false,
      blockers: () => fiberOwners(this.owner_),
    });
  }

  /**
   * Takes the lock if it is free; never suspends. Works outside fibers too (where it is false while
   * code outside fibers holds it: async callers share one identity).
   * @throws FiberStateError when the calling fiber already holds a (non-recursive) Mutex.
   */
  tryLock(): boolean {
    const who = currentOwner();
    // Code outside fibers is one identity for many async callers: one of them cannot relock.
    if (who === LOOP && this.owner_ === LOOP) return false;
    return this.#enter(who);
  }

  /**
   * The async twin of `lock`, for code outside fibers: resolves when the lock is held (by "code outside
   * fibers", which then unlocks with `unlock()` from outside fibers). Async callers share that one
   * identity, so a lock they hold is never relocked here: the call queues behind it (for a
   * RecursiveMutex too).
   */
  lockAsync(opts?: LockOptions): Promise<void> {
    const timeout = timeoutOption(opts);
    if (this.owner_ === undefined && this.#enter(LOOP)) return Promise.resolve();
    let entry: Entry<Owner> | undefined;
    const { waiter, done } = asyncWaiter(`${this.#name}.lockAsync()`, timeout, () => this.#waiters.remove(entry!));
    entry = this.#waiters.push(new Entry<Owner>(waiter, 0, LOOP));
    return done.then(() => undefined);
  }

  /**
   * Releases the lock, handing it to the first waiter if there is one. Never suspends.
   * @throws FiberStateError when unlocked, or held by someone else.
   */
  unlock(): void {
    const self = currentOwner();
    if (this.owner_ === undefined) throw new FiberStateError(`${this.#name} is not locked`);
    if (this.owner_ !== self) throw new FiberStateError(`${this.#name} is held by ${label(this.owner_)}, not by ${label(self)}`);
    if (--this.depth_ > 0) return;
    const next = this.#waiters.shift();
    if (next === undefined) {
      this.owner_ = undefined;
      return;
    }
    this.owner_ = next.payload;
    this.depth_ = 1;
    next.waiter.complete(0);
  }

  /** Runs `fn` holding the lock (`lock`, then `unlock` in a finally). Suspends as `lock` does. */
  withLock<R>(fn: () => R): R {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }

  /** Locks and returns a guard for `using`: `using g = mutex.guard();`. Suspends as `lock` does. */
  guard(opts?: LockOptions): LockGuard {
    this.lock(opts);
    return lockGuard(() => this.unlock());
  }

  /** Takes the lock for `who` if that needs no wait. */
  #enter(who: Owner): boolean {
    if (this.owner_ === undefined) {
      this.owner_ = who;
      this.depth_ = 1;
      return true;
    }
    if (this.owner_ === who) return this.relock(who);
    return false;
  }

  /** @internal The owner locks again: an error for a Mutex, a deeper hold for a RecursiveMutex. */
  protected relock(who: Owner): boolean {
    throw new FiberStateError(`${this.#name} is already held by ${label(who)} (use RecursiveMutex to relock)`);
  }
}

/** A Mutex its owner may lock again; it is released when unlocked as many times as locked. */
export class RecursiveMutex extends Mutex {
  protected override relock(): boolean {
    this.depth_++;
    return true;
  }
}
