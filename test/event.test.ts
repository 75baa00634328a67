import { describe, expect, it } from 'vitest';

import {
  Event,
  FiberInterruptedError,
  NotInFiberError,
  TimeoutError,
  checkInterrupt,
  fibers,
  spawn,
  yieldNow,
} from '../dist/index.js';

import { inFiber, parked, runScript, thrown, until } from './helpers.js';

describe('Event', () => {
  it('set wakes every current waiter; the flag stays up until clear', async () => {
    const event = new Event('ready');
    const log: string[] = [];
    await inFiber(() => {
      expect(event.isSet).toBe(false);
      const waiters = [1, 2, 3].map((i) =>
        parked(() => {
          event.wait();
          log.push(`waiter ${i}`);
        }),
      );
      expect(fibers().find((i) => i.id === waiters[0].id)?.waitingOn).toBe('wait(ready)');
      log.push('set');
      event.set();
      expect(event.isSet).toBe(true);
      for (const w of waiters) w.join();
      event.wait(); // set: returns at once
      event.set(); // idempotent
      event.clear();
      expect(event.isSet).toBe(false);
      const later = parked(() => event.wait());
      event.set();
      later.join();
    });
    expect(log).toEqual(['set', 'waiter 1', 'waiter 2', 'waiter 3']);
  });

  it('waiters released by set return even when clear follows at once', async () => {
    const event = new Event();
    await inFiber(() => {
      const f = parked(() => event.wait());
      const g = parked(() => event.wait());
      event.set();
      event.clear();
      f.join();
      g.join();
      const h = parked(() => event.wait()); // cleared: a new wait suspends
      event.set();
      h.join();
    });
  });

  it('wait times out with TimeoutError', async () => {
    const event = new Event();
    const error = await inFiber(() => thrown(() => event.wait({ timeout: 20 })));
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).code).toBe('ERR_FIBER_TIMEOUT');
    expect((error as Error).message).toContain('Event');
    event.set();
    await inFiber(() => event.wait({ timeout: 0 })); // set: no wait, no timeout
  });

  it('is an interruption point: an interrupted wait throws, the other waiters keep waiting', async () => {
    const event = new Event();
    let error: unknown;
    await inFiber(() => {
      const f = parked(() => {
        error = thrown(() => event.wait());
        return 'caught';
      });
      const g = parked(() => event.wait());
      f.interrupt('stop');
      expect(f.join()).toBe('caught');
      yieldNow();
      expect(g.status).toBe('suspended');
      event.set();
      g.join();
    });
    expect(error).toBeInstanceOf(FiberInterruptedError);
    expect((error as FiberInterruptedError).reason).toBe('stop');
  });

  it('completion wins: set in the same turn as the interruption lets wait return', async () => {
    const event = new Event();
    const log: unknown[] = [];
    await inFiber(() => {
      const f = parked(() => {
        event.wait();
        log.push('returned');
        log.push(thrown(() => checkInterrupt()));
      });
      event.set();
      f.interrupt('late');
      f.join();
    });
    expect(log[0]).toBe('returned');
    expect(log[1]).toBeInstanceOf(FiberInterruptedError);
  });

  it('waitAsync: async functions and fibers wait on one event; set from either side', async () => {
    const event = new Event();
    let asyncReleased = false;
    const asyncWaiter = event.waitAsync().then(() => (asyncReleased = true));
    const fiberWaiter = spawn(() => event.wait());
    await until(() => fiberWaiter.status === 'suspended');
    await new Promise((resolve) => setImmediate(resolve));
    expect(asyncReleased).toBe(false);
    await inFiber(() => event.set());
    await Promise.all([asyncWaiter, fiberWaiter.result()]);
    await expect(event.waitAsync()).resolves.toBeUndefined();

    event.clear();
    const f = spawn(() => event.wait());
    await until(() => f.status === 'suspended');
    event.set(); // from outside fibers
    await f.result();

    event.clear();
    await expect(event.waitAsync({ timeout: 10 })).rejects.toBeInstanceOf(TimeoutError);
  });

  it('wait outside fibers throws NotInFiberError (even when set); bad timeouts throw RangeError', async () => {
    const event = new Event();
    event.set();
    expect(thrown(() => event.wait())).toBeInstanceOf(NotInFiberError);
    expect(thrown(() => event.waitAsync({ timeout: -1 }))).toBeInstanceOf(RangeError);
    const error = await inFiber(() => thrown(() => event.wait({ timeout: NaN })));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toContain('"opts.timeout"');
  });

  it('a fiber waiting for an event nobody sets ends with a DeadlockError naming it', () => {
    const r = runScript(`
      const { spawn, Event, DeadlockError } = require(SPINDLE);
      const event = new Event('config loaded');
      spawn(() => event.wait(), { name: 'server' }).result().catch((e) => {
        console.log(JSON.stringify({ deadlock: e instanceof DeadlockError, waitingOn: e.waitingOn, message: e.message }));
      });
    `);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.deadlock).toBe(true);
    expect(out.waitingOn).toBe('wait(config loaded)');
    expect(out.message).toContain("'server'");
  });
});
