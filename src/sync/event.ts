/**
 * Event: a flag that fibers can wait for.
 * @packageDocumentation
 */
import { NotInFiberError } from '../errors.js';
import { timeoutOption } from '../options.js';
import { currentRecord } from '../runtime.js';
import { objectName } from './owner.js';
import { Entry, WaitQueue, asyncWaiter, waitInQueue } from './waiters.js';

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
    for (let entry = this.#waiters.shift(); entry !== undefined; entry = this.#waiters.shift()) entry.waiter.complete(0);
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
    waitInQueue<void>(self, `${this.#name}.wait()`, {
      queue: this.#waiters,
      payload: undefined,
      waitingOn: `wait(${this.#name})`,
      timeoutMs: timeout,
      interruptible: true,
    });
  }

  /**
   * The async twin of `wait`, for code outside fibers: resolves when the flag is up; rejects with
   * TimeoutError when `timeout` elapses first.
   */
  waitAsync(opts?: EventWaitOptions): Promise<void> {
    const timeout = timeoutOption(opts);
    if (this.#set) return Promise.resolve();
    let entry: Entry<void> | undefined;
    const { waiter, done } = asyncWaiter(`${this.#name}.waitAsync()`, timeout, () => this.#waiters.remove(entry!));
    entry = this.#waiters.push(new Entry<void>(waiter, 0, undefined));
    return done.then(() => undefined);
  }
}
