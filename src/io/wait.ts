// Waiting on a libuv operation from a fiber. The native side starts the operation for the running
// fiber and, on completion (on the loop thread), records the result and wakes that fiber. This module
// parks until then, with the IO semantics every blocking call shares:
// - an interruption point: an interrupted wait cancels the operation and resumes only after the
//   cancellation completed; if the operation completed anyway, its result is returned and the
//   interruption stays pending for the next interruption point (delivered, or not at all);
// - `timeout` works the same way and throws TimeoutError when the operation was cancelled.
// The fiber never moves on while its operation is in flight, so no completion can wake it later.
import { SpindleError, TimeoutError } from '../errors.js';
import { type FiberRecord, park } from '../runtime.js';

/** An operation in flight, as the native side exposes it. */
export interface IoOperation {
  /** Whether libuv completed it (successfully, with an error, or cancelled). */
  done(): boolean;
  /** Asks libuv to cancel it; done() turns true once that took effect or the operation completed. */
  cancel(): void;
  /** Once done: whether it ended by cancellation (rather than completing). */
  cancelled(): boolean;
}

/** A native module's functions over its operations (napi_externals): dns and signals (fs has the same shape). */
export interface NativeIo<H> {
  done(op: H): boolean;
  cancel(op: H): void;
  cancelled(op: H): boolean;
}

/** An operation handle with its module's functions, as awaitIo waits on it. */
export class NativeOp<H> implements IoOperation {
  readonly handle: H;
  /** @throws ERR_FIBER_TERMINATING when `handle` is undefined: the environment could not make one (it is going away). */
  constructor(
    private readonly io: NativeIo<H>,
    handle: H | undefined,
  ) {
    if (handle === undefined) throw new SpindleError('ERR_FIBER_TERMINATING', 'the environment is shutting down: no more IO operations');
    this.handle = handle;
  }
  done(): boolean {
    return this.io.done(this.handle);
  }
  cancel(): void {
    this.io.cancel(this.handle);
  }
  cancelled(): boolean {
    return this.io.cancelled(this.handle);
  }
}

/**
 * Parks `self` until `op` is done (its result is then read from the native side). `waitingOn` is what
 * fibers() and deadlock reports show ("read(fd 12)"). An interruption (or DeadlockError) is rethrown
 * once the cancelled operation has settled, unless it completed after all.
 * @throws TimeoutError when `timeoutMs` (>= 0) elapsed and the operation was cancelled.
 */
export function awaitIo(self: FiberRecord, op: IoOperation, waitingOn: string, timeoutMs: number, operation: string): void {
  const deadline = timeoutMs >= 0 ? performance.now() + timeoutMs : Infinity;
  let failure: unknown;
  let timedOut = false;
  while (!op.done()) {
    const remaining = deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
    try {
      if (park(self, waitingOn, remaining, true) && !op.done()) timedOut = true;
    } catch (error) {
      failure = error;
    }
    if (timedOut || failure !== undefined) break;
  }
  settleIo(self, op, waitingOn, failure, timeoutMs, operation);
}

/**
 * The end of a wait on `op` that was cut short by `failure` (an interruption, a deadlock report) or,
 * when `failure` is undefined, by its timeout (`timeoutMs`): returns if the operation completed after
 * all (its result is delivered; an interruption stays pending), else cancels it, waits for the
 * cancellation to settle, and throws `failure` or a TimeoutError.
 */
export function settleIo(self: FiberRecord, op: IoOperation, waitingOn: string, failure: unknown, timeoutMs: number, operation: string): void {
  if (op.done()) return;  // completed, even if interrupted meanwhile: deliver it
  op.cancel();
  while (!op.done()) park(self, waitingOn, -1, false);
  if (!op.cancelled()) return;  // it completed before the cancellation took effect: deliver it
  if (failure !== undefined) throw failure;
  throw new TimeoutError(operation, timeoutMs);
}
