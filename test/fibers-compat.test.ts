// spindle/fibers: the `Fiber` API of the `fibers` package (5.0.3), written from its README.
import { AsyncLocalStorage, executionAsyncId } from 'node:async_hooks';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import Fiber from '../dist/fibers/index.js';
import { Channel, FiberStateError, Mutex, SpindleError, current, fibers, sleep, spawn, wait } from '../dist/index.js';
import { root, runScript, thrown, until } from './helpers.js';

const fibersEntry = path.join(root, 'dist', 'cjs', 'fibers', 'index.js');

/** Runs a CommonJS script in which `require('fibers')` is spelled `require(FIBERS)`. */
function runFibersScript(source: string, args: string[] = []) {
  return runScript(source.replaceAll('FIBERS', JSON.stringify(fibersEntry)), { args });
}

describe('README examples, with their documented output', () => {
  it('sleep: the fiber blocks, node goes on, the fiber resumes', () => {
    const r = runFibersScript(`
      var Fiber = require(FIBERS);
      function sleep(ms) {
        var fiber = Fiber.current;
        setTimeout(function() { fiber.run(); }, ms);
        Fiber.yield();
      }
      var start;
      Fiber(function() {
        start = Date.now();
        console.log('wait... ' + typeof new Date);
        sleep(1000);
        console.log('ok... ' + (Date.now() - start >= 990));
      }).run();
      console.log('back in main');
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('wait... object\nback in main\nok... true\n');
    expect(r.code).toBe(0);
  });

  it('incremental generator', () => {
    const r = runFibersScript(`
      var Fiber = require(FIBERS);
      var inc = Fiber(function(start) {
        var total = start;
        while (true) {
          total += Fiber.yield(total);
        }
      });
      for (var ii = inc.run(1); ii <= 10; ii = inc.run(1)) {
        console.log(ii);
      }
    `);
    expect(r.stdout).toBe('1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n');
    expect(r.code).toBe(0);
  });

  it('Fibonacci generator', () => {
    const r = runFibersScript(`
      var Fiber = require(FIBERS);
      function Fibonacci() {
        var fiber = Fiber(function() {
          Fiber.yield(0); // F(0) -> 0
          var prev = 0, curr = 1;
          while (true) {
            Fiber.yield(curr);
            var tmp = prev + curr;
            prev = curr;
            curr = tmp;
          }
        });
        return fiber.run.bind(fiber);
      }
      var seq = Fibonacci();
      for (var ii = seq(); ii <= 1597; ii = seq()) {
        console.log(ii);
      }
    `);
    expect(r.stdout.trim().split('\n').map(Number)).toEqual([0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597]);
    expect(r.code).toBe(0);
  });

  it('basic exceptions travel through fiber boundaries', () => {
    const r = runFibersScript(`
      var Fiber = require(FIBERS);
      var fn = Fiber(function() {
        console.log('async work here...');
        Fiber.yield();
        console.log('still working...');
        Fiber.yield();
        console.log('just a little bit more...');
        Fiber.yield();
        throw new Error('oh crap!');
      });
      try {
        while (true) {
          fn.run();
        }
      } catch(e) {
        console.log('safely caught that error!');
        console.log(e.stack);
      }
      console.log('done!');
    `);
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, 5)).toEqual(['async work here...', 'still working...', 'just a little bit more...', 'safely caught that error!', 'Error: oh crap!']);
    expect(lines[5]).toMatch(/^\s+at .*script\.cjs:10:\d+/);
    expect(r.stdout.trimEnd().endsWith('\ndone!')).toBe(true);
    expect(r.code).toBe(0);
  });
});

describe('Fiber', () => {
  it('is callable with or without new, and checks its argument like fibers', () => {
    const a = Fiber(() => 1);
    const b = new Fiber(() => 2);
    expect(a).toBeInstanceOf(Fiber);
    expect(b).toBeInstanceOf(Fiber);
    expect(a.constructor).toBe(Fiber);
    expect(Object.getPrototypeOf(a)).toBe(Fiber.prototype);
    expect(a.started).toBe(false);
    expect(a.run()).toBe(1);
    expect(b.run()).toBe(2);
    const none = thrown(() => (Fiber as unknown as () => unknown)()) as Error;
    expect(none).toBeInstanceOf(TypeError);
    expect(none.message).toBe('Fiber expects 1 argument');
    expect((thrown(() => Fiber(42 as never)) as Error).message).toBe('Fiber expects a function');
  });

  it('run(value) starts with value as the argument (none when run() has none), this = the global object', () => {
    const seen: unknown[] = [];
    Fiber(function (this: unknown, ...args: unknown[]) {
      seen.push(args.length, this === globalThis);
    }).run();
    Fiber((...args: unknown[]) => seen.push(args)).run('x');
    expect(seen).toEqual([0, true, ['x']]);
  });

  it('passes values both ways through run() and yield(), and returns the final result', () => {
    const got: unknown[] = [];
    const f = Fiber((first: number) => {
      got.push(first);
      got.push(Fiber.yield('a'));
      got.push(Fiber.yield('b'));
      return 'end';
    });
    expect(f.run(1)).toBe('a');
    expect(f.started).toBe(true);
    expect(f.run(2)).toBe('b');
    expect(f.run(3)).toBe('end');
    expect(got).toEqual([1, 2, 3]);
    expect(f.started).toBe(false);
  });

  it('after its function returns, the fiber is back in its original state and may be run again', () => {
    let runs = 0;
    const f = Fiber((x: number) => {
      runs++;
      return x * Fiber.yield(x);
    });
    expect(f.run(3)).toBe(3);
    expect(f.run(4)).toBe(12);
    expect(f.started).toBe(false);
    expect(f.run(5)).toBe(5);
    expect(f.run(6)).toBe(30);
    expect(runs).toBe(2);
  });

  it('Fiber.current: undefined outside, the right fiber in nested fibers and after yields', () => {
    expect(Fiber.current).toBeUndefined();
    const seen: unknown[] = [];
    let inner: ReturnType<typeof Fiber> | undefined;
    const outer = Fiber(() => {
      seen.push(Fiber.current === outer);
      inner = Fiber(() => {
        seen.push(Fiber.current === inner);
        Fiber.yield();
        seen.push(Fiber.current === inner);
        Fiber(() => seen.push(Fiber.current !== inner && Fiber.current !== outer && Fiber.current !== undefined)).run();
        seen.push(Fiber.current === inner);
      });
      inner.run();
      seen.push(Fiber.current === outer);
      Fiber.yield();
      inner.run();
      seen.push(Fiber.current === outer);
      seen.push(Fiber.current!.started);
    });
    outer.run();
    expect(Fiber.current).toBeUndefined();
    outer.run();
    expect(Fiber.current).toBeUndefined();
    expect(seen).toEqual([true, true, true, true, true, true, true, true]);
  });

  it('exceptions cross run() and yield() both ways', () => {
    const f = Fiber(() => {
      try {
        Fiber.yield('ready');
      } catch (e) {
        return `fiber caught ${(e as Error).message}`;
      }
      return 'not reached';
    });
    expect(f.run()).toBe('ready');
    expect(f.throwInto(new Error('from caller'))).toBe('fiber caught from caller');

    // Uncaught inside: throwInto throws it right back.
    const g = Fiber(() => Fiber.yield());
    g.run();
    const back = new TypeError('bounce');
    expect(thrown(() => g.throwInto(back))).toBe(back);
    expect(g.started).toBe(false);

    // From the fiber to the caller of run(); non-Error values too.
    const h = Fiber(() => {
      Fiber.yield();
      throw 'a string';  // eslint-disable-line no-throw-literal
    });
    h.run();
    expect(thrown(() => h.run())).toBe('a string');
  });

  it('poolSize is settable (and harmless); fibersCreated counts fibers started', () => {
    expect(Fiber.poolSize).toBe(120);
    Fiber.poolSize = 5;
    expect(Fiber.poolSize).toBe(5);
    const before = Fiber.fibersCreated;
    for (let i = 0; i < 10; i++) Fiber(() => i).run();
    const notStarted = Fiber(() => 0);
    expect(Fiber.fibersCreated).toBe(before + 10);
    notStarted.run();
    expect(Fiber.fibersCreated).toBe(before + 11);
    Fiber.poolSize = 120;
  });
});

describe('misuse', () => {
  it('running a running fiber is an Error', () => {
    let self: ReturnType<typeof Fiber>;
    self = Fiber(() => thrown(() => self.run()));
    const err = self.run() as Error;
    expect(err.constructor).toBe(Error);
    expect(err.message).toBe('This Fiber is already running');

    // A fiber resuming a child is running too (gh-8 of fibers).
    const outer = Fiber(() => {
      const that = Fiber.current!;
      return Fiber(() => thrown(() => that.run())).run();
    });
    expect((outer.run() as Error).message).toBe('This Fiber is already running');
  });

  it('yield outside a fiber is an Error; in a fiber made by spawn, a clear FiberStateError', async () => {
    const err = thrown(() => Fiber.yield()) as Error;
    expect(err.constructor).toBe(Error);
    expect(err).not.toBeInstanceOf(SpindleError);
    expect(err.message).toBe('yield() called with no fiber running');
    const detachedYield = Fiber.yield;
    expect((thrown(() => detachedYield(1)) as Error).message).toBe('yield() called with no fiber running');
    const f = spawn(() => Fiber.yield());
    const e = await f.result().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FiberStateError);
    expect((e as Error).message).toMatch(/made by spawn/);
  });

  it('throwInto and reset on a fiber that is not yielding', () => {
    const idle = Fiber(() => 1);
    expect((thrown(() => idle.throwInto(new Error('x'))) as Error).message).toBe('This Fiber is not yielding');
    expect(idle.reset()).toBeUndefined();
    let self: ReturnType<typeof Fiber>;
    self = Fiber(() => [thrown(() => self.reset()), thrown(() => self.throwInto(1))].map((e) => (e as Error).message));
    expect(self.run()).toEqual(['This Fiber is not yielding', 'This Fiber is not yielding']);
  });

  it('bad argument counts are TypeErrors', () => {
    const f = Fiber(() => Fiber.yield());
    expect(thrown(() => (f.run as (...a: unknown[]) => unknown)(1, 2))).toBeInstanceOf(TypeError);
    f.run();
    expect(thrown(() => (f.reset as (...a: unknown[]) => unknown)(1))).toBeInstanceOf(TypeError);
    const g = Fiber(() => (Fiber.yield as (...a: unknown[]) => unknown)(1, 2));
    expect(thrown(() => g.run())).toBeInstanceOf(TypeError);
    f.reset();
  });
});

describe('reset and unwinding', () => {
  it('reset() unwinds a yielding fiber: its finally blocks run, and every later yield() throws', () => {
    const log: string[] = [];
    let count = 0;
    const f = Fiber(() => {
      try {
        for (count = 0; count < 1000; ++count) {
          try {
            Fiber.yield();
          } catch (e) {
            log.length < 2 && log.push((e as Error).message);
          }
        }
      } finally {
        log.push('finally');
      }
    });
    f.run();
    expect(f.reset()).toBeUndefined();
    expect(count).toBe(1000);
    expect(log).toEqual(['This Fiber is a zombie', 'This Fiber is a zombie', 'finally']);
    expect(f.started).toBe(false);
  });

  it('reset() returns what the fiber returns, rethrows another error, and the fiber can start again', () => {
    const f = Fiber(() => {
      try {
        Fiber.yield('first');
      } catch {
        return 'unwound';
      }
      return 'normal';
    });
    expect(f.run()).toBe('first');
    expect(f.reset()).toBe('unwound');
    expect(f.run()).toBe('first');
    expect(f.run()).toBe('normal');

    const g = Fiber(() => {
      try {
        Fiber.yield();
      } finally {
        throw new RangeError('from finally');  // eslint-disable-line no-unsafe-finally
      }
    });
    g.run();
    expect(thrown(() => g.reset())).toBeInstanceOf(RangeError);
    expect(g.started).toBe(false);
  });

  it('an unfinished fiber that becomes garbage is unwound: its finally blocks run', () => {
    const r = runFibersScript(
      `
      var Fiber = require(FIBERS);
      var { fibers } = require(${JSON.stringify(path.join(root, 'dist', 'cjs', 'index.js'))});
      var finallies = 0, currents = 0, kept;
      function make(i) {
        var f = Fiber(function () {
          try {
            for (;;) Fiber.yield(i);
          } finally {
            finallies++;
            if (Fiber.current && Fiber.current.started) currents++;
          }
        });
        f.run();
        if (i === 0) kept = f;  // still referenced: must not be unwound
      }
      for (var i = 0; i < 50; i++) make(i);
      console.log('live', fibers().length);
      (async function () {
        for (var turn = 0; turn < 500 && finallies < 49; turn++) {
          gc();
          await new Promise(function (resolve) { setImmediate(resolve); });
        }
        console.log('finallies', finallies, 'current', currents, 'live', fibers().length, 'kept', kept.started);
        kept.reset();
        console.log('after reset', finallies, fibers().length);
      })();
    `,
      ['--expose-gc'],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('live 50\nfinallies 49 current 49 live 1 kept true\nafter reset 50 0\n');
    expect(r.code).toBe(0);
  });

  it('an error thrown while a collected fiber unwinds ends the process, as in fibers', () => {
    const r = runFibersScript(
      `
      var Fiber = require(FIBERS);
      (function () {
        Fiber(function () {
          try { Fiber.yield(); } finally { throw new Error('thrown while unwinding'); }
        }).run();
      })();
      (async function () {
        for (var turn = 0; turn < 500; turn++) {
          gc();
          await new Promise(function (resolve) { setImmediate(resolve); });
        }
        console.log('not reached');
      })();
    `,
      ['--expose-gc'],
    );
    expect(r.stderr).toContain('An exception was thrown from a Fiber which was being garbage collected');
    expect(r.stderr).toContain('thrown while unwinding');
    expect(r.stdout).toBe('');
    expect(r.code).toBe(1);
  });
});

describe('stacks and scale', () => {
  it('stack overflow inside a fiber is a RangeError, catchable inside and crossing run()', () => {
    const recurse = (n: number): number => recurse(n + 1) + 1;
    const f = Fiber(() => {
      try {
        recurse(0);
      } catch (e) {
        Fiber.yield(e instanceof RangeError);
      }
      recurse(0);
    });
    expect(f.run()).toBe(true);
    expect(thrown(() => f.run())).toBeInstanceOf(RangeError);
    expect(Fiber(() => 'still fine').run()).toBe('still fine');
  });

  it('10,000 fibers created, all suspended at once, then finished', () => {
    const before = fibers().length;
    const created = Fiber.fibersCreated;
    const all = [];
    for (let i = 0; i < 10_000; i++) {
      const f = Fiber((x: number) => x + Fiber.yield(x));
      expect(f.run(i)).toBe(i);
      all.push(f);
    }
    expect(fibers().length).toBe(before + 10_000);
    let sum = 0;
    for (const f of all) sum += f.run(1);
    expect(sum).toBe((10_000 * 9_999) / 2 + 10_000);
    expect(all.every((f) => !f.started)).toBe(true);
    expect(fibers().length).toBe(before);
    expect(Fiber.fibersCreated).toBe(created + 10_000);
  });
});

describe('async context', () => {
  it('AsyncLocalStorage: a fiber keeps its store across run/yield; the caller keeps its own', async () => {
    const als = new AsyncLocalStorage<string>();
    const seen: unknown[] = [];
    const f = Fiber(() => {
      seen.push(als.getStore());
      als.run('inner', () => {
        Fiber.yield();
        seen.push(als.getStore());
      });
      Fiber.yield();
      seen.push(als.getStore());
    });
    als.run('outer', () => {
      f.run();
      seen.push(als.getStore());
    });
    // Resumed from another async context: the fiber still sees its own store.
    await new Promise<void>((resolve) =>
      setImmediate(() =>
        als.run('other', () => {
          f.run();
          seen.push(als.getStore());
          f.run();
          seen.push(als.getStore());
          resolve();
        }),
      ),
    );
    expect(seen).toEqual(['outer', 'outer', 'inner', 'other', 'outer', 'other']);
  });

  it('async_hooks: the caller’s execution id is the same before and after run/yield', () => {
    const ids: number[] = [];
    const f = Fiber(() => {
      ids.push(executionAsyncId());
      Fiber.yield();
      ids.push(executionAsyncId());
    });
    const outside = executionAsyncId();
    f.run();
    expect(executionAsyncId()).toBe(outside);
    f.run();
    expect(executionAsyncId()).toBe(outside);
    expect(ids[1]).toBe(ids[0]);
  });
});

describe('with spindle: spawn, Mutex, Channel, sleep', () => {
  it('a Fiber that sleeps parks on the scheduler: run() returns undefined, and it resumes where it was', async () => {
    const log: string[] = [];
    const f = Fiber(() => {
      log.push('before');
      sleep(5);
      log.push(`after, current ok: ${Fiber.current === f}`);
      return 'ignored';
    });
    expect(f.run()).toBeUndefined();
    expect(log).toEqual(['before']);
    expect(f.started).toBe(true);
    expect((thrown(() => f.run()) as Error).message).toMatch(/waiting on spindle's scheduler/);
    await until(() => !f.started);
    expect(log).toEqual(['before', 'after, current ok: true']);
  });

  it('after the scheduler resumed it, Fiber.yield() gives control back and run() resumes it again', async () => {
    const f = Fiber(() => {
      sleep(1);
      return Fiber.yield('lost') + 1;
    });
    expect(f.run()).toBeUndefined();
    // Wait until it sits in Fiber.yield (run() is refused while it sleeps).
    let result: unknown;
    await until(() => {
      try {
        result = f.run(41);
        return true;
      } catch {
        return false;
      }
    });
    expect(result).toBe(42);
  });

  it('a Fiber and spawned fibers share a Mutex and a Channel', async () => {
    const mutex = new Mutex();
    const ch = new Channel<number>();
    const order: string[] = [];
    const worker = spawn(() => {
      mutex.lock();
      order.push('spawn locked');
      sleep(5);
      order.push('spawn unlocks');
      mutex.unlock();
      let total = 0;
      for (let i = 0; i < 3; i++) total += ch.recv();
      return total;
    });
    const f = Fiber(() => {
      sleep(1);  // let the spawned fiber take the lock first
      mutex.lock();
      order.push('Fiber locked');
      mutex.unlock();
      for (let i = 1; i <= 3; i++) ch.send(i * 10);
      order.push('Fiber sent');
    });
    expect(f.run()).toBeUndefined();
    expect(await worker.result()).toBe(60);
    await until(() => !f.started);
    expect(order).toEqual(['spawn locked', 'spawn unlocks', 'Fiber locked', 'Fiber sent']);
  });

  it('a Fiber can be run from a spawned fiber, and can wait on promises', async () => {
    const result = await spawn(() => {
      const f = Fiber(() => {
        const v = wait(Promise.resolve(20));
        return v + Fiber.yield(v);
      });
      const first = f.run();  // parks in wait(): run() returns undefined
      expect(first).toBeUndefined();
      sleep(5);
      return [current()!.name, f.run(22)];
    }, { name: 'driver' }).result();
    expect(result).toEqual(['driver', 42]);
  });

  // The layer's coroutines get their name (the function's, or 'Fiber') only when it is asked for.
  it("names a Fiber after its function, or 'Fiber', in spindle's views", () => {
    const seen: string[] = [];
    Fiber(function fetchUser() {
      seen.push(current()!.name);
    }).run();
    Fiber(() => {
      seen.push(fibers().find((f) => f.id === current()!.id)!.name);
    }).run();
    expect(seen).toEqual(['fetchUser', 'Fiber']);
  });

  it('an error escaping a Fiber that the scheduler resumed goes to uncaughtException', () => {
    const r = runScript(`
      const Fiber = require(${JSON.stringify(fibersEntry)});
      const { sleep } = require(SPINDLE);
      process.on('uncaughtException', (e) => { console.log('uncaught', e.message); });
      Fiber(() => { sleep(1); throw new Error('after sleep'); }).run();
    `);
    expect(r.stdout).toBe('uncaught after sleep\n');
    expect(r.code).toBe(0);
  });
});
