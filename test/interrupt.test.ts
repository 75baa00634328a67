import { describe, expect, it } from 'vitest';

import {
  type Fiber,
  FiberInterruptedError,
  checkInterrupt,
  current,
  sleep,
  spawn,
  uninterruptible,
  wait,
  yieldNow,
} from '../dist/index.js';

import { inFiber, thrown, until } from './helpers.js';

function expectInterrupted(error: unknown, reason: unknown): void {
  expect(error).toBeInstanceOf(FiberInterruptedError);
  expect((error as FiberInterruptedError).code).toBe('ERR_FIBER_INTERRUPTED');
  expect((error as FiberInterruptedError).reason).toBe(reason);
}

const never = () => new Promise<never>(() => {});

describe('interrupt (Emilua model)', () => {
  it('never suspends the caller and sets a sticky flag that every later interruption point throws', async () => {
    const reason = { why: 'stop' };
    const log: string[] = [];
    const errors: Record<string, unknown> = {};
    let release!: () => void;
    await inFiber(() => {
      // Still running when the target joins it, so that join really has to wait.
      const other = spawn(() => wait(new Promise<string>((resolve) => (release = () => resolve('other')))));
      const target = spawn(() => {
        log.push('target parks');
        errors.sleep = thrown(() => sleep(30_000));
        log.push('target woke');
        // The flag stays set: every interruption point throws again.
        errors.checkInterrupt = thrown(() => checkInterrupt());
        errors.sleep0 = thrown(() => sleep(0));
        errors.yieldNow = thrown(() => yieldNow());
        errors.wait = thrown(() => wait(Promise.resolve(1)));
        errors.join = thrown(() => other.join());
        errors.sleepAgain = thrown(() => sleep(30_000));
        return 'target done';
      });
      yieldNow();
      expect(target.status).toBe('suspended');
      target.interrupt(reason);
      log.push('interrupter continues');
      // interrupt() returned without letting the target run.
      expect(log).toEqual(['target parks', 'interrupter continues']);
      target.interrupt('second reason'); // a second request neither suspends nor changes the reason
      log.push('interrupter still running');
      expect(target.join()).toBe('target done');
      expect(other.joinable).toBe(true);
      release();
      expect(other.join()).toBe('other');
    });
    expect(log).toEqual(['target parks', 'interrupter continues', 'interrupter still running', 'target woke']);
    for (const key of ['sleep', 'checkInterrupt', 'sleep0', 'yieldNow', 'wait', 'join', 'sleepAgain']) {
      expectInterrupted(errors[key], reason);
    }
  });

  it('interrupting from outside any fiber never blocks either', async () => {
    const target = spawn(() => sleep(30_000));
    await until(() => target.status === 'suspended');
    target.interrupt('from the loop');
    expect(target.status).not.toBe('done'); // it wakes later, on its own turn
    const error = await target.result().catch((e: unknown) => e);
    expectInterrupted(error, 'from the loop');
  });

  const waits: Array<[string, (helper: Fiber<unknown>) => unknown]> = [
    ['sleep', () => sleep(30_000)],
    ['join', (helper) => helper.join()],
    ['wait(promise)', () => wait(never())],
    ['yieldNow', () => yieldNow()],
  ];

  it.each(waits)('wakes a fiber suspended in %s with FiberInterruptedError carrying the reason', async (_, suspend) => {
    const reason = new Error('the reason');
    let helperRelease: (() => void) | undefined;
    let error: unknown;
    let statusWhenInterrupted: string | undefined;
    await inFiber(() => {
      const helper = spawn(() => wait(new Promise<void>((resolve) => (helperRelease = resolve))));
      const target = spawn(() => {
        error = thrown(() => suspend(helper));
        return 'caught';
      });
      yieldNow(); // target runs up to its suspension (a yieldNow hands the turn straight back)
      statusWhenInterrupted = target.status;
      const started = performance.now();
      target.interrupt(reason);
      expect(target.join()).toBe('caught');
      expect(performance.now() - started).toBeLessThan(10_000);
      helperRelease!();
      helper.join();
    });
    expect(statusWhenInterrupted).not.toBe('done');
    expect(statusWhenInterrupted).not.toBe('running');
    expectInterrupted(error, reason);
  }, 20_000);

  it('uninterruptible(fn) defers the interruption: the sleep inside completes, the next interruption point throws', async () => {
    const log: string[] = [];
    let afterError: unknown;
    await inFiber(() => {
      const target = spawn(() => {
        const value = uninterruptible(() => {
          log.push('cleanup starts');
          const started = performance.now();
          sleep(60);
          checkInterrupt(); // deferred as well
          yieldNow();
          log.push(`slept ${performance.now() - started >= 55 ? 'fully' : 'short'}`);
          return 'cleanup value';
        });
        log.push(value);
        afterError = thrown(() => checkInterrupt());
        log.push('after');
        thrown(() => sleep(0)); // still interrupted
        return 'finished';
      });
      yieldNow();
      expect(target.status).toBe('suspended');
      target.interrupt('late');
      expect(target.join()).toBe('finished');
    });
    expect(log).toEqual(['cleanup starts', 'slept fully', 'cleanup value', 'after']);
    expectInterrupted(afterError, 'late');
  });

  it('uninterruptible(fn) also defers an interruption requested before it started', async () => {
    const f = spawn(() => {
      current()!.interrupt('pending');
      const slept = uninterruptible(() => {
        sleep(5);
        return 'slept';
      });
      try {
        yieldNow();
      } catch (error) {
        return [slept, error] as const;
      }
      return [slept, 'no interruption'] as const;
    });
    const [slept, error] = await f.result();
    expect(slept).toBe('slept');
    expectInterrupted(error, 'pending');
  });

  it('checkInterrupt() throws when interrupted and is a no-op otherwise and outside fibers', async () => {
    expect(() => checkInterrupt()).not.toThrow();
    const result = await inFiber(() => {
      checkInterrupt(); // not interrupted: nothing happens
      const before = 'before';
      current()!.interrupt(42);
      const error = thrown(() => checkInterrupt());
      return [before, error] as const;
    });
    expect(result[0]).toBe('before');
    expectInterrupted(result[1], 42);
    expect(() => checkInterrupt()).not.toThrow();
  });

  it('is a no-op on a finished fiber', async () => {
    const f = spawn(() => 'value');
    await expect(f.result()).resolves.toBe('value');
    expect(f.status).toBe('done');
    f.interrupt('too late');
    expect(f.interruptionCaught).toBe(false);
    await expect(f.result()).resolves.toBe('value');
  });

  it('is a no-op on a detached fiber', async () => {
    let outcome: unknown;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    await inFiber(() => {
      const f = spawn(() => {
        try {
          sleep(20);
          yieldNow();
          checkInterrupt();
          outcome = 'slept';
        } catch (error) {
          outcome = error;
        } finally {
          finished();
        }
      });
      yieldNow();
      expect(f.status).toBe('suspended');
      f.detach();
      f.interrupt('ignored');
    });
    await done;
    expect(outcome).toBe('slept');
  });

  it('runs finally blocks (also nested ones, and cleanup that suspends inside uninterruptible)', async () => {
    const log: string[] = [];
    const f = spawn(() => {
      const inner = () => {
        try {
          sleep(30_000);
          log.push('not reached');
        } finally {
          log.push('inner finally');
        }
      };
      try {
        [3, 1, 2].sort((a, b) => {
          inner(); // suspends inside a sort comparator
          return a - b;
        });
      } finally {
        uninterruptible(() => sleep(5));
        log.push('outer finally');
      }
    });
    await until(() => f.status === 'suspended');
    f.interrupt('cleanup');
    const error = await f.result().catch((e: unknown) => e);
    expectInterrupted(error, 'cleanup');
    expect(log).toEqual(['inner finally', 'outer finally']);
  });

  it('an AbortSignal passed as signal interrupts the fiber with the signal reason', async () => {
    const controller = new AbortController();
    const reason = new Error('aborted by the test');
    let error: unknown;
    await inFiber(() => {
      const f = spawn(() => {
        try {
          sleep(30_000);
        } catch (e) {
          error = e;
          throw e;
        }
      }, { signal: controller.signal });
      yieldNow();
      expect(f.status).toBe('suspended');
      controller.abort(reason);
      expect(thrown(() => f.join())).toBe(error);
      expect(f.interruptionCaught).toBe(true);
    });
    expectInterrupted(error, reason);
  });

  it('an AbortSignal without a reason interrupts with its default AbortError reason', async () => {
    const controller = new AbortController();
    const f = spawn(() => wait(never()), { signal: controller.signal });
    await until(() => f.status === 'suspended');
    controller.abort();
    const error = await f.result().catch((e: unknown) => e);
    expectInterrupted(error, controller.signal.reason);
    expect((controller.signal.reason as Error).name).toBe('AbortError');
  });

  it('an already-aborted signal interrupts the fiber at its first interruption point', async () => {
    const reason = { code: 'already' };
    const log: string[] = [];
    const f = spawn(() => {
      log.push('started');
      yieldNow();
      log.push('not reached');
    }, { signal: AbortSignal.abort(reason) });
    const error = await f.result().catch((e: unknown) => e);
    expectInterrupted(error, reason);
    expect(log).toEqual(['started']);
    expect(f.interruptionCaught).toBe(true);
  });

  it('aborting the signal after the fiber finished changes nothing', async () => {
    const controller = new AbortController();
    const f = spawn(() => 'done', { signal: controller.signal });
    await expect(f.result()).resolves.toBe('done');
    controller.abort('late');
    expect(f.interruptionCaught).toBe(false);
    await expect(f.result()).resolves.toBe('done');
  });

  it('interrupting a fiber that has not started yet makes its first interruption point throw', async () => {
    const log: string[] = [];
    const f = spawn(() => {
      log.push('started');
      checkInterrupt();
      log.push('not reached');
    });
    expect(f.status).toBe('ready');
    f.interrupt('before start');
    const error = await f.result().catch((e: unknown) => e);
    expectInterrupted(error, 'before start');
    expect(log).toEqual(['started']);

    const g = spawn(() => {
      log.push('g started');
      sleep(30_000);
      log.push('not reached');
    });
    g.interrupt('sleep first');
    expectInterrupted(await g.result().catch((e: unknown) => e), 'sleep first');
    expect(log).toEqual(['started', 'g started']);
  });

  it('interruptionCaught is true only after a fiber died of its own interruption', async () => {
    const died = spawn(() => sleep(30_000));
    expect(died.interruptionCaught).toBe(false);
    await until(() => died.status === 'suspended');
    died.interrupt();
    expectInterrupted(await died.result().catch((e: unknown) => e), undefined);
    expect(died.interruptionCaught).toBe(true);

    const ok = spawn(() => 1);
    await ok.result();
    expect(ok.interruptionCaught).toBe(false);

    const failed = spawn(() => {
      throw new Error('plain failure');
    });
    await expect(failed.result()).rejects.toThrow('plain failure');
    expect(failed.interruptionCaught).toBe(false);

    // Interrupted, but caught it and returned normally.
    const recovered = spawn(() => {
      try {
        sleep(30_000);
      } catch {
        return 'recovered';
      }
      return 'slept';
    });
    recovered.interrupt('x');
    await expect(recovered.result()).resolves.toBe('recovered');
    expect(recovered.interruptionCaught).toBe(false);

    // Interrupted, but died of another error.
    const other = spawn(() => {
      try {
        sleep(30_000);
      } catch {
        throw new TypeError('something else');
      }
    });
    other.interrupt('x');
    await expect(other.result()).rejects.toThrow(TypeError);
    expect(other.interruptionCaught).toBe(false);

    // Threw a FiberInterruptedError of its own without being interrupted.
    const fake = spawn(() => {
      throw new FiberInterruptedError('made up');
    });
    await expect(fake.result()).rejects.toBeInstanceOf(FiberInterruptedError);
    expect(fake.interruptionCaught).toBe(false);
  });
});
