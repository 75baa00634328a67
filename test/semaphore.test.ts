import { describe, expect, it } from 'vitest';

import {
  FiberInterruptedError,
  NotInFiberError,
  Semaphore,
  TimeoutError,
  checkInterrupt,
  fibers,
  spawn,
  uninterruptible,
  wait,
  yieldNow,
} from '../dist/index.js';

import { inFiber, parked, runScript, thrown, until } from './helpers.js';

function expectRangeError(error: unknown, name: string): void {
  expect(error).toBeInstanceOf(RangeError);
  expect((error as RangeError & { code: string }).code).toBe('ERR_OUT_OF_RANGE');
  expect((error as Error).message).toContain(`"${name}"`);
}

describe('Semaphore', () => {
  it('counts permits: tryAcquire takes them while free, release returns them (also above n)', () => {
    const sem = new Semaphore(3);
    expect(sem.available).toBe(3);
    expect(sem.tryAcquire()).toBe(true);
    expect(sem.tryAcquire(2)).toBe(true);
    expect(sem.available).toBe(0);
    expect(sem.tryAcquire()).toBe(false);
    sem.release(2);
    expect(sem.tryAcquire(3)).toBe(false);
    expect(sem.available).toBe(2);
    sem.release(3);
    expect(sem.available).toBe(5);
    expect(new Semaphore(0).available).toBe(0);
  });

  it('acquire takes free permits without suspending, and suspends until release covers the request', async () => {
    const sem = new Semaphore(2, 'pool');
    const log: string[] = [];
    await inFiber(() => {
      sem.acquire(2);
      expect(sem.available).toBe(0);
      const f = parked(() => {
        sem.acquire();
        log.push('acquired');
      });
      expect(fibers().find((i) => i.id === f.id)?.waitingOn).toBe('acquire(pool)');
      log.push('releasing');
      sem.release();
      expect(sem.available).toBe(0); // handed straight to the waiter
      f.join();
      sem.release();
    });
    expect(log).toEqual(['releasing', 'acquired']);
    expect(sem.available).toBe(1);
  });

  it('serves waiters in FIFO order: a large request at the head is not overtaken by smaller later ones', async () => {
    const sem = new Semaphore(0);
    const log: string[] = [];
    await inFiber(() => {
      const big = parked(() => {
        sem.acquire(3);
        log.push('big');
      });
      const small = parked(() => {
        sem.acquire(1);
        log.push('small');
      });
      const medium = parked(() => {
        sem.acquire(2);
        log.push('medium');
      });
      sem.release(2);
      yieldNow();
      expect(log).toEqual([]); // the head wants 3: nobody behind it may take the 2
      expect(sem.available).toBe(2);
      expect(sem.tryAcquire(1)).toBe(false); // tryAcquire does not barge ahead of waiters either
      sem.release(1);
      expect(sem.available).toBe(0);
      big.join();
      sem.release(3); // covers both of the others, in order
      expect(sem.available).toBe(0);
      small.join();
      medium.join();
    });
    expect(log).toEqual(['big', 'small', 'medium']);
  });

  it('is an interruption point: an interrupted acquire has taken no permits and lets the next waiter in', async () => {
    const sem = new Semaphore(2);
    let error: unknown;
    await inFiber(() => {
      const head = parked(() => {
        error = thrown(() => sem.acquire(3));
        return 'caught';
      });
      const next = parked(() => sem.acquire(2));
      expect(sem.available).toBe(2);
      head.interrupt('stop');
      expect(head.join()).toBe('caught');
      expect(sem.available).toBe(0); // the head withdrew: the 2 free permits went to the next
      next.join();
    });
    expect(error).toBeInstanceOf(FiberInterruptedError);
    expect((error as FiberInterruptedError).reason).toBe('stop');
    expect(sem.available).toBe(0);
  });

  it('an interrupted fiber that need not wait still acquires (only a wait is an interruption point)', async () => {
    const sem = new Semaphore(1);
    const result = await inFiber(() => {
      const f = spawn(() => {
        sem.acquire();
        return thrown(() => checkInterrupt());
      });
      f.interrupt('early');
      return f.join();
    });
    expect(result).toBeInstanceOf(FiberInterruptedError);
    expect(sem.available).toBe(0);
  });

  it('completion wins: permits granted in the same turn as the interruption are acquired, the interruption stays pending', async () => {
    const sem = new Semaphore(0);
    const log: unknown[] = [];
    await inFiber(() => {
      const f = parked(() => {
        sem.acquire(2);
        log.push('acquired');
        log.push(thrown(() => checkInterrupt()));
      });
      sem.release(2);
      f.interrupt('late');
      f.join();
    });
    expect(log[0]).toBe('acquired');
    expect(log[1]).toBeInstanceOf(FiberInterruptedError);
    expect(sem.available).toBe(0);
  });

  it('inside uninterruptible, acquire waits for its permits and the interruption comes after', async () => {
    const sem = new Semaphore(0);
    const log: unknown[] = [];
    await inFiber(() => {
      const f = parked(() => {
        uninterruptible(() => sem.acquire());
        log.push('acquired');
        log.push(thrown(() => checkInterrupt()));
      });
      f.interrupt('deferred');
      yieldNow();
      expect(f.status).toBe('suspended');
      sem.release();
      f.join();
    });
    expect(log[0]).toBe('acquired');
    expect(log[1]).toBeInstanceOf(FiberInterruptedError);
  });

  it('times out with TimeoutError having taken no permits; the requests behind it are then served', async () => {
    const sem = new Semaphore(1);
    let error: unknown;
    await inFiber(() => {
      const head = parked(() => {
        error = thrown(() => sem.acquire(2, { timeout: 20 }));
      });
      const next = parked(() => sem.acquire(1));
      head.join();
      next.join();
      expect(sem.available).toBe(0);
      expect(thrown(() => sem.acquire(1, { timeout: 0 }))).toBeInstanceOf(TimeoutError);
    });
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).code).toBe('ERR_FIBER_TIMEOUT');
    expect(sem.available).toBe(0);
  });

  it('acquireAsync shares the FIFO queue with fibers', async () => {
    const sem = new Semaphore(0);
    const f = spawn(() => sem.acquire(2));
    await until(() => f.status === 'suspended');
    let asyncAcquired = false;
    const asyncDone = sem.acquireAsync(1).then(() => (asyncAcquired = true));
    const g = spawn(() => sem.acquire(1));
    await until(() => g.status === 'suspended');
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    sem.release(1); // the fiber at the head wants 2: the async caller behind it must not take this one
    await turn();
    expect([asyncAcquired, f.status, g.status, sem.available]).toEqual([false, 'suspended', 'suspended', 1]);
    sem.release(1);
    await f.result();
    await turn();
    expect([asyncAcquired, g.status, sem.available]).toEqual([false, 'suspended', 0]);
    sem.release(1);
    await asyncDone;
    expect([asyncAcquired, g.status, sem.available]).toEqual([true, 'suspended', 0]);
    sem.release(1);
    await g.result();
    expect(sem.available).toBe(0);

    // A fiber waits for a permit that an async function holds.
    sem.release();
    await sem.acquireAsync();
    expect(sem.available).toBe(0);
    const h = spawn(() => sem.acquire());
    await until(() => h.status === 'suspended');
    sem.release(); // from outside fibers
    await h.result();
    sem.release();
    await expect(sem.acquireAsync()).resolves.toBeUndefined();
  });

  it('acquireAsync rejects with TimeoutError having taken nothing, and lets the next waiter in', async () => {
    const sem = new Semaphore(1);
    const timedOut = sem.acquireAsync(2, { timeout: 20 }).catch((e: unknown) => e);
    const next = inFiber(() => {
      sem.acquire(); // queued behind the async request until it times out
      return wait(timedOut);
    });
    expect(await next).toBeInstanceOf(TimeoutError);
    expect(sem.available).toBe(0);
  });

  it('rejects bad arguments with errors naming them', async () => {
    expectRangeError(thrown(() => new Semaphore(-1)), 'n');
    expectRangeError(thrown(() => new Semaphore(1.5)), 'n');
    expect(thrown(() => new Semaphore('2' as unknown as number))).toBeInstanceOf(TypeError);
    const sem = new Semaphore(5);
    for (const k of [0, -1, 1.5, NaN]) {
      expectRangeError(thrown(() => sem.tryAcquire(k)), 'k');
      expectRangeError(thrown(() => sem.release(k)), 'k');
      expectRangeError(thrown(() => sem.acquireAsync(k)), 'k');
    }
    expect(thrown(() => sem.release('1' as unknown as number))).toBeInstanceOf(TypeError);
    expectRangeError(thrown(() => sem.acquireAsync(1, { timeout: -1 })), 'opts.timeout');
    await inFiber(() => {
      expectRangeError(thrown(() => sem.acquire(0)), 'k');
      expectRangeError(thrown(() => sem.acquire(2.5)), 'k');
      expectRangeError(thrown(() => sem.acquire(1, { timeout: -5 })), 'opts.timeout');
    });
    expect(sem.available).toBe(5);
  });

  it('acquire outside fibers throws NotInFiberError, even with permits free, and takes nothing', () => {
    const sem = new Semaphore(1);
    const error = thrown(() => sem.acquire());
    expect(error).toBeInstanceOf(NotInFiberError);
    expect((error as NotInFiberError).code).toBe('ERR_NOT_IN_FIBER');
    expect(sem.available).toBe(1);
  });

  it('keeps at most n permits in use under a random mix of fibers and async callers', async () => {
    const n = 3;
    const sem = new Semaphore(n);
    let inUse = 0;
    let maxInUse = 0;
    let seed = 7;
    const random = (m: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % m;
    };
    const hold = (k: number) => {
      inUse += k;
      maxInUse = Math.max(maxInUse, inUse);
      expect(inUse).toBeLessThanOrEqual(n);
    };
    const tasks: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      const k = 1 + random(n);
      const turns = random(3);
      if (i % 4 === 3) {
        tasks.push(
          (async () => {
            await sem.acquireAsync(k);
            hold(k);
            for (let t = 0; t < turns; t++) await new Promise((resolve) => setImmediate(resolve));
            inUse -= k;
            sem.release(k);
          })(),
        );
      } else {
        tasks.push(
          inFiber(() => {
            sem.acquire(k);
            hold(k);
            for (let t = 0; t < turns; t++) yieldNow();
            inUse -= k;
            sem.release(k);
          }),
        );
      }
    }
    await Promise.all(tasks);
    expect(inUse).toBe(0);
    expect(maxInUse).toBeGreaterThan(1);
    expect(sem.available).toBe(n);
  });

  it('a fiber waiting for permits nobody can release ends with a DeadlockError naming the semaphore', () => {
    const r = runScript(`
      const { spawn, Semaphore, DeadlockError } = require(SPINDLE);
      const sem = new Semaphore(0);
      spawn(() => sem.acquire(2), { name: 'worker' }).result().catch((e) => {
        console.log(JSON.stringify({ deadlock: e instanceof DeadlockError, waitingOn: e.waitingOn, message: e.message }));
      });
    `);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.deadlock).toBe(true);
    expect(out.waitingOn).toBe('acquire(Semaphore #1)');
    expect(out.message).toContain("'worker'");
  });
});
