// Signals for fibers (signals.wait) and graceful shutdown (shutdownOn), exported from the main entry.
import { constants } from 'node:os';

import { invalidArg, outOfRange } from './errors.js';
import { type NativeIo, NativeOp, awaitIo } from './io/wait.js';
import { nativeModule } from './native.js';
import { timeoutOption } from './options.js';
import { type FiberRecord, checkInterruptOf, liveRecords, onDone, requireCurrent, wake } from './runtime.js';

/** A signal name (`'SIGINT'`, `'SIGTERM'`, `'SIGHUP'`, ...) or its number. */
export type SignalSpec = NodeJS.Signals | number;

/** Options of {@link Signals.wait}. */
export interface SignalWaitOptions {
  /** Milliseconds to wait before throwing `TimeoutError`. */
  timeout?: number;
}

/** The type of {@link signals}. */
export interface Signals {
  /**
   * Suspends the calling fiber until one of `signal` (a name, a number, or a list of them) is
   * delivered to the process; returns the name of the signal that arrived. An interruption point.
   *
   * While at least one fiber waits on a signal, spindle catches it (a libuv signal handle, which keeps
   * the process alive) and every fiber waiting on it wakes; when nobody waits any more the handle is
   * stopped, and the signal has its usual effect again (the default action, such as ending the
   * process, or Node's `process.on` listeners): the same as `events.once(process, 'SIGINT')`. A loop
   * that must never miss a signal between waits combines it with {@link shutdownOn} or a
   * `process.on(signal)` listener.
   * @throws NotInFiberError outside a fiber; TypeError / RangeError for an unknown signal, or one that
   *   cannot be caught (`SIGKILL`, `SIGSTOP`); TimeoutError when `timeout` elapses;
   *   FiberInterruptedError when interrupted.
   */
  wait(signal: SignalSpec | readonly SignalSpec[], opts?: SignalWaitOptions): NodeJS.Signals;
}

/** A wait in flight (a napi_external). */
type OpHandle = object;

interface SignalsNative extends NativeIo<OpHandle> {
  /** The wait, a libuv error number if it could not start, or undefined (the environment is going away). */
  wait(signums: number[]): OpHandle | number | undefined;
  /** Once done and not cancelled: the signal that arrived. */
  signal(op: OpHandle): number;
}

const signalsNative = nativeModule<SignalsNative>('signals');
const byNumber = new Map<number, NodeJS.Signals>();
for (const [name, num] of Object.entries(constants.signals)) if (!byNumber.has(num)) byNumber.set(num, name as NodeJS.Signals);

/** The number of a signal given by name or number. */
function signalNumber(spec: unknown, argName: string): number {
  if (typeof spec === 'string') {
    const num = (constants.signals as Record<string, number | undefined>)[spec];
    if (num === undefined) throw outOfRange(argName, 'a signal name such as "SIGINT"', spec);
    return num;
  }
  if (typeof spec === 'number') {
    if (!byNumber.has(spec)) throw outOfRange(argName, 'a signal number', spec);
    return spec;
  }
  throw invalidArg(argName, 'a signal name or number', spec);
}

function signalList(spec: unknown, argName: string): number[] {
  const list = Array.isArray(spec) ? (spec as unknown[]) : [spec];
  if (list.length === 0) throw outOfRange(argName, 'one signal or more', '[]');
  return list.map((s, i) => signalNumber(s, Array.isArray(spec) ? `${argName}[${i}]` : argName));
}

function uncatchable(signums: number[], argName: string): never {
  const names = signums.map((n) => byNumber.get(n) ?? String(n)).join(', ');
  throw outOfRange(argName, 'a signal that can be caught (not SIGKILL or SIGSTOP)', names);
}

/**
 * Waiting for signals from fibers. See {@link Signals.wait}.
 *
 * ```js
 * spawn(() => {
 *   const sig = signals.wait(['SIGINT', 'SIGTERM']);
 *   console.log(`got ${sig}`);
 * });
 * ```
 */
export const signals: Signals = Object.freeze({
  wait(signal: SignalSpec | readonly SignalSpec[], opts?: SignalWaitOptions): NodeJS.Signals {
    const signums = signalList(signal, 'signal');
    const timeout = timeoutOption(opts);
    const self = requireCurrent('signals.wait()');
    checkInterruptOf(self);
    const started = signalsNative.wait(signums);
    if (typeof started === 'number') uncatchable(signums, 'signal');
    const op = new NativeOp(signalsNative, started);
    const names = signums.map((n) => byNumber.get(n)).join('|');
    awaitIo(self, op, `signal(${names})`, timeout, `signals.wait(${names})`);
    return byNumber.get(signalsNative.signal(op.handle))!;
  },
});

/** Options of {@link shutdownOn}. */
export interface ShutdownOptions {
  /**
   * Milliseconds the interrupted fibers get to finish (their `finally` blocks, cleanup inside
   * `uninterruptible`) before the process exits anyway with {@link ShutdownOptions.timeoutExitCode}.
   * Default 10000.
   */
  graceMs?: number;
  /**
   * The exit code after a clean shutdown (every fiber finished in time). By default there is none:
   * the process ends by the signal itself, re-raised with its default action, exactly as if it had
   * not been caught (a shell shows 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM; a
   * parent process sees the signal; systemd counts SIGINT and SIGTERM deaths as clean). Give `0` to
   * report a graceful shutdown as success instead.
   */
  exitCode?: number;
  /**
   * The exit code when fibers were still running after `graceMs` (or a second signal asked to stop
   * waiting). Default 1. Their names and what they wait on are written to stderr first.
   */
  timeoutExitCode?: number;
}

function exitCodeOption(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw invalidArg(name, 'an integer', value);
  if (value < 0 || value > 255) throw outOfRange(name, '>= 0 and <= 255', value);
  return value;
}

/** Sets the interruption flag of any live fiber (detached ones too) and wakes it at an interruption point. */
function interruptForShutdown(rec: FiberRecord, reason: unknown): void {
  if (rec.status === 'done') return;
  if (!rec.interrupted) {
    rec.interrupted = true;
    rec.interruptReason = reason;
  }
  if (rec.mode === 'parked' && rec.parkInterruptible) wake(rec);
}

/** Fibers the shutdown waits for: every fiber, and coroutines that are parked (not merely suspended). */
function stillRunning(): FiberRecord[] {
  return [...liveRecords()].filter((rec) => rec.kind === 'fiber' || rec.mode === 'parked');
}

/**
 * Installs a graceful shutdown on `signals` (default `['SIGINT', 'SIGTERM']`): when the first of them
 * arrives, every fiber is interrupted (detached ones included; fibers spawned during the shutdown
 * too), so each one's `finally` blocks run its cleanup (cancel-on-disconnect, closing sockets...), and
 * the process ends once no fiber is left, or after `graceMs` with whatever is still running.
 *
 * How the process ends (see {@link ShutdownOptions}): after a clean shutdown, by the same signal with
 * its default action (exit status 128 + signal number, as if uncaught), or `exitCode` if given; when
 * `graceMs` elapsed first, or a second signal arrived meanwhile, with `timeoutExitCode` (default 1).
 *
 * Installing it replaces the default action of those signals from now on (with `process.on`
 * listeners, which do not keep the process alive). Returns a function that uninstalls it again
 * (before a signal arrived; afterwards it does nothing). Works outside fibers.
 * @throws TypeError / RangeError for bad arguments.
 */
export function shutdownOn(signalsToHandle: SignalSpec | readonly SignalSpec[] = ['SIGINT', 'SIGTERM'], opts?: ShutdownOptions): () => void {
  const signums = signalList(signalsToHandle, 'signals');
  if (signums.some((n) => n === constants.signals.SIGKILL || n === constants.signals.SIGSTOP)) uncatchable(signums, 'signals');
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArg('opts', 'an object', opts);
  const graceMs = opts?.graceMs ?? 10_000;
  if (typeof graceMs !== 'number' || Number.isNaN(graceMs)) throw invalidArg('opts.graceMs', 'a number', graceMs);
  if (graceMs < 0) throw outOfRange('opts.graceMs', '>= 0', graceMs);
  const exitCode = exitCodeOption(opts?.exitCode, 'opts.exitCode');
  const timeoutExitCode = exitCodeOption(opts?.timeoutExitCode, 'opts.timeoutExitCode') ?? 1;
  const names = signums.map((n) => byNumber.get(n)!);

  let triggered: NodeJS.Signals | undefined;
  let finished = false;
  let graceTimer: NodeJS.Timeout | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let checkQueued = false;
  const watched = new WeakSet<FiberRecord>();

  const uninstall = () => {
    for (const name of names) process.removeListener(name, onSignal);
  };

  const end = (clean: boolean) => {
    if (finished) return;
    finished = true;
    clearTimeout(graceTimer);
    clearInterval(pollTimer);
    uninstall();
    const signal = triggered!;
    if (!clean) {
      const left = stillRunning();
      process.stderr.write(
        `spindle: shutdown on ${signal}: ${left.length} fiber(s) still running after ${graceMs} ms: ` +
          `${left.map((r) => `${r.label}${r.waitingOn ? ` (waiting on ${r.waitingOn})` : ''}`).join(', ')}\n`,
      );
      process.exit(timeoutExitCode);
    }
    if (exitCode !== undefined) process.exit(exitCode);
    const signum = constants.signals[signal];
    // Die of the signal itself, as without a handler. Another listener may still catch it: then exit
    // with the status a signal death shows in a shell.
    if (process.listenerCount(signal) === 0) {
      setTimeout(() => process.exit(128 + signum), 1000);
      process.kill(process.pid, signal);
    } else {
      process.exit(128 + signum);
    }
  };

  // Runs on the loop thread (never inside a fiber's completion): interrupts newcomers, ends when none is left.
  const check = () => {
    checkQueued = false;
    if (finished) return;
    const left = stillRunning();
    for (const rec of left) {
      interruptForShutdown(rec, triggered);
      if (!watched.has(rec)) {
        watched.add(rec);
        onDone(rec, queueCheck);
      }
    }
    if (left.length === 0) end(true);
  };
  function queueCheck(): void {
    if (checkQueued || finished) return;
    checkQueued = true;
    setImmediate(check);
  }

  function onSignal(signal: NodeJS.Signals): void {
    if (triggered !== undefined) {
      end(false);  // a second signal: stop waiting
      return;
    }
    triggered = signal;
    graceTimer = setTimeout(() => end(false), graceMs);  // keeps the process alive until we decide
    pollTimer = setInterval(check, 25);  // catches fibers spawned meanwhile
    pollTimer.unref();
    for (const rec of [...liveRecords()]) interruptForShutdown(rec, signal);
    queueCheck();
  }

  for (const name of names) process.on(name, onSignal);
  return () => {
    if (triggered === undefined) uninstall();
  };
}
