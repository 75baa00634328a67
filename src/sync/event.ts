/**
 * Event: a flag that fibers can wait for.
 * @packageDocumentation
 */
import { NotInFiberError } from '../errors.js';
import { timeoutOption } from '../options.js';
import { currentRecord } from '../runtime.js';
import { objectName } from './owner.js';
import { WaitQueue, waitForRelease, waitForReleaseAsync } from './waiters.js';

/** Options of `Event.wait`. */
export interface EventWaitOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

/**
 * A manual-reset event, as Python's `threading.Event`: `set` raises the flag and releases every waiter;
 * the flag stays up (later waits return at once) until `clear`. Fibers and async functions (through
 * `waitAsync`) can share one event.
 */
export class Event {
  #set = false;
  readonly #waiters = new WaitQueue<void>();
  readonly #name: string;

  constructor(name?: string) {
    this.#name = name ?? objectName(this.constructor.name);
  }

  /** Whether the flag is up. */
  get isSet(): boolean {
    return this.#set;
  }

  /** @internal For deadlock reports. */
  get name(): string {
    return this.#name;
  }

  /**
   * Raises the flag and releases every current waiter (they return even if `clear` follows at once).
   * Never suspends; works outside fibers too.
   */
  set(): void {
    this.#set = true;
    this.#waiters.completeAll();
  }

  /** Lowers the flag: later waits suspend until the next `set`. Never suspends. */
  clear(): void {
    this.#set = false;
  }

  /**
   * Suspends the running fiber until the flag is up; returns at once if it is. An interruption point
   * when it has to wait (unless `set` came at the same moment: then it returns normally and the
   * interruption waits for the next interruption point).
   * @throws NotInFiberError outside fibers (use `waitAsync`); TimeoutError when `timeout` elapses
   *   first.
   */
  wait(opts?: EventWaitOptions): void {
    const timeout = timeoutOption(opts);
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.wait()`);
    if (this.#set) return;
    waitForRelease(self, this.#name, this.#waiters, timeout);
  }

  /**
   * The async twin of `wait`, for code outside fibers: resolves when the flag is up; rejects with
   * TimeoutError when `timeout` elapses first.
   */
  waitAsync(opts?: EventWaitOptions): Promise<void> {
    const timeout = timeoutOption(opts);
    if (this.#set) return Promise.resolve();
    return waitForReleaseAsync(this.#name, this.#waiters, timeout, undefined);
  }
}
