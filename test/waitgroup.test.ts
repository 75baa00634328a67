import { describe, expect, it } from 'vitest';

import {
  FiberInterruptedError,
  FiberStateError,
  NotInFiberError,
  TimeoutError,
  WaitGroup,
  checkInterrupt,
  fibers,
  spawn,
  wait,
  yieldNow,
} from '../dist/index.js';

import { inFiber, parked, runScript, thrown, until } from './helpers.js';

describe('WaitGroup', () => {
  it('wait suspends until as many done() as added, then releases every waiter', async () => {
    const wg = new WaitGroup();
    const log: string[] = [];
    await inFiber(() => {
      wg.add(3);
      expect(wg.count).toBe(3);
      const workers = [1, 2, 3].map((i) =>
        spawn(() => {
          yieldNow();
          log.push(`worker ${i}`);
          wg.done();
        }),
      );
      const other = spawn(() => {
        wg.wait();
        log.push('other waiter');
      });
      wg.wait();
      log.push('main waiter');
      expect(wg.count).toBe(0);
      other.join();
      for (const w of workers) w.join();
    });
    expect(log.slice(0, 3).sort()).toEqual(['worker 1', 'worker 2', 'worker 3']);
    expect(log.slice(3).sort()).toEqual(['main waiter', 'other waiter']);
  });

  it('wait returns at once at zero; add(n) defaults to 1 and takes negative deltas as in Go', async () => {
    const wg = new WaitGroup();
    await inFiber(() => wg.wait());
    wg.add();
    wg.add(4);
    wg.add(-3);
    expect(wg.count).toBe(2);
    wg.add(0);
    wg.done();
    wg.done();
    expect(wg.count).toBe(0);
    await inFiber(() => wg.wait());
  });

  it('is reusable: waiters released at zero return even if add() starts a new round at once', async () => {
    const wg = new WaitGroup('jobs');
    await inFiber(() => {
      wg.add();
      const first = parked(() => wg.wait());
      expect(fibers().find((i) => i.id === first.id)?.waitingOn).toBe('wait(jobs)');
      wg.done();
      wg.add(); // a new round: the earlier waiter was released already
      const second = parked(() => wg.wait());
      first.join();
      expect(second.status).toBe('suspended');
      wg.done();
      second.join();
    });
  });

  it('counter below zero throws FiberStateError and leaves the count unchanged', () => {
    const wg = new WaitGroup();
    const error = thrown(() => wg.done());
    expect(error).toBeInstanceOf(FiberStateError);
    expect((error as FiberStateError).code).toBe('ERR_FIBER_STATE');
    expect((error as Error).message).toContain('WaitGroup');
    wg.add(2);
    expect(thrown(() => wg.add(-3))).toBeInstanceOf(FiberStateError);
    expect(wg.count).toBe(2);
  });

  it('is an interruption point: an interrupted wait throws and leaves the group as it was', async () => {
    const wg = new WaitGroup();
    wg.add();
    let error: unknown;
    await inFiber(() => {
      const f = parked(() => {
        error = thrown(() => wg.wait());
        return 'caught';
      });
      f.interrupt('stop');
      expect(f.join()).toBe('caught');
      expect(wg.count).toBe(1);
      const g = parked(() => wg.wait());
      wg.done();
      g.join();
    });
    expect(error).toBeInstanceOf(FiberInterruptedError);
    expect((error as FiberInterruptedError).reason).toBe('stop');
  });

  it('completion wins: reaching zero in the same turn as the interruption lets wait return', async () => {
    const wg = new WaitGroup();
    wg.add();
    const log: unknown[] = [];
    await inFiber(() => {
      const f = parked(() => {
        wg.wait();
        log.push('returned');
        log.push(thrown(() => checkInterrupt()));
      });
      wg.done();
      f.interrupt('late');
      f.join();
    });
    expect(log[0]).toBe('returned');
    expect(log[1]).toBeInstanceOf(FiberInterruptedError);
  });

  it('wait times out with TimeoutError', async () => {
    const wg = new WaitGroup();
    wg.add();
    const error = await inFiber(() => thrown(() => wg.wait({ timeout: 20 })));
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).message).toContain('WaitGroup');
    expect(wg.count).toBe(1);
  });

  it('waitAsync: async functions and fibers share one group', async () => {
    const wg = new WaitGroup();
    await expect(wg.waitAsync()).resolves.toBeUndefined();
    wg.add(2);
    let released = false;
    const asyncWaiter = wg.waitAsync().then(() => (released = true));
    const fiberWaiter = spawn(() => wg.wait());
    const worker = spawn(() => {
      wait(new Promise((resolve) => setImmediate(resolve)));
      wg.done();
    });
    await until(() => wg.count === 1);
    wg.done(); // from outside fibers
    await Promise.all([asyncWaiter, fiberWaiter.result(), worker.result()]);
    expect(released).toBe(true);

    wg.add();
    await expect(wg.waitAsync({ timeout: 10 })).rejects.toBeInstanceOf(TimeoutError);
    wg.done(); // the timed-out waiter left the queue: nothing left to release
    expect(wg.count).toBe(0);
  });

  it('rejects bad arguments, and wait outside fibers throws NotInFiberError', () => {
    const wg = new WaitGroup();
    for (const n of [1.5, NaN, Infinity]) {
      const error = thrown(() => wg.add(n));
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).message).toContain('"n"');
    }
    expect(thrown(() => wg.add('1' as unknown as number))).toBeInstanceOf(TypeError);
    expect(thrown(() => wg.waitAsync({ timeout: -1 }))).toBeInstanceOf(RangeError);
    expect(wg.count).toBe(0);
    const error = thrown(() => wg.wait());
    expect(error).toBeInstanceOf(NotInFiberError);
    expect((error as Error).message).toContain('WaitGroup');
  });

  it('a WaitGroup nobody calls done on ends its waiter with a DeadlockError naming it', () => {
    const r = runScript(`
      const { spawn, WaitGroup, DeadlockError, fibers } = require(SPINDLE);
      const wg = new WaitGroup();
      wg.add(2);
      spawn(() => wg.done());
      const f = spawn(() => wg.wait(), { name: 'collector' });
      setImmediate(() => console.log(JSON.stringify(fibers().map((i) => i.waitingOn))));
      f.result().catch((e) => {
        console.log(JSON.stringify({ deadlock: e instanceof DeadlockError, code: e.code, waitingOn: e.waitingOn, message: e.message }));
      });
    `);
    expect(r.code).toBe(0);
    const [listing, outcome] = r.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(listing).toEqual(['wait(WaitGroup #1)']);
    expect(outcome.deadlock).toBe(true);
    expect(outcome.code).toBe('ERR_FIBER_DEADLOCK');
    expect(outcome.waitingOn).toBe('wait(WaitGroup #1)');
    expect(outcome.message).toContain("'collector'");
  });
});
