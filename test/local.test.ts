import { describe, expect, it } from 'vitest';

import { FiberLocal, sleep, spawn, wait, yieldNow } from '../dist/index.js';

import { inFiber } from './helpers.js';

describe('FiberLocal', () => {
  it('keeps one value per fiber and a separate one outside fibers', async () => {
    const local = new FiberLocal<string>('initial');
    local.set('outside');
    const a = spawn(() => {
      expect(local.get()).toBe('initial');
      local.set('a');
      yieldNow();
      return local.get();
    });
    const b = spawn(() => {
      expect(local.get()).toBe('initial');
      local.set('b');
      yieldNow();
      return local.get();
    });
    expect(await a.result()).toBe('a');
    expect(await b.result()).toBe('b');
    expect(local.get()).toBe('outside');
  });

  it('starts every fiber at the initial value, not the value of its spawner', async () => {
    const local = new FiberLocal(0);
    const plain = new FiberLocal<number>();
    const seen = await inFiber(() => {
      local.set(5);
      plain.set(6);
      const child = spawn(() => [local.get(), plain.get()]);
      return [local.get(), plain.get(), ...child.join()];
    });
    expect(seen).toEqual([5, 6, 0, undefined]);
    expect(local.get()).toBe(0);
    expect(plain.get()).toBeUndefined();
  });

  it('gives fibers spawned one after another fresh values (nothing leaks from finished fibers)', async () => {
    const local = new FiberLocal('fresh');
    for (let i = 0; i < 50; i++) {
      const seen = await inFiber(() => {
        const before = local.get();
        local.set(`used by ${i}`);
        return before;
      });
      expect(seen).toBe('fresh');
    }
  });

  it('withInitializer calls the initializer lazily, once per fiber', async () => {
    let calls = 0;
    const local = FiberLocal.withInitializer(() => ({ n: ++calls }));
    expect(calls).toBe(0); // not at construction

    const untouched = spawn(() => 'no get');
    await untouched.result();
    expect(calls).toBe(0); // not for fibers that never read it

    const [first, second, sameInFiber] = await inFiber(() => {
      expect(calls).toBe(0); // not at fiber start
      const x = local.get();
      yieldNow();
      const y = local.get();
      return [x, y, x === y] as const;
    });
    expect(calls).toBe(1);
    expect(first).toEqual({ n: 1 });
    expect(second).toBe(first);
    expect(sameInFiber).toBe(true);

    const other = await inFiber(() => local.get());
    expect(calls).toBe(2);
    expect(other).toEqual({ n: 2 });
    expect(other).not.toBe(first);

    // A fiber that sets before reading never needs the initializer.
    await inFiber(() => {
      local.set({ n: -1 });
      return local.get();
    });
    expect(calls).toBe(2);

    // Outside fibers: its own value, made once.
    const outside = local.get();
    expect(local.get()).toBe(outside);
    expect(calls).toBe(3);
  });

  it('withInitializer rejects a non-function', () => {
    expect(() => FiberLocal.withInitializer(42 as unknown as () => number)).toThrow(TypeError);
  });

  it('values survive suspensions while other fibers set their own', async () => {
    const local = new FiberLocal(-1);
    const mismatches: string[] = [];
    const suspensions: Array<(round: number) => void> = [
      () => yieldNow(),
      (round) => sleep(round % 3),
      () => wait(Promise.resolve()),
      () => wait(new Promise((resolve) => setImmediate(resolve))),
    ];
    const workers = Array.from({ length: 20 }, (_, id) =>
      spawn(() => {
        for (let round = 0; round < 12; round++) {
          local.set(id * 100 + round);
          suspensions[(id + round) % suspensions.length](round);
          if (local.get() !== id * 100 + round) mismatches.push(`fiber ${id} round ${round}: ${local.get()}`);
        }
        return local.get();
      }),
    );
    const results = await Promise.all(workers.map((w) => w.result()));
    expect(mismatches).toEqual([]);
    expect(results).toEqual(workers.map((_, id) => id * 100 + 11));
    expect(local.get()).toBe(-1);
  });
});
