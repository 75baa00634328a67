import { describe, expect, it } from 'vitest';

import { Coroutine, FiberStateError, NotInFiberError, coroutine, current, sleep, spawn, suspend } from '../dist/index.js';
import { runScript } from './helpers.js';

describe('coroutine (the asymmetric primitive)', () => {
  it('passes values in and out across resume/suspend', () => {
    const seen: unknown[] = [];
    const co = coroutine<string, number, number>((first) => {
      seen.push(first);
      let total = first;
      for (;;) {
        const next = suspend<number, number>(total);
        if (next < 0) return `sum ${total}`;
        seen.push(next);
        total += next;
      }
    });
    expect(co).toBeInstanceOf(Coroutine);
    expect(co.resume(1)).toEqual({ done: false, value: 1 });
    expect(co.resume(2)).toEqual({ done: false, value: 3 });
    expect(co.resume(10)).toEqual({ done: false, value: 13 });
    expect(co.resume(-1)).toEqual({ done: true, value: 'sum 13' });
    expect(seen).toEqual([1, 2, 10]);
    expect(co.status).toBe('done');
    expect(() => co.resume()).toThrow(FiberStateError);
  });

  it('throws errors both ways', () => {
    const co = coroutine(() => {
      try {
        suspend('waiting');
      } catch (err) {
        return `caught ${(err as Error).message}`;
      }
      return 'not reached';
    });
    expect(co.resume()).toEqual({ done: false, value: 'waiting' });
    expect(co.throwInto(new Error('boom'))).toEqual({ done: true, value: 'caught boom' });

    const failing = coroutine(() => {
      suspend();
      throw new TypeError('inside');
    });
    failing.resume();
    expect(() => failing.resume()).toThrow(TypeError);
  });

  it('knows the current fiber inside nested coroutines', () => {
    const names: string[] = [];
    const inner = coroutine(() => {
      names.push(current()!.name);
      suspend();
      names.push(current()!.name);
    }, { name: 'inner' });
    const outer = coroutine(() => {
      names.push(current()!.name);
      inner.resume();
      names.push(current()!.name);
      suspend();
      inner.resume();
      names.push(current()!.name);
    }, { name: 'outer' });
    expect(current()).toBeUndefined();
    outer.resume();
    expect(current()).toBeUndefined();
    outer.resume();
    expect(names).toEqual(['outer', 'inner', 'outer', 'inner', 'outer']);
  });

  it('refuses misuse with clear errors', async () => {
    expect(() => suspend()).toThrow(NotInFiberError);
    const self = coroutine(() => (current() as Coroutine).resume());
    expect(() => self.resume()).toThrow(FiberStateError);
    // suspend in a spawned fiber: it has no resumer
    const f = spawn(() => suspend());
    await expect(f.result()).rejects.toThrow(FiberStateError);
  });

  it('returns to the resumer when it parks on the scheduler, and the scheduler finishes it', async () => {
    const co = coroutine(() => {
      sleep(5);
      return 'slept';
    });
    expect(co.resume()).toEqual({ done: false, value: undefined });
    expect(co.status).toBe('suspended');
    expect(() => co.resume()).toThrow(FiberStateError);
    await expect(co.result()).resolves.toBe('slept');
  });

  // The record holds a coroutine's handle only while resume() runs it; current() must still find the
  // same handle after the scheduler resumed it, and after each suspend.
  it('is current() as the same handle in every stretch it runs', async () => {
    const seen: unknown[] = [];
    const co: Coroutine = coroutine(() => {
      seen.push(current());
      sleep(1);  // parks: the scheduler, not resume(), runs the next stretch
      seen.push(current());
      suspend();
      seen.push(current());
      return 'end';
    });
    expect(co.resume()).toEqual({ done: false, value: undefined });
    await new Promise<void>((resolve) => {
      const poll = () => (seen.length === 2 ? resolve() : setImmediate(poll));
      poll();
    });
    expect(co.resume()).toEqual({ done: true, value: 'end' });
    expect(seen).toHaveLength(3);
    for (const fiber of seen) expect(fiber).toBe(co);
  });

  it('a coroutine collected while suspended is interrupted there: its finally blocks run and its stack is freed', () => {
    const r = runScript(`
      const { coroutine, suspend, sleep, FiberInterruptedError } = require(SPINDLE);
      const { native } = require(SPINDLE.replace(/index\\.js$/, 'native.js'));
      const log = [];
      process.on('unhandledRejection', (e) => log.push('unhandled ' + e.message));
      (() => {
        // Plain: its finally runs, it ends with the interruption, nothing is reported.
        coroutine(() => { try { suspend(1); } finally { log.push('plain finally'); } }).resume();
        // Its finally throws something else: reported.
        coroutine(() => { try { suspend(1); } finally { throw new Error('from finally'); } }).resume();
        // Catches the interruption and suspends again: interrupted again once collected again.
        coroutine(() => {
          try { suspend(1); } catch (e) { log.push('caught ' + (e instanceof FiberInterruptedError)); }
          try { suspend(2); } finally { log.push('second finally'); }
        }).resume();
        // Parks in its finally: sleep is an interruption point, so it throws too.
        coroutine(() => {
          try { suspend(1); } finally { try { sleep(10); } catch (e) { log.push('sleep ' + e.code); } }
        }).resume();
      })();
      const before = native.stats().liveFibers;
      let turns = 0;
      const tick = () => {
        gc();
        if (native.stats().liveFibers > 0 && ++turns < 500) return setTimeout(tick, 2);
        setTimeout(() => console.log(JSON.stringify({ before, after: native.stats().liveFibers, log: log.sort() })), 20);
      };
      tick();
    `, { args: ['--expose-gc'] });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      before: 4,
      after: 0,
      log: ['caught true', 'plain finally', 'second finally', 'sleep ERR_FIBER_INTERRUPTED', 'unhandled from finally'],
    });
  });
});
