/**
 * spindle: stackful fibers for Node.js.
 * @packageDocumentation
 */
import './builtins.js';

export {
  type BackendInfo,
  type BackendName,
  type ConfigureOptions,
  DEFAULT_STACK_SIZE,
  Fiber,
  backend,
  type FiberInfo,
  type FiberStatus,
  type JoinOptions,
  type SpawnOptions,
  checkInterrupt,
  configure,
  current,
  fiberize,
  fibers,
  sleep,
  spawn,
  uninterruptible,
  wait,
  yieldNow,
} from './fiber.js';
export { Coroutine, type ResumeResult, coroutine, suspend } from './coroutine.js';
export { FiberLocal } from './local.js';
export { Scope, scope } from './scope.js';
export {
  ChannelClosedError,
  DeadlockError,
  FiberInterruptedError,
  FiberStateError,
  NotInFiberError,
  ReadLimitError,
  SpindleError,
  TimeoutError,
  UnexpectedEofError,
} from './errors.js';
export * from './sync/index.js';
export { Channel, RecvCase, SendCase, type ChannelOptions, type TryRecvResult } from './channel.js';
export { after, promiseCase, select, type SelectOptions, type SelectResult } from './select.js';
export { SelectCase } from './select-case.js';

// The C API for other native addons (include/spindle.h): its table under Symbol.for('spindle.native.v1').
import { publishNativeApi } from './native-api.js';
publishNativeApi(module.exports);
export { type ShutdownOptions, type SignalSpec, type SignalWaitOptions, type Signals, shutdownOn, signals } from './signals.js';
