/**
 * Reader-writer locks.
 * @packageDocumentation
 */
import { FiberStateError, NotInFiberError } from '../errors.js';
import { type Fiber } from '../fiber.js';
import { timeoutOption } from '../options.js';
import { type FiberRecord, currentRecord } from '../runtime.js';
import { type LockGuard, type LockOptions, lockGuard } from './mutex.js';
import { LOOP, type Owner, currentOwner, fiberOwners, objectName, ownerFiber } from './owner.js';
import { Entry, WaitQueue, asyncWaiter, waitInQueue } from './waiters.js';

type Mode = 'read' | 'write';

/** What a queued caller wants. */
interface Request {
  readonly owner: Owner;
  readonly mode: Mode;
}

function label(owner: Owner): string {
  return owner === LOOP ? (owner as typeof LOOP).label : `fiber ${(owner as FiberRecord).label}`;
}

/**
 * A reader-writer lock: many readers at once, or one writer. Fair and FIFO: a waiting writer holds
 * back readers that come after it (so writers are never starved), and when the lock is released the
 * readers at the head of the queue are admitted together. Fibers and async functions (through the
 * `...Async` twins) can share one lock; code outside fibers counts as one owner, whose read holds may
 * overlap (several async readers) and whose further requests queue rather than count as relocks.
 * Uncontended calls never leave JavaScript.
 */
export class RWLock {
  #writer: Owner | undefined = undefined;
  /** Read holds by owner (a fiber holds at most one; code outside fibers may hold several). */
  readonly #readers = new Map<Owner, number>();
  #readCount = 0;
  readonly #waiters = new WaitQueue<Request>();
  readonly #name: string;

  constructor(name?: string) {
    this.#name = name ?? objectName('RWLock');
  }

  /** @internal For deadlock reports. */
  get name(): string {
    return this.#name;
  }

  /** The number of read holds (0 when unlocked or write-locked). */
  get readers(): number {
    return this.#readCount;
  }

  /** Whether a writer holds it. */
  get writeLocked(): boolean {
    return this.#writer !== undefined;
  }

  /** The fiber holding the write lock; undefined when there is none or code outside fibers holds it. */
  get writer(): Fiber<unknown> | undefined {
    return ownerFiber(this.#writer);
  }

  /**
   * Takes a read lock, suspending the running fiber while a writer holds the lock or waits for it.
   * Not an interruption point (an interruption waits for the next one).
   * @throws NotInFiberError outside fibers (use `readLockAsync`); FiberStateError when the fiber
   *   already holds it (read or write); TimeoutError when `timeout` elapses first.
   */
  readLock(opts?: LockOptions): void {
    this.#lock('read', opts, 'readLock');
  }

  /**
   * Takes the write lock, suspending the running fiber while anyone holds the lock or waits ahead of
   * it. Not an interruption point.
   * @throws NotInFiberError outside fibers (use `writeLockAsync`); FiberStateError when the fiber
   *   already holds it (read or write: no upgrade); TimeoutError when `timeout` elapses first.
   */
  writeLock(opts?: LockOptions): void {
    this.#lock('write', opts, 'writeLock');
  }

  /**
   * Takes a read lock if that needs no wait (no writer holds it or waits for it); never suspends.
   * Works outside fibers too.
   * @throws FiberStateError when the running fiber already holds it.
   */
  tryReadLock(): boolean {
    const who = currentOwner();
    this.#checkRelock(who);
    return this.#tryEnter(who, 'read');
  }

  /**
   * Takes the write lock if it is free and nobody waits; never suspends. Works outside fibers too.
   * @throws FiberStateError when the running fiber already holds it.
   */
  tryWriteLock(): boolean {
    const who = currentOwner();
    this.#checkRelock(who);
    return this.#tryEnter(who, 'write');
  }

  /**
   * The async twin of `readLock`, for code outside fibers: resolves when a read lock is held (by code
   * outside fibers, which then unlocks with `unlock()` from outside fibers).
   * @throws RangeError / TypeError for a bad timeout; the promise rejects with TimeoutError.
   */
  readLockAsync(opts?: LockOptions): Promise<void> {
    return this.#lockAsync('read', opts, 'readLockAsync');
  }

  /** The async twin of `writeLock`; as `readLockAsync` otherwise. */
  writeLockAsync(opts?: LockOptions): Promise<void> {
    return this.#lockAsync('write', opts, 'writeLockAsync');
  }

  /**
   * Releases the caller's hold, read or write, admitting the waiters at the head of the queue that
   * can now enter. Never suspends.
   * @throws FiberStateError when the caller holds no lock on it.
   */
  unlock(): void {
    const who = currentOwner();
    if (this.#writer === who) {
      this.#writer = undefined;
    } else {
      const held = this.#readers.get(who);
      if (held === undefined) {
        const state = this.#writer !== undefined ? `write-locked by ${label(this.#writer)}` : this.#readCount > 0 ? 'read-locked by others' : 'not locked';
        throw new FiberStateError(`${this.#name} is ${state}, not by ${label(who)}`);
      }
      if (held === 1) this.#readers.delete(who);
      else this.#readers.set(who, held - 1);
      this.#readCount--;
    }
    this.#dispatch();
  }

  /** `readLock`, then a guard for `using`: `using g = rw.readGuard();`. Suspends as `readLock` does. */
  readGuard(opts?: LockOptions): LockGuard {
    this.readLock(opts);
    return lockGuard(() => this.unlock());
  }

  /** `writeLock`, then a guard for `using`: `using g = rw.writeGuard();`. Suspends as `writeLock` does. */
  writeGuard(opts?: LockOptions): LockGuard {
    this.writeLock(opts);
    return lockGuard(() => this.unlock());
  }

  #lock(mode: Mode, opts: LockOptions | undefined, operation: string): void {
    const timeout = timeoutOption(opts);
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.${operation}()`);
    this.#checkRelock(self);
    if (this.#tryEnter(self, mode)) return;
    waitInQueue<Request>(self, `${this.#name}.${operation}()`, {
      queue: this.#waiters,
      payload: { owner: self, mode },
      waitingOn: `${operation}(${this.#name})`,
      timeoutMs: timeout,
      interruptible: false,
      blockers: () => this.#holders(),
      withdraw: (entry) => this.#cancel(entry),
    });
  }

  #lockAsync(mode: Mode, opts: LockOptions | undefined, operation: string): Promise<void> {
    const timeout = timeoutOption(opts);
    if (this.#tryEnter(LOOP, mode)) return Promise.resolve();
    let entry: Entry<Request> | undefined;
    const { waiter, done } = asyncWaiter(`${this.#name}.${operation}()`, timeout, () => this.#cancel(entry!));
    entry = this.#waiters.push(new Entry<Request>(waiter, 0, { owner: LOOP, mode }));
    return done.then(() => undefined);
  }

  /** A fiber that holds the lock in any mode may not ask again (code outside fibers may: it queues). */
  #checkRelock(who: Owner): void {
    if (who === LOOP) return;
    if (this.#writer === who) throw new FiberStateError(`${this.#name} is already write-locked by ${label(who)}`);
    if (this.#readers.has(who)) throw new FiberStateError(`${this.#name} is already read-locked by ${label(who)}`);
  }

  /** Takes the lock for `who` if that needs no wait and jumps no queue. */
  #tryEnter(who: Owner, mode: Mode): boolean {
    if (this.#writer !== undefined || this.#waiters.first() !== undefined) return false;
    if (mode === 'write' && this.#readCount > 0) return false;
    this.#grant(who, mode);
    return true;
  }

  #grant(who: Owner, mode: Mode): void {
    if (mode === 'write') {
      this.#writer = who;
      return;
    }
    this.#readers.set(who, (this.#readers.get(who) ?? 0) + 1);
    this.#readCount++;
  }

  /** Admits waiters from the head of the queue while they can enter: one writer, or a run of readers. */
  #dispatch(): void {
    for (let entry = this.#waiters.first(); entry !== undefined; entry = this.#waiters.first()) {
      const { owner, mode } = entry.payload;
      if (this.#writer !== undefined || (mode === 'write' && this.#readCount > 0)) return;
      this.#waiters.remove(entry);
      this.#grant(owner, mode);
      entry.waiter.complete(0);
      if (mode === 'write') return;
    }
  }

  /** Withdraws a waiter that gave up; a writer leaving the head may let the readers behind it in. */
  #cancel(entry: Entry<Request>): void {
    this.#waiters.remove(entry);
    this.#dispatch();
  }

  /** The fibers holding the lock, for deadlock reports. */
  #holders(): FiberRecord[] {
    return fiberOwners(this.#writer, ...this.#readers.keys());
  }
}
