// Array.prototype.join and toLocaleString, made safe to suspend in. V8 detects cyclic joins with one
// stack of "arrays being joined" per context, not per thread: fibers that suspend inside an element's
// toString (a join in progress) and interleave corrupt it, giving wrong results ('' for an array
// another fiber is joining) or aborting the process. Inside fibers these two run the specified
// algorithm here instead, with the cycle check kept per fiber; outside fibers the originals run.
// Node's internals are unaffected: they hold the originals (primordials) from before any user code.
import { currentRecord } from './runtime.js';

const originalJoin = Array.prototype.join;
const originalToLocaleString = Array.prototype.toLocaleString;
const joining = new WeakMap<object, Set<object>>();

function toLength(value: unknown): number {
  const n = Math.trunc(Number(value));
  return Number.isNaN(n) || n <= 0 ? 0 : Math.min(n, Number.MAX_SAFE_INTEGER);
}

function fiberJoin(receiver: unknown, separator: unknown, element: (value: unknown) => string, fiber: object): string {
  if (receiver === null || receiver === undefined) throw new TypeError('Array.prototype.join called on null or undefined');
  const array = Object(receiver) as ArrayLike<unknown>;
  let active = joining.get(fiber);
  if (active === undefined) joining.set(fiber, (active = new Set()));
  if (active.has(array)) return '';  // a cycle: what V8 returns too
  const length = toLength(array.length);
  const sep = separator === undefined ? ',' : `${separator as string}`;
  active.add(array);
  try {
    let result = '';
    for (let i = 0; i < length; i++) {
      if (i > 0) result += sep;
      const value = array[i];
      if (value !== undefined && value !== null) result += element(value);
    }
    return result;
  } finally {
    active.delete(array);
  }
}

const toStr = (value: unknown): string => `${value as string}`;
const toLocale = (value: unknown): string => `${(value as { toLocaleString(): unknown }).toLocaleString() as string}`;

function install(name: 'join' | 'toLocaleString', original: (...args: never[]) => string, element: (value: unknown) => string): void {
  const replacement = {
    [name](this: unknown, separator?: unknown): string {
      const fiber = currentRecord();
      if (fiber === undefined) return Reflect.apply(original, this, arguments as unknown as unknown[]) as string;
      return fiberJoin(this, name === 'join' ? separator : undefined, element, fiber);
    },
  }[name];
  Object.defineProperty(replacement, 'length', { value: original.length });
  Object.defineProperty(Array.prototype, name, { value: replacement, writable: true, enumerable: false, configurable: true });
}

// Under --frozen-intrinsics Array.prototype cannot change: the originals stay (README, Known limits).
if (Object.getOwnPropertyDescriptor(Array.prototype, 'join')?.configurable === true) {
  install('join', originalJoin, toStr);
  install('toLocaleString', originalToLocaleString, toLocale);
}
