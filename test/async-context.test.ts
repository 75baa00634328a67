import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';

import { describe, expect, it } from 'vitest';

import { type Fiber, FiberStateError, sleep, spawn, wait, yieldNow } from '../dist/index.js';
import { inFiber, runScript, until } from './helpers.js';

const nodeMajor = Number(process.versions.node.split('.')[0]);

describe('async context (AsyncLocalStorage, async_hooks)', () => {
  it('a fiber sees the store active where it was spawned, not where it first runs', async () => {
    const als = new AsyncLocalStorage<string>();
    // Spawned from the loop thread: it first runs later, outside als.run.
    const fromLoop = als.run('at spawn (loop)', () => spawn(() => als.getStore()));
    expect(als.getStore()).toBeUndefined();
    expect(await fromLoop.result()).toBe('at spawn (loop)');

    // Spawned from a fiber, first run while the spawner is inside another als.run.
    const seen = await inFiber(() => {
      const child = als.run('at spawn (fiber)', () => spawn(() => {
        const first = als.getStore();
        yieldNow();
        return [first, als.getStore()];
      }));
      return als.run('when it first runs', () => {
        yieldNow(); // the child starts here
        return [...child.join(), als.getStore()];
      });
    });
    expect(seen).toEqual(['at spawn (fiber)', 'at spawn (fiber)', 'when it first runs']);
  });

  it('als.run inside a fiber stays with that fiber across suspensions while other fibers run their own', async () => {
    const als = new AsyncLocalStorage<{ id: number }>();
    const mismatches: string[] = [];
    const suspensions: Array<() => void> = [
      () => yieldNow(),
      () => sleep(1),
      () => wait(Promise.resolve()),
      () => wait(new Promise((resolve) => setImmediate(resolve))),
    ];
    const workers = Array.from({ length: 16 }, (_, id) =>
      spawn(() => {
        const outerStore = als.getStore();
        const store = { id };
        als.run(store, () => {
          for (let round = 0; round < 10; round++) {
            suspensions[(id + round) % suspensions.length]();
            if (als.getStore() !== store) mismatches.push(`fiber ${id} round ${round}: ${JSON.stringify(als.getStore())}`);
          }
        });
        // After its run ends the fiber is back to the store it started with.
        if (als.getStore() !== outerStore) mismatches.push(`fiber ${id} after run: ${JSON.stringify(als.getStore())}`);
        return id;
      }),
    );
    expect(await Promise.all(workers.map((w) => w.result()))).toEqual(workers.map((_, id) => id));
    expect(mismatches).toEqual([]);
    expect(als.getStore()).toBeUndefined();
  });

  it('async work started inside a fiber carries the fiber store', async () => {
    const als = new AsyncLocalStorage<string>();
    const seen = await inFiber(() =>
      als.run('in fiber', () => {
        const fromTimer = wait(new Promise((resolve) => setTimeout(() => resolve(als.getStore()), 1)));
        const fromThen = wait(Promise.resolve().then(() => als.getStore()));
        return [fromTimer, fromThen];
      }),
    );
    expect(seen).toEqual(['in fiber', 'in fiber']);
  });

  it('code outside fibers is not affected by stores set inside fibers', async () => {
    const als = new AsyncLocalStorage<string>();
    const observed: unknown[] = [];
    await als.run('outside', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const fibers: Fiber<unknown>[] = [
        spawn(() => {
          als.enterWith('entered in fiber');
          wait(gate);
          return als.getStore();
        }),
        spawn(() => als.run('run in fiber', () => {
          wait(gate);
          return als.getStore();
        })),
      ];
      // The fibers are parked now, inside their stores; the loop thread keeps its own.
      await until(() => fibers.every((f) => f.status === 'suspended' || f.status === 'done'));
      expect(fibers.map((f) => f.status)).toEqual(['suspended', 'suspended']);
      observed.push(als.getStore());
      await new Promise((resolve) => setTimeout(resolve, 1));
      observed.push(als.getStore());
      release();
      expect(await Promise.all(fibers.map((f) => f.result()))).toEqual(['entered in fiber', 'run in fiber']);
      observed.push(als.getStore());
    });
    expect(observed).toEqual(['outside', 'outside', 'outside']);
    expect(als.getStore()).toBeUndefined();
  });

  /** A child script: 8 fibers each suspend inside runInAsyncScope; prints the set of outcomes. */
  const runInAsyncScopeScript = (withAls: boolean) => `
    const { AsyncResource, AsyncLocalStorage, executionAsyncId } = require('node:async_hooks');
    const { spawn, sleep, yieldNow, wait, FiberStateError } = require(SPINDLE);
    const als = ${withAls} ? new AsyncLocalStorage() : undefined;
    const body = (resource, i) => {
      const id = executionAsyncId();
      sleep(1);
      yieldNow();
      wait(Promise.resolve());
      if (executionAsyncId() !== id) return 'id changed';
      if (id !== resource.asyncId()) return 'wrong id';
      if (als && als.getStore() !== i) return 'wrong store';
      return 'works';
    };
    const workers = [];
    for (let i = 0; i < 8; i++) {
      workers.push(spawn(() => {
        const resource = new AsyncResource('Test' + i);
        try {
          return resource.runInAsyncScope(() => (als ? als.run(i, () => body(resource, i)) : body(resource, i)));
        } catch (e) {
          if (e instanceof FiberStateError && e.code === 'ERR_FIBER_STATE' && /suspend/.test(e.message)) return 'refused';
          return 'other error: ' + e;
        }
      }));
    }
    Promise.all(workers.map((w) => w.result())).then((results) => {
      // Async machinery still works afterwards.
      setTimeout(() => {
        Promise.resolve().then(() => console.log(JSON.stringify([...new Set(results)])));
      }, 1);
    });
  `;

  it.each([
    ['alone', false],
    ['with AsyncLocalStorage in use', true],
  ])('runInAsyncScope around a suspension (%s) either works or throws FiberStateError, never crashes', (_, withAls) => {
    const r = runScript(runInAsyncScopeScript(withAls), { timeoutMs: 20_000 });
    expect(r.stderr).not.toMatch(/FATAL|Check failed|corrupted|Segmentation|TypeError/);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    // Node 20 and 22 expose the async id stack, so it must work there; later versions refuse clearly.
    expect(r.stdout.trim()).toBe(JSON.stringify([nodeMajor < 24 ? 'works' : 'refused']));
  });

  it('scopes nested deeper than Node\'s initial async id stack travel with their fiber across suspensions', async () => {
    // 40 levels per fiber, 3 fibers interleaving: each resume puts them all back (Node's id stack starts
    // with room for 16 and grows), each suspension takes them off.
    const depth = 40;
    const nest = (level: number, ids: number[]): string => {
      if (level === depth) {
        sleep(1);
        yieldNow();
        wait(Promise.resolve());
        return executionAsyncId() === ids[ids.length - 1] ? 'works' : 'innermost id changed';
      }
      const resource = new AsyncResource(`Level${level}`);
      return resource.runInAsyncScope(() => {
        const inner = nest(level + 1, [...ids, resource.asyncId()]);
        yieldNow();
        return executionAsyncId() === resource.asyncId() ? inner : `level ${level} id changed`;
      });
    };
    const workers = Array.from({ length: 3 }, () =>
      spawn(() => {
        const own = executionAsyncId();
        try {
          const result = nest(0, [own]);
          yieldNow();
          return executionAsyncId() === own ? result : 'own id changed';
        } catch (e) {
          return e instanceof FiberStateError ? 'refused' : `other error: ${e}`;
        }
      }),
    );
    const results = await Promise.all(workers.map((w) => w.result()));
    expect(new Set(results)).toEqual(new Set([nodeMajor < 24 ? 'works' : 'refused']));
    await new Promise((resolve) => setTimeout(resolve, 1)); // the loop's own async machinery still works
  });

  it('loads under --no-deprecation (a read-only process.noDeprecation) and prints no deprecation warning otherwise', () => {
    const script = `
      const { AsyncLocalStorage } = require('node:async_hooks');
      const { spawn, yieldNow } = require(SPINDLE);
      const als = new AsyncLocalStorage();
      als.run('store', () => spawn(() => { yieldNow(); console.log(als.getStore() + ' ' + process.noDeprecation); }));
    `;
    const quiet = runScript(script, { args: ['--no-deprecation'] });
    expect(quiet.stderr).toBe('');
    expect(quiet.stdout).toBe('store true\n');
    expect(quiet.code).toBe(0);
    const plain = runScript(script);
    expect(plain.stderr).not.toMatch(/DeprecationWarning|DEP0111/);
    expect(plain.stdout).toBe('store undefined\n');
    expect(plain.code).toBe(0);
  });

  it('executionAsyncId() inside a fiber is stable across its suspensions', async () => {
    const workers = Array.from({ length: 6 }, () =>
      spawn(() => {
        const ids = [executionAsyncId()];
        yieldNow();
        ids.push(executionAsyncId());
        sleep(1);
        ids.push(executionAsyncId());
        wait(Promise.resolve());
        ids.push(executionAsyncId());
        wait(new Promise((resolve) => setImmediate(resolve)));
        ids.push(executionAsyncId());
        return ids;
      }),
    );
    const all = await Promise.all(workers.map((w) => w.result()));
    for (const ids of all) expect(new Set(ids).size).toBe(1);
    if (nodeMajor < 24) {
      for (const ids of all) expect(ids[0]).toBeGreaterThan(0);
      // Node 20/22: every fiber has an async id of its own.
      expect(new Set(all.map((ids) => ids[0])).size).toBe(all.length);
    }
  });
});
