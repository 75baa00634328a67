/**
 * select: wait on several operations at once; exactly one takes effect.
 * @packageDocumentation
 */
import { NotInFiberError, TimeoutError, invalidArg, outOfRange } from './errors.js';
import { timeoutOption } from './options.js';
import { currentRecord } from './runtime.js';
import { type CaseResult, NOT_READY, SelectCase } from './select-case.js';
import { Waiter, blockOn } from './sync/waiters.js';

/** Options of {@link select}. */
export interface SelectOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
  /** Never suspend: when no case is ready now, return `{ index: -1 }`. */
  default?: boolean;
}

/** What {@link select} returns. */
export interface SelectResult {
  /** Which case fired (its position in `cases`), or -1 for `default`. */
  index: number;
  /** The value received, the joined fiber's value, or the promise's value. */
  value: unknown;
  /** False only for a receive on a closed, drained channel (as in Go). */
  ok: boolean;
}

class AfterCase extends SelectCase {
  constructor(readonly ms: number) {
    super();
  }
  poll(): CaseResult | typeof NOT_READY {
    return this.ms === 0 ? { value: undefined, ok: true } : NOT_READY;
  }
  register(): () => void {
    return () => {};
  }
  resultOf(): CaseResult {
    return { value: undefined, ok: true };
  }
  describe(): string {
    return `after(${this.ms})`;
  }
  override get delay(): number {
    return this.ms;
  }
}

/** A `select` case that fires `ms` milliseconds after `select` starts waiting (a timer: it keeps the process alive). */
export function after(ms: number): SelectCase {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw invalidArg('ms', 'a number', ms);
  if (ms < 0) throw outOfRange('ms', '>= 0', ms);
  return new AfterCase(ms);
}

class PromiseCase extends SelectCase {
  constructor(readonly promise: PromiseLike<unknown>) {
    super();
  }
  poll(): typeof NOT_READY {
    return NOT_READY;  // a settled promise's state cannot be read synchronously
  }
  register(waiter: Waiter, index: number): () => void {
    Promise.resolve(this.promise).then(
      (value) => waiter.done || waiter.complete(index, { ok: true, value }),
      (error) => waiter.done || waiter.complete(index, { ok: false, error }),
    );
    return () => {};  // a late settlement finds the waiter done and does nothing
  }
  resultOf(waiter: Waiter): CaseResult {
    const settled = waiter.value as { ok: true; value: unknown } | { ok: false; error: unknown };
    if (!settled.ok) throw settled.error;
    return { value: settled.value, ok: true };
  }
  describe(): string {
    return 'a promise';
  }
}

/**
 * A `select` case that fires when `promise` settles: its value, or `select` throws its reason. It is
 * never ready at once (a promise's state cannot be read synchronously), so with `default` it does not
 * fire.
 */
export function promiseCase(promise: PromiseLike<unknown>): SelectCase {
  if (promise === null || typeof (promise as { then?: unknown })?.then !== 'function') throw invalidArg('promise', 'a promise', promise);
  return new PromiseCase(promise);
}

/**
 * Waits until one of `cases` can take effect, lets exactly that one take effect and returns which.
 * The others leave no trace: no value is taken from or half-sent on a channel. When several are ready
 * at once, one is chosen at random (as in Go). With `default`, it never suspends. An interruption point.
 * @throws NotInFiberError outside fibers when it would wait; TimeoutError when `timeout` elapses
 *   first; ChannelClosedError for a send case on a closed channel; the error of a joined fiber or a
 *   rejected promise case.
 */
export function select(cases: readonly SelectCase[], opts?: SelectOptions): SelectResult {
  if (!Array.isArray(cases)) throw invalidArg('cases', 'an array of select cases', cases);
  cases.forEach((c, i) => {
    if (!(c instanceof SelectCase)) throw invalidArg(`cases[${i}]`, 'a select case (recvCase, sendCase, after, joinCase, promiseCase)', c);
  });
  const timeout = timeoutOption(opts);
  const dflt = opts?.default ?? false;
  if (typeof dflt !== 'boolean') throw invalidArg('opts.default', 'of type boolean', dflt);

  for (const c of cases) c.validate();
  const n = cases.length;
  const start = n > 1 ? Math.floor(Math.random() * n) : 0;
  for (let k = 0; k < n; k++) {
    const index = (start + k) % n;
    const result = cases[index].poll();
    if (result !== NOT_READY) return { index, ...result };
  }
  if (dflt) return { index: -1, value: undefined, ok: false };
  const self = currentRecord();
  if (self === undefined) throw new NotInFiberError('select()');

  // The earliest timer case becomes the park timeout (together with opts.timeout).
  let timerIndex = -1;
  cases.forEach((c, i) => {
    if (c.delay >= 0 && (timerIndex < 0 || c.delay < cases[timerIndex].delay)) timerIndex = i;
  });
  const timerDelay = timerIndex >= 0 ? cases[timerIndex].delay : -1;
  const wait = timerDelay < 0 ? timeout : timeout < 0 ? timerDelay : Math.min(timeout, timerDelay);

  const waiter = Waiter.forFiber(self);
  const withdraw = cases.map((c, i) => c.register(waiter, i));
  let completed: boolean;
  try {
    completed = blockOn(self, waiter, `select(${cases.map((c) => c.describe()).join(', ')})`, wait, true);
  } finally {
    for (const w of withdraw) w();
  }
  if (!completed) {
    if (timerIndex >= 0 && (timeout < 0 || timerDelay <= timeout)) return { index: timerIndex, value: undefined, ok: true };
    throw new TimeoutError('select()', timeout);
  }
  return { index: waiter.index, ...cases[waiter.index].resultOf(waiter) };
}
