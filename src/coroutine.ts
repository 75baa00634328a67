/**
 * The asymmetric coroutine primitive: resume a fiber from the caller until it suspends, with a value
 * in and a value out, or an error thrown into it. The `fibers`-compatible API is built on it.
 * @packageDocumentation
 */
import { FiberInterruptedError, FiberStateError, invalidArg } from './errors.js';
import { DEFAULT_STACK_SIZE, Fiber, type SpawnOptions, handleOf, holdHandle, newRecord, recordOf, releaseHandle, setCoroutineClass } from './fiber.js';
import { native } from './native.js';
import { type FiberRecord, NOTHING, type Outcome, createRecord, currentRecord, ensureNative, reportUnhandled, requireCurrent } from './runtime.js';

/** What {@link Coroutine.resume} returns: a value passed to {@link suspend}, or the final result. */
export type ResumeResult<Out, T> = { done: false; value: Out | undefined } | { done: true; value: T };

/**
 * A fiber driven by its caller: `resume(v)` runs it until it calls {@link suspend} (returning that
 * value), parks on a spindle primitive (the scheduler resumes it later; `resume` returns
 * `{ done: false, value: undefined }`), or finishes. Also a {@link Fiber}: it can be joined and
 * interrupted. Collected while it waits in {@link suspend}, it is interrupted there one event-loop turn
 * later, so that its `finally` blocks run and its stack (or carrier thread) is freed.
 */
export class Coroutine<T = unknown, In = unknown, Out = unknown> extends Fiber<T> {
  /**
   * Runs the coroutine until it next suspends, with `value` as the result of its pending
   * {@link suspend} (ignored on the first run). Suspends the caller meanwhile: callable from a fiber or
   * from code outside fibers. Not an interruption point.
   * @throws FiberStateError if the coroutine is running, waiting on the scheduler, or finished;
   *   the coroutine's error if it finishes by throwing; on the first resume, an Error with code
   *   `ERR_FIBER_RESOURCES` when the system refuses the fiber its stack or thread.
   */
  resume(value?: In): ResumeResult<Out, T> {
    return transferInto(this, value === undefined ? NOTHING : { ok: true, value });
  }

  /** Like {@link Coroutine.resume}, but its pending {@link suspend} throws `error`. */
  throwInto(error: unknown): ResumeResult<Out, T> {
    return transferInto(this, { ok: false, error });
  }

  /** Whether it has been resumed at least once. */
  get started(): boolean {
    return recordOf(this).status !== 'suspended' || recordOf(this).mode !== null;
  }
}
setCoroutineClass(Coroutine as new (rec: FiberRecord) => Fiber<unknown>, (rec) => {
  if (collectedSuspended.push(rec) === 1) setImmediate(unwindCollected);
});

// A coroutine whose handle was collected while it waited in suspend() can never be resumed: it is
// interrupted there instead, one event-loop turn after the collection (never from the GC's task), so
// that its finally blocks run and its stack or carrier thread is freed. Interrupted, every interruption
// point it reaches while unwinding throws too; an error other than the interruption that ends it is
// reported as an unhandled rejection. If it suspends again, its new handle is watched in turn.
const collectedSuspended: FiberRecord[] = [];

function unwindCollected(): void {
  for (const rec of collectedSuspended.splice(0)) {
    if (rec.status !== 'suspended' || rec.mode !== 'yielded') continue;  // resumed, or ended, since
    rec.interrupted = true;
    rec.interruptReason ??= 'its coroutine was garbage-collected while suspended';
    try {
      transferInto(handleOf(rec) as Coroutine, { ok: false, error: new FiberInterruptedError(rec.interruptReason) });
    } catch (error) {
      // It ended by throwing, and this call observed it: nobody else can.
      if (!rec.interruptionCaught) reportUnhandled(rec, error);
    }
  }
}

function transferInto<Out, T>(co: Coroutine, input: Outcome): ResumeResult<Out, T> {
  const rec = recordOf(co);
  if (rec.status === 'done') throw new FiberStateError(`coroutine ${rec.label} has finished`);
  const caller = currentRecord();
  if (caller === rec) throw new FiberStateError(`coroutine ${rec.label} is running: it cannot resume itself`);
  if (rec.status !== 'suspended' || (rec.mode !== 'yielded' && rec.mode !== null)) {
    throw new FiberStateError(`coroutine ${rec.label} is ${rec.mode === 'parked' ? 'waiting on the scheduler' : rec.status} and cannot be resumed now`);
  }
  ensureNative(rec);
  rec.transfer = input;
  holdHandle(rec, co);
  if (caller !== undefined) {
    caller.async.leave('resume()');
    caller.status = 'suspended';
    caller.mode = 'resuming';
  }
  try {
    native.resume(rec.handle);
  } finally {
    releaseHandle(rec);
    if (caller !== undefined) {
      caller.async.enter();
      caller.status = 'running';
      caller.mode = null;
    }
  }
  if (rec.done) {
    const outcome = rec.outcome!;
    rec.observed = true;
    if (!outcome.ok) throw outcome.error;
    return { done: true, value: outcome.value as T };
  }
  if (rec.mode === 'yielded') {
    const out = rec.transfer;
    rec.transfer = NOTHING;
    return { done: false, value: (out.ok ? out.value : undefined) as Out };
  }
  return { done: false, value: undefined };  // it parked on the scheduler, which resumes it later
}

/**
 * Inside a coroutine: returns control (and `value`) to whoever resumed it, and waits for the next
 * {@link Coroutine.resume}, whose value it returns (or whose error it throws). Not an interruption
 * point.
 * @throws NotInFiberError outside fibers; FiberStateError in a fiber made by `spawn` (it has no resumer);
 *   the error passed to {@link Coroutine.throwInto}; FiberInterruptedError when the coroutine's handle
 *   was garbage-collected meanwhile (nothing can resume it any more).
 */
export function suspend<In = unknown, Out = unknown>(value?: Out): In {
  const self = requireCurrent('suspend()');
  if (self.kind !== 'coroutine') {
    throw new FiberStateError(`fiber ${self.label} was made by spawn: only a coroutine can suspend to its resumer`);
  }
  self.transfer = value === undefined ? NOTHING : { ok: true, value };
  self.async.leave('suspend()');
  self.status = 'suspended';
  self.mode = 'yielded';
  try {
    native.suspend();
  } finally {
    self.async.enter();
    self.status = 'running';
    self.mode = null;
  }
  const input = self.transfer as Outcome;
  self.transfer = NOTHING;
  if (!input.ok) throw input.error;
  return input.value as In;
}

/**
 * Creates a coroutine running `fn(firstValue)`; it does not start until the first
 * {@link Coroutine.resume}, which also takes its stack (or carrier thread): a coroutine never resumed
 * holds no native resources. Never suspends.
 * @throws TypeError / RangeError for bad arguments.
 */
export function coroutine<T, In = unknown, Out = unknown>(fn: (first: In) => T, opts?: Omit<SpawnOptions, 'signal'>): Coroutine<T, In, Out> {
  if (typeof fn !== 'function') throw invalidArg('fn', 'of type function', fn);
  let rec: FiberRecord | undefined = undefined;
  rec = newRecord(() => firstRun(rec!, fn), opts, 'coroutine');
  return handleOfNew(rec) as Coroutine<T, In, Out>;
}

/**
 * For spindle/fibers (internal): a coroutine with the default stack, whose name `name()` makes when
 * first asked for (most never are), without coroutine()'s option checks: a third of what the layer
 * added to the core's create-run-finish.
 */
export function layerCoroutine<T, In = unknown>(fn: (first: In) => T, name: () => string): Coroutine<T, In> {
  let rec: FiberRecord | undefined = undefined;
  rec = createRecord(() => firstRun(rec!, fn), name, DEFAULT_STACK_SIZE, 'coroutine');
  return handleOfNew(rec) as Coroutine<T, In>;
}

/** A new coroutine record is suspended (waiting for its first resume) and gets its handle. */
function handleOfNew(rec: FiberRecord): Coroutine {
  rec.status = 'suspended';
  return handleOf(rec) as Coroutine;
}

/** A coroutine's body: its first resume's value is `fn`'s argument (or its error is thrown). */
function firstRun<T, In>(rec: FiberRecord, fn: (first: In) => T): T {
  const input = rec.transfer;
  rec.transfer = NOTHING;
  if (!input.ok) throw input.error;
  return fn(input.value as In);
}
