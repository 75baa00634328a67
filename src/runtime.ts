// The JavaScript half of the core: fiber records, the trampoline the native core calls on a fiber's
// thread, parking with wake tokens, interruption, completion and error reporting, deadlock detection.
// Public API lives in fiber.ts (and coroutine.ts); this module is internal.
import { FiberAsyncState } from './async-context.js';
import { DeadlockError, FiberInterruptedError, FiberStateError, NotInFiberError } from './errors.js';
import { native, TIMED_OUT } from './native.js';

/** A fiber's status as users see it. */
export type FiberStatus = 'ready' | 'running' | 'suspended' | 'done';

export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** The outcome of passing nothing (shared: a transfer of undefined allocates nothing). */
export const NOTHING: Outcome = Object.freeze({ ok: true, value: undefined });

/** How a suspended fiber waits: on the scheduler (a wake), for a resume (a yield), or on a child. */
export type SuspendMode = 'parked' | 'yielded' | 'resuming' | null;

/** What a parked fiber waits on: a string, or an object that makes one when asked (most never are). */
export type WaitLabel = string | { toString(): string };

/** Everything the runtime knows about one fiber. The user's handle (a Fiber) points here. */
export class FiberRecord {
  status: FiberStatus = 'ready';
  mode: SuspendMode = null;
  waitingOn: WaitLabel | null = null;
  /** While parked: the fibers that could release what it waits on (a mutex's owner, a joined fiber). */
  blockers: (() => Iterable<FiberRecord>) | undefined;
  outcome: Outcome | undefined;
  body: (() => unknown) | undefined;
  detached = false;
  joined = false;
  /** Someone took delivery of the outcome (join, result, a scope): no error report needed. */
  observed = false;
  /** The user's handle was collected before the outcome was observed. */
  orphan = false;
  interrupted = false;
  interruptReason: unknown;
  noInterrupt = 0;
  parkInterruptible = false;
  interruptionCaught = false;
  /** Thrown at the fiber when it next wakes (a deadlock). */
  wakeError: Error | undefined;
  /** Changes on every wait, so a late waker of an earlier wait cannot wake a later one. */
  wakeToken = 0;
  /** Called (once each) when the fiber is done; see onDone(). Allocated on first use. */
  doneCallbacks: Array<() => void> | undefined;
  /**
   * The user's handle: held strongly while nothing needs to learn of its collection (a spawned fiber,
   * or one that ended well; a coroutine while it runs), weakly otherwise (fiber.ts). Spawned fibers
   * skip the weak reference and its registration: both cost every young-generation GC a visit, per fiber.
   */
  handleStrong: object | undefined;
  handleWeak: WeakRef<object> | undefined;
  /** The handle is registered in fiber.ts's FinalizationRegistry (at most once per handle). */
  handleWatched = false;
  locals: Map<object, unknown> | undefined;
  readonly async: FiberAsyncState;
  /** The state an API layered on the core keeps per fiber (spindle/fibers), so it needs no WeakMap. */
  layer: unknown = undefined;
  /** Coroutines: the value or error passed by resume()/suspend(). */
  transfer: Outcome = NOTHING;

  constructor(
    /** The native fiber's handle; 0 for a coroutine until its first resume (ensureNative). */
    public handle: number,
    readonly id: number,
    /** The name given at creation; a function makes it when first asked for (spindle/fibers). */
    private givenName: string | (() => string) | undefined,
    readonly kind: 'fiber' | 'coroutine',
    body: () => unknown,
    readonly stackSize: number,
  ) {
    this.body = body;
    this.async = new FiberAsyncState(this);
  }

  /** The name given at spawn, or `fiber-<id>` (made when first asked for: most fibers never are). */
  get name(): string {
    if (typeof this.givenName === 'function') this.givenName = this.givenName();
    return this.givenName ?? `fiber-${this.id}`;
  }

  get label(): string {
    return `#${this.id} '${this.name}'`;
  }

  /** Whether the fiber has finished: what a joiner parks until (a getter, so no narrowing outlives a switch). */
  get done(): boolean {
    return this.status === 'done';
  }
}

// The native scheduler's handles are a slot (low bits, reused) and a generation (high bits); see kSlotBits
// in native/scheduler.h.
const SLOT_MASK = (1 << 22) - 1;

/** The live records, by native slot: an array, since a Map's hashing showed in spawn+join profiles. */
class LiveRecords {
  private readonly bySlot: Array<FiberRecord | undefined> = [undefined];  // slot 0 is never used
  size = 0;

  get(handle: number): FiberRecord | undefined {
    const rec = this.bySlot[handle & SLOT_MASK];
    return rec !== undefined && rec.handle === handle ? rec : undefined;
  }

  add(rec: FiberRecord): void {
    this.bySlot[rec.handle & SLOT_MASK] = rec;
    this.size++;
  }

  delete(rec: FiberRecord): void {
    const slot = rec.handle & SLOT_MASK;
    if (this.bySlot[slot] !== rec) return;
    this.bySlot[slot] = undefined;
    this.size--;
  }

  *values(): IterableIterator<FiberRecord> {
    for (const rec of this.bySlot) if (rec !== undefined) yield rec;
  }
}

const live = new LiveRecords();
// [0]: the running fiber's handle, written by the native scheduler. Until the scheduler starts (see
// startRuntime), a zero: no fiber runs.
let shared = new Uint32Array(1);
/** What started the native scheduler (for configure()'s error), or undefined while it has not. */
let startedBy: string | undefined;
/** The switch backend configure() asked for; undefined: SPINDLE_BACKEND decides. */
let requestedBackend: string | undefined;
let nextId = 1;
let deadlockRounds = 0;
let deadlockLive = 0;
const deadlockVictims = new Set<FiberRecord>();

/** The record of the running fiber, or undefined on the loop thread (or another non-fiber context). */
export function currentRecord(): FiberRecord | undefined {
  const handle = shared[0];
  if (handle === 0) return undefined;
  return live.get(handle);
}

/** The running fiber's record; throws NotInFiberError when there is none. */
export function requireCurrent(operation: string): FiberRecord {
  const rec = currentRecord();
  if (rec === undefined) throw new NotInFiberError(operation);
  return rec;
}

export function liveRecords(): IterableIterator<FiberRecord> {
  return live.values();
}

/**
 * Starts the native scheduler (on the switch backend configure() asked for) if it has not started.
 * Called on first need: the first fiber or coroutine, backend(), IO outside fibers, the C API.
 * `by` names that first need, for configure()'s error.
 */
export function startRuntime(by: string): void {
  if (startedBy !== undefined) return;
  shared = new Uint32Array(native.init(trampoline, requestedBackend));
  startedBy = by;
}

/** Records the switch backend to start on (undefined: no change); throws FiberStateError once started. */
export function requestBackend(name: string | undefined): void {
  if (startedBy !== undefined) {
    throw new FiberStateError(`configure() must be called before spindle's runtime starts; it was started by ${startedBy}`);
  }
  if (name !== undefined) requestedBackend = name;
}

/**
 * A new record (not started, not queued). A fiber gets its native fiber now, so that spawn's errors
 * come from spawn; a coroutine at its first resume (ensureNative): one never resumed then holds nothing
 * that its collection would have to free, and needs no FinalizationRegistry entry (an entry keeps its
 * record alive past young-generation GCs: a loop of short coroutines promoted every record).
 */
export function createRecord(body: () => unknown, name: FiberRecord['givenName'], stackSize: number, kind: FiberRecord['kind']): FiberRecord {
  startRuntime(`the first ${kind}`);
  const rec = new FiberRecord(0, nextId++, name, kind, body, stackSize);
  if (kind === 'fiber') ensureNative(rec);
  return rec;
}

/** Creates `rec`'s native fiber if it has none yet. */
export function ensureNative(rec: FiberRecord): void {
  if (rec.handle !== 0) return;
  rec.handle = native.create(rec.stackSize);
  live.add(rec);
}

function trampoline(handle: number): void {
  const rec = live.get(handle);
  if (rec === undefined || rec.body === undefined) return;
  const body = rec.body;
  rec.body = undefined;
  rec.status = 'running';
  rec.async.enter();
  let outcome: Outcome;
  try {
    outcome = { ok: true, value: body() };
  } catch (error) {
    outcome = { ok: false, error };
  }
  rec.async.exit();
  complete(rec, outcome);
}

function complete(rec: FiberRecord, outcome: Outcome): void {
  rec.outcome = outcome;
  rec.status = 'done';
  rec.mode = null;
  rec.waitingOn = null;
  live.delete(rec);
  if (!outcome.ok && outcome.error instanceof FiberInterruptedError && rec.interrupted) rec.interruptionCaught = true;
  const callbacks = rec.doneCallbacks;
  rec.doneCallbacks = undefined;
  if (callbacks !== undefined) {
    for (const cb of callbacks) {
      try {
        cb();
      } catch (error) {
        reportUncaught(rec, error);
      }
    }
  }
  if (!outcome.ok && !rec.interruptionCaught && !rec.observed) {
    if (rec.detached) reportUncaught(rec, outcome.error);
    else if (rec.orphan) reportUnhandled(rec, outcome.error);
    else unobservedFailure(rec);
  }
}

let unobservedFailure: (rec: FiberRecord) => void = () => {};
/** fiber.ts: what to do when a fiber fails and its handle is still out there (watch for its collection). */
export function onUnobservedFailure(fn: (rec: FiberRecord) => void): void {
  unobservedFailure = fn;
}

/** Calls `cb` when `rec` finishes (check rec.done first), in the fiber's last moments. */
export function onDone(rec: FiberRecord, cb: () => void): void {
  (rec.doneCallbacks ??= []).push(cb);
}

/** Withdraws a callback given to onDone. */
export function offDone(rec: FiberRecord, cb: () => void): void {
  const callbacks = rec.doneCallbacks;
  const i = callbacks === undefined ? -1 : callbacks.indexOf(cb);
  if (i >= 0) callbacks!.splice(i, 1);
}

/** Marks `error` with the fiber it escaped from, so the default report names it. */
function tag(rec: FiberRecord, error: unknown): unknown {
  if (error !== null && typeof error === 'object' && Object.isExtensible(error) && !Object.hasOwn(error, 'fiber')) {
    Object.defineProperty(error, 'fiber', { value: `${rec.name} (#${rec.id})`, enumerable: true, configurable: true, writable: true });
  }
  return error;
}

/** A detached fiber's error: the process's uncaughtException path, from the loop thread. */
export function reportUncaught(rec: FiberRecord, error: unknown): void {
  const tagged = tag(rec, error);
  process.nextTick(() => {
    throw tagged;
  });
}

/** A joinable fiber's error that nobody can observe any more: reported like an unhandled rejection. */
export function reportUnhandled(rec: FiberRecord, error: unknown): void {
  void Promise.reject(tag(rec, error));
}

/** The value of a finished fiber, or its error thrown. */
export function unwrap(outcome: Outcome): unknown {
  if (outcome.ok) return outcome.value;
  throw outcome.error;
}

/** Throws the fiber's interruption if one is pending and it may be delivered now. */
export function checkInterruptOf(rec: FiberRecord): void {
  if (rec.interrupted && rec.noInterrupt === 0) throw new FiberInterruptedError(rec.interruptReason);
}

/**
 * Parks the running fiber until something wakes it (see waker) or `timeoutMs` elapses (negative: no
 * timeout). Returns true if the timeout elapsed. An interruption point when `interruptible`.
 */
export function park(
  self: FiberRecord,
  waitingOn: WaitLabel,
  timeoutMs: number,
  interruptible: boolean,
  blockers?: () => Iterable<FiberRecord>,
): boolean {
  if (interruptible) checkInterruptOf(self);
  const canInterrupt = beginPark(self, waitingOn, interruptible, blockers);
  let result: number;
  try {
    result = native.park(timeoutMs);
  } finally {
    endPark(self);
  }
  const failure = wakeFailure(self, canInterrupt);
  if (failure !== undefined) throw failure;
  return result === TIMED_OUT;
}

/**
 * The bookkeeping of park() before the native suspension, for callers that suspend in a native call
 * of their own (one that parks and returns a result, as spindle/net's netWait): fibers() shows what
 * the fiber waits on, interruptRecord() may wake it (when `interruptible`), and its async context is
 * taken off. Returns whether the wait is interruptible. Does not check for a pending interruption.
 * Follow it with endPark(), also when the native call throws, then wakeFailure().
 */
export function beginPark(self: FiberRecord, waitingOn: WaitLabel, interruptible: boolean, blockers?: () => Iterable<FiberRecord>): boolean {
  const canInterrupt = interruptible && self.noInterrupt === 0;
  self.async.leave(waitingOn);
  self.status = 'suspended';
  self.mode = 'parked';
  self.waitingOn = waitingOn;
  self.blockers = blockers;
  self.parkInterruptible = canInterrupt;
  return canInterrupt;
}

/** The bookkeeping of park() after the native suspension returned (or threw): the fiber runs again. */
export function endPark(self: FiberRecord): void {
  self.async.enter();
  self.status = 'running';
  self.mode = null;
  self.waitingOn = null;
  self.blockers = undefined;
}

/**
 * What the wake-up that ended a park delivers, taken: a deadlock report, or (when the wait was
 * interruptible) the pending interruption; undefined when neither.
 */
export function wakeFailure(self: FiberRecord, canInterrupt: boolean): Error | undefined {
  const wakeError = self.wakeError;
  if (wakeError !== undefined) {
    self.wakeError = undefined;
    return wakeError;
  }
  if (canInterrupt && self.interrupted) return new FiberInterruptedError(self.interruptReason);
  return undefined;
}

/**
 * A function that wakes `rec` if it is parked in the wait that starts now. Call endWait(rec) when that
 * wait is over, so a late call cannot wake a later, unrelated wait.
 */
export function waker(rec: FiberRecord): () => void {
  const token = ++rec.wakeToken;
  return () => {
    if (rec.wakeToken === token && rec.mode === 'parked') wake(rec);
  };
}

export function endWait(rec: FiberRecord): void {
  rec.wakeToken++;
}

/** Makes a parked fiber ready; false if it was not parked. */
export function wake(rec: FiberRecord): boolean {
  if (!native.wake(rec.handle)) return false;
  rec.status = 'ready';
  return true;
}

/** Runs `fn` with `rec`'s interruption points deferred. */
export function withoutInterruption<R>(rec: FiberRecord, fn: () => R): R {
  rec.noInterrupt++;
  try {
    return fn();
  } finally {
    rec.noInterrupt--;
  }
}

/** Sets the sticky interruption flag and wakes the fiber if it is parked at an interruption point. */
export function interruptRecord(rec: FiberRecord, reason: unknown): void {
  if (rec.status === 'done' || rec.detached) return;
  if (!rec.interrupted) {
    rec.interrupted = true;
    rec.interruptReason = reason;
  }
  if (rec.mode === 'parked' && rec.parkInterruptible) wake(rec);
}

/**
 * Parks the running fiber `self` until `until.done` (whoever ends the wait wakes `self` through
 * waker(self)) or `timeoutMs` elapses (negative: never); returns false on timeout. An interruption (or
 * DeadlockError) is thrown even if the wait ended at the same moment; sync/waiters.ts's blockOn lets
 * completion win instead. `blockers` names the fibers that could end the wait, for deadlock reports.
 */
export function parkUntil(
  self: FiberRecord,
  until: { readonly done: boolean },
  waitingOn: WaitLabel,
  timeoutMs: number,
  interruptible: boolean,
  blockers?: () => Iterable<FiberRecord>,
): boolean {
  const deadline = timeoutMs >= 0 ? performance.now() + timeoutMs : Infinity;
  try {
    while (!until.done) {
      const remaining = deadline === Infinity ? -1 : Math.max(0, deadline - performance.now());
      if (park(self, waitingOn, remaining, interruptible, blockers) && !until.done) return false;
    }
    return true;
  } finally {
    endWait(self);
  }
}

class Joining {
  constructor(private readonly target: FiberRecord) {}
  toString(): string {
    return `join(${this.target.label})`;
  }
}

/**
 * Suspends `self` until `target` is done, or the timeout elapses (returns false then).
 * An interruption point when `interruptible`.
 */
export function awaitDone(self: FiberRecord, target: FiberRecord, timeoutMs: number, interruptible: boolean): boolean {
  if (target.done) return true;
  const wakeSelf = waker(self);
  onDone(target, wakeSelf);
  try {
    return parkUntil(self, target, new Joining(target), timeoutMs, interruptible, () => [target]);
  } finally {
    offDone(target, wakeSelf);
  }
}

/** Hands the loop thread's role to the scheduler's next fiber. Used by yieldNow. */
export function yieldRunning(self: FiberRecord): void {
  self.async.leave('yieldNow');
  self.status = 'ready';
  try {
    native.yieldNow();
  } finally {
    self.async.enter();
    self.status = 'running';
  }
}

// The process is about to exit with fibers parked: nothing can wake them any more (a fiber waiting on a
// timer or IO keeps the loop alive). Wake them with DeadlockError so their finally blocks run and their
// joiners learn it. Fibers that keep parking again are given up after a few rounds; then the exit code
// says so.
function detectDeadlock(): void {
  const stuck = [...live.values()].filter((rec) => rec.mode === 'parked');
  if (stuck.length === 0) {
    deadlockRounds = 0;
    return;
  }
  deadlockRounds = live.size < deadlockLive || deadlockRounds === 0 ? 1 : deadlockRounds + 1;
  deadlockLive = live.size;
  if (deadlockRounds > 3) {
    process.emitWarning(`${stuck.length} fiber(s) stay deadlocked after repeated DeadlockErrors: ${stuck.map((r) => r.label).join(', ')}`, {
      code: 'SPINDLE_DEADLOCK',
    });
    if (!process.exitCode) process.exitCode = 1;
    return;
  }
  for (const rec of stuck) {
    rec.wakeError = new DeadlockError(rec.label, String(rec.waitingOn ?? 'something'), waitCycle(rec));
    deadlockVictims.add(rec);
    wake(rec);
  }
}

/**
 * The cycle of parked fibers that `start` is part of, following what each waits on to the fibers that
 * could release it: each entry reads "#1 'a' waits on lock(Mutex #2), held by #3 'b'". Empty when
 * there is no cycle (it waits on something no fiber holds, like a promise or an empty channel).
 */
function waitCycle(start: FiberRecord): string[] {
  const path: FiberRecord[] = [];
  const onPath = new Set<FiberRecord>();
  const dead = new Set<FiberRecord>();
  const visit = (rec: FiberRecord): FiberRecord[] | undefined => {
    if (onPath.has(rec)) return path.slice(path.indexOf(rec));
    if (dead.has(rec) || rec.mode !== 'parked' || rec.blockers === undefined) return undefined;
    path.push(rec);
    onPath.add(rec);
    for (const next of rec.blockers()) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    onPath.delete(rec);
    dead.add(rec);
    return undefined;
  };
  const cycle = visit(start) ?? [];
  return cycle.map((rec, i) => `${rec.label} waits on ${rec.waitingOn}, held by ${cycle[(i + 1) % cycle.length].label}`);
}

function reportDeadlockVictims(code: number): void {
  const unobserved = [...deadlockVictims].filter(
    (rec) => rec.status === 'done' && rec.outcome && !rec.outcome.ok && rec.outcome.error instanceof DeadlockError && !rec.observed && !rec.detached,
  );
  if (unobserved.length === 0) return;
  for (const rec of unobserved) process.stderr.write(`spindle: fiber ${rec.label} ended by ${String((rec.outcome as { error: unknown }).error)}\n`);
  if (code === 0) process.exitCode = 1;
}

// Registered at load (before the user's own listeners, as the runtime always was); until the runtime
// starts they have no fiber to look at.
process.on('beforeExit', detectDeadlock);
process.on('exit', reportDeadlockVictims);
