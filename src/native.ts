// Loads the native core: a prebuild when one matches, else the source build (node-gyp-build).
// SPINDLE_ADDON overrides the path (the sanitizer test run loads an instrumented build this way).
import path from 'node:path';

/** The addon's surface. Handles are the native fiber ids; 0 stands for the loop thread. */
export interface NativeCore {
  /** Starts the scheduler on `backend` ("auto", "inplace", "threads"; undefined: SPINDLE_BACKEND). Idempotent. */
  init(trampoline: (handle: number) => void, backend?: string): ArrayBuffer;
  create(stackSize: number): number;
  spawn(handle: number): void;
  /** 1 if the fiber was parked and is now ready, else 0. */
  wake(handle: number): number;
  park(timeoutMs: number): number;
  yieldNow(): void;
  resume(handle: number): void;
  suspend(): void;
  /** backend: the switch backend in use ("threads" or "inplace", "" before init); backendReason: why. */
  stats(): { liveFibers: number; carrierThreads: number; futexHashSlots: number; nativeTokens: number; backend: string; backendReason: string };
  /** Attaches the C API (include/spindle.h) to this environment; returns the table's napi_external. */
  capiInit(fns: {
    park(timeoutMs: number, interruptible: boolean, label: string, originalTimeoutMs: number): number;
    current(): number;
    interrupted(): boolean;
    error(status: number, operation: string): Error;
  }): unknown;
  benchBatonFloor(iterations: number, rounds: number, sameCore: boolean): number;
  /** The TCP echo benchmark's load generator (native/bench_load.h); blocks for the run. */
  benchEchoLoad(opts: { host: string; port: number; connections: number; size: number; warmupMs: number; durationMs: number; markFd?: number }): { messages: number; seconds: number };
}

function load(): NativeCore {
  const override = process.env.SPINDLE_ADDON;
  if (override) return require(path.resolve(override)) as NativeCore;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const gypBuild = require('node-gyp-build') as (dir: string) => NativeCore;
  return gypBuild(path.resolve(__dirname, '..', '..'));
}

export const native: NativeCore = load();

/**
 * The addon's IO module `name` (fs, net, dns, signals), copied: an object with that many native
 * functions is in V8's dictionary mode, so every call would look its function up in a hash table; an
 * object made by a spread has fast properties.
 */
export function nativeModule<T>(name: 'fs' | 'net' | 'dns' | 'signals'): T {
  return { ...(native as unknown as Record<string, T>)[name] };
}

/** Park result: woken by wake(). */
export const WOKEN = 0;
/** Park result: the timeout elapsed first. */
export const TIMED_OUT = 1;
