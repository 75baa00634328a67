// Shared test helpers. Tests use the built package (dist/), exactly as users load it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { expect } from 'vitest';

import { type Fiber, fibers, sleep, spawn, yieldNow } from '../dist/index.js';

export const root = path.resolve(__dirname, '..');
/** Absolute paths of the entry points, for scripts run in a child process. */
export const cjsEntry = path.join(root, 'dist', 'cjs', 'index.js');
export const esmEntry = path.join(root, 'dist', 'index.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `source` as a CommonJS script in a fresh Node process (same binary as the tests) and returns
 * its exit status and output. `SPINDLE` in the source is replaced by the package's CommonJS entry path
 * (as a string literal). The timeout is only a safety net against hangs.
 */
export function runScript(source: string, opts: { timeoutMs?: number; args?: string[]; env?: NodeJS.ProcessEnv; ext?: string } = {}): RunResult {
  const dir = mkdtempSync(path.join(tmpdir(), 'spindle-test-'));
  const file = path.join(dir, `script${opts.ext ?? '.cjs'}`);
  writeFileSync(file, source.replaceAll('SPINDLE', JSON.stringify(opts.ext === '.mjs' ? esmEntry : cjsEntry)));
  const r = spawnSync(process.execPath, [...(opts.args ?? []), file], {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    env: { ...process.env, ...opts.env },
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Worker termination in the middle of IO: runs `rounds` Workers, two at a time, whose fibers run
 * `body` (with `spawn`, `signals` and `busy()` in scope; the body calls busy() after each operation)
 * and terminates each 0-3 ms after its 200th operation, at a different moment of its traffic each
 * time. The child prints the Workers' exit codes as JSON once all have ended.
 */
export function terminateBusyWorkers(body: string, rounds = 16): RunResult {
  const worker = `
    const { spawn, signals } = require(${JSON.stringify(cjsEntry)});
    const { parentPort } = require('node:worker_threads');
    let n = 0;
    const busy = () => { if (++n === 200) parentPort.postMessage('busy'); };
    ${body}`;
  return runScript(`
    const { Worker } = require('node:worker_threads');
    const codes = [];
    const start = (i) => {
      const w = new Worker(${JSON.stringify(worker)}, { eval: true });
      w.on('error', (e) => console.log('error', String(e)));
      w.once('message', () => setTimeout(() => w.terminate().then((code) => {
        codes.push(code);
        if (codes.length === ${rounds}) console.log(JSON.stringify(codes));
        else if (i + 2 < ${rounds}) start(i + 2);
      }), i % 4));
    };
    start(0);
    start(1);
  `);
}

/** Runs `fn` in a new fiber and resolves with its outcome. */
export function inFiber<T>(fn: () => T): Promise<T> {
  return spawn(fn).result();
}

/** Calls `fn` and returns what it threw (fails the test if it returned). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

/** Resolves once `cond()` holds, checking once per event-loop turn. */
export async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Inside a fiber: lets other fibers run until `cond()` holds, turning the event loop now and then so
 * IO completions land. Bounded, so a bug fails instead of hanging.
 */
export function yieldUntil(cond: () => boolean, what = 'condition'): void {
  for (let i = 0; i < 20_000; i++) {
    if (cond()) return;
    if (i % 100 === 99) sleep(1);
    else yieldNow();
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** What a live fiber is parked on, per fibers() ('' when it is not). */
export function waitingOn(fiber: Fiber<unknown>): string {
  return fibers().find((f) => f.id === fiber.id)?.waitingOn ?? '';
}

/** Inside a fiber: lets other fibers run until `fiber` is parked in a wait described by `op...`. */
export function untilParked(fiber: Fiber<unknown>, op: string): void {
  yieldUntil(() => fiber.status === 'suspended' && waitingOn(fiber).startsWith(op), `${fiber.name} to park in ${op}`);
}

/** Inside a fiber: spawns `fn` and lets it run up to its first suspension. */
export function parked<T>(fn: () => T): Fiber<T> {
  const f = spawn(fn);
  yieldNow();
  expect(f.status).toBe('suspended');
  return f;
}
