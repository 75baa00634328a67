import { describe, expect, it } from 'vitest';

import {
  ConditionVariable,
  FiberInterruptedError,
  FiberStateError,
  Mutex,
  NotInFiberError,
  RecursiveMutex,
  current,
  checkInterrupt,
  sleep,
  spawn,
  uninterruptible,
  yieldNow,
} from '../dist/index.js';

import { inFiber, runScript, thrown, until } from './helpers.js';

function expectState(error: unknown, pattern: RegExp): void {
  expect(error).toBeInstanceOf(FiberStateError);
  expect((error as FiberStateError).code).toBe('ERR_FIBER_STATE');
  expect((error as Error).message).toMatch(pattern);
}

describe('ConditionVariable.wait', () => {
  it.each([
    ['Mutex', Mutex],
    ['RecursiveMutex (held once)', RecursiveMutex],
  ] as const)('releases the %s while waiting and holds it again when it returns', async (_, Kind) => {
    const m = new Kind();
    const cv = new ConditionVariable();
    const log: string[] = [];
    await inFiber(() => {
      const waiter = spawn(() => {
        m.lock();
        log.push('waiting');
        cv.wait(m);
        log.push(`woke holding it: ${m.owner === current()}`);
        m.unlock();
      });
      yieldNow();
      expect(waiter.status).toBe('suspended');
      expect(m.locked).toBe(false); // released while it waits
      m.lock();
      cv.notifyOne();
      yieldNow();
      expect(log).toEqual(['waiting']); // woken, but the mutex is ours: it waits to relock
      expect(waiter.status).toBe('suspended');
      m.unlock();
      waiter.join();
    });
    expect(log).toEqual(['waiting', 'woke holding it: true']);
    expect(m.locked).toBe(false);
  });

  it('with a predicate, returns at once if it holds and otherwise ignores notifications that find it false', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    let ready = false;
    let checks = 0;
    const log: string[] = [];
    await inFiber(() => {
      m.withLock(() => cv.wait(m, () => true)); // no notification needed
      const waiter = spawn(() =>
        m.withLock(() => {
          cv.wait(m, () => {
            checks++;
            expect(m.owner).toBe(current()); // the predicate runs under the lock
            return ready;
          });
          log.push(`returned, ready=${ready}`);
        }),
      );
      yieldNow();
      expect(checks).toBe(1);
      for (let i = 0; i < 3; i++) {
        cv.notifyAll(); // wake-ups that find the predicate false
        yieldNow();
      }
      expect(checks).toBe(4);
      expect(log).toEqual([]);
      expect(waiter.status).toBe('suspended');
      m.withLock(() => {
        ready = true;
        cv.notifyOne();
      });
      waiter.join();
    });
    expect(checks).toBe(5);
    expect(log).toEqual(['returned, ready=true']);
  });

  it('wakes waiters in arrival order, one per notifyOne', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    const order: number[] = [];
    await inFiber(() => {
      const waiters = [1, 2, 3, 4, 5].map((n) => {
        const f = spawn(() => m.withLock(() => {
          cv.wait(m);
          order.push(n);
        }));
        yieldNow();
        return f;
      });
      for (let i = 1; i <= 5; i++) {
        cv.notifyOne();
        yieldNow();
        expect(order).toEqual([1, 2, 3, 4, 5].slice(0, i));
      }
      for (const w of waiters) w.join();
    });
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });

  it('notifyAll wakes every current waiter in arrival order, not those that wait after it', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    const order: string[] = [];
    await inFiber(() => {
      const waiters = ['a', 'b', 'c'].map((name) => {
        const f = spawn(() => m.withLock(() => {
          cv.wait(m);
          order.push(name);
        }));
        yieldNow();
        return f;
      });
      m.lock();
      cv.notifyAll();
      const late = spawn(() => m.withLock(() => {
        cv.wait(m);
        order.push('late');
      }));
      m.unlock();
      for (const w of waiters) w.join();
      yieldNow();
      expect(late.status).toBe('suspended');
      expect(order).toEqual(['a', 'b', 'c']);
      cv.notifyAll();
      late.join();
    });
    expect(order).toEqual(['a', 'b', 'c', 'late']);
  });

  it('may be notified without holding the mutex, from fibers and from outside fibers; a notification with no waiter is not kept', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    cv.notifyOne();
    cv.notifyAll();
    const waiter = spawn(() => m.withLock(() => cv.waitFor(m, 30)));
    expect(await waiter.result()).toBe(false); // the earlier notifications were not saved for it
    const waiter2 = spawn(() => m.withLock(() => cv.waitFor(m, 60_000)));
    await until(() => waiter2.status === 'suspended');
    cv.notifyOne(); // from outside fibers
    expect(await waiter2.result()).toBe(true);
    const waiter3 = spawn(() => m.withLock(() => cv.waitFor(m, 60_000)));
    await inFiber(() => {
      while (waiter3.status !== 'suspended') yieldNow();
      expect(m.locked).toBe(false);
      cv.notifyOne(); // from a fiber that does not hold the mutex
    });
    expect(await waiter3.result()).toBe(true);
  });

  it('checks its arguments and the caller', async () => {
    const m = new Mutex('gate');
    const cv = new ConditionVariable();
    const outside = thrown(() => cv.wait(m));
    expect(outside).toBeInstanceOf(NotInFiberError);
    await inFiber(() => {
      expectState(thrown(() => cv.wait(m)), /needs gate held by the caller/);
      const holder = spawn(() => m.withLock(() => sleep(Infinity)));
      yieldNow();
      expectState(thrown(() => cv.wait(m)), /needs gate held by the caller/); // held, but by another fiber
      holder.interrupt();
      thrown(() => holder.join());
      expect(thrown(() => cv.wait({} as Mutex))).toBeInstanceOf(TypeError);
      m.lock();
      expect(thrown(() => cv.wait(m, 'yes' as unknown as () => boolean))).toBeInstanceOf(TypeError);
      m.unlock();
    });
  });

  it('refuses a RecursiveMutex held more than once (FiberStateError), leaving it held', async () => {
    const m = new RecursiveMutex('nested');
    const cv = new ConditionVariable();
    await inFiber(() => {
      m.lock();
      m.lock();
      expectState(thrown(() => cv.wait(m)), /needs nested held once, not 2 times/);
      expect(m.owner).toBe(current());
      m.unlock();
      expect(m.owner).toBe(current());
      m.unlock();
      expect(m.locked).toBe(false);
    });
  });
});

describe('ConditionVariable.waitFor', () => {
  it('returns false on timeout, holding the mutex again', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    const result = await inFiber(() =>
      m.withLock(() => {
        const started = performance.now();
        const notified = cv.waitFor(m, 20);
        return { notified, waited: performance.now() - started, owner: m.owner === current() };
      }),
    );
    expect(result.notified).toBe(false);
    expect(result.waited).toBeGreaterThanOrEqual(19);
    expect(result.owner).toBe(true);
    expect(m.locked).toBe(false);
  });

  it('returns true when notified first', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    await inFiber(() => {
      const waiter = spawn(() => m.withLock(() => cv.waitFor(m, 60_000)));
      yieldNow();
      cv.notifyOne();
      expect(waiter.join()).toBe(true);
    });
  });

  it('with a predicate, returns its final value: false after the timeout, true when it held at the end', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    let flag = false;
    let checks = 0;
    await inFiber(() => {
      const pred = () => {
        checks++;
        return flag;
      };
      expect(m.withLock(() => cv.waitFor(m, 20, pred))).toBe(false);
      expect(checks).toBe(2); // before waiting and once after the timeout
      // True without any notification: the predicate is checked once more after the timeout.
      const waiter = spawn(() => m.withLock(() => cv.waitFor(m, 20, pred)));
      yieldNow();
      flag = true;
      expect(waiter.join()).toBe(true);
      expect(m.withLock(() => cv.waitFor(m, 0, pred))).toBe(true);
    });
  });

  it('Infinity means no timeout; a bad ms is a RangeError or TypeError naming it', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    await inFiber(() => {
      const waiter = spawn(() => m.withLock(() => cv.waitFor(m, Infinity)));
      yieldNow();
      cv.notifyOne();
      expect(waiter.join()).toBe(true);
      m.lock();
      const negative = thrown(() => cv.waitFor(m, -1));
      expect(negative).toBeInstanceOf(RangeError);
      expect((negative as Error).message).toMatch(/"ms".*>= 0/);
      const nan = thrown(() => cv.waitFor(m, Number.NaN));
      expect(nan).toBeInstanceOf(TypeError);
      expect((nan as Error).message).toMatch(/"ms"/);
      expect(m.owner).toBe(current());
      m.unlock();
    });
    expect(() => cv.waitForAsync(m, -1)).toThrow(RangeError);
  });
});

describe('ConditionVariable interruption', () => {
  it('wait is an interruption point that relocks the mutex before throwing', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    const log: string[] = [];
    await inFiber(() => {
      const waiter = spawn(() => {
        m.lock();
        try {
          cv.wait(m);
          log.push('returned');
        } catch (error) {
          log.push(`${(error as Error).name} holding the mutex: ${m.owner === current()}`);
        } finally {
          m.unlock();
        }
      });
      yieldNow();
      m.lock();
      waiter.interrupt('stop');
      yieldNow();
      sleep(0);
      expect(log).toEqual([]); // woken, but relocking (uninterruptibly) waits for us
      expect(waiter.status).toBe('suspended');
      m.unlock();
      waiter.join();
    });
    expect(log).toEqual(['FiberInterruptedError holding the mutex: true']);
    expect(m.locked).toBe(false);
  });

  it('an interruption pending before the wait throws at once, without releasing the mutex', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    const result = await inFiber(() => {
      m.lock();
      current()!.interrupt('early');
      const error = thrown(() => cv.wait(m, () => false));
      return { error, owner: m.owner === current(), locked: m.locked };
    });
    expect(result.error).toBeInstanceOf(FiberInterruptedError);
    expect((result.error as FiberInterruptedError).reason).toBe('early');
    expect(result.owner).toBe(true);
  });

  it('a notification that arrives with the interruption wins; the interruption waits for the next point', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    const log: string[] = [];
    await inFiber(() => {
      const waiter = spawn(() => {
        m.withLock(() => cv.wait(m));
        log.push('wait returned');
        try {
          checkInterrupt();
        } catch (error) {
          log.push(`then ${(error as FiberInterruptedError).reason}`);
        }
      });
      yieldNow();
      cv.notifyOne();
      waiter.interrupt('both');
      waiter.join();
    });
    expect(log).toEqual(['wait returned', 'then both']);
  });

  it('inside uninterruptible, wait does not throw; the interruption comes after', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    const log: string[] = [];
    await inFiber(() => {
      const waiter = spawn(() => {
        uninterruptible(() => m.withLock(() => cv.waitFor(m, 20)));
        log.push('waited in full');
        checkInterrupt();
      });
      yieldNow();
      waiter.interrupt('deferred');
      expect(thrown(() => waiter.join())).toBeInstanceOf(FiberInterruptedError);
    });
    expect(log).toEqual(['waited in full']);
  });
});

describe('ConditionVariable async twins', () => {
  it('waitAsync serves an async function that holds the mutex through lockAsync, in one FIFO with fibers', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    const order: string[] = [];
    let waiting = 0;
    const asyncWaiter = async (name: string) => {
      await m.lockAsync();
      waiting++;
      await cv.waitAsync(m);
      expect(m.locked).toBe(true);
      expect(m.owner).toBeUndefined(); // held by code outside fibers again
      order.push(name);
      m.unlock();
    };
    const a1 = asyncWaiter('async1');
    await until(() => waiting === 1);
    const f = spawn(() => m.withLock(() => {
      waiting++;
      cv.wait(m);
      order.push('fiber');
    }));
    await until(() => waiting === 2);
    const a2 = asyncWaiter('async2');
    await until(() => waiting === 3 && !m.locked);
    for (let i = 1; i <= 3; i++) {
      cv.notifyOne();
      await until(() => order.length === i);
    }
    await Promise.all([a1, f.result(), a2]);
    expect(order).toEqual(['async1', 'fiber', 'async2']);
  });

  it('waitForAsync resolves to false on timeout (true when notified), with the mutex held again', async () => {
    const m = new Mutex();
    const cv = new ConditionVariable();
    await m.lockAsync();
    expect(await cv.waitForAsync(m, 20)).toBe(false);
    expect(m.locked).toBe(true);
    const later = cv.waitForAsync(m, 60_000);
    expect(m.locked).toBe(false);
    cv.notifyOne();
    expect(await later).toBe(true);
    expect(m.locked).toBe(true);
    expect(await cv.waitForAsync(m, 10, () => false)).toBe(false);
    m.unlock();
  });

  it('waitAsync needs the mutex held by code outside fibers, and is refused inside fibers', async () => {
    const m = new Mutex('async-gate');
    const cv = new ConditionVariable();
    expectState(thrown(() => cv.waitAsync(m)), /needs async-gate held by the caller/);
    await inFiber(() => {
      m.lock();
      expectState(thrown(() => cv.waitAsync(m)), /for code outside fibers/);
      m.unlock();
    });
  });
});

describe('ConditionVariable in use', () => {
  it('a bounded buffer with two conditions moves every item once, in order, among fibers and async functions', async () => {
    const m = new Mutex();
    const notFull = new ConditionVariable();
    const notEmpty = new ConditionVariable();
    const buffer: number[] = [];
    const capacity = 3;
    const received: number[] = [];
    let maxSize = 0;
    const put = (v: number) => {
      notFull.wait(m, () => buffer.length < capacity);
      buffer.push(v);
      maxSize = Math.max(maxSize, buffer.length);
      notEmpty.notifyOne();
    };
    const producers = [0, 1].map((p) =>
      spawn(() => {
        for (let i = 0; i < 50; i++) {
          m.withLock(() => put(p * 1000 + i));
          if (i % 7 === 0) sleep(0);
        }
      }),
    );
    const take = () => {
      const v = buffer.shift()!;
      received.push(v);
      notFull.notifyOne();
    };
    const consumers = [
      spawn(() => {
        for (let i = 0; i < 60; i++) m.withLock(() => {
          notEmpty.wait(m, () => buffer.length > 0);
          take();
        });
      }).result(),
      (async () => {
        for (let i = 0; i < 40; i++) {
          await m.lockAsync();
          await notEmpty.waitAsync(m, () => buffer.length > 0);
          take();
          m.unlock();
        }
      })(),
    ];
    await Promise.all([...producers.map((p) => p.result()), ...consumers]);
    expect(received).toHaveLength(100);
    expect(new Set(received).size).toBe(100);
    for (const p of [0, 1]) {
      const mine = received.filter((v) => Math.floor(v / 1000) === p);
      expect(mine).toEqual(Array.from({ length: 50 }, (_, i) => p * 1000 + i));
    }
    expect(maxSize).toBeLessThanOrEqual(capacity);
    expect(m.locked).toBe(false);
  });
});

describe('ConditionVariable deadlock', () => {
  it('a wait nobody can notify has no cycle; relocking a mutex whose owner waits on the waiter names the cycle', () => {
    const r = runScript(`
      const { spawn, current, yieldNow, Mutex, ConditionVariable, DeadlockError } = require(SPINDLE);
      const report = (e) => console.log(JSON.stringify({ name: current().name, deadlock: e instanceof DeadlockError, waitingOn: e.waitingOn, cycle: e.cycle }));
      const m = new Mutex('state');
      const cv = new ConditionVariable('changed');
      const lonely = spawn(() => {
        const m2 = new Mutex();
        m2.lock();
        try { new ConditionVariable('never').wait(m2); } catch (e) { report(e); }
      }, { name: 'lonely' });
      let go = false;
      const waiter = spawn(() => {
        m.lock();
        try {
          cv.wait(m, () => go);
        } catch (e) { report(e); }
      }, { name: 'waiter' });
      const notifier = spawn(() => {
        yieldNow();
        m.lock();
        go = true;
        cv.notifyAll();
        try { waiter.join(); } catch (e) { report(e); }
      }, { name: 'notifier' });
      Promise.allSettled([lonely.result(), waiter.result(), notifier.result()]).then(() => console.log('settled'));
    `, { timeoutMs: 20_000 });
    expect(r.signal).toBeNull();
    const reports = Object.fromEntries(
      r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { name: string; deadlock: boolean; waitingOn: string; cycle: string[] })
        .map((x) => [x.name, x]),
    );
    expect(Object.keys(reports).sort()).toEqual(['lonely', 'notifier', 'waiter']);
    expect(reports.lonely.deadlock).toBe(true);
    expect(reports.lonely.waitingOn).toBe('wait(never)');
    expect(reports.lonely.cycle).toEqual([]); // a condition variable has no owner to blame
    expect(reports.waiter.deadlock).toBe(true);
    expect(reports.waiter.waitingOn).toBe('lock(state)'); // notified, relocking
    expect(reports.waiter.cycle).toHaveLength(2);
    expect(reports.waiter.cycle[0]).toMatch(/^#\d+ 'waiter' waits on lock\(state\), held by #\d+ 'notifier'$/);
    expect(reports.waiter.cycle[1]).toMatch(/^#\d+ 'notifier' waits on join\(#\d+ 'waiter'\), held by #\d+ 'waiter'$/);
    expect(reports.notifier.deadlock).toBe(true);
    expect(r.stdout).toContain('settled');
  });
});
