import net from 'node:net';

import { describe, expect, it } from 'vitest';

import {
  Fiber,
  FiberStateError,
  NotInFiberError,
  TimeoutError,
  current,
  fiberize,
  fibers,
  sleep,
  spawn,
  wait,
  yieldNow,
} from '../dist/index.js';

import { thrown } from './helpers.js';

/** A promise with its resolve/reject exposed, to release fibers at a chosen moment. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('spawn', () => {
  it('never runs fn synchronously: inside a fiber the child starts at the spawner\'s next suspension point', async () => {
    const log: string[] = [];
    const parent = spawn(() => {
      const child = spawn(() => log.push('child'));
      log.push('spawned');
      expect(child.status).toBe('ready');
      yieldNow();
      log.push('parent resumed');
      expect(child.status).toBe('done');
      return child.join();
    });
    expect(log).toEqual([]);
    await expect(parent.result()).resolves.toBe(2);
    expect(log).toEqual(['spawned', 'child', 'parent resumed']);
  });

  it('never runs fn synchronously outside fibers: the child has run by the next setImmediate', async () => {
    // Spawned from a timer and from an immediate callback: the loop reaches its next poll for IO (and
    // the check phase after it) only after the child started.
    const spawnThenImmediate = () =>
      new Promise<{ sync: boolean; byImmediate: boolean; fiber: Fiber<void> }>((resolve) => {
        let ran = false;
        const fiber = spawn(() => {
          ran = true;
        });
        const sync = ran;
        setImmediate(() => resolve({ sync, byImmediate: ran, fiber }));
      });
    const fromTimer = await new Promise<Awaited<ReturnType<typeof spawnThenImmediate>>>((resolve) =>
      setTimeout(() => resolve(spawnThenImmediate()), 0),
    );
    const fromImmediate = await new Promise<Awaited<ReturnType<typeof spawnThenImmediate>>>((resolve) =>
      setImmediate(() => resolve(spawnThenImmediate())),
    );
    for (const outcome of [fromTimer, fromImmediate]) {
      expect(outcome).toMatchObject({ sync: false, byImmediate: true });
      await outcome.fiber.result();
    }
  });

  it('starts a fiber spawned outside fibers before the event loop next polls for IO', async () => {
    // A connected TCP pair: a write on one end makes the other end readable at once, so the loop's
    // next poll delivers a 'data' event. The child must have started before that.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const [writer, reader] = await Promise.all([
      new Promise<net.Socket>((resolve) => server.once('connection', resolve)),
      new Promise<net.Socket>((resolve) => {
        const socket: net.Socket = net.connect(port, '127.0.0.1', () => resolve(socket));
      }),
    ]);
    const contexts: Record<string, (go: () => void) => void> = {
      'a timer callback': (go) => setTimeout(go, 0),
      'an immediate callback': (go) => setImmediate(go),
      "the continuation of another fiber's result()": (go) => setTimeout(() => void spawn(() => {}).result().then(go), 0),
    };
    const orders: Record<string, string[]> = {};
    try {
      for (const [context, schedule] of Object.entries(contexts)) {
        const order: string[] = [];
        const gotData = new Promise<void>((resolve) =>
          reader.once('data', () => {
            order.push('io');
            resolve();
          }),
        );
        const child = await new Promise<Fiber<number>>((resolve) =>
          schedule(() => {
            writer.write('x');
            resolve(spawn(() => order.push('child')));
          }),
        );
        await gotData;
        await child.result();
        orders[context] = order;
      }
    } finally {
      writer.destroy();
      reader.destroy();
      server.close();
    }
    expect(orders).toEqual(Object.fromEntries(Object.keys(contexts).map((context) => [context, ['child', 'io']])));
  });

  it('gives each fiber an increasing id and a name (default fiber-<id>)', async () => {
    const a = spawn(() => 1);
    const b = spawn(() => 2, { name: 'worker' });
    const c = spawn(() => 3);
    expect(a).toBeInstanceOf(Fiber);
    expect(Number.isInteger(a.id)).toBe(true);
    expect(b.id).toBeGreaterThan(a.id);
    expect(c.id).toBeGreaterThan(b.id);
    expect(a.name).toBe(`fiber-${a.id}`);
    expect(b.name).toBe('worker');
    expect(c.name).toBe(`fiber-${c.id}`);
    await Promise.all([a.result(), b.result(), c.result()]);
  });

  it("goes through the statuses 'ready' → 'running' → 'suspended' → 'done'", async () => {
    const gate = deferred<string>();
    const parking = deferred();
    const inside: string[] = [];
    const f = spawn(() => {
      inside.push(current()!.status);
      parking.resolve(); // observed once the fiber has given up the thread
      const v = wait(gate.promise);
      inside.push(current()!.status);
      return v;
    });
    expect(f.status).toBe('ready');
    await parking.promise;
    expect(f.status).toBe('suspended');
    gate.resolve('open');
    await expect(f.result()).resolves.toBe('open');
    expect(f.status).toBe('done');
    expect(inside).toEqual(['running', 'running']);
  });

  it("shows a fiber that yielded as 'ready' to the fibers running meanwhile", async () => {
    const a = spawn(() => {
      yieldNow();
    });
    const b: Fiber<void> = spawn(() => {
      expect(a.status).toBe('ready');
      expect(b.status).toBe('running');
    });
    await Promise.all([a.result(), b.result()]);
  });

  it('is joinable until joined or detached', async () => {
    const outer = spawn(() => {
      const joined = spawn(() => 1);
      const detached = spawn(() => 2);
      expect(joined.joinable).toBe(true);
      expect(detached.joinable).toBe(true);
      detached.detach();
      expect(detached.joinable).toBe(false);
      expect(joined.join()).toBe(1);
      expect(joined.joinable).toBe(false);
    });
    await outer.result();
  });
});

describe('join', () => {
  it('returns the fiber\'s value, waiting for it to finish', async () => {
    const value = { answer: 42 };
    const outer = spawn(() => {
      const child = spawn(() => {
        sleep(5);
        return value;
      });
      return child.join();
    });
    await expect(outer.result()).resolves.toBe(value);
  });

  it('rethrows the fiber\'s error (the same object)', async () => {
    const boom = new Error('boom');
    const outer = spawn(() => {
      const child = spawn(() => {
        yieldNow();
        throw boom;
      });
      return thrown(() => child.join());
    });
    await expect(outer.result()).resolves.toBe(boom);
  });

  it('returns at once the value of a fiber that already finished', async () => {
    const outer = spawn(() => {
      const child = spawn(() => 'early');
      yieldNow();
      expect(child.status).toBe('done');
      return child.join({ timeout: 0 });
    });
    await expect(outer.result()).resolves.toBe('early');
  });

  it('throws TimeoutError when the timeout elapses first, and the fiber can be joined again', async () => {
    const gate = deferred<string>();
    const target = spawn(() => wait(gate.promise));
    const joiner = spawn(() => {
      const t0 = performance.now();
      const err = thrown(() => target.join({ timeout: 30 }));
      const elapsed = performance.now() - t0;
      expect(err).toBeInstanceOf(TimeoutError);
      expect(err).toMatchObject({ code: 'ERR_FIBER_TIMEOUT' });
      // Millisecond timer granularity; the upper bound is only a safety net.
      expect(elapsed).toBeGreaterThanOrEqual(29);
      expect(elapsed).toBeLessThan(5_000);
      expect(target.status).toBe('suspended');
      expect(target.joinable).toBe(true);

      expect(thrown(() => target.join({ timeout: 0 }))).toBeInstanceOf(TimeoutError);
      expect(target.joinable).toBe(true);

      gate.resolve('late');
      return target.join({ timeout: 10_000 });
    });
    await expect(joiner.result()).resolves.toBe('late');
    expect(target.joinable).toBe(false);
  });

  it('refuses to join itself (FiberStateError)', async () => {
    const f = spawn(() => thrown(() => current()!.join()));
    const err = await f.result();
    expect(err).toBeInstanceOf(FiberStateError);
    expect(err).toMatchObject({ code: 'ERR_FIBER_STATE' });
  });

  it('refuses a second join, sequential or concurrent (FiberStateError)', async () => {
    const gate = deferred<number>();
    const target = spawn(() => wait(gate.promise));
    const first = spawn(() => target.join());
    const second = spawn(() => {
      // `first` is already suspended in join(target) when this runs.
      expect(first.status).toBe('suspended');
      const concurrent = thrown(() => target.join());
      gate.resolve(7);
      const joinerValue = first.join();
      const again = thrown(() => target.join());
      return { concurrent, joinerValue, again };
    });
    const { concurrent, joinerValue, again } = await second.result();
    expect(concurrent).toBeInstanceOf(FiberStateError);
    expect(concurrent).toMatchObject({ code: 'ERR_FIBER_STATE' });
    expect(joinerValue).toBe(7);
    expect(again).toBeInstanceOf(FiberStateError);
    expect(again).toMatchObject({ code: 'ERR_FIBER_STATE' });
  });

  it('refuses to join a detached fiber (FiberStateError)', async () => {
    const outer = spawn(() => {
      const child = spawn(() => 'detached');
      child.detach();
      return thrown(() => child.join());
    });
    const err = await outer.result();
    expect(err).toBeInstanceOf(FiberStateError);
    expect(err).toMatchObject({ code: 'ERR_FIBER_STATE' });
  });

  it('throws NotInFiberError outside fibers, leaving the fiber joinable', async () => {
    const f = spawn(() => 'value');
    const err = thrown(() => f.join());
    expect(err).toBeInstanceOf(NotInFiberError);
    expect(err).toMatchObject({ code: 'ERR_NOT_IN_FIBER' });
    expect(f.joinable).toBe(true);
    await expect(f.result()).resolves.toBe('value');
  });
});

describe('result', () => {
  it('resolves with the value, also when asked after the fiber finished', async () => {
    const f = spawn(() => {
      sleep(1);
      return 'ok';
    });
    await expect(f.result()).resolves.toBe('ok');
    expect(f.status).toBe('done');
    await expect(f.result()).resolves.toBe('ok');
  });

  it('rejects with the error (the same object)', async () => {
    const boom = new RangeError('bad');
    const f = spawn(() => {
      yieldNow();
      throw boom;
    });
    const p1 = f.result();
    const p2 = f.result();
    await expect(p1).rejects.toBe(boom);
    await expect(p2).rejects.toBe(boom);
  });
});

describe('current', () => {
  it('is undefined outside fibers and the fiber\'s own handle inside', async () => {
    expect(current()).toBeUndefined();
    const f = spawn(() => {
      const before = current();
      sleep(1);
      const child = spawn(() => current());
      return { before, after: current(), child, childCurrent: child.join() };
    });
    const r = await f.result();
    expect(r.before).toBe(f);
    expect(r.after).toBe(f);
    expect(r.childCurrent).toBe(r.child);
    expect(r.child).not.toBe(f);
    expect(current()).toBeUndefined();
  });
});

describe('yieldNow', () => {
  it('runs the ready fibers round robin, in FIFO order', async () => {
    const log: string[] = [];
    const make = (name: string) =>
      spawn(() => {
        for (let i = 0; i < 3; i++) {
          log.push(`${name}${i}`);
          yieldNow();
        }
      });
    const all = [make('a'), make('b'), make('c')];
    await Promise.all(all.map((f) => f.result()));
    expect(log).toEqual(['a0', 'b0', 'c0', 'a1', 'b1', 'c1', 'a2', 'b2', 'c2']);
  });

  it('returns at once when no other fiber is ready', async () => {
    const f = spawn(() => {
      for (let i = 0; i < 100; i++) yieldNow();
      return 'done';
    });
    await expect(f.result()).resolves.toBe('done');
  });
});

describe('sleep', () => {
  it('suspends for at least ms milliseconds', async () => {
    const f = spawn(() =>
      [0, 1, 10, 50].map((ms) => {
        const t0 = performance.now();
        sleep(ms);
        return { ms, elapsed: performance.now() - t0 };
      }),
    );
    for (const { ms, elapsed } of await f.result()) {
      expect(elapsed).toBeGreaterThanOrEqual(ms);
      expect(elapsed).toBeLessThan(ms + 5_000); // safety net only
    }
  });

  it('lets other fibers run meanwhile; sleepers wake in deadline order', async () => {
    const woke: number[] = [];
    const sleeper = (ms: number) =>
      spawn(() => {
        sleep(ms);
        woke.push(ms);
      });
    const all = [sleeper(60), sleeper(20), sleeper(40)];
    let spins = 0;
    const spinner = spawn(() => {
      // Runs while every sleeper is suspended.
      while (woke.length === 0) {
        spins++;
        sleep(0);
      }
    });
    await Promise.all([...all, spinner].map((f) => f.result()));
    expect(woke).toEqual([20, 40, 60]);
    expect(spins).toBeGreaterThan(0);
  });
});

describe('wait', () => {
  it('returns the value of a fulfilled promise', async () => {
    const gate = deferred<{ v: number }>();
    const value = { v: 1 };
    const f = spawn(() => [wait(gate.promise), wait(Promise.resolve('already'))]);
    setTimeout(() => gate.resolve(value), 5);
    const [late, early] = await f.result();
    expect(late).toBe(value);
    expect(early).toBe('already');
  });

  it('throws the reason of a rejected promise (the same object)', async () => {
    const reason = new Error('rejected');
    const f = spawn(() => thrown(() => wait(Promise.reject(reason))));
    await expect(f.result()).resolves.toBe(reason);
  });

  it('waits on any thenable', async () => {
    const thenable = {
      then(resolve: (v: string) => void) {
        setTimeout(() => resolve('from thenable'), 1);
      },
    } as PromiseLike<string>;
    const f = spawn(() => wait(thenable));
    await expect(f.result()).resolves.toBe('from thenable');
  });

  it('passes plain values through', async () => {
    const obj = { then: 'not a function' };
    const f = spawn(() => [wait(42), wait(null), wait(undefined), wait('s'), wait(obj)]);
    const r = await f.result();
    expect(r).toEqual([42, null, undefined, 's', obj]);
    expect(r[4]).toBe(obj);
  });
});

describe('outside fibers', () => {
  it('wait, sleep and yieldNow throw NotInFiberError', () => {
    for (const call of [() => wait(Promise.resolve(1)), () => sleep(1), () => yieldNow()]) {
      const err = thrown(call);
      expect(err).toBeInstanceOf(NotInFiberError);
      expect(err).toMatchObject({ code: 'ERR_NOT_IN_FIBER' });
    }
  });
});

describe('fiberize', () => {
  it('returns a function that runs fn in a new fiber and gives a Promise of its result', async () => {
    function addSlowly(a: number, b: number) {
      sleep(1);
      const self = current()!;
      return { sum: a + b, id: self.id, name: self.name };
    }
    const add = fiberize(addSlowly);
    expect(typeof add).toBe('function');
    const p1 = add(2, 3);
    const p2 = add(10, 20);
    expect(p1).toBeInstanceOf(Promise);
    const [r1, r2] = await Promise.all([p1, p2]);
    expect(r1.sum).toBe(5);
    expect(r2.sum).toBe(30);
    expect(r1.name).toBe('addSlowly');
    expect(r1.id).not.toBe(r2.id);
  });

  it('rejects with fn\'s error and takes spawn options', async () => {
    const boom = new Error('fiberized failure');
    const fail = fiberize(() => {
      yieldNow();
      throw boom;
    });
    await expect(fail()).rejects.toBe(boom);
    const named = fiberize(() => current()!.name, { name: 'custom' });
    await expect(named()).resolves.toBe('custom');
  });
});

describe('argument checks', () => {
  const expectArgError = (call: () => unknown, type: typeof TypeError | typeof RangeError, code: string, name: string) => {
    const err = thrown(call);
    expect(err).toBeInstanceOf(type);
    expect(err).toMatchObject({ code });
    expect((err as Error).message).toContain(`"${name}"`);
  };

  it('rejects bad spawn arguments without creating a fiber', () => {
    const before = fibers().length;
    const fn = () => {};
    expectArgError(() => spawn(42 as never), TypeError, 'ERR_INVALID_ARG_TYPE', 'fn');
    expectArgError(() => spawn(undefined as never), TypeError, 'ERR_INVALID_ARG_TYPE', 'fn');
    expectArgError(() => spawn(fn, { stackSize: '1MB' as never }), TypeError, 'ERR_INVALID_ARG_TYPE', 'opts.stackSize');
    expectArgError(() => spawn(fn, { stackSize: NaN }), TypeError, 'ERR_INVALID_ARG_TYPE', 'opts.stackSize');
    expectArgError(() => spawn(fn, { stackSize: 1024 }), RangeError, 'ERR_OUT_OF_RANGE', 'opts.stackSize');
    expectArgError(() => spawn(fn, { stackSize: 2 * 1024 ** 3 }), RangeError, 'ERR_OUT_OF_RANGE', 'opts.stackSize');
    expectArgError(() => spawn(fn, { signal: {} as never }), TypeError, 'ERR_INVALID_ARG_TYPE', 'opts.signal');
    expectArgError(() => spawn(fn, { name: 7 as never }), TypeError, 'ERR_INVALID_ARG_TYPE', 'opts.name');
    expectArgError(() => fiberize('nope' as never), TypeError, 'ERR_INVALID_ARG_TYPE', 'fn');
    expect(fibers().length).toBe(before);
  });

  it('rejects a bad sleep duration and a bad join timeout', async () => {
    const f = spawn(() => {
      expectArgError(() => sleep(-1), RangeError, 'ERR_OUT_OF_RANGE', 'ms');
      expectArgError(() => sleep('10' as never), TypeError, 'ERR_INVALID_ARG_TYPE', 'ms');
      expectArgError(() => sleep(NaN), TypeError, 'ERR_INVALID_ARG_TYPE', 'ms');
      const child = spawn(() => 'child');
      expectArgError(() => child.join({ timeout: -5 }), RangeError, 'ERR_OUT_OF_RANGE', 'opts.timeout');
      expectArgError(() => child.join({ timeout: 'soon' as never }), TypeError, 'ERR_INVALID_ARG_TYPE', 'opts.timeout');
      expectArgError(() => child.join({ timeout: NaN }), TypeError, 'ERR_INVALID_ARG_TYPE', 'opts.timeout');
      // The failed calls left it joinable.
      return child.join();
    });
    await expect(f.result()).resolves.toBe('child');
  });
});

describe('many fibers', () => {
  it('spawns and joins 10,000 fibers, all alive at once', async () => {
    const count = 10_000;
    const parent = spawn(() => {
      const children = Array.from({ length: count }, (_, i) =>
        spawn(() => {
          yieldNow();
          return i;
        }),
      );
      let sum = 0;
      for (const child of children) sum += child.join();
      return sum;
    });
    await expect(parent.result()).resolves.toBe((count * (count - 1)) / 2);
  });
});

describe('fibers()', () => {
  it('lists the live fibers with id, name, status and what each waits on', async () => {
    const gate = deferred<void>();
    const sleeper = spawn(() => sleep(60_000), { name: 'sleeper' });
    const waiter = spawn(() => wait(gate.promise), { name: 'waiter' });
    const joiner = spawn(() => waiter.join(), { name: 'joiner' });
    const observer = spawn(
      () => {
        yieldNow(); // every other fiber runs to its suspension point
        const ready = spawn(() => {}, { name: 'fresh' });
        const snapshot = fibers();
        const finished = spawn(() => {}, { name: 'finished' });
        finished.join();
        ready.join();
        return { snapshot, ready, after: fibers() };
      },
      { name: 'observer' },
    );
    const { snapshot, ready, after } = await observer.result();
    const byId = (id: number) => snapshot.find((info) => info.id === id);
    expect(byId(sleeper.id)).toEqual({ id: sleeper.id, name: 'sleeper', status: 'suspended', waitingOn: 'sleep(60000)' });
    expect(byId(waiter.id)).toEqual({ id: waiter.id, name: 'waiter', status: 'suspended', waitingOn: 'a promise' });
    expect(byId(joiner.id)).toEqual({
      id: joiner.id,
      name: 'joiner',
      status: 'suspended',
      waitingOn: `join(#${waiter.id} 'waiter')`,
    });
    expect(byId(observer.id)).toEqual({ id: observer.id, name: 'observer', status: 'running', waitingOn: null });
    expect(byId(ready.id)).toEqual({ id: ready.id, name: 'fresh', status: 'ready', waitingOn: null });
    // Finished fibers are not listed.
    expect(after.map((info) => info.name)).not.toContain('fresh');
    expect(after.map((info) => info.name)).not.toContain('finished');

    gate.resolve();
    sleeper.interrupt();
    await joiner.result();
    await expect(sleeper.result()).rejects.toMatchObject({ code: 'ERR_FIBER_INTERRUPTED' });
    const names = fibers().map((info) => info.name);
    for (const name of ['sleeper', 'waiter', 'joiner', 'observer']) expect(names).not.toContain(name);
  });
});
