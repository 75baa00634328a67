/**
 * `spindle/fibers`: the API of the `fibers` package (laverdet/node-fibers 5.0.3), built on spindle's
 * asymmetric coroutine primitive. `require('spindle/fibers')` returns the `Fiber` function itself, as
 * `require('fibers')` did; `import Fiber from 'spindle/fibers'` gives the same function.
 *
 * A `Fiber` may also use spindle's own suspending calls (mutexes, channels, `sleep`, `wait`): they park
 * it on spindle's scheduler, which resumes it where it was; meanwhile `run()` returns `undefined` to its
 * caller, as a fiber waiting in `Future.wait` did with `fibers`.
 * @packageDocumentation
 */
import '../builtins.js';
import { type Coroutine, layerCoroutine, suspend } from '../coroutine.js';
import { existingHandle, handleOf, recordOf } from '../fiber.js';
import { type FiberRecord, currentRecord } from '../runtime.js';

/** A fiber of the `fibers` API: a function on its own stack, started and resumed by `run()`. */
export interface Fiber {
  /**
   * Starts the fiber (calling its function with `value`) or resumes it (its pending `Fiber.yield()`
   * returns `value`). Returns what the fiber passes to `Fiber.yield`, or what its function returns;
   * throws what its function throws. Returns `undefined` when the fiber parks on spindle's scheduler
   * (a mutex, a channel, `sleep`...): the scheduler resumes it later.
   * @throws Error `'This Fiber is already running'` when it is running (or resuming another fiber).
   */
  run(value?: unknown): any;
  /**
   * Unwinds a yielding fiber: its pending `Fiber.yield()` throws `Error('This Fiber is a zombie')`, and
   * so does every later `Fiber.yield()` in it, until its function ends (its `finally` blocks run).
   * Returns what the function returns; rethrows an error other than that one. A no-op (returning
   * `undefined`) on a fiber that is not started.
   * @throws Error `'This Fiber is not yielding'` when it is running.
   */
  reset(): any;
  /**
   * Makes the fiber's pending `Fiber.yield()` throw `error`. Returns like `run()`; if the fiber does not
   * catch it, it comes back out of `throwInto`.
   * @throws Error `'This Fiber is not yielding'` when it is not suspended in `Fiber.yield()`.
   */
  throwInto(error: unknown): any;
  /** True from the first `run()` until the fiber's function returns or throws. */
  readonly started: boolean;
}

/** The `Fiber` function: `Fiber(fn)` and `new Fiber(fn)` alike make a fiber that has not started. */
export interface FiberConstructor {
  /** Makes a fiber that runs `fn(value)` on the first `run(value)`. */
  new (fn: (value?: any) => any): Fiber;
  /** Same as `new Fiber(fn)`. */
  (fn: (value?: any) => any): Fiber;
  readonly prototype: Fiber;
  /** The running `Fiber`, or `undefined` outside fibers of this API (also in fibers made by `spawn`). */
  readonly current: Fiber | undefined;
  /**
   * Suspends the running fiber and returns control (and `value`) to the caller of `run()`; returns the
   * value passed to the next `run()`, or throws what `throwInto()` passes.
   * @throws Error `'yield() called with no fiber running'` outside fibers; spindle's `FiberStateError`
   *   in a fiber made by `spawn` (it has no `run()` caller).
   */
  yield(value?: unknown): any;
  /**
   * Kept for compatibility: `fibers` sized its pool of idle coroutines with it. spindle pools carrier
   * threads on its own, so the value (default 120) is stored and affects nothing.
   */
  poolSize: number;
  /** How many fibers of this API have been started (each `run()` of a fiber not started counts one). */
  readonly fibersCreated: number;
}

/** What a fiber's function ended with: boxed, so errors never escape the coroutine unobserved. */
type Box = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * A fiber's state. It never references the user's handle, so that a fiber whose handle became garbage
 * can be found out (a FinalizationRegistry on the handle holds this) while its stack is parked.
 */
class State {
  /** The coroutine record of the current run (undefined when not started). */
  rec: FiberRecord | undefined = undefined;
  /** Set while unwinding (reset() or collected): every Fiber.yield() throws it. */
  zombie: Error | undefined = undefined;
  /** The handle was collected: an error escaping the unwinding is fatal, as in `fibers`. */
  orphaned = false;
  /** A run()/throwInto()/reset() call is waiting for this fiber (not the scheduler). */
  driven = false;
  /** The handle is registered with the FinalizationRegistry (done when it first suspends). */
  watched = false;
  constructor(readonly fn: (value?: any) => any) {}
}

/** The State of a record made by this module (kept on the record: a WeakMap costs every GC a visit). */
function stateOf(rec: FiberRecord): State | undefined {
  return rec.layer instanceof State ? rec.layer : undefined;
}
/** On a coroutine handle: its Fiber handle, for Fiber.current (the Fiber holds the coroutine strongly). */
const FIBER = Symbol('spindle.fibers.Fiber');
type Linked = Coroutine & { [FIBER]?: FiberImpl };
let poolSize = 120;
const NO_ARG = Symbol('no argument');
let fibersCreated = 0;

/** Unwinds fibers whose handle was collected, one event-loop turn later (never from the GC's task). */
const orphans: State[] = [];
const collected = new FinalizationRegistry<State>((state) => {
  const rec = state.rec;
  if (rec === undefined || rec.status === 'done') return;
  state.orphaned = true;
  state.zombie ??= zombieError();
  if (rec.mode !== 'yielded') return;  // parked on the scheduler: its next Fiber.yield() throws
  if (orphans.push(state) === 1) setImmediate(unwindOrphans);
});

function unwindOrphans(): void {
  for (const state of orphans.splice(0)) {
    const rec = state.rec;
    if (rec === undefined || rec.status === 'done' || rec.mode !== 'yielded') continue;
    // A new handle, so that Fiber.current works while it unwinds.
    const fiber = new FiberImpl(state, handleOf(rec) as Coroutine);
    try {
      fiber.unwind();
    } catch (error) {
      fatalFromCollected(error);
    }
  }
}

function zombieError(): Error {
  return new Error('This Fiber is a zombie');
}

function fatalFromCollected(error: unknown): void {
  process.stderr.write(
    'An exception was thrown from a Fiber which was being garbage collected. This error can not be ' +
      'gracefully recovered from. The only acceptable behavior is to terminate this application. ' +
      'The exception appears below:\n\n',
  );
  process.nextTick(() => {
    throw error;
  });
}

/**
 * The coroutine body: runs the user's function and boxes its outcome. One function for every fiber
 * (its State is on the record): a closure per run() cost a fresh function object each time.
 */
function body(value: unknown): Box {
  const state = stateOf(currentRecord()!)!;
  let box: Box;
  try {
    // Called as `fibers` did: with the global object as `this`, and no argument when run() had none.
    box = { ok: true, value: value === NO_ARG ? state.fn.call(globalThis) : state.fn.call(globalThis, value) };
  } catch (error) {
    box = { ok: false, error };
  }
  state.rec = undefined;
  if (!state.driven && !box.ok) {
    // Finished under the scheduler (after parking): no run() caller to rethrow to.
    if (box.error !== state.zombie) {
      if (state.orphaned) fatalFromCollected(box.error);
      else process.nextTick(() => {
        throw box.error;
      });
    }
  }
  return box;
}

class FiberImpl implements Fiber {
  #state: State;
  #co: Coroutine<Box> | undefined;

  /** @internal Use `Fiber(fn)`. */
  constructor(state: State, co: Coroutine | undefined) {
    this.#state = state;
    this.#co = co as Coroutine<Box> | undefined;
    if (co !== undefined) {
      (co as Linked)[FIBER] = this;
      this.#watch();
    }
  }

  /** From its first suspension on, an unfinished fiber can become garbage: watch for that. */
  #watch(): void {
    if (this.#state.watched) return;
    this.#state.watched = true;
    collected.register(this, this.#state);
  }

  get started(): boolean {
    return this.#state.rec !== undefined;
  }

  run(value?: unknown): any {
    if (arguments.length > 1) throw new TypeError('run() expects 1 or no arguments');
    const state = this.#state;
    let rec = state.rec;
    const starting = rec === undefined;
    if (rec === undefined) {
      const co = layerCoroutine<Box>(body, () => state.fn.name || 'Fiber');
      rec = recordOf(co);
      state.rec = rec;
      state.zombie = undefined;
      rec.layer = state;
      this.#co = co;
      (co as Linked)[FIBER] = this;
      fibersCreated++;
    } else {
      checkResumable(rec, 'run');
    }
    return this.#transfer(true, starting && arguments.length === 0 ? NO_ARG : value);
  }

  throwInto(error: unknown): any {
    if (arguments.length > 1) throw new TypeError('throwInto() expects 1 or no arguments');
    const rec = this.#state.rec;
    if (rec === undefined || rec.mode !== 'yielded') throw new Error('This Fiber is not yielding');
    return this.#transfer(false, error);
  }

  reset(): any {
    if (arguments.length > 0) throw new TypeError('reset() expects no arguments');
    const rec = this.#state.rec;
    if (rec === undefined) return undefined;
    if (rec.mode !== 'yielded') throw new Error('This Fiber is not yielding');
    return this.unwind();
  }

  /** @internal Unwinds a yielding fiber (reset, or its handle was collected). */
  unwind(): unknown {
    const state = this.#state;
    const zombie = (state.zombie ??= zombieError());
    try {
      return this.#transfer(false, zombie);
    } catch (error) {
      if (error === zombie) return undefined;
      throw error;
    }
  }

  #transfer(ok: boolean, value: unknown): unknown {
    const state = this.#state;
    const co = this.#co!;
    const outer = state.driven;
    state.driven = true;
    let r;
    try {
      r = ok ? co.resume(value) : co.throwInto(value);
    } finally {
      state.driven = outer;
    }
    if (!r.done) {
      if (!state.watched) this.#watch();
      return r.value;
    }
    const box = r.value;
    if (!box.ok) throw box.error;
    return box.value;
  }

  /** @internal */
  get [Symbol.toStringTag](): string {
    return 'Fiber';
  }
}

function checkResumable(rec: FiberRecord, operation: string): void {
  if (rec.mode === 'yielded') return;
  if (rec.status === 'running' || rec.mode === 'resuming') throw new Error('This Fiber is already running');
  throw new Error(`This Fiber is waiting on spindle's scheduler (${rec.waitingOn ?? 'ready to run'}): ${operation}() cannot resume it now`);
}

function currentFiber(): FiberImpl | undefined {
  const rec = currentRecord();
  if (rec === undefined || stateOf(rec) === undefined) return undefined;
  return (existingHandle(rec) as Linked | undefined)?.[FIBER];
}

function fiberYield(value?: unknown): any {
  const rec = currentRecord();
  if (rec === undefined) throw new Error('yield() called with no fiber running');
  const state = stateOf(rec);
  if (state !== undefined) {
    if (state.zombie !== undefined) throw state.zombie;
    if (arguments.length > 1) throw new TypeError('yield() expects 1 or no arguments');
  }
  return suspend(value);  // in a fiber made by spawn: spindle's FiberStateError (no resumer)
}

/** `Fiber(fn)` / `new Fiber(fn)`: see {@link FiberConstructor}. The module's export (CommonJS and default). */
const Fiber = function Fiber(this: unknown, fn: (value?: any) => any): Fiber {
  if (arguments.length !== 1) throw new TypeError('Fiber expects 1 argument');
  if (typeof fn !== 'function') throw new TypeError('Fiber expects a function');
  return new FiberImpl(new State(fn), undefined);
} as unknown as FiberConstructor;

Object.defineProperties(Fiber, {
  prototype: { value: FiberImpl.prototype, writable: false },
  current: { get: currentFiber, enumerable: true },
  yield: { value: fiberYield, writable: true, enumerable: true, configurable: true },
  poolSize: {
    get: () => poolSize,
    set: (value: unknown) => {
      poolSize = Number(value);
    },
    enumerable: true,
  },
  fibersCreated: { get: () => fibersCreated, enumerable: true },
  default: { value: Fiber },
});
Object.defineProperty(FiberImpl.prototype, 'constructor', { value: Fiber, writable: true, configurable: true });

export default Fiber;
// `require('spindle/fibers')` is the Fiber function itself, as `require('fibers')` was.
module.exports = Fiber;
