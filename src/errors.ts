/**
 * Errors raised by spindle. Each is an `Error` subclass with a stable `code`, so callers can test
 * `err.code` or `instanceof` alike.
 * @packageDocumentation
 */

/** Base class of every spindle error; `code` is stable across releases. */
export class SpindleError extends Error {
  /** Stable machine-readable code, for example `ERR_FIBER_TIMEOUT`. */
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * Thrown at an interruption point of a fiber that was interrupted (see `Fiber.interrupt`).
 * `reason` is what was passed to `interrupt`.
 */
export class FiberInterruptedError extends SpindleError {
  /** The value passed to `Fiber.interrupt(reason)`, if any. */
  readonly reason: unknown;
  constructor(reason?: unknown) {
    super('ERR_FIBER_INTERRUPTED', reason === undefined ? 'the fiber was interrupted' : `the fiber was interrupted: ${String(reason)}`);
    this.reason = reason;
  }
}

/** Thrown by a suspending call made outside any fiber. */
export class NotInFiberError extends SpindleError {
  constructor(operation: string) {
    super('ERR_NOT_IN_FIBER', `${operation} suspends the current fiber and must be called inside one (spawn a fiber, or use the async form)`);
  }
}

/** Thrown when a `timeout` given to a blocking call elapses first. */
export class TimeoutError extends SpindleError {
  constructor(operation: string, ms: number) {
    super('ERR_FIBER_TIMEOUT', `${operation} timed out after ${ms} ms`);
  }
}

/**
 * Thrown into fibers that wait on something nothing can complete any more: the process would exit
 * (its event loop is empty) while they are suspended. The message names what the fiber waited on.
 */
export class DeadlockError extends SpindleError {
  /** What the fiber was waiting on when the deadlock was detected. */
  readonly waitingOn: string;
  /** The cycle of waits it is part of ("#1 'a' waits on lock(Mutex #2), held by #3 'b'", ...), if any. */
  readonly cycle: string[];
  constructor(fiber: string, waitingOn: string, cycle: string[] = []) {
    super(
      'ERR_FIBER_DEADLOCK',
      `deadlock: fiber ${fiber} waits on ${waitingOn}, and nothing left in the process can wake it` +
        (cycle.length > 0 ? ` (cycle: ${cycle.join('; ')})` : ''),
    );
    this.waitingOn = waitingOn;
    this.cycle = cycle;
  }
}

/** Misuse of a fiber or primitive: joining twice, joining itself, unlocking a mutex one does not own... */
export class FiberStateError extends SpindleError {
  constructor(message: string) {
    super('ERR_FIBER_STATE', message);
  }
}

/**
 * Thrown by `send` on a closed channel, and by `recv` on a closed channel whose buffer is drained.
 * Senders blocked when the channel closes wake with it; their values were not delivered.
 */
export class ChannelClosedError extends SpindleError {
  constructor(channel: string) {
    super('ERR_CHANNEL_CLOSED', `${channel} is closed`);
  }
}

/**
 * Thrown by `readExactly` / `readUntil` (spindle/net, spindle/stream) when the stream ends first.
 * `partial` holds what was read before the end (consumed).
 */
export class UnexpectedEofError extends SpindleError {
  /** What was read before the end of the stream. */
  readonly partial: Buffer;
  constructor(operation: string, partial: Buffer) {
    super('ERR_UNEXPECTED_EOF', `${operation}: the stream ended after ${partial.length} byte(s)`);
    this.partial = partial;
  }
}

/**
 * Thrown by `readUntil` (spindle/net, spindle/stream) when `maxBytes` bytes arrived without the
 * delimiter. Nothing is consumed: the bytes stay readable.
 */
export class ReadLimitError extends SpindleError {
  /** The `maxBytes` that was exceeded. */
  readonly maxBytes: number;
  constructor(operation: string, maxBytes: number) {
    super('ERR_READ_LIMIT_EXCEEDED', `${operation}: no delimiter within ${maxBytes} bytes`);
    this.maxBytes = maxBytes;
  }
}

/** Creates a `TypeError` with Node's `ERR_INVALID_ARG_TYPE` code, naming the argument. */
export function invalidArg(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`);
  (err as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** Creates a `RangeError` with Node's `ERR_OUT_OF_RANGE` code, naming the argument. */
export function outOfRange(name: string, expected: string, actual: unknown): RangeError {
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${expected}. Received ${describe(actual)}`);
  (err as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return err;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  if (typeof value === 'string') return `type string ('${value.length > 28 ? `${value.slice(0, 25)}...` : value}')`;
  return `type ${typeof value} (${String(value)})`;
}
