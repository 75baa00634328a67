import { describe, expect, it } from 'vitest';

import {
  Barrier,
  FiberInterruptedError,
  NotInFiberError,
  TimeoutError,
  checkInterrupt,
  fibers,
  spawn,
  yieldNow,
} from '../dist/index.js';

import { inFiber, parked, runScript, thrown, until } from './helpers.js';

describe('Barrier', () => {
  it('suspends until n parties arrived; exactly one (the last, which does not suspend) gets true', async () => {
    const barrier = new Barrier(3, 'start line');
    const log: string[] = [];
    await inFiber(() => {
      expect(barrier.parties).toBe(3);
      const a = parked(() => barrier.wait());
      const b = parked(() => barrier.wait());
      expect(barrier.waiting).toBe(2);
      expect(fibers().find((i) => i.id === a.id)?.waitingOn).toBe('wait(start line)');
      log.push('third arrives');
      expect(barrier.wait()).toBe(true);
      log.push('third passes');
      expect(barrier.waiting).toBe(0);
      expect([a.join(), b.join()]).toEqual([false, false]);
    });
    expect(log).toEqual(['third arrives', 'third passes']);
  });

  it('is reusable: each generation waits for all n, and has exactly one serial party', async () => {
    const n = 4;
    const rounds = 5;
    const barrier = new Barrier(n);
    const arrivals: number[] = new Array(rounds).fill(0);
    const serial: number[] = new Array(rounds).fill(0);
    const workers = Array.from({ length: n }, (_, w) =>
      spawn(() => {
        for (let r = 0; r < rounds; r++) {
          for (let t = 0; t < (w * 7 + r) % 3; t++) yieldNow(); // arrive in varying orders
          arrivals[r]++;
          if (barrier.wait()) serial[r]++;
          // Nobody passes a generation before all of its parties arrived.
          expect(arrivals[r]).toBe(n);
        }
      }),
    );
    await Promise.all(workers.map((w) => w.result()));
    expect(serial).toEqual(new Array(rounds).fill(1));
    expect(new Barrier(1).parties).toBe(1);
    await inFiber(() => {
      const solo = new Barrier(1);
      expect([solo.wait(), solo.wait()]).toEqual([true, true]);
    });
  });

  it('is an interruption point: an interrupted party withdraws its arrival, the others keep waiting for n', async () => {
    const barrier = new Barrier(3);
    let error: unknown;
    await inFiber(() => {
      const quitter = parked(() => {
        error = thrown(() => barrier.wait());
        return 'caught';
      });
      const b = parked(() => barrier.wait());
      expect(barrier.waiting).toBe(2);
      quitter.interrupt('stop');
      expect(quitter.join()).toBe('caught');
      expect(barrier.waiting).toBe(1);
      const c = parked(() => barrier.wait()); // would have been the third: still waits
      expect(b.status).toBe('suspended');
      expect(barrier.wait()).toBe(true); // the replacement party completes the generation
      expect([b.join(), c.join()]).toEqual([false, false]);
    });
    expect(error).toBeInstanceOf(FiberInterruptedError);
    expect((error as FiberInterruptedError).reason).toBe('stop');
  });

  it('completion wins: a generation completed in the same turn as the interruption lets wait return false', async () => {
    const barrier = new Barrier(2);
    const log: unknown[] = [];
    await inFiber(() => {
      const f = parked(() => {
        log.push(barrier.wait());
        log.push(thrown(() => checkInterrupt()));
      });
      expect(barrier.wait()).toBe(true);
      f.interrupt('late');
      f.join();
    });
    expect(log[0]).toBe(false);
    expect(log[1]).toBeInstanceOf(FiberInterruptedError);
  });

  it('a timed-out wait throws TimeoutError and withdraws its arrival', async () => {
    const barrier = new Barrier(2);
    await inFiber(() => {
      const error = thrown(() => barrier.wait({ timeout: 20 }));
      expect(error).toBeInstanceOf(TimeoutError);
      expect((error as Error).message).toContain('Barrier');
      expect(barrier.waiting).toBe(0);
      const f = parked(() => barrier.wait());
      expect(barrier.wait()).toBe(true);
      expect(f.join()).toBe(false);
    });
  });

  it('waitAsync: async functions count as parties alongside fibers', async () => {
    const barrier = new Barrier(3);
    const a = spawn(() => barrier.wait());
    const first = barrier.waitAsync();
    await until(() => a.status === 'suspended');
    expect(barrier.waiting).toBe(2);
    const b = spawn(() => barrier.wait());
    await expect(Promise.all([a.result(), first, b.result()])).resolves.toEqual([false, false, true]);

    // An async caller arriving last is the serial party.
    const c = spawn(() => barrier.wait());
    const d = spawn(() => barrier.wait());
    await until(() => barrier.waiting === 2);
    await expect(barrier.waitAsync()).resolves.toBe(true);
    await expect(Promise.all([c.result(), d.result()])).resolves.toEqual([false, false]);

    // A timed-out async caller withdraws.
    await expect(barrier.waitAsync({ timeout: 10 })).rejects.toBeInstanceOf(TimeoutError);
    expect(barrier.waiting).toBe(0);
  });

  it('rejects bad arguments, and wait outside fibers throws NotInFiberError', () => {
    for (const n of [0, -1, 1.5]) {
      const error = thrown(() => new Barrier(n));
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).message).toContain('"n"');
    }
    expect(thrown(() => new Barrier('2' as unknown as number))).toBeInstanceOf(TypeError);
    const barrier = new Barrier(1);
    expect(thrown(() => barrier.wait())).toBeInstanceOf(NotInFiberError);
    expect(thrown(() => barrier.waitAsync({ timeout: -1 }))).toBeInstanceOf(RangeError);
    expect(barrier.waiting).toBe(0);
  });

  it('parties that wait for a party that never comes end with a DeadlockError naming the barrier', () => {
    const r = runScript(`
      const { spawn, Barrier, DeadlockError } = require(SPINDLE);
      const barrier = new Barrier(3);
      for (const name of ['a', 'b']) {
        spawn(() => barrier.wait(), { name }).result().catch((e) => {
          console.log(JSON.stringify({ deadlock: e instanceof DeadlockError, waitingOn: e.waitingOn }));
        });
      }
    `);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(lines).toEqual([
      { deadlock: true, waitingOn: 'wait(Barrier #1)' },
      { deadlock: true, waitingOn: 'wait(Barrier #1)' },
    ]);
  });
});
