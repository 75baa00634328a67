import { describe, expect, it } from 'vitest';

import { FiberInterruptedError, sleep, spawn, wait } from '../dist/index.js';
import { runScript } from './helpers.js';

/**
 * Script prelude for the garbage-collection tests (run with --expose-gc): `collectGarbage(until)`
 * calls gc() once every other turn of the event loop until `until()` holds (at most `turns` times: a
 * safety net, the tests wait on the report itself). `until` and gc() run in different turns, since a
 * WeakRef's deref() keeps its target alive until the end of the current job.
 */
const GC_PRELUDE = `
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  async function collectGarbage(until = () => false, turns = 100) {
    for (let i = 0; i < turns && !until(); i++) {
      await turn();
      global.gc();
      await turn();
    }
  }
`;

describe("a detached fiber's uncaught error", () => {
  it('goes to uncaughtException: by default the process exits with code 1, showing the stack and the fiber name', () => {
    const r = runScript(`
      const { spawn, sleep } = require(SPINDLE);
      function explodeInFiber() {
        throw new Error('detached failure marker');
      }
      spawn(() => {
        sleep(1);
        explodeInFiber();
      }, { name: 'doomed-worker' }).detach();
    `);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Error: detached failure marker');
    expect(r.stderr).toMatch(/at explodeInFiber \(/);
    expect(r.stderr).toContain('doomed-worker');
  });

  it('is reported too when the fiber is detached after it failed', () => {
    const r = runScript(`
      const { spawn } = require(SPINDLE);
      const f = spawn(() => {
        throw new Error('failed before detach');
      }, { name: 'late-detach' });
      setImmediate(() => {
        if (f.status !== 'done') throw new Error('test setup: the fiber should have finished');
        f.detach();
      });
    `);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Error: failed before detach');
    expect(r.stderr).toContain('late-detach');
  });

  it("reaches an in-process 'uncaughtException' handler as the same error object", () => {
    const r = runScript(`
      const { spawn, yieldNow } = require(SPINDLE);
      const thrown = new TypeError('handled elsewhere');
      const received = [];
      process.on('uncaughtException', (err, origin) => {
        received.push({ same: err === thrown || err === 42, value: err === 42 ? 42 : err.message, origin });
        if (received.length === 2) {
          // The process goes on working after the reports.
          spawn(() => 'still alive').result().then((v) => console.log(JSON.stringify({ received, after: v })));
        }
      });
      spawn(() => {
        yieldNow();
        throw thrown;
      }).detach();
      spawn(() => {
        yieldNow();
        throw 42;
      }).detach();
    `);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.after).toBe('still alive');
    expect(out.received).toEqual(
      expect.arrayContaining([
        { same: true, value: 'handled elsewhere', origin: 'uncaughtException' },
        { same: true, value: 42, origin: 'uncaughtException' },
      ]),
    );
    expect(out.received).toHaveLength(2);
  });
});

describe('a fiber dying of its own interruption', () => {
  it('is not an uncaught error, even when detached: the process exits 0', () => {
    const r = runScript(`
      const { spawn, sleep, wait } = require(SPINDLE);
      const handles = [];
      // Interrupted before it started, then detached.
      const early = spawn(() => sleep(60_000), { name: 'early' });
      early.interrupt('shutdown');
      early.detach();
      handles.push(early);
      // Interrupted through an aborted signal, then detached.
      const controller = new AbortController();
      const bySignal = spawn(() => wait(new Promise(() => {})), { name: 'by-signal', signal: controller.signal });
      controller.abort(new Error('aborted'));
      bySignal.detach();
      handles.push(bySignal);
      // Interrupted while parked (woken, not yet run), then detached.
      const parked = spawn(() => sleep(60_000), { name: 'parked' });
      handles.push(parked);
      setImmediate(() => {
        if (parked.status !== 'suspended') throw new Error('test setup: the fiber should be sleeping');
        parked.interrupt();
        parked.detach();
      });
      process.on('exit', () => {
        console.log(JSON.stringify(handles.map((f) => [f.name, f.status, f.interruptionCaught])));
      });
    `);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      ['early', 'done', true],
      ['by-signal', 'done', true],
      ['parked', 'done', true],
    ]);
  });

  it('is an uncaught error when the interrupted fiber ends with another error', () => {
    const r = runScript(`
      const { spawn, sleep, FiberInterruptedError } = require(SPINDLE);
      const f = spawn(() => {
        try {
          sleep(60_000);
        } catch (err) {
          if (err instanceof FiberInterruptedError) throw new Error('cleanup failed after interruption');
        }
      }, { name: 'bad-cleanup' });
      f.interrupt();
      f.detach();
    `);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cleanup failed after interruption');
    expect(r.stderr).toContain('bad-cleanup');
  });

  it('is an uncaught error when the FiberInterruptedError is not its own (it was not interrupted)', () => {
    const r = runScript(`
      const { spawn, sleep, yieldNow } = require(SPINDLE);
      spawn(() => {
        const child = spawn(() => sleep(60_000));
        yieldNow(); // the child is sleeping now
        child.interrupt();
        child.join(); // rethrows the child's FiberInterruptedError
      }, { name: 'not-interrupted' }).detach();
    `);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('FiberInterruptedError');
    expect(r.stderr).toContain('not-interrupted');
  });

  it('makes join rethrow the FiberInterruptedError, with interruptionCaught true', async () => {
    const target = spawn(() => sleep(60_000), { name: 'target' });
    const joiner = spawn(() => {
      // Spawned first, the target ran first: it is sleeping now.
      expect(target.status).toBe('suspended');
      target.interrupt('enough');
      try {
        target.join();
      } catch (err) {
        return err;
      }
      return 'join returned';
    });
    const err = await joiner.result();
    expect(err).toBeInstanceOf(FiberInterruptedError);
    expect(err).toMatchObject({ code: 'ERR_FIBER_INTERRUPTED', reason: 'enough' });
    expect(target.interruptionCaught).toBe(true);
    await expect(target.result()).rejects.toBe(err);
  });

  it('leaves interruptionCaught false when the fiber handled its interruption or failed otherwise', async () => {
    const recovered = spawn(() => {
      try {
        wait(new Promise(() => {}));
      } catch {
        return 'recovered';
      }
    });
    const failed = spawn(() => {
      try {
        sleep(60_000);
      } catch {
        throw new RangeError('other failure');
      }
    });
    const plain = spawn(() => {
      throw new Error('never interrupted');
    });
    recovered.interrupt();
    failed.interrupt();
    await expect(recovered.result()).resolves.toBe('recovered');
    await expect(failed.result()).rejects.toThrow('other failure');
    await expect(plain.result()).rejects.toThrow('never interrupted');
    expect(recovered.interruptionCaught).toBe(false);
    expect(failed.interruptionCaught).toBe(false);
    expect(plain.interruptionCaught).toBe(false);
  });
});

describe('a failing joinable fiber whose handle is garbage-collected unobserved', () => {
  it('is reported like an unhandled rejection: by default the process exits with code 1 and shows the error', () => {
    const r = runScript(
      `
      const { spawn, sleep } = require(SPINDLE);
      ${GC_PRELUDE}
      let finished = false;
      function failUnobserved() {
        try {
          sleep(1);
          throw new Error('orphaned failure marker');
        } finally {
          finished = true;
        }
      }
      spawn(failUnobserved, { name: 'orphan' }); // handle dropped at once
      (async () => {
        await collectGarbage(() => finished);
        await collectGarbage();
        console.log('not reported');
      })();
    `,
      { args: ['--expose-gc'] },
    );
    expect(r.stdout).not.toContain('not reported');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Error: orphaned failure marker');
    expect(r.stderr).toContain('failUnobserved');
    expect(r.stderr).toContain('orphan');
  });

  // A spawned fiber's handle lives as long as the fiber runs (the record holds it); a coroutine's is
  // held weakly, so it can be collected while the coroutine waits on the scheduler.
  it('is reported too when the handle is collected before the coroutine fails', () => {
    const r = runScript(
      `
      const { coroutine, wait } = require(SPINDLE);
      ${GC_PRELUDE}
      let fail;
      const gate = new Promise((resolve, reject) => { fail = reject; });
      const ref = new WeakRef(coroutine(() => wait(gate), { name: 'collected-early' }));
      ref.deref().resume(); // it parks in wait(gate): the scheduler resumes it when gate settles
      (async () => {
        await collectGarbage(() => ref.deref() === undefined);
        if (ref.deref() !== undefined) throw new Error('test setup: the handle was not collected');
        fail(new Error('failure after collection'));
        await collectGarbage();
        console.log('not reported');
      })();
    `,
      { args: ['--expose-gc'] },
    );
    expect(r.stdout).not.toContain('not reported');
    expect(r.stderr).not.toContain('test setup');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Error: failure after collection');
    expect(r.stderr).toContain('collected-early');
  });

  it("reaches a process.on('unhandledRejection') handler as the same error", () => {
    const r = runScript(
      `
      const { spawn, yieldNow } = require(SPINDLE);
      ${GC_PRELUDE}
      let thrown;
      let finished = false;
      const received = [];
      process.on('unhandledRejection', (reason) => {
        received.push(reason === thrown ? 'same error' : String(reason));
      });
      spawn(() => {
        finished = true;
        yieldNow();
        thrown = new Error('rejection marker');
        throw thrown;
      });
      (async () => {
        await collectGarbage(() => finished && received.length > 0);
        console.log(JSON.stringify(received));
      })();
    `,
      { args: ['--expose-gc'] },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(['same error']);
  });
});

describe('a failing fiber whose outcome was observed', () => {
  it('is reported nowhere else (join, result(), also after its handle is collected)', () => {
    const r = runScript(
      `
      const { spawn, sleep, yieldNow } = require(SPINDLE);
      ${GC_PRELUDE}
      const observed = [];
      // Joined by another fiber.
      spawn(() => {
        const child = spawn(() => {
          yieldNow();
          throw new Error('joined failure');
        });
        try {
          child.join();
        } catch (err) {
          observed.push(err.message);
        }
      }).detach();
      // Observed through result(), the handle then dropped.
      spawn(() => {
        sleep(1);
        throw new Error('result failure');
      }).result().catch((err) => observed.push(err.message));
      // result() asked after the fiber already failed.
      const late = spawn(() => {
        throw new Error('late result failure');
      });
      setImmediate(() => late.result().catch((err) => observed.push(err.message)));
      (async () => {
        await collectGarbage(() => observed.length === 3);
        await collectGarbage(undefined, 20);
        console.log(JSON.stringify(observed.sort()));
      })();
    `,
      { args: ['--expose-gc'] },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(['joined failure', 'late result failure', 'result failure']);
  });
});
