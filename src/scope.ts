/**
 * Structured concurrency: a scope whose children all finish before it returns.
 * @packageDocumentation
 */
import { FiberInterruptedError, FiberStateError } from './errors.js';
import { Fiber, type SpawnOptions, newRecord } from './fiber.js';
import { native } from './native.js';
import { FiberRecord, awaitDone, interruptRecord, onDone, requireCurrent } from './runtime.js';

/** The handle `scope(fn)` passes to `fn`: spawn children that the scope waits for. */
export class Scope {
  readonly #children: FiberRecord[] = [];
  #failure: { error: unknown } | undefined;
  #closed = false;

  /** @internal */
  constructor() {}

  /**
   * Spawns a child of this scope (as {@link spawn} does). The scope observes its outcome: a child's
   * error interrupts its siblings and is rethrown by `scope` once all are done.
   * @throws FiberStateError once the scope has finished.
   */
  spawn<T>(fn: () => T, opts?: SpawnOptions): Fiber<T> {
    if (this.#closed) throw new FiberStateError('this scope has finished: it cannot spawn any more');
    const rec = newRecord(fn, opts, 'fiber');
    rec.observed = true;
    onDone(rec, () => {
      const outcome = rec.outcome!;
      if (!outcome.ok && !rec.interruptionCaught) this.fail(outcome.error);
    });
    this.#children.push(rec);
    const fiber = new Fiber<T>(rec);
    native.spawn(rec.handle);
    return fiber;
  }

  /** @internal Records the first failure and interrupts every child. */
  fail(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = { error };
    for (const child of this.#children) interruptRecord(child, error);
  }

  /** @internal Waits for every child (interrupting them if the waiting fiber is interrupted). */
  close(self: FiberRecord): void {
    for (let i = 0; i < this.#children.length; i++) {
      const child = this.#children[i];
      try {
        awaitDone(self, child, -1, this.#failure === undefined);
      } catch (error) {
        // The scope's own fiber was interrupted (or deadlocked): pass it on to the children and keep
        // waiting, since no child may outlive its scope.
        this.fail(error);
        i--;
      }
    }
    this.#closed = true;
  }

  /** @internal */
  get failure(): { error: unknown } | undefined {
    return this.#failure;
  }
}

/**
 * Runs `fn(s)` in the calling fiber; children spawned with `s.spawn` run concurrently. Returns `fn`'s
 * value once every child is done. The first error (from `fn` or a child, not counting children that
 * died of the interruption it caused) interrupts the others and is rethrown after they finish. An
 * interruption point: interrupting the calling fiber interrupts the children.
 * @throws NotInFiberError outside a fiber.
 */
export function scope<R>(fn: (s: Scope) => R): R {
  const self = requireCurrent('scope()');
  const s = new Scope();
  let value: R | undefined;
  try {
    value = fn(s);
  } catch (error) {
    s.fail(error);
  }
  s.close(self);
  const failure = s.failure;
  if (failure !== undefined) throw failure.error;
  if (self.interrupted && self.noInterrupt === 0) throw new FiberInterruptedError(self.interruptReason);
  return value as R;
}
