import { describe, expect, it } from 'vitest';

import {
  type Fiber,
  FiberInterruptedError,
  FiberStateError,
  NotInFiberError,
  type Scope,
  scope,
  sleep,
  spawn,
  uninterruptible,
  yieldNow,
} from '../dist/index.js';
import { inFiber, runScript, thrown } from './helpers.js';

describe('scope (structured concurrency)', () => {
  it('waits for every child before returning the value of fn', async () => {
    const log: string[] = [];
    const children: Fiber<unknown>[] = [];
    const value = await inFiber(() => {
      const v = scope((s) => {
        children.push(s.spawn(() => {
          sleep(30);
          log.push('slow child');
        }));
        children.push(s.spawn(() => {
          yieldNow();
          log.push('quick child');
        }));
        log.push('fn returns');
        return 'scope value';
      });
      log.push('scope returned');
      return v;
    });
    expect(value).toBe('scope value');
    expect(log[0]).toBe('fn returns');
    expect(log.slice(1, 3).sort()).toEqual(['quick child', 'slow child']);
    expect(log.slice(3)).toEqual(['scope returned']);
    expect(children.map((c) => c.status)).toEqual(['done', 'done']);
  });

  it('also waits for children spawned by children while the scope is closing', async () => {
    const log: string[] = [];
    await inFiber(() => {
      scope((s) => {
        s.spawn(() => {
          sleep(5);
          s.spawn(() => {
            sleep(20);
            log.push('grandchild');
          });
        });
      });
      log.push('scope returned');
    });
    expect(log).toEqual(['grandchild', 'scope returned']);
  });

  it('the first child error interrupts the siblings and is rethrown after all of them finished', async () => {
    const boom = new Error('boom');
    const log: string[] = [];
    const siblingErrors: unknown[] = [];
    const error = await inFiber(() =>
      thrown(() =>
        scope((s) => {
          for (const name of ['a', 'b']) {
            s.spawn(() => {
              try {
                sleep(30_000);
              } catch (e) {
                siblingErrors.push(e);
                throw e;
              } finally {
                uninterruptible(() => sleep(10)); // cleanup that suspends: the scope waits for it
                log.push(`${name} finally`);
              }
            });
          }
          s.spawn(() => {
            yieldNow(); // the siblings are parked by now
            log.push('failing');
            throw boom;
          });
          return 'not returned';
        }),
      ),
    ).then((e) => {
      log.push('scope threw');
      return e;
    });
    expect(error).toBe(boom);
    expect(log[0]).toBe('failing');
    expect([...log.slice(1, 3)].sort()).toEqual(['a finally', 'b finally']); // either order
    expect(log[3]).toBe('scope threw');
    expect(siblingErrors).toHaveLength(2);
    for (const e of siblingErrors) {
      expect(e).toBeInstanceOf(FiberInterruptedError);
      expect((e as FiberInterruptedError).code).toBe('ERR_FIBER_INTERRUPTED');
    }
  });

  it('rethrows the first error, not a later one from a sibling reacting to the interruption', async () => {
    const first = new Error('first');
    const error = await inFiber(() =>
      thrown(() =>
        scope((s) => {
          s.spawn(() => {
            try {
              sleep(30_000);
            } catch {
              throw new Error('second');
            }
          });
          s.spawn(() => {
            sleep(1);
            throw first;
          });
        }),
      ),
    );
    expect(error).toBe(first);
  });

  it('an error thrown by fn interrupts the children and is rethrown after they finish', async () => {
    const fnError = new RangeError('from fn');
    const log: string[] = [];
    let childError: unknown;
    const error = await inFiber(() => {
      const e = thrown(() =>
        scope((s) => {
          s.spawn(() => {
            try {
              sleep(30_000);
            } catch (err) {
              childError = err;
              throw err;
            } finally {
              uninterruptible(() => sleep(10));
              log.push('child finally');
            }
          });
          yieldNow();
          throw fnError;
        }),
      );
      log.push('scope threw');
      return e;
    });
    expect(error).toBe(fnError);
    expect(log).toEqual(['child finally', 'scope threw']);
    expect(childError).toBeInstanceOf(FiberInterruptedError);
  });

  it('interrupting the fiber that runs scope interrupts the children; scope throws FiberInterruptedError after they finish', async () => {
    const log: string[] = [];
    const childErrors: unknown[] = [];
    let outer!: Fiber<unknown>;
    await inFiber(() => {
      outer = spawn(() => {
        try {
          return scope((s) => {
            for (const name of ['x', 'y']) {
              s.spawn(() => {
                try {
                  sleep(30_000);
                } catch (e) {
                  childErrors.push(e);
                  throw e;
                } finally {
                  uninterruptible(() => sleep(10));
                  log.push(`${name} finally`);
                }
              });
            }
            return 'not returned';
          });
        } finally {
          log.push('outer after scope');
        }
      });
      yieldNow();
      expect(outer.status).toBe('suspended');
      outer.interrupt('stop');
    });
    const error = await outer.result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FiberInterruptedError);
    expect((error as FiberInterruptedError).reason).toBe('stop');
    expect(outer.interruptionCaught).toBe(true);
    // Both children's cleanup (each sleeps, so in either order) finished before scope returned.
    expect([...log.slice(0, 2)].sort()).toEqual(['x finally', 'y finally']);
    expect(log[2]).toBe('outer after scope');
    expect(childErrors).toHaveLength(2);
    for (const e of childErrors) expect(e).toBeInstanceOf(FiberInterruptedError);
  });

  it('children that die of the interruption the scope caused are not counted as its error', async () => {
    const boom = new Error('boom');
    const outcome = await inFiber(() => {
      const children: Fiber<unknown>[] = [];
      const error = thrown(() =>
        scope((s) => {
          children.push(s.spawn(() => sleep(30_000)));
          children.push(s.spawn(() => sleep(30_000)));
          children.push(s.spawn(() => {
            yieldNow();
            throw boom;
          }));
        }),
      );
      return { error, caught: children.map((c) => c.interruptionCaught) };
    });
    expect(outcome.error).toBe(boom);
    expect(outcome.caught).toEqual([true, true, false]);
  });

  it('s.spawn after the scope returned (or threw) throws FiberStateError', async () => {
    const errors = await inFiber(() => {
      let kept!: Scope;
      scope((s) => {
        kept = s;
        s.spawn(() => 1);
      });
      const afterReturn = thrown(() => kept.spawn(() => 2));
      let keptFailed!: Scope;
      thrown(() =>
        scope((s) => {
          keptFailed = s;
          throw new Error('fn failed');
        }),
      );
      const afterThrow = thrown(() => keptFailed.spawn(() => 3));
      return [afterReturn, afterThrow];
    });
    for (const e of errors) {
      expect(e).toBeInstanceOf(FiberStateError);
      expect((e as FiberStateError).code).toBe('ERR_FIBER_STATE');
    }
  });

  it('outside fibers it throws NotInFiberError without calling fn', () => {
    let called = false;
    const error = thrown(() =>
      scope(() => {
        called = true;
      }),
    );
    expect(error).toBeInstanceOf(NotInFiberError);
    expect((error as NotInFiberError).code).toBe('ERR_NOT_IN_FIBER');
    expect(called).toBe(false);
  });

  it('does not report child errors as uncaught', () => {
    const r = runScript(`
      const { scope, spawn, sleep, yieldNow } = require(SPINDLE);
      process.on('uncaughtException', (e) => { console.log('UNCAUGHT ' + e.message); process.exitCode = 7; });
      process.on('unhandledRejection', (e) => { console.log('UNHANDLED ' + e.message); process.exitCode = 8; });
      const f = spawn(() => {
        try {
          scope((s) => {
            s.spawn(() => sleep(30000));
            s.spawn(() => { yieldNow(); throw new Error('child boom'); });
            s.spawn(() => { sleep(1); throw new Error('later child boom'); });
          });
        } catch (e) {
          console.log('caught ' + e.message);
        }
        // Make the children's handles collectable, then collect them.
        global.gc();
      });
      f.result().then(() => {
        global.gc();
        setTimeout(() => { global.gc(); setTimeout(() => console.log('end'), 20); }, 20);
      });
    `, { args: ['--expose-gc'], timeoutMs: 20_000 });
    expect(r.stderr).not.toMatch(/boom/);
    expect(r.stdout).toBe('caught child boom\nend\n');
    expect(r.code).toBe(0);
  });
});
