// The shape of an operation that `select` can wait on (channel cases, timers, joins, promises).
import type { Waiter } from './sync/waiters.js';

/** Returned by poll() when the case cannot complete without waiting. */
export const NOT_READY: unique symbol = Symbol('not ready');

/** @internal What a case yields when it fires. */
export interface CaseResult {
  value: unknown;
  /** False for a receive on a closed, drained channel. */
  ok: boolean;
}

/** An operation `select` can wait on. Made by `recvCase`, `sendCase`, `after`, `joinCase`, `promiseCase`. */
export abstract class SelectCase {
  /** @internal Throws for misuse (checked for every case before any case is polled). */
  validate(): void {}
  /** @internal Completes now if it can (taking effect), else returns NOT_READY (leaving no trace). */
  abstract poll(): CaseResult | typeof NOT_READY;
  /** @internal Waits as case `index` of `waiter`; returns how to withdraw without a trace. */
  abstract register(waiter: Waiter, index: number): () => void;
  /** @internal The result once `waiter` was completed through this case (may throw its error). */
  abstract resultOf(waiter: Waiter): CaseResult;
  /** @internal What it waits on, for fibers() and deadlock reports. */
  abstract describe(): string;
  /** @internal A timer case's delay in ms (select waits with it as a timeout), else -1. */
  get delay(): number {
    return -1;
  }
}
