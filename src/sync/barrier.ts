/**
 * Barrier: a meeting point for a fixed number of fibers.
 * @packageDocumentation
 */
import { NotInFiberError } from '../errors.js';
import { countArg, timeoutOption } from '../options.js';
import { currentRecord } from '../runtime.js';
import { objectName } from './owner.js';
import { WaitQueue, waitForRelease, waitForReleaseAsync } from './waiters.js';

/** Options of `Barrier.wait`. */
export interface BarrierWaitOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

/**
 * A reusable barrier for `n` parties, as Boost.Fiber's `barrier`: each `wait` suspends until `n`
 * parties have arrived; the last to arrive releases the others and starts a new generation at once,
 * so the same barrier can be waited on again in a loop.
 *
 * A party that stops waiting (interrupted, timed out) withdraws its arrival: the generation then needs
 * one more arrival, and the others keep waiting. Nobody else sees an error (there is no "broken"
 * state, unlike Java's `CyclicBarrier`): another party, or the same one after handling its
 * interruption, can take its place. Fibers and async functions (through `waitAsync`) can share one
 * barrier.
 */
export class Barrier {
  readonly #parties: number;
  /** The parties of the current generation that have arrived and wait. */
  readonly #waiters = new WaitQueue<void>();
  readonly #name: string;

  /**
   * @param n The number of parties per generation.
   * @throws TypeError / RangeError naming `n` unless it is an integer >= 1.
   */
  constructor(n: number, name?: string) {
    this.#parties = countArg(n, 'n', 1);
    this.#name = name ?? objectName(this.constructor.name);
  }

  /** The number of parties per generation. */
  get parties(): number {
    return this.#parties;
  }

  /** How many parties of the current generation have arrived and wait. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** @internal For deadlock reports. */
  get name(): string {
    return this.#name;
  }

  /**
   * Arrives at the barrier and suspends the running fiber until `n` parties of this generation have
   * arrived. Returns true in exactly one party per generation (the last to arrive, which does not
   * suspend: the "serial" one, like `PTHREAD_BARRIER_SERIAL_THREAD`) and false in the others.
   * An interruption point when it has to wait: an interrupted wait withdraws its arrival and throws
   * `FiberInterruptedError`, unless the generation completed at the same moment (then it returns false
   * and the interruption waits for the next interruption point).
   * @throws NotInFiberError outside fibers (use `waitAsync`); TimeoutError (the arrival withdrawn) when
   *   `timeout` elapses first.
   */
  wait(opts?: BarrierWaitOptions): boolean {
    const timeout = timeoutOption(opts);
    const self = currentRecord();
    if (self === undefined) throw new NotInFiberError(`${this.#name}.wait()`);
    if (this.#trip()) return true;
    waitForRelease(self, this.#name, this.#waiters, timeout);
    return false;
  }

  /**
   * The async twin of `wait`, for code outside fibers: an async caller counts as one party. Resolves
   * with true for the serial party (when the async caller arrives last, at once) and false for the
   * others; rejects with TimeoutError (the arrival withdrawn) when `timeout` elapses first.
   */
  waitAsync(opts?: BarrierWaitOptions): Promise<boolean> {
    const timeout = timeoutOption(opts);
    if (this.#trip()) return Promise.resolve(true);
    return waitForReleaseAsync(this.#name, this.#waiters, timeout, false);
  }

  /** If the caller is the last party, releases the others (a new generation starts) and returns true. */
  #trip(): boolean {
    if (this.#waiters.size + 1 < this.#parties) return false;
    this.#waiters.completeAll();
    return true;
  }
}
