import { describe, expect, it } from 'vitest';

import { Fiber, sleep, spawn, wait, yieldNow } from '../dist/index.js';
import { runScript } from './helpers.js';

const FIBERS = 4;

/** The ways a fiber can suspend, each tried in every callback below. */
const suspensions: Array<[string, () => void]> = [
  ['sleep(1)', () => sleep(1)],
  ['yieldNow()', () => yieldNow()],
  ['wait(promise)', () => void wait(new Promise((resolve) => setImmediate(resolve)))],
];

/**
 * Runs `body(i)` in FIBERS fibers at once and returns their results. Also returns how many were inside
 * `body` at the same time: FIBERS when every one of them really suspended inside it.
 */
async function concurrently<T>(body: (i: number) => T): Promise<{ results: T[]; maxInside: number }> {
  let inside = 0;
  let maxInside = 0;
  const all: Array<Fiber<T>> = [];
  for (let i = 0; i < FIBERS; i++) {
    all.push(
      spawn(() => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        try {
          return body(i);
        } finally {
          inside--;
        }
      }),
    );
  }
  const results = await Promise.all(all.map((f) => f.result()));
  return { results, maxInside };
}

/** A deterministic shuffle of 0..n-1, different for each seed. */
function shuffled(n: number, seed: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i * 3 + seed);
  let state = seed + 1;
  for (let i = n - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2147483648;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe.each(suspensions)('suspending with %s', (_label, pause) => {
  it('inside an Array.prototype.sort comparator', async () => {
    const { results, maxInside } = await concurrently((i) => {
      const input = shuffled(24, i);
      const sorted = [...input].sort((a, b) => {
        pause();
        return a - b;
      });
      return { input, sorted };
    });
    expect(maxInside).toBe(FIBERS);
    for (const { input, sorted } of results) expect(sorted).toEqual([...input].sort((a, b) => a - b));
  });

  it('inside a getter', async () => {
    const { results, maxInside } = await concurrently((i) => {
      class Box {
        #reads = 0;
        get value() {
          pause();
          return i * 100 + ++this.#reads;
        }
      }
      const box = new Box();
      const plain = {
        get doubled() {
          pause();
          return i * 2;
        },
      };
      return [box.value, box.value, plain.doubled];
    });
    expect(maxInside).toBe(FIBERS);
    expect(results).toEqual(Array.from({ length: FIBERS }, (_, i) => [i * 100 + 1, i * 100 + 2, i * 2]));
  });

  it('inside Proxy traps', async () => {
    const { results, maxInside } = await concurrently((i) => {
      const target: Record<string, number> = { a: i };
      const proxy = new Proxy(target, {
        get(t, key, receiver) {
          pause();
          return typeof key === 'string' && !(key in t) ? `missing ${key} in ${i}` : Reflect.get(t, key, receiver);
        },
        set(t, key, value, receiver) {
          pause();
          return Reflect.set(t, key, value * 10, receiver);
        },
        has(t, key) {
          pause();
          return key === 'virtual' || key in t;
        },
      });
      proxy.b = i + 1;
      return [proxy.a, proxy.b, proxy.zzz, 'virtual' in proxy, 'nope' in proxy, target.b];
    });
    expect(maxInside).toBe(FIBERS);
    expect(results).toEqual(Array.from({ length: FIBERS }, (_, i) => [i, (i + 1) * 10, `missing zzz in ${i}`, true, false, (i + 1) * 10]));
  });

  it('inside a JSON.parse reviver', async () => {
    const { results, maxInside } = await concurrently((i) =>
      JSON.parse(`{"n": ${i}, "list": [1, 2, {"m": 3}], "s": "x"}`, (_key, value) => {
        pause();
        return typeof value === 'number' ? value * 10 + i : value;
      }),
    );
    expect(maxInside).toBe(FIBERS);
    expect(results).toEqual(Array.from({ length: FIBERS }, (_, i) => ({ n: i * 11, list: [10 + i, 20 + i, { m: 30 + i }], s: 'x' })));
  });

  it('inside an implicit toString (template literal, string concatenation)', async () => {
    const { results, maxInside } = await concurrently((i) => {
      const obj = {
        toString() {
          pause();
          return `obj${i}`;
        },
      };
      return [`<${obj}>`, 'is ' + obj, obj + '!', String(obj)];
    });
    expect(maxInside).toBe(FIBERS);
    expect(results).toEqual(Array.from({ length: FIBERS }, (_, i) => [`<obj${i}>`, `is obj${i}`, `obj${i}!`, `obj${i}`]));
  });

  it('inside a Map.prototype.forEach callback', async () => {
    const { results, maxInside } = await concurrently((i) => {
      const map = new Map([
        ['a', 1],
        ['b', 2],
        ['c', 3],
      ]);
      const seen: string[] = [];
      map.forEach((value, key, m) => {
        pause();
        seen.push(`${key}${value * i}`);
        if (key === 'a') m.set('d', 4); // added during iteration: still visited
      });
      return seen;
    });
    expect(maxInside).toBe(FIBERS);
    expect(results).toEqual(Array.from({ length: FIBERS }, (_, i) => [`a${i}`, `b${2 * i}`, `c${3 * i}`, `d${4 * i}`]));
  });

  it('inside class constructors (base and derived)', async () => {
    class Base {
      readonly x: number;
      constructor(x: number) {
        pause();
        this.x = x;
      }
    }
    class Derived extends Base {
      readonly y: number;
      constructor(x: number, y: number) {
        super(x);
        pause();
        this.y = y;
      }
    }
    const { results, maxInside } = await concurrently((i) => {
      const d = new Derived(i, -i);
      return { isDerived: d instanceof Derived, isBase: d instanceof Base, x: d.x, y: d.y };
    });
    expect(maxInside).toBe(FIBERS);
    expect(results).toEqual(Array.from({ length: FIBERS }, (_, i) => ({ isDerived: true, isBase: true, x: i, y: -i })));
  });
});

describe('Array.prototype.join over elements whose toString suspends', () => {
  // V8 keeps one stack of the arrays being joined (for cycle detection) per context. Run in a child
  // process, since misuse of that stack can abort the whole process.
  it('gives correct results with several fibers joining at once (same array, different arrays, nested)', () => {
    const r = runScript(`
      const { spawn, yieldNow } = require(SPINDLE);
      const suspending = (text) => ({ toString() { yieldNow(); return text; } });
      const results = (fibers) => Promise.all(fibers.map((f) => f.result()));
      (async () => {
        const shared = [suspending('x'), suspending('y')];
        const same = await results([spawn(() => shared.join('+')), spawn(() => shared.join('+'))]);
        const different = await results([0, 1, 2, 3].map((i) => {
          const array = [suspending('a' + i), suspending('b' + i)];
          return spawn(() => array.join('+'));
        }));
        const inner = [suspending('p'), suspending('q')];
        const nested = await results([spawn(() => [inner, 'z'].join('|')), spawn(() => [['r', suspending('s')]].join('|'))]);
        console.log(JSON.stringify({ same, different, nested }));
      })();
    `);
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual({
      same: ['x+y', 'x+y'],
      different: ['a0+b0', 'a1+b1', 'a2+b2', 'a3+b3'],
      nested: ['p,q|z', 'r,s'],
    });
  });

  it('under --frozen-intrinsics spindle still loads, and leaves the frozen join as it is', () => {
    const r = runScript(`
      const original = Array.prototype.join;
      const { spawn, yieldNow } = require(SPINDLE);
      spawn(() => { yieldNow(); console.log([1, 2].join('+') + ' ' + (Array.prototype.join === original)); });
    `, { args: ['--frozen-intrinsics', '--no-warnings'] });
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(r.stdout).toBe('1+2 true\n');
  });
});

describe('deep recursion', () => {
  /** Recurses until the stack overflows, inside a fiber; returns the RangeError and the depth reached. */
  function overflow(opts?: { stackSize: number }) {
    return spawn(() => {
      let depth = 0;
      const recurse = (): number => {
        depth++;
        return recurse() + 1;
      };
      let caught: unknown;
      try {
        recurse();
      } catch (err) {
        caught = err;
      }
      // The fiber goes on working after the overflow: it suspends and recurses (moderately) again.
      sleep(1);
      const small = (n: number): number => (n === 0 ? 0 : small(n - 1) + 1);
      return { caught, depth, after: small(1000) };
    }, opts).result();
  }

  it.each([
    ['the default stack', undefined],
    ['a 256 KiB stack', { stackSize: 256 * 1024 }],
    ['an 8 MiB stack', { stackSize: 8 * 1024 * 1024 }],
  ])('ends in a RangeError caught inside the fiber, with %s', async (_label, opts) => {
    const { caught, depth, after } = await overflow(opts);
    expect(caught).toBeInstanceOf(RangeError);
    expect((caught as Error).message).toMatch(/call stack/i);
    expect(depth).toBeGreaterThan(100);
    expect(after).toBe(1000);
  });

  it('reaches a depth that grows with the stack size, and the process keeps working', async () => {
    const small = await overflow({ stackSize: 256 * 1024 });
    const medium = await overflow();
    const large = await overflow({ stackSize: 8 * 1024 * 1024 });
    expect(medium.depth).toBeGreaterThan(small.depth * 2);
    expect(large.depth).toBeGreaterThan(medium.depth * 4);

    // Other fibers and the main thread are unaffected.
    const later = spawn(() => {
      sleep(1);
      return 'still fine';
    });
    await expect(later.result()).resolves.toBe('still fine');
    const onMain = (n: number): number => (n === 0 ? 0 : onMain(n - 1) + 1);
    expect(onMain(2000)).toBe(2000);
  });

  it('overflows cleanly in several fibers that suspend while deep in recursion', async () => {
    const { results, maxInside } = await concurrently(() => {
      let depth = 0;
      const recurse = (): number => {
        depth++;
        if (depth % 500 === 0) yieldNow();
        return recurse() + 1;
      };
      try {
        recurse();
        return { name: 'no error', depth };
      } catch (err) {
        return { name: (err as Error).name, depth };
      }
    });
    expect(maxInside).toBe(FIBERS);
    for (const r of results) {
      expect(r.name).toBe('RangeError');
      expect(r.depth).toBeGreaterThan(1000);
    }
  });
});

describe('generators shared between fibers', () => {
  it('a generator suspended mid-next() in one fiber throws "already running" in another', async () => {
    let open!: (v: string) => void;
    const gate = new Promise<string>((resolve) => {
      open = resolve;
    });
    function* steps() {
      yield wait(gate);
      yield 'second';
    }
    const gen = steps();
    const first = spawn(() => gen.next());
    const second = spawn(() => {
      expect(first.status).toBe('suspended'); // parked inside gen.next()
      let caught: unknown;
      try {
        gen.next();
      } catch (err) {
        caught = err;
      }
      open('first');
      // Once the first fiber is done with it, the generator works normally again.
      first.join();
      return { caught, next: gen.next() };
    });
    const { caught, next } = await second.result();
    expect(caught).toBeInstanceOf(TypeError);
    expect((caught as Error).message).toMatch(/already running/);
    expect(next).toEqual({ value: 'second', done: false });
    await expect(first.result()).resolves.toEqual({ value: 'first', done: false });
  });
});
