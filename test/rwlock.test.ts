import { describe, expect, it } from 'vitest';

import {
  type Fiber,
  FiberInterruptedError,
  FiberStateError,
  NotInFiberError,
  RWLock,
  TimeoutError,
  checkInterrupt,
  current,
  sleep,
  spawn,
  yieldNow,
} from '../dist/index.js';

import { inFiber, runScript, thrown, until } from './helpers.js';

function expectState(error: unknown, pattern: RegExp): void {
  expect(error).toBeInstanceOf(FiberStateError);
  expect((error as FiberStateError).code).toBe('ERR_FIBER_STATE');
  expect((error as Error).message).toMatch(pattern);
}

/** Spawns a fiber that takes the lock in `mode`, logs it, holds it until `release()` is called, unlocks. */
function holder(rw: RWLock, mode: 'read' | 'write', name: string, log: string[]): { fiber: Fiber<void>; release: () => void } {
  let released = false;
  const fiber = spawn(() => {
    if (mode === 'read') rw.readLock();
    else rw.writeLock();
    log.push(`${name} in`);
    while (!released) yieldNow();
    log.push(`${name} out`);
    rw.unlock();
  });
  return { fiber, release: () => (released = true) };
}

/** Lets the other fibers run until nothing changes for a few rounds. */
function settle(): void {
  for (let i = 0; i < 5; i++) yieldNow();
}

describe('RWLock', () => {
  it('admits many readers at once and one writer alone', async () => {
    const rw = new RWLock();
    const log: string[] = [];
    await inFiber(() => {
      const readers = ['r1', 'r2', 'r3'].map((n) => holder(rw, 'read', n, log));
      settle();
      expect(rw.readers).toBe(3);
      expect(log).toEqual(['r1 in', 'r2 in', 'r3 in']);
      const w = holder(rw, 'write', 'w', log);
      settle();
      expect(log).not.toContain('w in');
      for (const r of readers) r.release();
      settle();
      expect(log).toContain('w in');
      expect(rw.writeLocked).toBe(true);
      expect(rw.writer).toBe(w.fiber);
      expect(rw.readers).toBe(0);
      w.release();
      for (const f of [...readers.map((r) => r.fiber), w.fiber]) f.join();
    });
    expect(log.slice(-2)).toEqual(['w in', 'w out']);
    expect(rw.writeLocked).toBe(false);
  });

  it('a waiting writer holds back newer readers, so writers are not starved', async () => {
    const rw = new RWLock();
    const log: string[] = [];
    await inFiber(() => {
      const r1 = holder(rw, 'read', 'r1', log);
      settle();
      const w = holder(rw, 'write', 'w', log);
      settle();
      expect(rw.tryReadLock()).toBe(false); // would jump the queue
      const r2 = holder(rw, 'read', 'r2', log);
      settle();
      expect(log).toEqual(['r1 in']);
      expect(rw.readers).toBe(1);
      r1.release();
      settle();
      expect(log).toEqual(['r1 in', 'r1 out', 'w in']);
      w.release();
      settle();
      r2.release();
      for (const h of [r1, w, r2]) h.fiber.join();
    });
    expect(log).toEqual(['r1 in', 'r1 out', 'w in', 'w out', 'r2 in', 'r2 out']);
  });

  it('admits the consecutive readers at the head of the queue together, stopping at the next writer', async () => {
    const rw = new RWLock();
    const log: string[] = [];
    await inFiber(() => {
      const w1 = holder(rw, 'write', 'w1', log);
      settle();
      const queued = [holder(rw, 'read', 'r1', log), holder(rw, 'read', 'r2', log), holder(rw, 'write', 'w2', log), holder(rw, 'read', 'r3', log)];
      settle();
      w1.release();
      settle();
      expect(log).toEqual(['w1 in', 'w1 out', 'r1 in', 'r2 in']);
      expect(rw.readers).toBe(2);
      queued[0].release();
      settle();
      expect(log).not.toContain('w2 in'); // r2 still reads
      queued[1].release();
      settle();
      expect(log.slice(-1)).toEqual(['w2 in']);
      queued[2].release();
      settle();
      expect(log.slice(-2)).toEqual(['w2 out', 'r3 in']);
      queued[3].release();
      for (const h of [w1, ...queued]) h.fiber.join();
    });
  });

  it('tryReadLock and tryWriteLock never suspend', async () => {
    const rw = new RWLock();
    await inFiber(() => {
      expect(rw.tryReadLock()).toBe(true);
      const reader = spawn(() => [rw.tryReadLock(), rw.readers, rw.unlock()]);
      expect(reader.join()).toEqual([true, 2, undefined]);
      const writer = spawn(() => rw.tryWriteLock());
      expect(writer.join()).toBe(false);
      expect(rw.tryWriteLock.bind(rw)).toThrow(FiberStateError); // this fiber holds a read lock
      rw.unlock();
      expect(rw.tryWriteLock()).toBe(true);
      const third = spawn(() => [rw.tryReadLock(), rw.tryWriteLock()]);
      expect(third.join()).toEqual([false, false]);
      rw.unlock();
    });
    // Outside fibers too.
    expect(rw.tryWriteLock()).toBe(true);
    expect(rw.writeLocked).toBe(true);
    expect(rw.writer).toBeUndefined(); // held by code outside fibers
    rw.unlock();
  });

  it('timeout throws TimeoutError; a writer that gives up at the head lets the readers behind it in', async () => {
    const rw = new RWLock();
    const log: string[] = [];
    await inFiber(() => {
      const r1 = holder(rw, 'read', 'r1', log);
      settle();
      const w = spawn(() => thrown(() => rw.writeLock({ timeout: 500 }))); // long enough for r2 to queue behind it
      settle();
      const r2 = holder(rw, 'read', 'r2', log);
      settle();
      expect(log).toEqual(['r1 in']);
      const error = w.join() as TimeoutError;
      expect(error).toBeInstanceOf(TimeoutError);
      expect(error.message).toMatch(/writeLock\(\) timed out after 500 ms/);
      settle();
      expect(log).toEqual(['r1 in', 'r2 in']); // admitted as soon as the writer left
      r1.release();
      r2.release();
      r1.fiber.join();
      r2.fiber.join();
      const w2 = holder(rw, 'write', 'w2', log);
      settle();
      const readTimeout = spawn(() => thrown(() => rw.readLock({ timeout: 10 })));
      expect(readTimeout.join()).toBeInstanceOf(TimeoutError);
      w2.release();
      w2.fiber.join();
    });
    expect(rw.readers).toBe(0);
    expect(rw.writeLocked).toBe(false);
  });

  it.each(['readLock', 'writeLock'] as const)('%s is not an interruption point: the interrupted waiter still gets it', async (method) => {
    const rw = new RWLock();
    const log: string[] = [];
    await inFiber(() => {
      rw.writeLock();
      const waiter = spawn(() => {
        rw[method]();
        log.push(`acquired: ${rw.readers === 1 || rw.writer === current()}`);
        try {
          checkInterrupt();
        } catch (error) {
          log.push(`then interrupted: ${(error as FiberInterruptedError).reason}`);
        } finally {
          rw.unlock();
        }
      });
      yieldNow();
      waiter.interrupt('stop');
      settle();
      sleep(0);
      expect(waiter.status).toBe('suspended');
      expect(log).toEqual([]);
      rw.unlock();
      waiter.join();
    });
    expect(log).toEqual(['acquired: true', 'then interrupted: stop']);
  });

  it('misuse throws FiberStateError: unlock without holding, relock in any mode by the same fiber', async () => {
    const rw = new RWLock('table');
    await inFiber(() => {
      expectState(thrown(() => rw.unlock()), /table is not locked, not by fiber/);
      rw.readLock();
      expectState(thrown(() => rw.readLock()), /table is already read-locked by fiber/);
      expectState(thrown(() => rw.writeLock()), /already read-locked/); // no upgrade
      expectState(thrown(() => rw.tryReadLock()), /already read-locked/);
      expectState(spawn(() => thrown(() => rw.unlock())).join(), /table is read-locked by others, not by fiber/);
      rw.unlock();
      rw.writeLock();
      expectState(thrown(() => rw.writeLock()), /table is already write-locked by fiber/);
      expectState(thrown(() => rw.readLock()), /already write-locked/); // no downgrade
      expectState(spawn(() => thrown(() => rw.unlock())).join(), /table is write-locked by fiber .*, not by fiber/);
      expect(rw.writer).toBe(current());
      rw.unlock();
    });
    expectState(thrown(() => rw.unlock()), /not by code outside fibers/);
  });

  it('outside fibers the blocking calls throw NotInFiberError; bad timeouts name the argument', async () => {
    const rw = new RWLock();
    for (const call of [() => rw.readLock(), () => rw.writeLock(), () => rw.readGuard(), () => rw.writeGuard()]) {
      expect(thrown(call)).toBeInstanceOf(NotInFiberError);
    }
    expect(rw.readers).toBe(0);
    expect(rw.writeLocked).toBe(false);
    expect(() => rw.readLockAsync({ timeout: -1 })).toThrow(/"opts\.timeout".*>= 0/);
    const errors = await inFiber(() => [thrown(() => rw.writeLock({ timeout: -5 })), thrown(() => rw.readLock({ timeout: Number.NaN }))]);
    expect(errors[0]).toBeInstanceOf(RangeError);
    expect((errors[0] as Error).message).toMatch(/"opts\.timeout"/);
    expect(errors[1]).toBeInstanceOf(TypeError);
  });

  it('guards unlock at the end of a using block, once', async () => {
    const rw = new RWLock();
    await inFiber(() => {
      {
        using _r = rw.readGuard();
        expect(rw.readers).toBe(1);
      }
      expect(rw.readers).toBe(0);
      {
        using w = rw.writeGuard({ timeout: 100 });
        expect(rw.writer).toBe(current());
        w.unlock();
        expect(rw.writeLocked).toBe(false);
        expect(rw.tryReadLock()).toBe(true); // the guard's dispose must not release this one
      }
      expect(rw.readers).toBe(1);
      rw.unlock();
    });
  });

  it('async twins share the lock with fibers; async readers overlap, writers queue behind them', async () => {
    const rw = new RWLock();
    const log: string[] = [];
    await rw.readLockAsync();
    await rw.readLockAsync(); // a second async reader
    expect(rw.readers).toBe(2);
    const fiberWriter = spawn(() => {
      rw.writeLock();
      log.push('fiber writes');
      sleep(0);
      rw.unlock();
    });
    await until(() => fiberWriter.status === 'suspended');
    const asyncWriter = rw.writeLockAsync().then(() => {
      log.push('async writes');
      rw.unlock();
    });
    const lateReader = rw.readLockAsync().then(() => {
      log.push('async reads');
      rw.unlock();
    });
    rw.unlock();
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).toEqual([]); // one async reader still holds it
    rw.unlock();
    await Promise.all([fiberWriter.result(), asyncWriter, lateReader]);
    expect(log).toEqual(['fiber writes', 'async writes', 'async reads']);
  });

  it('keeps its invariants under a random mix of readers and writers', async () => {
    const rw = new RWLock();
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let readers = 0;
    let writers = 0;
    let violations = 0;
    let reads = 0;
    let writes = 0;
    let skipped = 0;
    let maxReaders = 0;
    const check = () => {
      if (writers > 1 || (writers === 1 && readers > 0)) violations++;
    };
    const critical = (mode: 'read' | 'write') => {
      if (mode === 'read') readers++;
      else writers++;
      maxReaders = Math.max(maxReaders, readers);
      check();
      if (random() < 0.5) yieldNow();
      check();
      if (mode === 'read') readers--;
      else writers--;
      rw.unlock();
    };
    await inFiber(() => {
      const workers = Array.from({ length: 16 }, () =>
        spawn(() => {
          for (let i = 0; i < 30; i++) {
            const op = random();
            if (op < 0.3) {
              rw.writeLock();
              critical('write');
              writes++;
            } else if (op < 0.8) {
              rw.readLock({ timeout: 60_000 });
              critical('read');
              reads++;
            } else if (rw.tryReadLock()) {
              critical('read');
              reads++;
            } else {
              skipped++;
            }
            if (random() < 0.3) yieldNow();
          }
        }),
      );
      for (const w of workers) w.join();
    });
    expect(violations).toBe(0);
    expect(reads + writes + skipped).toBe(16 * 30);
    expect(writes).toBeGreaterThan(0);
    expect(maxReaders).toBeGreaterThan(1);
    expect(rw.readers).toBe(0);
    expect(rw.writeLocked).toBe(false);
  });
});

describe('RWLock deadlock', () => {
  it('blockers are the current holders: the report names the cycle through the lock', () => {
    const r = runScript(`
      const { spawn, current, yieldNow, Mutex, RWLock, DeadlockError } = require(SPINDLE);
      const report = (e) => console.log(JSON.stringify({ name: current().name, deadlock: e instanceof DeadlockError, waitingOn: e.waitingOn, cycle: e.cycle }));
      const table = new RWLock('table');
      const index = new Mutex('index');
      const reader = spawn(() => {
        table.readLock();
        yieldNow();
        try { index.lock(); } catch (e) { report(e); }
      }, { name: 'reader' });
      const writer = spawn(() => {
        index.lock();
        yieldNow();
        try { table.writeLock(); } catch (e) { report(e); }
      }, { name: 'writer' });
      Promise.allSettled([reader.result(), writer.result()]).then(() => console.log('settled'));
    `, { timeoutMs: 20_000 });
    expect(r.signal).toBeNull();
    const reports = Object.fromEntries(
      r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { name: string; deadlock: boolean; waitingOn: string; cycle: string[] })
        .map((x) => [x.name, x]),
    );
    expect(Object.keys(reports).sort()).toEqual(['reader', 'writer']);
    expect(reports.writer.deadlock).toBe(true);
    expect(reports.writer.waitingOn).toBe('writeLock(table)');
    expect(reports.writer.cycle).toHaveLength(2);
    expect(reports.writer.cycle[0]).toMatch(/^#\d+ 'writer' waits on writeLock\(table\), held by #\d+ 'reader'$/);
    expect(reports.writer.cycle[1]).toMatch(/^#\d+ 'reader' waits on lock\(index\), held by #\d+ 'writer'$/);
    expect(reports.reader.deadlock).toBe(true);
    expect(reports.reader.cycle).toHaveLength(2);
    expect(r.stdout).toContain('settled');
  });
});
