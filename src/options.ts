// Argument checks shared by the primitives: clear errors that name the argument.
import { invalidArg, outOfRange } from './errors.js';

/** The `timeout` of an options object, in ms; -1 when absent. */
export function timeoutOption(opts: { timeout?: number } | undefined, name = 'opts'): number {
  if (opts === undefined) return -1;
  if (opts === null || typeof opts !== 'object') throw invalidArg(name, 'an object', opts);
  const t = opts.timeout;
  if (t === undefined) return -1;
  if (typeof t !== 'number' || Number.isNaN(t)) throw invalidArg(`${name}.timeout`, 'a number', t);
  if (t < 0) throw outOfRange(`${name}.timeout`, '>= 0', t);
  return t;
}

/** A non-negative integer argument (counts, permits, capacities). */
export function countArg(value: unknown, name: string, min = 0): number {
  if (typeof value !== 'number') throw invalidArg(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min) throw outOfRange(name, `an integer >= ${min}`, value);
  return value;
}
