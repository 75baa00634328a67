/**
 * Fiber-local storage.
 * @packageDocumentation
 */
import { invalidArg } from './errors.js';
import { currentRecord } from './runtime.js';

const loopThreadValues = new Map<object, unknown>();

/**
 * A variable with one value per fiber (and one for code outside fibers), like Tarantool's
 * `fiber.storage` or Boost.Fiber's `fiber_specific_ptr`. A fiber starts with the initial value; it
 * does not inherit its spawner's. Never suspends.
 */
export class FiberLocal<T> {
  #init: () => T;

  /** `initial` is every fiber's starting value. */
  constructor(initial?: T) {
    this.#init = () => initial as T;
  }

  /** A FiberLocal whose starting value is made by `init()`, once per fiber, on first use. */
  static withInitializer<T>(init: () => T): FiberLocal<T> {
    if (typeof init !== 'function') throw invalidArg('init', 'of type function', init);
    const local = new FiberLocal<T>();
    local.#init = init;
    return local;
  }

  /** The running fiber's value. */
  get(): T {
    const values = this.#values();
    if (values.has(this)) return values.get(this) as T;
    const value = this.#init();
    values.set(this, value);
    return value;
  }

  /** Sets the running fiber's value. */
  set(value: T): void {
    this.#values().set(this, value);
  }

  #values(): Map<object, unknown> {
    const rec = currentRecord();
    if (rec === undefined) return loopThreadValues;
    return (rec.locals ??= new Map());
  }
}
