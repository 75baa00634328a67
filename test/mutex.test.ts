import { describe, expect, it } from 'vitest';

import {
  FiberInterruptedError,
  FiberStateError,
  Mutex,
  NotInFiberError,
  RecursiveMutex,
  TimeoutError,
  checkInterrupt,
  current,
  sleep,
  spawn,
  yieldNow,
} from '../dist/index.js';

import { inFiber, runScript, thrown, until } from './helpers.js';

const kinds = [
  ['Mutex', Mutex],
  ['RecursiveMutex', RecursiveMutex],
] as const;

function expectState(error: unknown, pattern: RegExp): void {
  expect(error).toBeInstanceOf(FiberStateError);
  expect((error as FiberStateError).code).toBe('ERR_FIBER_STATE');
  expect((error as Error).message).toMatch(pattern);
}

describe.each(kinds)('%s', (_, Kind) => {
  it('keeps critical sections exclusive among many fibers that suspend inside them', async () => {
    const m = new Kind();
    let inside = 0;
    let maxInside = 0;
    let entries = 0;
    await inFiber(() => {
      const workers = Array.from({ length: 20 }, (_, i) =>
        spawn(() => {
          for (let round = 0; round < 10; round++) {
            m.lock();
            try {
              inside++;
              maxInside = Math.max(maxInside, inside);
              entries++;
              if ((i + round) % 3 === 0) sleep(0);
              else yieldNow();
              inside--;
            } finally {
              m.unlock();
            }
            if (round % 2 === 0) yieldNow();
          }
        }),
      );
      for (const w of workers) w.join();
    });
    expect(entries).toBe(200);
    expect(maxInside).toBe(1);
    expect(m.locked).toBe(false);
  });

  it('serves waiters in arrival order', async () => {
    const m = new Kind();
    const order: number[] = [];
    await inFiber(() => {
      m.lock();
      const waiters = [1, 2, 3, 4, 5].map((n) => {
        const f = spawn(() => {
          m.lock();
          order.push(n);
          yieldNow(); // the others stay queued while it holds the lock across a suspension
          m.unlock();
        });
        yieldNow(); // it parks in lock() before the next one arrives
        expect(f.status).toBe('suspended');
        return f;
      });
      m.unlock();
      for (const w of waiters) w.join();
    });
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });

  it('hands the lock to the first waiter at unlock: unlocking and relocking at once cannot starve it', async () => {
    const m = new Kind();
    const log: string[] = [];
    await inFiber(() => {
      m.lock();
      const waiter = spawn(() => {
        m.lock();
        log.push('waiter has it');
        m.unlock();
      });
      yieldNow();
      m.unlock();
      expect(m.owner).toBe(waiter); // handed over before the waiter even ran
      expect(m.tryLock()).toBe(false);
      m.lock(); // queues behind the waiter
      log.push('unlocker has it again');
      m.unlock();
      waiter.join();
    });
    expect(log).toEqual(['waiter has it', 'unlocker has it again']);
  });

  it('tryLock takes a free lock and never suspends when it is held', async () => {
    const m = new Kind();
    await inFiber(() => {
      const holder = spawn(() => m.withLock(() => sleep(Infinity)));
      expect(m.tryLock()).toBe(true);
      m.unlock();
      yieldNow(); // the holder takes it and parks
      expect(m.owner).toBe(holder);
      expect(m.tryLock()).toBe(false);
      holder.interrupt();
      expect(thrown(() => holder.join())).toBeInstanceOf(FiberInterruptedError);
    });
    // Outside fibers too.
    expect(m.tryLock()).toBe(true);
    expect(m.locked).toBe(true);
    expect(m.owner).toBeUndefined();
    m.unlock();
  });

  it('lock({ timeout }) throws TimeoutError and leaves the queue, so the lock is not handed to it later', async () => {
    const m = new Kind();
    await inFiber(() => {
      m.lock();
      const waiter = spawn(() => thrown(() => m.lock({ timeout: 20 })));
      const error = waiter.join() as TimeoutError;
      expect(error).toBeInstanceOf(TimeoutError);
      expect(error.code).toBe('ERR_FIBER_TIMEOUT');
      expect(error.message).toMatch(/lock\(\) timed out after 20 ms/);
      m.unlock();
      expect(m.locked).toBe(false);
      m.lock({ timeout: 0 }); // a free lock needs no wait
      m.unlock();
    });
    const asyncHolder = spawn(() => m.withLock(() => sleep(Infinity)));
    await until(() => m.locked);
    const error = await m.lockAsync({ timeout: 20 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toMatch(/lockAsync\(\) timed out after 20 ms/);
    asyncHolder.interrupt();
    await expect(asyncHolder.result()).rejects.toBeInstanceOf(FiberInterruptedError);
  });

  it('lock is not an interruption point: an interrupted waiter still gets the lock and meets the interruption at the next point', async () => {
    const m = new Kind();
    const log: string[] = [];
    await inFiber(() => {
      m.lock();
      const waiter = spawn(() => {
        m.lock();
        log.push(`acquired, owner is me: ${m.owner === current()}`);
        try {
          checkInterrupt();
          log.push('not interrupted');
        } catch (error) {
          log.push(`then interrupted: ${(error as FiberInterruptedError).reason}`);
        } finally {
          m.unlock();
        }
      });
      yieldNow();
      waiter.interrupt('stop');
      yieldNow();
      sleep(0);
      expect(waiter.status).toBe('suspended'); // still waiting for the lock
      expect(log).toEqual([]);
      m.unlock();
      waiter.join();
    });
    expect(log).toEqual(['acquired, owner is me: true', 'then interrupted: stop']);
    expect(m.locked).toBe(false);
  });

  it('unlock by a non-owner or of an unlocked mutex throws FiberStateError and changes nothing', async () => {
    const m = new Kind('ledger');
    let holderDone = false;
    await inFiber(() => {
      expectState(thrown(() => m.unlock()), /ledger is not locked/);
      m.lock();
      const other = spawn(() => thrown(() => m.unlock()));
      expectState(other.join(), /ledger is held by fiber #\d+ .*, not by fiber #\d+/);
      expect(m.owner).toBe(current());
      holderDone = true;
    });
    // The fiber finished holding it: code outside fibers is not the owner either.
    expect(holderDone).toBe(true);
    expectState(thrown(() => m.unlock()), /ledger is held by fiber .*, not by code outside fibers/);
    expect(m.locked).toBe(true);
  });

  it('withLock runs fn under the lock, returns its value and unlocks when it throws', async () => {
    const m = new Kind();
    await inFiber(() => {
      expect(m.withLock(() => (m.owner === current() ? 'held' : 'not held'))).toBe('held');
      expect(m.locked).toBe(false);
      const error = new Error('inside');
      expect(thrown(() => m.withLock(() => {
        throw error;
      }))).toBe(error);
      expect(m.locked).toBe(false);
    });
  });

  it('guard() unlocks at the end of a using block, or once on unlock()', async () => {
    const m = new Kind();
    await inFiber(() => {
      {
        using g = m.guard();
        expect(m.owner).toBe(current());
        void g;
      }
      expect(m.locked).toBe(false);
      const error = thrown(() => {
        using _g = m.guard({ timeout: 100 });
        throw new Error('escapes');
      });
      expect((error as Error).message).toBe('escapes');
      expect(m.locked).toBe(false);
      const g = m.guard();
      g.unlock();
      expect(m.locked).toBe(false);
      g[Symbol.dispose](); // a second release does nothing
      expect(m.locked).toBe(false);
    });
  });

  it('owner and locked describe the holder', async () => {
    const m = new Kind();
    expect(m.locked).toBe(false);
    expect(m.owner).toBeUndefined();
    let me: unknown;
    await inFiber(() => {
      m.lock();
      me = current();
      expect(m.locked).toBe(true);
      expect(m.owner).toBe(me);
      m.unlock();
      expect(m.owner).toBeUndefined();
    });
    await m.lockAsync();
    expect(m.locked).toBe(true);
    expect(m.owner).toBeUndefined(); // held by code outside fibers
    m.unlock();
  });

  it('lockAsync lets fibers and async functions share the lock, async functions contending among themselves too', async () => {
    const m = new Kind();
    let inside = 0;
    let maxInside = 0;
    const order: string[] = [];
    const enter = (who: string) => {
      inside++;
      maxInside = Math.max(maxInside, inside);
      order.push(who);
    };
    const asyncWorker = async (i: number) => {
      for (let round = 0; round < 5; round++) {
        await m.lockAsync();
        enter(`a${i}`);
        await new Promise((resolve) => setImmediate(resolve));
        inside--;
        m.unlock();
      }
    };
    const fiberWorker = (i: number) =>
      spawn(() => {
        for (let round = 0; round < 5; round++) {
          m.lock();
          enter(`f${i}`);
          sleep(0);
          inside--;
          m.unlock();
        }
      }).result();
    await Promise.all([asyncWorker(1), fiberWorker(1), asyncWorker(2), fiberWorker(2), asyncWorker(3)]);
    expect(maxInside).toBe(1);
    expect(order).toHaveLength(25);
    expect(new Set(order)).toEqual(new Set(['a1', 'a2', 'a3', 'f1', 'f2']));
    expect(m.locked).toBe(false);
  });

  it('lock outside fibers throws NotInFiberError', () => {
    const m = new Kind();
    const error = thrown(() => m.lock());
    expect(error).toBeInstanceOf(NotInFiberError);
    expect((error as NotInFiberError).code).toBe('ERR_NOT_IN_FIBER');
    expect(m.locked).toBe(false);
  });

  it('a bad timeout is a RangeError or TypeError naming the argument', async () => {
    const m = new Kind();
    for (const call of [() => m.lockAsync({ timeout: -1 }), () => inFiber(() => m.lock({ timeout: -1 }))]) {
      const error = await Promise.resolve().then(call).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).message).toMatch(/"opts\.timeout".*>= 0.*-1/);
    }
    const nan = await inFiber(() => thrown(() => m.lock({ timeout: Number.NaN })));
    expect(nan).toBeInstanceOf(TypeError);
    expect((nan as Error).message).toMatch(/"opts\.timeout"/);
    expect(m.locked).toBe(false);
  });
});

describe('Mutex only', () => {
  it('relocking by the owner throws FiberStateError (tryLock too) and keeps the lock held', async () => {
    const m = new Mutex('journal');
    await inFiber(() => {
      m.lock();
      expectState(thrown(() => m.lock()), /journal is already held by fiber .*RecursiveMutex/);
      expectState(thrown(() => m.tryLock()), /already held/);
      expect(m.owner).toBe(current());
      m.unlock();
      expect(m.locked).toBe(false);
    });
  });
});

describe('RecursiveMutex only', () => {
  it('its owner may relock it; it is released after as many unlocks, then unlock throws', async () => {
    const m = new RecursiveMutex();
    const log: string[] = [];
    await inFiber(() => {
      m.lock();
      m.lock();
      expect(m.tryLock()).toBe(true);
      const other = spawn(() => {
        m.lock();
        log.push('other has it');
        m.unlock();
      });
      yieldNow();
      m.unlock();
      m.unlock();
      yieldNow();
      expect(log).toEqual([]); // still held once
      expect(m.owner).toBe(current());
      m.unlock();
      other.join();
      expect(log).toEqual(['other has it']);
      expectState(thrown(() => m.unlock()), /is not locked/);
    });
  });
});

describe('deadlock', () => {
  it('two fibers locking two mutexes in opposite order are woken with DeadlockError naming the cycle', () => {
    const r = runScript(`
      const { spawn, yieldNow, Mutex, DeadlockError } = require(SPINDLE);
      const ledger = new Mutex('ledger');
      const journal = new Mutex('journal');
      const body = (first, second) => () => {
        first.lock();
        yieldNow();
        try {
          second.lock();
          return 'locked both';
        } catch (e) {
          console.log(JSON.stringify({ name: require(SPINDLE).current().name, deadlock: e instanceof DeadlockError, code: e.code, waitingOn: e.waitingOn, cycle: e.cycle, message: e.message }));
          return 'deadlocked';
        }
      };
      const a = spawn(body(ledger, journal), { name: 'A' });
      const b = spawn(body(journal, ledger), { name: 'B' });
      Promise.all([a.result(), b.result()]).then((v) => console.log('results ' + v.join(',')));
    `, { timeoutMs: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const reports = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { name: string; deadlock: boolean; code: string; waitingOn: string; cycle: string[]; message: string });
    expect(reports.map((x) => x.name).sort()).toEqual(['A', 'B']);
    for (const report of reports) {
      expect(report.deadlock).toBe(true);
      expect(report.code).toBe('ERR_FIBER_DEADLOCK');
      expect(report.cycle).toHaveLength(2);
      const text = report.cycle.join('\n');
      for (const part of ["'A' waits on lock(", "'B' waits on lock(", 'lock(ledger)', 'lock(journal)', "held by #"]) expect(text).toContain(part);
      expect(report.message).toContain('cycle:');
    }
    const a = reports.find((x) => x.name === 'A')!;
    expect(a.waitingOn).toBe('lock(journal)');
    expect(a.cycle[0]).toMatch(/^#\d+ 'A' waits on lock\(journal\), held by #\d+ 'B'$/);
    expect(a.cycle[1]).toMatch(/^#\d+ 'B' waits on lock\(ledger\), held by #\d+ 'A'$/);
    expect(r.stdout).toContain('results deadlocked,deadlocked');
  });
});
