/**
 * `spindle/fibers/future`: the `Future` of the `fibers` package (`fibers/future`, 5.0.3), on spindle.
 * `require('spindle/fibers/future')` returns the `Future` function itself; loading it also defines
 * `Function.prototype.future`, as `fibers/future` did.
 *
 * `wait()` works in a `Fiber` (it yields to the caller of `run()` until the future resolves, then the
 * resolver resumes it, exactly as in `fibers`) and, beyond `fibers`, in a fiber made by spindle's
 * `spawn` (it parks that fiber on the scheduler).
 * @packageDocumentation
 */
import { wait as waitPromise } from '../fiber.js';
import { currentRecord } from '../runtime.js';
import Fiber from './index.js';

/** A node-style callback: `(error, value)`. */
export type Errback<T = any> = (error: any, value?: T) => void;

/** A value that will be there later: resolved once, with a value (`return`) or an error (`throw`). */
export interface Future<T = any> {
  /** Whether it resolved (own property, as in `fibers`). */
  resolved?: boolean;
  /** The value it returned, once resolved. */
  value?: T;
  /** The error it threw, once resolved. */
  error?: any;
  /** For futures made by `Future.wrap`: what the wrapped function returned. */
  _?: unknown;
  /**
   * The value; throws the error if it threw.
   * @throws Error `'Future must resolve before value is ready'` if not resolved yet.
   */
  get(): T;
  /**
   * Waits (suspending the running fiber only) until it resolves, then returns like `get()`.
   * @throws Error `"Can't wait without a fiber"` outside fibers.
   */
  wait(): T;
  /**
   * Resolves it with `value`; the pending callbacks run now (one that throws is rethrown on the next
   * tick, to the process's uncaught-exception path).
   * @throws Error `'Future resolved more than once'`.
   */
  return(value?: T): void;
  /**
   * Resolves it with `error`, which must be truthy.
   * @throws Error `'Future resolved more than once'`, `'Must throw non-empty error'`.
   */
  throw(error: any): void;
  /**
   * Calls `errback(error, value)` once it resolves (now, if it has); or, with two arguments, throws the
   * error into the future `errorFuture` or calls `callback(value)`. Returns this future.
   */
  resolve(errback: Errback<T>): this;
  resolve(errorFuture: Future, callback: (value: T) => void): this;
  /** Calls `callback(value)` once it returns (not if it throws). Returns this future. */
  resolveSuccess(callback: (value: T) => void): this;
  /** A node-style callback that resolves this future. */
  resolver(): Errback<T>;
  /** Whether it resolved. */
  isResolved(): boolean;
  /** Its error, if it throws one, goes to the process's uncaught-exception path. */
  detach(): void;
  /** Resolves `future` the way this one resolves. */
  proxy(future: Future<T>): void;
  /** Throws this future's error (if it throws) into `futures` (one or an array). Returns this future. */
  proxyErrors(futures: Future | Future[]): this;
  /** A Promise of its value. */
  promise(): Promise<T>;
}

/** A function made by `Future.wrap`: the same arguments without the callback, returning a future. */
export type WrappedFunction = ((...args: any[]) => Future) & Record<string, any>;

/** The `Future` function and its statics. */
export interface FutureConstructor {
  /** A future not resolved yet. */
  new <T = any>(): Future<T>;
  readonly prototype: Future;
  /**
   * Runs `fn` in a new fiber (on the next tick) and returns a future of its result; with several
   * functions, a future of the array of their results (or the last error).
   */
  task<T>(fn: () => T): Future<T>;
  task(...fns: Array<() => any>): Future<any[]>;
  /**
   * Wraps a node-style function (its callback last) so that it returns a future instead; with `multi`,
   * the future's value is the array of the callback's arguments after the error. Given an object,
   * returns an object inheriting from it where each method `name` also has a wrapped `name + suffix`
   * (default suffix `'Future'`).
   */
  wrap(fn: (...args: any[]) => any, multi?: boolean, suffix?: string): WrappedFunction;
  wrap<O extends object>(object: O, multi?: boolean, suffix?: string): O & Record<string, WrappedFunction>;
  /**
   * Waits until every future given (as arguments or in arrays) has resolved. Does not throw their
   * errors: call `get()` on each.
   * @throws Error `"Can't wait without a fiber"` outside fibers; `'<x> is not a future'`.
   */
  wait(...futures: Array<Future | Future[]>): void;
  /** A future that resolves as `promise` settles. */
  fromPromise<T>(promise: PromiseLike<T>): Future<T>;
}

declare global {
  interface Function {
    /**
     * Defined by `spindle/fibers/future` (as by `fibers/future`): a function that runs this one in a new
     * fiber and returns a future of its result. With `detach`, each such future is detached.
     */
    future(detach?: boolean): (...args: any[]) => Future;
  }
}

type Callback = [arg1: any, arg2: ((value: any) => void) | undefined];

interface FutureState extends Future {
  callbacks?: Callback[];
}

/** A future made by `Function.prototype.future`: its function runs in a fiber, on the next tick. */
interface FiberFuture extends FutureState {
  fn: (...args: any[]) => any;
  context: unknown;
  args: ArrayLike<unknown>;
  started: boolean;
}

/** `new Future()`: see {@link FutureConstructor}. The module's export (CommonJS and default). */
const Future = function Future(this: FutureState) {
  // `fibers` set no fields here; subclasses written for it call Future.call(this) or nothing at all.
} as unknown as FutureConstructor;

function rethrowLater(error: unknown): void {
  process.nextTick(() => {
    throw error;
  });
}

function settle(future: FutureState, ok: boolean, result: unknown): void {
  const callbacks = future.callbacks;
  if (callbacks === undefined) return;
  delete future.callbacks;
  for (const [arg1, arg2] of callbacks) {
    try {
      if (arg2 !== undefined) {
        if (ok) arg2(result);
        else (arg1 as Future).throw(result);
      } else if (ok) {
        (arg1 as Errback)(undefined, result);
      } else {
        (arg1 as Errback)(result);
      }
    } catch (error) {
      rethrowLater(error);
    }
  }
}

const prototype: Future & ThisType<FutureState> = {
  get(this: FutureState) {
    if (!this.resolved) throw new Error('Future must resolve before value is ready');
    if (this.error) throw this.error;
    return this.value;
  },

  return(this: FutureState, value?: unknown) {
    if (this.resolved) throw new Error('Future resolved more than once');
    this.value = value;
    this.resolved = true;
    settle(this, true, value);
  },

  throw(this: FutureState, error: unknown) {
    if (this.resolved) throw new Error('Future resolved more than once');
    if (!error) throw new Error('Must throw non-empty error');
    this.error = error;
    this.resolved = true;
    settle(this, false, error);
  },

  detach(this: FutureState) {
    this.resolve((error: unknown) => {
      if (error) throw error;
    });
  },

  isResolved(this: FutureState) {
    return this.resolved === true;
  },

  resolver(this: FutureState) {
    return (error: unknown, value?: unknown) => {
      if (error) this.throw(error);
      else this.return(value);
    };
  },

  resolve(this: FutureState, arg1: any, arg2?: (value: any) => void) {
    if (!this.resolved) {
      (this.callbacks ??= []).push([arg1, arg2]);
    } else if (arg2 !== undefined) {
      if (this.error) (arg1 as Future).throw(this.error);
      else arg2(this.value);
    } else {
      (arg1 as Errback)(this.error, this.value);
    }
    return this;
  },

  resolveSuccess(this: FutureState, callback: (value: any) => void) {
    this.resolve((error: unknown, value?: unknown) => {
      if (!error) callback(value);
    });
    return this;
  },

  proxy(this: FutureState, future: Future) {
    this.resolve((error: unknown, value?: unknown) => {
      if (error) future.throw(error);
      else future.return(value);
    });
  },

  proxyErrors(this: FutureState, futures: Future | Future[]) {
    this.resolve((error: unknown) => {
      if (!error) return;
      if (Array.isArray(futures)) for (const future of futures) future.throw(error);
      else futures.throw(error);
    });
    return this;
  },

  promise(this: FutureState) {
    return new Promise((resolve, reject) => {
      this.resolve((error: unknown, value?: unknown) => (error ? reject(error) : resolve(value)));
    });
  },

  wait(this: FutureState) {
    if (this.isResolved()) return this.get();
    Future.wait(this);
    return this.get();
  },
} as Future;

Object.defineProperty(Future, 'prototype', { value: prototype, writable: false });
Object.defineProperty(prototype, 'constructor', { value: Future, writable: true, configurable: true });

const FiberFutureProto: FiberFuture = Object.create(prototype);

function fiberFuture(fn: (...args: any[]) => any, context: unknown, args: ArrayLike<unknown>): FiberFuture {
  const future = Object.create(FiberFutureProto) as FiberFuture;
  future.fn = fn;
  future.context = context;
  future.args = args;
  future.started = false;
  process.nextTick(() => {
    if (future.started) return;
    future.started = true;
    Fiber(() => runInto(future)).run();
  });
  return future;
}

function runInto(future: FiberFuture): void {
  let value: unknown;
  try {
    value = future.fn.apply(future.context, future.args as unknown[]);
  } catch (error) {
    future.throw(error);
    return;
  }
  future.return(value);
}

function isFiberFuture(value: unknown): value is FiberFuture {
  return FiberFutureProto.isPrototypeOf(value as object);
}

// Under --frozen-intrinsics Function.prototype cannot take it: everything but `fn.future()` works.
if (Object.isExtensible(Function.prototype)) {
  Object.defineProperty(Function.prototype, 'future', {
    value: function future(this: (...args: any[]) => any, detach?: boolean) {
      const fn = this;
      const wrapped = function (this: unknown, ...args: unknown[]) {
        const f = fiberFuture(fn, this, args);
        if (detach) f.detach();
        return f;
      };
      wrapped.toString = () => `<<Future ${String(fn)}.future()>>`;
      return wrapped;
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

function task(...fns: Array<() => unknown>): Future {
  if (fns.length === 1) return fiberFuture(fns[0], undefined, []);
  const all = new Future<unknown[]>();
  const values = new Array<unknown>(fns.length);
  let pending = fns.length;
  let failure: unknown;
  fns.forEach((fn, i) => {
    fiberFuture(fn, undefined, []).resolve((error: unknown, value?: unknown) => {
      if (error) failure = error;
      values[i] = value;
      if (--pending === 0) {
        if (failure) all.throw(failure);
        else all.return(values);
      }
    });
  });
  return all;
}

function wrap(target: any, multi?: boolean, suffix?: string, stop?: boolean): any {
  if (typeof target === 'object' && target !== null) {
    const wrapped = Object.create(target);
    for (const name in target) {
      if (wrapped[name] instanceof Function) wrapped[suffix === undefined ? `${name}Future` : name + suffix] = wrap(wrapped[name], multi, suffix, stop);
    }
    return wrapped;
  }
  if (typeof target !== 'function') return undefined;
  const fn = function (this: unknown, ...args: unknown[]) {
    const future = new Future();
    const resolver = future.resolver();
    args.push(multi ? (error: unknown, ...values: unknown[]) => resolver(error, values) : resolver);
    future._ = target.apply(this, args);
    return future;
  };
  // Functions with methods as properties (like `request`): wrap those too, once.
  if (!stop) {
    const proto = Object.create(target);
    for (const name in target) {
      if (Object.hasOwn(target, name) && target[name] instanceof Function) proto[name] = target[name];
    }
    Object.setPrototypeOf(fn, wrap(proto, multi, suffix, true));
  }
  return fn;
}

function collect(args: unknown[]): { futures: FutureState[]; single: FiberFuture | undefined } {
  const futures: FutureState[] = [];
  let single: FiberFuture | undefined;
  const add = (value: unknown) => {
    if (!(value instanceof Future)) throw new Error(`${String(value)} is not a future`);
    const future = value as FutureState;
    if (future.isResolved()) return;
    // A fiber future not started yet runs right here, in the waiting fiber (as `fibers` did).
    if (single === undefined && isFiberFuture(future) && !future.started) single = future;
    else futures.push(future);
  };
  for (const arg of args) {
    if (Array.isArray(arg)) arg.forEach(add);
    else add(arg);
  }
  return { futures, single };
}

function waitAll(...args: Array<Future | Future[]>): void {
  const { futures, single } = collect(args);
  const rec = currentRecord();
  if (rec === undefined) throw new Error("Can't wait without a fiber");
  const fiber = Fiber.current;
  let pending = futures.length + (single ? 1 : 0);
  if (fiber === undefined) {
    // A fiber made by spawn (or a spindle coroutine): park it on the scheduler instead of yielding.
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const cb = () => --pending === 0 && done();
    for (const future of futures) future.resolve(cb);
    if (single) {
      single.started = true;
      runInto(single);
      cb();
    }
    if (pending > 0) waitPromise(all);
    return;
  }
  let waiting = false;
  const cb = () => {
    // Resume the fiber only while it waits here (not after a reset() unwound it, say).
    if (--pending === 0 && waiting) fiber.run();
  };
  for (const future of futures) future.resolve(cb);
  if (single) {
    single.started = true;
    runInto(single);
    --pending;
  }
  while (pending > 0) {
    waiting = true;
    try {
      Fiber.yield();
    } finally {
      waiting = false;
    }
  }
}

function fromPromise<T>(promise: PromiseLike<T>): Future<T> {
  const future = new Future<T>();
  promise.then(
    (value) => future.return(value),
    (error) => future.throw(error),
  );
  return future;
}

Object.defineProperties(Future, {
  task: { value: task, writable: true, enumerable: true, configurable: true },
  wrap: { value: wrap, writable: true, enumerable: true, configurable: true },
  wait: { value: waitAll, writable: true, enumerable: true, configurable: true },
  fromPromise: { value: fromPromise, writable: true, enumerable: true, configurable: true },
  default: { value: Future },
});

export default Future;
// `require('spindle/fibers/future')` is the Future function itself, as `require('fibers/future')` was.
module.exports = Future;
