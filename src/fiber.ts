/**
 * Fibers: spawn, join, interrupt, sleep, wait on promises, yield.
 * @packageDocumentation
 */
import { FiberInterruptedError, FiberStateError, TimeoutError, invalidArg, outOfRange } from './errors.js';
import {
  FiberRecord,
  type FiberStatus,
  awaitDone,
  checkInterruptOf,
  createRecord,
  currentRecord,
  endWait,
  interruptRecord,
  liveRecords,
  park,
  reportUncaught,
  onDone,
  onUnobservedFailure,
  offDone,
  reportUnhandled,
  requestBackend,
  requireCurrent,
  startRuntime,
  unwrap,
  waker,
  withoutInterruption,
  yieldRunning,
} from './runtime.js';
import { native } from './native.js';
import { type CaseResult, NOT_READY, SelectCase } from './select-case.js';
import type { Waiter } from './sync/waiters.js';
import { timeoutOption } from './options.js';

export type { FiberStatus } from './runtime.js';

/** Default fiber stack: 1 MiB (JavaScript gets it less a reserve for native frames). */
export const DEFAULT_STACK_SIZE = 1024 * 1024;
const MIN_STACK_SIZE = 128 * 1024;
const MAX_STACK_SIZE = 1024 * 1024 * 1024;

/** Options of {@link spawn}. */
export interface SpawnOptions {
  /** Shown in errors, in {@link fibers} and in uncaught-error reports. Default `fiber-<id>`. */
  name?: string;
  /** Stack size in bytes, 128 KiB to 1 GiB. Default 1 MiB. Deep recursion past it is a `RangeError`. */
  stackSize?: number;
  /** Interrupts the fiber (with the signal's reason) when aborted. */
  signal?: AbortSignal;
}

/** Options of {@link Fiber.join}. */
export interface JoinOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

// A Fiber keeps its record in a private field. The record keeps its Fiber strongly while nothing needs
// to learn of the Fiber's collection, and weakly, with an entry in `collected`, while something does: a
// fiber that failed with nobody having observed the error (collected: report it), and a coroutine
// suspended or parked (collected: nobody can observe its end). Both cost: an entry keeps its record
// alive past young-generation GCs until the cleanup task, a new WeakRef keeps its target to the end of
// the job. So a spawned fiber that ends well, or is joined, has neither; nor has a coroutine that runs
// to its end within one resume() (a `fibers` Fiber(fn).run()): its record holds the handle only while
// a resume() runs it (holdHandle, releaseHandle), and watches it from its first suspension or park on.
let recordIn: (fiber: object) => FiberRecord | undefined;
const collected = new FinalizationRegistry<FiberRecord>((rec) => {
  if (rec.observed || rec.detached) return;
  if (rec.status !== 'done') {
    rec.orphan = true;
    // Suspended in suspend(), it can never be resumed: coroutine.ts unwinds it (the compatible layer
    // unwinds its own fibers).
    if (rec.kind === 'coroutine' && rec.mode === 'yielded' && rec.layer === undefined) collectedSuspended?.(rec);
  } else if (rec.outcome && !rec.outcome.ok && !rec.interruptionCaught) {
    reportUnhandled(rec, rec.outcome.error);
  }
});

/** The record behind a Fiber handle (internal). */
export function recordOf(fiber: Fiber<unknown>): FiberRecord {
  const rec = fiber !== null && typeof fiber === 'object' ? recordIn(fiber) : undefined;
  if (rec === undefined) throw invalidArg('fiber', 'a Fiber', fiber);
  return rec;
}

/** The user's handle of a record, made anew if the old one was collected. */
export function handleOf(rec: FiberRecord): Fiber<unknown> {
  return existingHandle(rec) ?? new ((rec.kind === 'coroutine' && coroutineClass) || Fiber)(rec);
}

/** The user's handle of a record if it still exists (internal). */
export function existingHandle(rec: FiberRecord): Fiber<unknown> | undefined {
  return (rec.handleStrong ?? rec.handleWeak?.deref()) as Fiber<unknown> | undefined;
}

let coroutineClass: (new (rec: FiberRecord) => Fiber<unknown>) | undefined;
let collectedSuspended: ((rec: FiberRecord) => void) | undefined;
/**
 * Lets coroutine.ts give its records handles of its own class, and learn of coroutines collected while
 * suspended (internal).
 */
export function setCoroutineClass(cls: new (rec: FiberRecord) => Fiber<unknown>, onCollectedSuspended: (rec: FiberRecord) => void): void {
  coroutineClass = cls;
  collectedSuspended = onCollectedSuspended;
}

function failedUnobserved(rec: FiberRecord): boolean {
  return rec.outcome !== undefined && !rec.outcome.ok && !rec.observed && !rec.detached && !rec.interruptionCaught;
}

function attach(fiber: Fiber<unknown>, rec: FiberRecord): void {
  rec.orphan = false;
  if (rec.kind === 'coroutine') {
    // A new handle (the first, or the old one was collected): the record holds it only while running.
    rec.handleWeak = undefined;
    rec.handleWatched = false;
    rec.handleStrong = fiber;
    if (rec.status !== 'running') releaseHandle(rec);
  } else if (failedUnobserved(rec)) {
    watch(fiber, rec);
  } else {
    rec.handleStrong = fiber;
  }
}

/** resume() is about to run a coroutine: its record holds `fiber`, its handle, until resume() returns. */
export function holdHandle(rec: FiberRecord, fiber: object): void {
  rec.handleStrong = fiber;
}

/** The coroutine switched back (suspended, parked or ended): only the user's references keep its handle. */
export function releaseHandle(rec: FiberRecord): void {
  const fiber = rec.handleStrong;
  if (fiber === undefined) return;
  rec.handleStrong = undefined;
  // Once per handle, never unregistered (the callback checks the record's state when it fires). Nothing
  // to watch for a coroutine that ended (a failure nobody observed was watched by onUnobservedFailure)
  // or that has no native fiber yet.
  if (!rec.done && rec.handle !== 0 && !rec.handleWatched) watch(fiber, rec);
}

function watch(fiber: object, rec: FiberRecord): void {
  rec.handleStrong = undefined;
  rec.handleWeak = new WeakRef(fiber);
  rec.handleWatched = true;
  collected.register(fiber, rec);  // no unregister token: the callback checks what changed since
}

// A fiber failed and its handle is still out there: report the error if the handle is collected unobserved.
onUnobservedFailure((rec) => {
  if (rec.handleStrong !== undefined && !rec.handleWatched) watch(rec.handleStrong, rec);
});

/** Validates spawn-style options and creates the record. */
export function newRecord(fn: unknown, opts: SpawnOptions | undefined, kind: FiberRecord['kind']): FiberRecord {
  if (typeof fn !== 'function') throw invalidArg('fn', 'of type function', fn);
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArg('opts', 'an object', opts);
  const name = opts?.name;
  if (name !== undefined && typeof name !== 'string') throw invalidArg('opts.name', 'of type string', name);
  const stackSize = opts?.stackSize ?? DEFAULT_STACK_SIZE;
  if (typeof stackSize !== 'number' || !Number.isFinite(stackSize)) throw invalidArg('opts.stackSize', 'a finite number', stackSize);
  if (stackSize < MIN_STACK_SIZE || stackSize > MAX_STACK_SIZE) throw outOfRange('opts.stackSize', `>= ${MIN_STACK_SIZE} and <= ${MAX_STACK_SIZE}`, stackSize);
  const signal = opts?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArg('opts.signal', 'an AbortSignal', signal);
  const rec = createRecord(fn as () => unknown, name, Math.ceil(stackSize / 4096) * 4096, kind);
  if (signal !== undefined) {
    if (signal.aborted) {
      interruptRecord(rec, signal.reason);
    } else {
      const onAbort = () => interruptRecord(rec, signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      onDone(rec, () => signal.removeEventListener('abort', onAbort));
    }
  }
  return rec;
}

/**
 * A handle on a fiber: a function running on its own stack, which can suspend anywhere (inside a sort
 * comparator, a getter, a Proxy trap...) while other fibers run. Made by {@link spawn}.
 */
export class Fiber<T = unknown> {
  readonly #rec: FiberRecord;

  /** @internal Use {@link spawn}. */
  constructor(rec: FiberRecord) {
    this.#rec = rec;
    attach(this, rec);
  }

  static {
    recordIn = (fiber) => (#rec in fiber ? fiber.#rec : undefined);
  }

  /** Unique, increasing id. */
  get id(): number {
    return recordOf(this).id;
  }

  /** The name given at spawn, or `fiber-<id>`. */
  get name(): string {
    return recordOf(this).name;
  }

  /** `'ready'` (queued to run), `'running'`, `'suspended'` (waiting on something) or `'done'`. */
  get status(): FiberStatus {
    return recordOf(this).status;
  }

  /** True until the fiber is joined or detached. */
  get joinable(): boolean {
    const rec = recordOf(this);
    return !rec.detached && !rec.joined;
  }

  /** After it finished: whether it died of its own interruption (a `FiberInterruptedError` escaped). */
  get interruptionCaught(): boolean {
    return recordOf(this).interruptionCaught;
  }

  /**
   * Suspends the calling fiber until this one is done; returns its value or throws its error (also
   * when it died of interruption: the `FiberInterruptedError`). An interruption point.
   * @throws NotInFiberError outside a fiber (use {@link Fiber.result}); FiberStateError when joining
   *   itself, a detached fiber, or one already joined; TimeoutError when `timeout` elapses first (the
   *   fiber may then be joined again).
   */
  join(opts?: JoinOptions): T {
    const rec = recordOf(this);
    const timeout = timeoutOption(opts);
    const self = requireCurrent('join');
    if (rec === self) throw new FiberStateError(`fiber ${rec.label} cannot join itself`);
    if (rec.detached) throw new FiberStateError(`fiber ${rec.label} is detached and cannot be joined`);
    if (rec.joined) throw new FiberStateError(`fiber ${rec.label} was already joined`);
    const observedBefore = rec.observed;
    rec.joined = true;
    rec.observed = true;
    let done = false;
    try {
      done = awaitDone(self, rec, timeout, true);
    } finally {
      if (!done) {
        // A failed join (timeout, interruption) leaves the fiber as it was: joinable again.
        rec.joined = false;
        rec.observed = observedBefore;
      }
    }
    if (!done) throw new TimeoutError(`join(${rec.label})`, timeout);
    return unwrap(rec.outcome!) as T;
  }

  /**
   * A Promise of the fiber's outcome, for code outside fibers. Counts as observing the outcome: the
   * fiber's error is then not reported as uncaught. Never suspends.
   */
  result(): Promise<T> {
    const rec = recordOf(this);
    rec.observed = true;
    return new Promise<T>((resolve, reject) => {
      const settle = () => (rec.outcome!.ok ? resolve(rec.outcome!.value as T) : reject(rec.outcome!.error));
      if (rec.status === 'done') settle();
      else onDone(rec, settle);
    });
  }

  /**
   * Gives up the right to join: when the fiber ends with an error (other than its own interruption),
   * the error goes to the process's `uncaughtException` path. Interrupting a detached fiber is a no-op.
   */
  detach(): void {
    const rec = recordOf(this);
    if (rec.detached) return;
    if (rec.joined) throw new FiberStateError(`fiber ${rec.label} was already joined`);
    rec.detached = true;
    if (rec.status === 'done' && rec.outcome && !rec.outcome.ok && !rec.interruptionCaught && !rec.observed) {
      reportUncaught(rec, rec.outcome.error);
    }
  }

  /**
   * Requests interruption: sets a sticky flag and never suspends the caller. A fiber suspended at an
   * interruption point wakes with `FiberInterruptedError`; every later interruption point throws it
   * again (cleanup that must suspend runs inside {@link uninterruptible}). A no-op on a finished or
   * detached fiber.
   */
  interrupt(reason?: unknown): void {
    interruptRecord(recordOf(this), reason);
  }

  /**
   * A `select` case that fires when this fiber is done: its value, or `select` throws its error. Firing
   * counts as joining it.
   */
  joinCase(): SelectCase {
    return new JoinCase(recordOf(this));
  }

  /** @internal */
  get [Symbol.toStringTag](): string {
    return 'Fiber';
  }
}

class JoinCase extends SelectCase {
  constructor(readonly rec: FiberRecord) {
    super();
  }
  override validate(): void {
    if (this.rec === currentRecord()) throw new FiberStateError(`fiber ${this.rec.label} cannot join itself`);
    if (this.rec.detached) throw new FiberStateError(`fiber ${this.rec.label} is detached and cannot be joined`);
    if (this.rec.joined) throw new FiberStateError(`fiber ${this.rec.label} was already joined`);
  }
  poll(): CaseResult | typeof NOT_READY {
    return this.rec.status === 'done' ? this.take() : NOT_READY;
  }
  register(waiter: Waiter, index: number): () => void {
    // While the select waits, the fiber counts as being joined: a second joiner is refused.
    this.rec.joined = true;
    const fired = () => waiter.done || waiter.complete(index);
    onDone(this.rec, fired);
    return () => {
      offDone(this.rec, fired);
      if (!(waiter.done && waiter.index === index)) this.rec.joined = false;  // lost: joinable again
    };
  }
  resultOf(): CaseResult {
    return this.take();
  }
  describe(): string {
    return `join(${this.rec.label})`;
  }
  private take(): CaseResult {
    this.rec.joined = true;
    this.rec.observed = true;
    return { value: unwrap(this.rec.outcome!), ok: true };
  }
}

/**
 * Starts `fn` in a new fiber. Never runs `fn` synchronously: the fiber starts at the spawner's next
 * suspension point or, spawned outside any fiber, before the event loop next polls for IO. The new
 * fiber sees the AsyncLocalStorage stores active here.
 * @throws TypeError / RangeError for bad arguments.
 */
export function spawn<T>(fn: () => T, opts?: SpawnOptions): Fiber<T> {
  const rec = newRecord(fn, opts, 'fiber');
  const fiber = new Fiber<T>(rec);
  native.spawn(rec.handle);
  return fiber;
}

/** The running fiber, or `undefined` outside fibers. */
export function current(): Fiber<unknown> | undefined {
  const rec = currentRecord();
  return rec === undefined ? undefined : handleOf(rec);
}

/**
 * Lets every other ready fiber run, then continues. An interruption point.
 * @throws NotInFiberError outside a fiber.
 */
export function yieldNow(): void {
  const self = requireCurrent('yieldNow()');
  checkInterruptOf(self);
  yieldRunning(self);
  checkInterruptOf(self);
}

/**
 * Suspends the running fiber for `ms` milliseconds (a timer: it keeps the process alive). An
 * interruption point. `sleep(0)` lets the event loop turn once.
 * @throws NotInFiberError outside a fiber; TypeError / RangeError for a bad `ms`.
 */
export function sleep(ms: number): void {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw invalidArg('ms', 'a number', ms);
  if (ms < 0) throw outOfRange('ms', '>= 0', ms);
  const self = requireCurrent('sleep()');
  if (ms === Infinity) {
    for (;;) park(self, 'sleep(Infinity)', -1, true);
  }
  // libuv timers count whole milliseconds of a cached clock and may fire a fraction early: sleep on
  // until the high-resolution clock agrees (and at least once, so sleep(0) lets the loop turn).
  const deadline = performance.now() + ms;
  let remaining = ms;
  do {
    park(self, `sleep(${ms})`, remaining, true);
    remaining = deadline - performance.now();
  } while (remaining > 0);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Suspends the running fiber until `promise` settles; returns its value or throws its reason. A plain
 * value is returned as is. An interruption point (the promise is then left to settle on its own).
 * @throws NotInFiberError outside a fiber.
 */
export function wait<T>(promise: PromiseLike<T> | T): Awaited<T> {
  const self = requireCurrent('wait()');
  if (!isThenable(promise)) return promise as Awaited<T>;
  let state = 0;
  let result: unknown;
  const wakeSelf = waker(self);
  Promise.resolve(promise).then(
    (value) => {
      state = 1;
      result = value;
      wakeSelf();
    },
    (error) => {
      state = 2;
      result = error;
      wakeSelf();
    },
  );
  try {
    while (state === 0) park(self, 'a promise', -1, true);
  } finally {
    endWait(self);
  }
  if (state === 2) throw result;
  return result as Awaited<T>;
}

/**
 * Wraps `fn` so that each call runs it in a new fiber and returns a Promise of its result: the bridge
 * from async code into fiber code.
 */
export function fiberize<A extends unknown[], R>(fn: (...args: A) => R, opts?: SpawnOptions): (...args: A) => Promise<R> {
  if (typeof fn !== 'function') throw invalidArg('fn', 'of type function', fn);
  return (...args: A) => spawn(() => fn(...args), { name: fn.name || undefined, ...opts }).result();
}

/**
 * Runs `fn` with interruption deferred: its interruption points do not throw; a pending interruption
 * is delivered at the first interruption point after it. For cleanup that must suspend. Outside a
 * fiber it just calls `fn`.
 */
export function uninterruptible<R>(fn: () => R): R {
  if (typeof fn !== 'function') throw invalidArg('fn', 'of type function', fn);
  const self = currentRecord();
  return self === undefined ? fn() : withoutInterruption(self, fn);
}

/**
 * An explicit interruption point: throws `FiberInterruptedError` if the running fiber was interrupted
 * (and is not inside {@link uninterruptible}). Never suspends; does nothing outside a fiber.
 */
export function checkInterrupt(): void {
  const self = currentRecord();
  if (self !== undefined) checkInterruptOf(self);
}

/** A switch backend: `'threads'` (one OS thread per live fiber) or `'inplace'` (all fibers on the loop thread). */
export type BackendName = 'threads' | 'inplace';

/** What {@link backend} returns. */
export interface BackendInfo {
  /** The switch backend in use. */
  name: BackendName;
  /**
   * Why it was chosen: where the request came from (the default `auto`, `SPINDLE_BACKEND`,
   * {@link configure}), and for `inplace` whether the allowlist of tested builds and the self-check
   * passed, or why it was refused.
   */
  reason: string;
}

/**
 * The switch backend this thread's fibers run on, and why. Starts spindle's runtime on this thread if
 * it has not started (so {@link configure} can no longer be called). Never suspends.
 */
export function backend(): BackendInfo {
  startRuntime('backend()');
  const stats = native.stats();
  return { name: stats.backend as BackendName, reason: stats.backendReason };
}

/** Options of {@link configure}. */
export interface ConfigureOptions {
  /**
   * The switch backend: `'auto'` (the default) takes `'inplace'` when the running Node build is on the
   * allowlist of builds this project tests and a self-check passes, else `'threads'`. `'inplace'`
   * asks for it explicitly: it runs the same checks and, when refused, falls back to `'threads'` with
   * the reason in {@link backend}. `'threads'`: carrier threads, portable. Wins over the
   * `SPINDLE_BACKEND` environment variable (same values).
   */
  backend?: 'auto' | BackendName;
}

const BACKENDS: readonly string[] = ['auto', 'inplace', 'threads'];

/**
 * Configures spindle's runtime on this thread. Must be called before the runtime starts, which it
 * does on first need: the first `spawn`, `coroutine`, `scope` child or `spindle/fibers` Fiber, a call to
 * {@link backend}, a `spindle/net` listener, another addon reading the C API. Never suspends.
 * @throws FiberStateError when the runtime has already started (the message names what started it).
 * @throws TypeError (`ERR_INVALID_ARG_TYPE`) for a bad `options` or `options.backend`.
 */
export function configure(options: ConfigureOptions): void {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options);
  const name = options.backend;
  if (name !== undefined && (typeof name !== 'string' || !BACKENDS.includes(name))) {
    throw invalidArg('options.backend', "one of 'auto', 'inplace', 'threads'", name);
  }
  requestBackend(name);
}

/** One entry of {@link fibers}. */
export interface FiberInfo {
  id: number;
  name: string;
  status: FiberStatus;
  /** What a suspended fiber waits on (`'sleep(100)'`, `"join(#3 'worker')"`, `'a promise'`...). */
  waitingOn: string | null;
}

/** A snapshot of the live (not finished) fibers of this thread, oldest first; a coroutine counts from its first resume(). Never suspends. */
export function fibers(): FiberInfo[] {
  return [...liveRecords()].sort((a, b) => a.id - b.id).map((rec) => ({ id: rec.id, name: rec.name, status: rec.status, waitingOn: rec.waitingOn === null ? null : String(rec.waitingOn) }));
}

