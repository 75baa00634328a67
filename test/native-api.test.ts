// The C API for other addons (include/spindle.h): a separately built addon (examples/native-consumer,
// no link against spindle) parks fibers on its own worker-thread completions.
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

import { beforeAll, describe, expect, it } from 'vitest';

import { type Fiber, FiberInterruptedError, checkInterrupt, current, fibers, spawn, uninterruptible } from '../dist/index.js';
import { cjsEntry, inFiber, root, runScript, thrown, until } from './helpers.js';

const require = createRequire(import.meta.url);
const exampleDir = path.join(root, 'examples', 'native-consumer');
// Kept between runs (cmake rebuilds incrementally); one directory per Node version.
const buildDir = path.join(exampleDir, 'build', `node-${process.versions.node}`);
const addonPath = path.join(buildDir, 'native_consumer.node');
const LABEL = 'native-consumer compute()';

interface Stats {
  started: number;
  completed: number;
  cancelled: number;
  delivered: number;
  discarded: number;
  cancelCalls: number;
  doubleDeliveries: number;
  jobsAlive: number;
  woken: number;
  interrupted: number;
  timedOut: number;
  errors: number;
  liveTokens: number;
  apiVersion: number;
  apiSize: number;
}
interface Consumer {
  init(spindle: unknown): number;
  compute(n: number, delayMs: number, timeoutMs?: number): number;
  parkStatus(): number;
  parkOrThrow(): void;
  waitLoopSignal(): number;
  signalPending(): number;
  currentFiber(): number;
  isInterrupted(): boolean;
  stats(): Stats;
}

let consumer: Consumer;
const spindleExports = require(cjsEntry) as object;

function collatzTotal(n: number): number {
  let total = 0;
  for (let i = 1; i <= n; i++) {
    let x = i;
    while (x !== 1) {
      x = x % 2 === 1 ? 3 * x + 1 : x / 2;
      total++;
    }
  }
  return total;
}

/** All jobs finished and every token freed (worker threads release theirs after signalling). */
async function settled(): Promise<Stats> {
  const deadline = Date.now() + 20_000;
  await until(() => {
    const s = consumer.stats();
    return (s.jobsAlive === 0 && s.liveTokens === 0) || Date.now() > deadline;
  });
  return consumer.stats();
}

beforeAll(() => {
  // Build with the Node under test's headers; never under the sanitizer preload (the compilers would
  // load ASan too).
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  const r = spawnSync(process.execPath, [path.join(exampleDir, 'build.mjs'), buildDir], { encoding: 'utf8', env, timeout: 240_000 });
  if (r.status !== 0 || !existsSync(addonPath)) throw new Error(`building examples/native-consumer failed:\n${r.stdout}\n${r.stderr}`);
  consumer = require(addonPath) as Consumer;
  consumer.init(spindleExports);
}, 300_000);

describe('native API: discovery', () => {
  it('publishes a versioned table under Symbol.for("spindle.native.v1") on the package exports', () => {
    const table = (spindleExports as Record<symbol, unknown>)[Symbol.for('spindle.native.v1')];
    expect(table).toBeDefined();
    expect(typeof table).toBe('object'); // a napi_external
    const s = consumer.stats();
    expect(s.apiVersion).toBe(1);
    expect(s.apiSize).toBeGreaterThanOrEqual(13 * 8);
  });

  it('the header helper rejects what is not spindle with a clear error', () => {
    const fresh = require(addonPath) as Consumer; // same module instance: init again
    expect(thrown(() => fresh.init({}))).toMatchObject({ code: 'ERR_SPINDLE_NATIVE_API' });
    expect(thrown(() => fresh.init(42))).toMatchObject({ code: 'ERR_SPINDLE_NATIVE_API' });
    consumer.init(spindleExports);
  });
});

describe('native API: parking fibers on worker-thread completions', () => {
  it('100 concurrent calls from 100 fibers: results right, the loop runs meanwhile, no token leaks', async () => {
    const before = consumer.stats();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    const ns = Array.from({ length: 100 }, (_, i) => 3000 + i * 37);
    const started = performance.now();
    const results = await Promise.all(ns.map((n, i) => spawn(() => consumer.compute(n, 40 + (i % 7) * 10), { name: `c${i}` }).result()));
    clearInterval(ticker);
    const elapsed = performance.now() - started;
    expect(results).toEqual(ns.map(collatzTotal));
    // They ran concurrently: 100 calls of 40-100 ms each took far less than their sum (7 s).
    expect(elapsed).toBeLessThan(5000);
    expect(ticks).toBeGreaterThan(3);
    const after = await settled();
    expect(after.delivered - before.delivered).toBe(100);
    expect(after.woken - before.woken).toBe(100);
    expect(after.doubleDeliveries).toBe(0);
    expect(after.jobsAlive).toBe(0);
    expect(after.liveTokens).toBe(0);
  });

  it('a parked fiber shows the token label in fibers() and status suspended; current_fiber is Fiber.id', async () => {
    let seen = -1;
    const f = spawn(() => {
      seen = consumer.currentFiber();
      return consumer.compute(1000, 200);
    }, { name: 'shown' });
    await until(() => fibers().some((i) => i.name === 'shown' && i.waitingOn === LABEL));
    const info = fibers().find((i) => i.name === 'shown')!;
    expect(info.status).toBe('suspended');
    expect(await f.result()).toBe(collatzTotal(1000));
    expect(seen).toBe(f.id);
    expect(consumer.currentFiber()).toBe(0);
    await settled();
  });

  it('AsyncLocalStorage and the async context survive the native park', async () => {
    const als = new AsyncLocalStorage<string>();
    const out = await als.run('outer', () =>
      inFiber(() => {
        const a = als.getStore();
        const inner = als.run('inner', () => {
          consumer.compute(500, 20);
          return als.getStore();
        });
        consumer.compute(500, 20);
        return [a, inner, als.getStore()];
      }),
    );
    expect(out).toEqual(['outer', 'inner', 'outer']);
    await settled();
  });

  it('signal from the JS thread wakes the parked fiber (and coalesces)', async () => {
    const f = spawn(() => consumer.waitLoopSignal());
    await until(() => fibers().some((i) => i.id === f.id && i.waitingOn === 'native-consumer waitLoopSignal()'));
    expect(consumer.signalPending()).toBe(0);
    expect(await f.result()).toBe(0);
    await settled();
  });

  it('a timeout raises TimeoutError after the work was cancelled and finished', async () => {
    const before = consumer.stats();
    const started = performance.now();
    const error = await inFiber(() => thrown(() => consumer.compute(1000, 3000, 50)));
    expect(error).toMatchObject({ code: 'ERR_FIBER_TIMEOUT' });
    expect(performance.now() - started).toBeLessThan(1500);
    const after = await settled();
    expect(after.timedOut - before.timedOut).toBe(1);
    expect(after.delivered).toBe(before.delivered);
    expect(after.liveTokens).toBe(0);
  });
});

describe('native API: interruption ("delivered or not at all")', () => {
  it('interrupting 20 parked fibers runs each cancel callback, waits for the worker, raises FiberInterruptedError', async () => {
    const before = consumer.stats();
    const fs = Array.from({ length: 20 }, (_, i) => spawn(() => consumer.compute(2000, 3000), { name: `long${i}` }));
    await until(() => fibers().filter((i) => i.name.startsWith('long') && i.waitingOn === LABEL).length === 20);
    const started = performance.now();
    fs.forEach((f, i) => f.interrupt(`stop ${i}`));
    const outcomes = await Promise.all(fs.map((f) => f.result().then(() => 'value', (e: unknown) => e)));
    expect(performance.now() - started).toBeLessThan(2000); // not the 3 s the work would take
    outcomes.forEach((e, i) => {
      expect(e).toBeInstanceOf(FiberInterruptedError);
      expect(e).toMatchObject({ code: 'ERR_FIBER_INTERRUPTED', reason: `stop ${i}` });
    });
    expect(fs.every((f) => f.interruptionCaught)).toBe(true);
    const after = await settled();
    expect(after.cancelCalls - before.cancelCalls).toBe(20);
    expect(after.interrupted - before.interrupted).toBe(20);
    expect(after.cancelled - before.cancelled).toBe(20);
    expect(after.discarded - before.discarded).toBe(20);
    expect(after.delivered).toBe(before.delivered); // nothing delivered
    expect(after.doubleDeliveries).toBe(0);
    expect(after.liveTokens).toBe(0);
  });

  it('a park is an interruption point: an interrupt pending before the call cancels at once', async () => {
    const before = consumer.stats();
    const error = await inFiber(() => {
      current()!.interrupt('early');
      expect(consumer.isInterrupted()).toBe(true);
      return thrown(() => consumer.compute(2000, 3000));
    });
    expect(error).toMatchObject({ code: 'ERR_FIBER_INTERRUPTED', reason: 'early' });
    const after = await settled();
    expect(after.cancelCalls - before.cancelCalls).toBe(1);
    expect(after.delivered).toBe(before.delivered);
  });

  it('inside uninterruptible() the park completes and delivers; the interruption stays pending', async () => {
    const before = consumer.stats();
    const log: unknown[] = [];
    const f = spawn(() => {
      const value = uninterruptible(() => {
        const v = consumer.compute(800, 150);
        log.push(consumer.isInterrupted()); // deferred inside uninterruptible
        return v;
      });
      log.push(value);
      log.push(consumer.isInterrupted());
      checkInterrupt();
      log.push('not reached');
    });
    await until(() => fibers().some((i) => i.id === f.id && i.waitingOn === LABEL));
    f.interrupt('later');
    await expect(f.result()).rejects.toMatchObject({ code: 'ERR_FIBER_INTERRUPTED' });
    expect(log).toEqual([false, collatzTotal(800), true]);
    const after = await settled();
    expect(after.cancelCalls).toBe(before.cancelCalls);
    expect(after.delivered - before.delivered).toBe(1);
  });

  it('mixed: interrupting half of 40 fibers delivers the others, each result exactly once', async () => {
    const before = consumer.stats();
    const fs: Fiber<number>[] = Array.from({ length: 40 }, (_, i) => spawn(() => consumer.compute(1500 + i, i % 2 === 0 ? 2500 : 300), { name: `mix${i}` }));
    await until(() => fibers().filter((i) => i.name.startsWith('mix') && i.waitingOn === LABEL).length === 40);
    fs.forEach((f, i) => i % 2 === 0 && f.interrupt());
    const outcomes = await Promise.all(fs.map((f) => f.result().then((v) => v, (e: unknown) => e)));
    outcomes.forEach((o, i) => {
      if (i % 2 === 0) expect(o).toBeInstanceOf(FiberInterruptedError);
      else expect(o).toBe(collatzTotal(1500 + i));
    });
    const after = await settled();
    expect(after.delivered - before.delivered).toBe(20);
    expect(after.discarded - before.discarded).toBe(20);
    expect(after.started - before.started).toBe(40);
    expect(after.doubleDeliveries).toBe(0);
    expect(after.liveTokens).toBe(0);
  });
});

describe('native API: outside fibers', () => {
  it('park returns not-in-fiber, and throw_status raises NotInFiberError; nothing leaks', () => {
    expect(consumer.parkStatus()).toBe(2); // SPINDLE_NOT_IN_FIBER
    expect(thrown(() => consumer.parkOrThrow())).toMatchObject({ code: 'ERR_NOT_IN_FIBER', name: 'NotInFiberError' });
    expect(thrown(() => consumer.compute(10, 0))).toMatchObject({ code: 'ERR_NOT_IN_FIBER' });
    expect(consumer.currentFiber()).toBe(0);
    expect(consumer.isInterrupted()).toBe(false);
    expect(consumer.stats().liveTokens).toBe(0);
  });

  it('from a FinalizationRegistry-like callback (a microtask outside fibers) it is not-in-fiber too', async () => {
    const status = await Promise.resolve().then(() => consumer.parkStatus());
    expect(status).toBe(2);
  });
});

describe('native API: lifetime', () => {
  it('a fiber parked on a token keeps the process alive (no DeadlockError) until the work signals', () => {
    const r = runScript(`
      const spindle = require(SPINDLE);
      const c = require(${JSON.stringify(addonPath)});
      c.init(spindle);
      spindle.spawn(() => console.log('result', c.compute(2000, 400))).detach();
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`result ${collatzTotal(2000)}`);
    expect(r.code).toBe(0);
  });

  it('process.exit() from a fiber while 20 others are parked on native work ends cleanly', () => {
    const r = runScript(`
      const spindle = require(SPINDLE);
      const c = require(${JSON.stringify(addonPath)});
      c.init(spindle);
      for (let i = 0; i < 20; i++) spindle.spawn(() => c.compute(3000, 2000)).detach();
      spindle.spawn(() => { spindle.sleep(50); console.log('exiting'); process.exit(7); });
    `);
    expect(r.stdout.trim()).toBe('exiting');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(7);
  });

  it('works inside a Worker (its own environment, the same table)', async () => {
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      const spindle = require(workerData.spindle);
      const c = require(workerData.addon);
      c.init(spindle);
      const ns = Array.from({ length: 20 }, (_, i) => 1000 + i);
      Promise.all(ns.map((n) => spindle.spawn(() => c.compute(n, 30)).result())).then((results) => {
        let interrupted;
        const f = spindle.spawn(() => c.compute(1000, 3000));
        setTimeout(() => f.interrupt(), 50);
        f.result().catch((e) => { interrupted = e.code; }).then(() => parentPort.postMessage({ results, interrupted }));
      });
      `,
      { eval: true, workerData: { spindle: cjsEntry, addon: addonPath } },
    );
    const msg = await new Promise<{ results: number[]; interrupted: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(msg.results).toEqual(Array.from({ length: 20 }, (_, i) => collatzTotal(1000 + i)));
    expect(msg.interrupted).toBe('ERR_FIBER_INTERRUPTED');
    const after = await settled();
    expect(after.liveTokens).toBe(0);
    expect(after.doubleDeliveries).toBe(0);
  });

  it('terminating a Worker with fibers parked on native work ends cleanly; late signals are ignored, tokens freed', async () => {
    const before = consumer.stats();
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      const spindle = require(workerData.spindle);
      const c = require(workerData.addon);
      c.init(spindle);
      for (let i = 0; i < 10; i++) spindle.spawn(() => c.compute(2000, 600), { name: 'w' + i }).detach();
      const check = setInterval(() => {
        if (spindle.fibers().filter((f) => f.waitingOn === ${JSON.stringify(LABEL)}).length === 10) {
          clearInterval(check);
          parentPort.postMessage('parked');
        }
      }, 5);
      `,
      { eval: true, workerData: { spindle: cjsEntry, addon: addonPath } },
    );
    await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    expect(consumer.stats().jobsAlive).toBeGreaterThanOrEqual(10);
    const code = await worker.terminate();
    expect(code).toBe(1);
    // The worker threads finish after their environment is gone: their signals are ignored, and
    // every reference is released.
    const after = await settled();
    expect(after.jobsAlive).toBe(0);
    expect(after.liveTokens).toBe(0);
    expect(after.errors - before.errors).toBe(10); // each park returned SPINDLE_ERROR while unwinding
    expect(after.delivered).toBe(before.delivered);
    // The main thread's fibers still work.
    expect(await inFiber(() => consumer.compute(100, 0))).toBe(collatzTotal(100));
  });
});
