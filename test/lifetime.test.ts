// Process lifetime with fibers: what keeps the process alive, deadlocks at exit, process.exit with
// parked fibers, uncaught errors, worker threads. Each case runs in a child process.
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { type RunResult, root, runScript, terminateBusyWorkers } from './helpers.js';

const CRASH = /FATAL|Check failed|Segmentation|Abort|core dumped|double free|heap corruption/i;

function expectNoCrash(r: RunResult): void {
  expect(r.signal).toBeNull();
  expect(r.stderr).not.toMatch(CRASH);
}

/** Script prelude: spawns `n` fibers parked in sleep, wait(never) and join, and resolves `allParked`. */
const PARK_MANY = `
  const { spawn, sleep, wait, fibers } = require(SPINDLE);
  function parkMany(n) {
    const never = new Promise(() => {});
    const parked = [];
    for (let i = 0; i < n; i++) {
      const kind = i % 3;
      if (kind === 0) parked.push(spawn(() => sleep(1e9)));
      else if (kind === 1) parked.push(spawn(() => wait(never)));
      else { const target = parked[i - 1]; parked.push(spawn(() => target.join())); }
    }
    return parked;
  }
  const allParked = (list) => list.every((f) => f.status === 'suspended');
`;

describe('process lifetime', () => {
  it('a fiber waiting on a timer keeps the process alive', () => {
    const r = runScript(`
      const { spawn, sleep } = require(SPINDLE);
      const started = Date.now();
      spawn(() => {
        sleep(200);
        console.log('after sleep ' + (Date.now() - started >= 190));
      }).detach();
    `, { timeoutMs: 20_000 });
    expectNoCrash(r);
    expect(r.stdout).toBe('after sleep true\n');
    expect(r.code).toBe(0);
  });

  it('a natural exit with every fiber finished exits 0', () => {
    const r = runScript(`
      const { spawn, sleep, yieldNow, wait } = require(SPINDLE);
      const all = [];
      for (let i = 0; i < 200; i++) {
        const prev = all[i - 1];
        all.push(spawn(() => {
          yieldNow();
          sleep(i % 5);
          wait(Promise.resolve(i));
          return (prev ? prev.join() : 0) + 1;
        }));
      }
      all[all.length - 1].result().then((n) => console.log('chain ' + n));
      process.on('exit', (code) => console.log('exit ' + code));
    `, { timeoutMs: 20_000 });
    expectNoCrash(r);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('chain 200\nexit 0\n');
    expect(r.code).toBe(0);
  });

  describe('deadlocks at exit', () => {
    it('fibers joining each other are woken with DeadlockError naming what each waited on; finally blocks run; join sees it', () => {
      const r = runScript(`
        const { spawn, yieldNow, DeadlockError } = require(SPINDLE);
        let a, b;
        a = spawn(() => {
          try { yieldNow(); return b.join(); } finally { console.log('A finally'); }
        }, { name: 'A' });
        b = spawn(() => {
          try {
            return a.join();
          } catch (e) {
            console.log('B join threw: ' + (e instanceof DeadlockError) + ' ' + e.code);
            throw e;
          } finally {
            console.log('B finally');
          }
        }, { name: 'B' });
        const show = (name, f) => f.result().then(
          (v) => console.log(name + ' returned ' + v),
          (e) => console.log(name + ' ' + (e instanceof DeadlockError) + ' ' + e.code + ' waitingOn=' + e.waitingOn + ' | ' + e.message),
        );
        console.log('ids ' + a.id + ' ' + b.id);
        show('A', a); show('B', b);
      `, { timeoutMs: 20_000 });
      expectNoCrash(r);
      const [, idA, idB] = /ids (\d+) (\d+)/.exec(r.stdout)!;
      const lines = r.stdout.split('\n');
      expect(lines).toContain('A finally');
      expect(lines).toContain('B finally');
      const lineA = lines.find((l) => l.startsWith('A true'));
      const lineB = lines.find((l) => l.startsWith('B true'));
      expect(lineA).toContain(`ERR_FIBER_DEADLOCK waitingOn=join(#${idB} 'B')`);
      expect(lineA).toMatch(new RegExp(`deadlock: .*'A'.* waits on join\\(#${idB} 'B'\\)`));
      expect(lineB).toContain(`ERR_FIBER_DEADLOCK waitingOn=join(#${idA} 'A')`);
      expect(lineB).toMatch(new RegExp(`deadlock: .*'B'.* waits on join\\(#${idA} 'A'\\)`));
      expect(lines).toContain('B join threw: true ERR_FIBER_DEADLOCK');
      // Both outcomes were taken by result() and handled: nothing more to report.
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });

    it('a fiber waiting forever on a never-settled promise is woken with DeadlockError and its joiner sees it', () => {
      const r = runScript(`
        const { spawn, wait, sleep, DeadlockError } = require(SPINDLE);
        const w = spawn(() => {
          try { wait(new Promise(() => {})); return 'settled?'; } finally { console.log('W finally'); }
        }, { name: 'W' });
        const s = spawn(() => {
          try { sleep(Infinity); } finally { console.log('S finally'); }
        }, { name: 'S' });
        spawn(() => {
          for (const f of [w, s]) {
            try { f.join(); console.log('joined?'); }
            catch (e) { console.log('join ' + f.name + ': ' + (e instanceof DeadlockError) + ' ' + e.code + ' | ' + e.message); }
          }
        }, { name: 'J' }).result().then(() => console.log('J done'));
      `, { timeoutMs: 20_000 });
      expectNoCrash(r);
      const lines = r.stdout.split('\n');
      expect(lines).toContain('W finally');
      expect(lines).toContain('S finally');
      expect(lines).toContain('J done');
      expect(r.stdout).not.toContain('joined?');
      const joinW = lines.find((l) => l.startsWith('join W: '))!;
      expect(joinW).toMatch(/^join W: true ERR_FIBER_DEADLOCK \| deadlock: /);
      const joinS = lines.find((l) => l.startsWith('join S: '))!;
      expect(joinS).toMatch(/^join S: true ERR_FIBER_DEADLOCK \| deadlock: /);
      // The messages name what the fibers waited on (the fiber's own wait, or the joiner's join of it).
      expect(joinW).toMatch(/a promise|join\(#\d+ 'W'\)/);
      expect(joinS).toMatch(/sleep\(Infinity\)|join\(#\d+ 'S'\)/);
      expect(r.code).not.toBeNull(); // no hang
    });

    it('a deadlocked fiber whose result() is handled is not reported, even after a join of it failed', () => {
      const r = runScript(`
        const { spawn, wait } = require(SPINDLE);
        const w = spawn(() => wait(new Promise(() => {})), { name: 'W' });
        w.result().catch((e) => console.log('handled ' + e.code));
        spawn(() => {
          try { w.join(); } catch (e) { console.log('join threw ' + e.code); }
        });
      `, { timeoutMs: 20_000 });
      expectNoCrash(r);
      expect(r.stdout.split('\n').sort()).toEqual(['', 'handled ERR_FIBER_DEADLOCK', 'join threw ERR_FIBER_DEADLOCK']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });

    it('deadlocked fibers nobody observes do not let the process exit silently with code 0', () => {
      const r = runScript(`
        const { spawn, wait } = require(SPINDLE);
        let a, b;
        a = spawn(() => { try { b.join(); } finally { console.log('A finally'); } }, { name: 'A' });
        b = spawn(() => { try { a.join(); } finally { console.log('B finally'); } }, { name: 'B' });
        globalThis.keep = [a, b];
        const w = spawn(() => wait(new Promise(() => {})), { name: 'W' });
        globalThis.keep.push(w);
      `, { timeoutMs: 20_000 });
      expectNoCrash(r);
      expect(r.stdout).toContain('A finally');
      expect(r.stdout).toContain('B finally');
      expect(r.code).not.toBe(0);
      expect(r.code).not.toBeNull();
      expect(r.stderr).toMatch(/deadlock/i);
      expect(r.stderr).toContain("'W'");
      expect(r.stderr).toContain('a promise');
    });

    it('a detached deadlocked fiber reports its DeadlockError as uncaught', () => {
      const r = runScript(`
        const { spawn, wait } = require(SPINDLE);
        spawn(() => { try { wait(new Promise(() => {})); } finally { console.log('finally'); } }, { name: 'lonely' }).detach();
      `, { timeoutMs: 20_000 });
      expectNoCrash(r);
      expect(r.stdout).toBe('finally\n');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/DeadlockError/);
      expect(r.stderr).toContain('a promise');
    });
  });

  describe('process.exit and uncaught errors with many parked fibers', () => {
    it('process.exit(3) from the loop thread with 2,000 parked fibers', () => {
      const r = runScript(`${PARK_MANY}
        const parked = parkMany(2000);
        const check = () => {
          if (!allParked(parked)) return setImmediate(check);
          console.log('parked ' + fibers().length);
          process.exit(3);
        };
        setImmediate(check);
      `, { timeoutMs: 30_000 });
      expectNoCrash(r);
      expect(r.stdout).toBe('parked 2000\n');
      expect(r.code).toBe(3);
    });

    it('process.exit(3) from inside a fiber with 2,000 parked fibers', () => {
      const r = runScript(`${PARK_MANY}
        const { yieldNow } = require(SPINDLE);
        const parked = parkMany(2000);
        spawn(() => {
          while (!allParked(parked)) yieldNow();
          console.log('parked ' + (fibers().length - 1));
          process.exit(3);
          console.log('not reached');
        });
      `, { timeoutMs: 30_000 });
      expectNoCrash(r);
      expect(r.stdout).toBe('parked 2000\n');
      expect(r.code).toBe(3);
    });

    it('process.exit(3) from a fiber inside a nested call with exit handlers', () => {
      const r = runScript(`${PARK_MANY}
        const { yieldNow } = require(SPINDLE);
        const parked = parkMany(2000);
        process.on('exit', (code) => console.log('exit handler ' + code));
        spawn(() => {
          while (!allParked(parked)) yieldNow();
          [2, 1].sort(() => process.exit(3));
        });
      `, { timeoutMs: 30_000 });
      expectNoCrash(r);
      expect(r.stdout).toBe('exit handler 3\n');
      expect(r.code).toBe(3);
    });

    it('an uncaught error from a detached fiber with 2,000 parked fibers exits with code 1 cleanly', () => {
      const r = runScript(`${PARK_MANY}
        const { yieldNow } = require(SPINDLE);
        const parked = parkMany(2000);
        spawn(() => {
          while (!allParked(parked)) yieldNow();
          console.log('parked ' + (fibers().length - 1));
          throw new Error('detached boom');
        }, { name: 'thrower' }).detach();
      `, { timeoutMs: 30_000 });
      expectNoCrash(r);
      expect(r.stdout).toBe('parked 2000\n');
      expect(r.stderr).toContain('detached boom');
      expect(r.code).toBe(1);
    });
  });

  describe('worker_threads', () => {
    const WORKER_PRELUDE = `
      const { Worker } = require('node:worker_threads');
      const entry = SPINDLE;
      const runWorker = (body) => new Worker(
        'const { parentPort } = require("node:worker_threads");\\n' +
        'const spindle = require(' + JSON.stringify(entry) + ');\\n' + body,
        { eval: true },
      );
    `;

    it('a worker that spawns fibers and posts their results', () => {
      const r = runScript(`${WORKER_PRELUDE}
        const w = runWorker(\`
          const { spawn, sleep, yieldNow, wait } = spindle;
          const parts = [];
          for (let i = 0; i < 50; i++) parts.push(spawn(() => { yieldNow(); sleep(i % 3); return wait(Promise.resolve(i * i)); }));
          spawn(() => parentPort.postMessage(parts.reduce((sum, f) => sum + f.join(), 0)));
        \`);
        w.on('message', (m) => console.log('sum ' + m));
        w.on('error', (e) => console.log('worker error ' + e));
        w.on('exit', (code) => console.log('worker exit ' + code));
        // The main thread runs fibers of its own at the same time.
        const { spawn, sleep } = require(SPINDLE);
        spawn(() => { sleep(5); return 'main fiber'; }).result().then((v) => console.log(v));
      `, { timeoutMs: 30_000 });
      expectNoCrash(r);
      const sum = Array.from({ length: 50 }, (_, i) => i * i).reduce((a, b) => a + b, 0);
      expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([`main fiber`, `sum ${sum}`, 'worker exit 0']);
      expect(r.code).toBe(0);
    });

    it('terminating a worker with 500 parked fibers ends it cleanly and the main process goes on', () => {
      const r = runScript(`${WORKER_PRELUDE}
        const w = runWorker(\`
          const { spawn, sleep, wait, yieldNow } = spindle;
          const never = new Promise(() => {});
          const parked = [];
          for (let i = 0; i < 500; i++) parked.push(spawn(() => (i % 2 ? sleep(1e9) : wait(never))));
          spawn(() => {
            while (!parked.every((f) => f.status === 'suspended')) yieldNow();
            parentPort.postMessage('parked ' + parked.length);
          });
        \`);
        w.on('message', (m) => {
          console.log(m);
          w.terminate().then((code) => console.log('terminated ' + code));
        });
        w.on('error', (e) => console.log('worker error ' + e));
        w.on('exit', () => {
          const { spawn, sleep } = require(SPINDLE);
          spawn(() => { sleep(1); return 'main continues'; }).result().then((v) => console.log(v));
        });
      `, { timeoutMs: 30_000 });
      expectNoCrash(r);
      expect(r.stdout.split('\n')).toEqual(['parked 500', 'terminated 1', 'main continues', '']);
      expect(r.code).toBe(0);
    });

    it('process.exit(5) in a worker fiber exits the worker with code 5', () => {
      const r = runScript(`${WORKER_PRELUDE}
        const w = runWorker(\`
          const { spawn, sleep } = spindle;
          for (let i = 0; i < 100; i++) spawn(() => sleep(1e9));
          spawn(() => { sleep(1); process.exit(5); parentPort.postMessage('not reached'); });
        \`);
        w.on('message', (m) => console.log('message ' + m));
        w.on('error', (e) => console.log('worker error ' + e));
        w.on('exit', (code) => console.log('worker exit ' + code));
        process.on('exit', (code) => console.log('main exit ' + code));
      `, { timeoutMs: 30_000 });
      expectNoCrash(r);
      expect(r.stdout).toBe('worker exit 5\nmain exit 0\n');
      expect(r.code).toBe(0);
    });
  });

  it('a terminated Worker ends even when its fibers catch every error and retry in a loop', () => {
    // Node stops calling into JavaScript before it tears the environment down, and turns the loop
    // meanwhile: fibers resumed then saw every IO call fail at once, caught it, and spun forever.
    const fsEntry = JSON.stringify(path.join(root, 'dist', 'cjs', 'fs', 'index.js'));
    const r = terminateBusyWorkers(`
      const fs = require(${fsEntry});
      const { sleep } = require(${JSON.stringify(path.join(root, 'dist', 'cjs', 'index.js'))});
      for (let i = 0; i < 4; i++) spawn(() => { for (;;) { try { fs.stat('/'); busy(); } catch {} } });
      for (let i = 0; i < 4; i++) spawn(() => { for (;;) { try { sleep(0); busy(); } catch {} } });
    `, 8);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(Array(8).fill(1));
  });
});
