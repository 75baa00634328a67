// The JavaScript half of the C API for other addons (include/spindle.h, native/capi.cc). The C
// table's park() calls park() below once per wake-up, so a fiber parked by another addon goes through
// runtime.ts's park() like any other suspension: status, waitingOn, interruption, async-context
// hand-over. The table is published on the package's exports under Symbol.for('spindle.native.v1').
import { FiberInterruptedError, FiberStateError, NotInFiberError, SpindleError, TimeoutError } from './errors.js';
import { native } from './native.js';
import { type FiberRecord, currentRecord, park as parkRecord, startRuntime } from './runtime.js';

/** The key of the napi_external holding the C function table (SPINDLE_API_SYMBOL in spindle.h). */
export const NATIVE_API_SYMBOL: unique symbol = Symbol.for('spindle.native.v1') as never;

// spindle_status in include/spindle.h.
const WOKEN = 0;
const INTERRUPTED = 1;
const NOT_IN_FIBER = 2;
const TIMED_OUT = 3;
const ERROR = 4;

/** Per fiber: what throw_status needs after a park that did not end with WOKEN. */
const lastPark = new WeakMap<FiberRecord, { timeoutMs: number; error: unknown }>();

/**
 * One park of the running fiber for the C API: returns a spindle_status. `interruptible` is false
 * once the fiber was interrupted and the C side waits for the addon's cancellation to signal.
 */
function park(timeoutMs: number, interruptible: boolean, label: string, originalTimeoutMs: number): number {
  const self = currentRecord();
  if (self === undefined) return NOT_IN_FIBER;
  try {
    if (!parkRecord(self, label, timeoutMs, interruptible)) return WOKEN;
    lastPark.set(self, { timeoutMs: originalTimeoutMs, error: undefined });
    return TIMED_OUT;
  } catch (error) {
    if (error instanceof FiberInterruptedError && self.interrupted) return INTERRUPTED;
    lastPark.set(self, { timeoutMs: originalTimeoutMs, error });
    return ERROR;
  }
}

function current(): number {
  return currentRecord()?.id ?? 0;
}

function interrupted(): boolean {
  const self = currentRecord();
  return self !== undefined && self.interrupted && self.noInterrupt === 0;
}

/** The error throw_status raises for `status`. */
function error(status: number, operation: string): Error {
  const self = currentRecord();
  switch (status) {
    case INTERRUPTED:
      return new FiberInterruptedError(self?.interruptReason);
    case NOT_IN_FIBER:
      return new NotInFiberError(operation);
    case TIMED_OUT:
      return new TimeoutError(operation, self ? (lastPark.get(self)?.timeoutMs ?? 0) : 0);
    default: {
      const last = self ? lastPark.get(self) : undefined;
      if (self) lastPark.delete(self);
      if (last?.error instanceof Error) return last.error;
      if (last !== undefined && last.error !== undefined) return new FiberStateError(`${operation} could not park: ${String(last.error)}`);
      return new SpindleError('ERR_FIBER_TERMINATING', `${operation} could not park the fiber (the environment is shutting down, or the wake token is not usable here)`);
    }
  }
}

let table: unknown;

/**
 * Puts the C API table on the package's exports (called by the entry point with its module.exports).
 * A getter: the first addon to read it (spindle_api_get) starts the runtime and attaches the C API.
 */
export function publishNativeApi(target: object): void {
  Object.defineProperty(target, NATIVE_API_SYMBOL, {
    get() {
      if (table === undefined) {
        startRuntime('the C API (spindle_api_get)');
        table = native.capiInit({ park, current, interrupted, error });
      }
      return table;
    },
    enumerable: false,
    configurable: false,
  });
}
