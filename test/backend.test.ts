// Switch backend selection (native/same_thread.h): 'auto' by default, which takes 'inplace' (the
// same-thread backend) only on an allowlisted Node build whose load-time self-check passes, and 'threads'
// (carrier threads) otherwise; SPINDLE_BACKEND=auto|inplace|threads or configure({ backend }) before the
// runtime starts choose. Each case runs in a child process, since the backend is chosen once per
// environment (the child's explicit SPINDLE_BACKEND overrides the vitest project's).
import { describe, expect, inject, it } from 'vitest';

import { backend } from '../dist/index.js';
import { type RunResult, runScript } from './helpers.js';

const CRASH = /FATAL|Check failed|Segmentation|Abort|core dumped|double free|heap corruption/i;
const ALLOWLISTED = ['20.20.2', '22.23.3', '24.21.0', '26.10.0'];
// npm run test:asan loads an AddressSanitizer build, where the inplace backend refuses to run.
const SANITIZED = /build-sanitize/.test(process.env.SPINDLE_ADDON ?? '');
const SUPPORTED = process.platform === 'linux' && process.arch === 'x64' && ALLOWLISTED.includes(process.versions.node) && !SANITIZED;

function expectClean(r: RunResult): void {
  expect(r.signal).toBeNull();
  expect(r.stderr).not.toMatch(CRASH);
}

/** Prints the backend, its reason, then runs fibers that switch, throw, park and finish. */
const REPORT = `
  const { spawn, sleep, yieldNow, backend, configure } = require(SPINDLE);
  if (process.env.CONFIGURE) configure({ backend: process.env.CONFIGURE });
  spawn(() => {
    let n = 0;
    for (let i = 0; i < 100; i++) { yieldNow(); n++; }
    sleep(1);
    try { spawn(() => { throw new Error('inner'); }).join(); } catch (e) { n += e.message === 'inner' ? 1 : 0; }
    const b = backend();
    console.log(JSON.stringify({ backend: b.name, reason: b.reason, n }));
  });
`;

function report(env: NodeJS.ProcessEnv, args: string[] = []): { backend: string; reason: string; n: number } {
  const r = runScript(REPORT, { env: { CONFIGURE: '', ...env }, args, timeoutMs: 30_000 });
  expectClean(r);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim());
}

const INPLACE_OK = 'allowlisted build, self-check passed';

describe('switch backend selection', () => {
  it("this vitest project's backend is the one the tests run on (or it is refused here, and they are skipped)", () => {
    const { name, refused } = inject('spindleBackend');
    expect(process.env.SPINDLE_BACKEND).toBe(name);
    expect(refused).toBe('');
    expect(backend().name).toBe(name);
  });

  it('auto is the default: inplace on an allowlisted build that passes the self-check, threads elsewhere', () => {
    const out = report({ SPINDLE_BACKEND: '' });
    expect(out.n).toBe(101);
    if (SUPPORTED) expect(out).toMatchObject({ backend: 'inplace', reason: `default (auto): ${INPLACE_OK}` });
    else expect(out).toMatchObject({ backend: 'threads', reason: expect.stringMatching(/^default \(auto\): inplace refused: /) });
  });

  it('backend() reports the backend in use and why, as the native core does', () => {
    const r = runScript(
      `const { backend, spawn } = require(SPINDLE); const { native } = require(SPINDLE.replace(/index\\.js$/, 'native.js'));
       const before = native.stats().backend;
       const b = backend(); const s = native.stats();
       console.log(JSON.stringify({ b, before, same: b.name === s.backend && b.reason === s.backendReason }));`,
      { env: { SPINDLE_BACKEND: 'inplace' } },
    );
    expectClean(r);
    const out = JSON.parse(r.stdout.trim());
    expect(out.before).toBe(''); // loading spindle does not start its runtime; backend() does
    expect(out.same).toBe(true);
    expect(out.b.name).toBe(SUPPORTED ? 'inplace' : 'threads');
    expect(out.b.reason).toMatch(/^SPINDLE_BACKEND=inplace: /);
  });

  it('SPINDLE_BACKEND=threads (or its alias carrier) selects carrier threads', () => {
    expect(report({ SPINDLE_BACKEND: 'threads' })).toEqual({ backend: 'threads', reason: 'SPINDLE_BACKEND=threads', n: 101 });
    expect(report({ SPINDLE_BACKEND: 'carrier' })).toEqual({ backend: 'threads', reason: 'SPINDLE_BACKEND=carrier', n: 101 });
  });

  it('an unknown SPINDLE_BACKEND falls back to threads with the reason', () => {
    const out = report({ SPINDLE_BACKEND: 'bogus' });
    expect(out.backend).toBe('threads');
    expect(out.reason).toBe("unknown SPINDLE_BACKEND value 'bogus' (auto, inplace, threads)");
  });

  it('SPINDLE_BACKEND=inplace (or its alias same-thread) selects the inplace backend on an allowlisted build', () => {
    for (const value of ['inplace', 'same-thread', 'auto']) {
      const out = report({ SPINDLE_BACKEND: value });
      expect(out.n).toBe(101);
      if (SUPPORTED) {
        expect(out).toMatchObject({ backend: 'inplace', reason: `SPINDLE_BACKEND=${value}: ${INPLACE_OK}` });
      } else {
        expect(out.backend).toBe('threads');
        expect(out.reason).toMatch(new RegExp(`^SPINDLE_BACKEND=${value}: inplace refused: `));
      }
    }
  });

  it('a build not on the allowlist is refused before anything is patched, forced or auto, and threads run', () => {
    for (const value of ['inplace', 'auto']) {
      const out = report({ SPINDLE_BACKEND: value, SPINDLE_TEST_NODE_VERSION: '19.99.0' });
      expect(out.backend).toBe('threads');
      expect(out.reason).toMatch(/inplace refused: .*(Node 19\.99\.0 is not on the inplace allowlist|supports only|AddressSanitizer)/);
      expect(out.n).toBe(101);
    }
  });

  it.runIf(SUPPORTED)('the self-check refuses a slot offset shifted by 8 bytes, and threads run', () => {
    for (const shift of ['8', '-8']) {
      const out = report({ SPINDLE_BACKEND: 'inplace', SPINDLE_TEST_SLOT_SHIFT: shift });
      expect(out.backend).toBe('threads');
      expect(out.reason).toMatch(/^SPINDLE_BACKEND=inplace: inplace refused: self-check: /);
      expect(out.n).toBe(101);
    }
  });

  it.runIf(SUPPORTED)('Workers select the backend too, and terminate cleanly with parked fibers', () => {
    const r = runScript(`
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const { spawn, sleep, wait } = require(\${JSON.stringify(SPINDLE)});
        const { native } = require(\${JSON.stringify(SPINDLE.replace(/index\\.js$/, 'native.js'))});
        for (let i = 0; i < 300; i++) spawn(() => (i % 2 ? sleep(1e9) : wait(new Promise(() => {}))));
        spawn(() => { sleep(5); require('node:worker_threads').parentPort.postMessage(native.stats().backend); });
      \`, { eval: true });
      w.on('message', (m) => { console.log('worker ' + m); setTimeout(() => w.terminate().then((c) => console.log('terminated ' + c)), 10); });
    `, { env: { SPINDLE_BACKEND: 'inplace' } });
    expectClean(r);
    expect(r.stdout).toBe('worker inplace\nterminated 1\n');
    expect(r.code).toBe(0);
  });
});

describe('configure({ backend })', () => {
  it('wins over SPINDLE_BACKEND', () => {
    expect(report({ SPINDLE_BACKEND: 'inplace', CONFIGURE: 'threads' })).toEqual({ backend: 'threads', reason: "configure({ backend: 'threads' })", n: 101 });
    for (const value of ['inplace', 'auto']) {
      const out = report({ SPINDLE_BACKEND: 'threads', CONFIGURE: value });
      expect(out.n).toBe(101);
      if (SUPPORTED) expect(out).toMatchObject({ backend: 'inplace', reason: `configure({ backend: '${value}' }): ${INPLACE_OK}` });
      else expect(out).toMatchObject({ backend: 'threads', reason: expect.stringMatching(/inplace refused: /) });
    }
  });

  it('forcing inplace on a build not on the allowlist refuses with the reason, and threads run', () => {
    const out = report({ SPINDLE_BACKEND: '', CONFIGURE: 'inplace', SPINDLE_TEST_NODE_VERSION: '19.99.0' });
    expect(out.backend).toBe('threads');
    expect(out.reason).toMatch(/^configure\(\{ backend: 'inplace' \}\): inplace refused: .*(not on the inplace allowlist|supports only|AddressSanitizer)/);
    expect(out.n).toBe(101);
  });

  it('loading every entry point does not start the runtime: configure() still works afterwards (CommonJS and ESM)', () => {
    const entries = JSON.stringify(['fibers/index.js', 'fibers/future.js', 'fs/index.js', 'net/index.js', 'dns/index.js', 'stream/index.js']);
    const load = (ext: string) => {
      const source =
        ext === '.mjs'
          ? `const s = await import(SPINDLE); for (const e of ${entries}) await import(SPINDLE.replace('index.js', e));`
          : `const s = require(SPINDLE); for (const e of ${entries}) require(SPINDLE.replace('index.js', e));`;
      const r = runScript(`${source}\ns.configure({ backend: 'threads' }); console.log(JSON.stringify(s.backend()));`, { ext, env: { SPINDLE_BACKEND: 'inplace' } });
      expectClean(r);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout.trim());
    };
    expect(load('.cjs')).toEqual({ name: 'threads', reason: "configure({ backend: 'threads' })" });
    expect(load('.mjs')).toEqual({ name: 'threads', reason: "configure({ backend: 'threads' })" });
  });

  it('after the runtime started, throws FiberStateError naming what started it, and the backend stays', () => {
    const starters: Array<[string, string]> = [
      ['spawn(() => 1);', 'the first fiber'],
      ['coroutine(() => 1);', 'the first coroutine'],
      ['backend();', 'backend()'],
      ["s[Symbol.for('spindle.native.v1')];", 'the C API (spindle_api_get)'],
      ["require(SPINDLE.replace('/index.js', '/net/index.js')).listen({ port: 0, host: '127.0.0.1' }).close();", 'spindle/net listen()'],
    ];
    for (const [start, by] of starters) {
      const r = runScript(
        `const s = require(SPINDLE); const { spawn, coroutine, backend, configure } = s;
         ${start}
         try { configure({ backend: 'threads' }); console.log('no error'); } catch (e) { console.log(e.constructor.name + ' ' + e.code + ': ' + e.message); }
         console.log(backend().reason);`,
        { env: { SPINDLE_BACKEND: 'bogus' } },
      );
      expectClean(r);
      const [error, reason] = r.stdout.trim().split('\n');
      expect(error).toBe(`FiberStateError ERR_FIBER_STATE: configure() must be called before spindle's runtime starts; it was started by ${by}`);
      expect(reason).toMatch(/^unknown SPINDLE_BACKEND value 'bogus'/);
    }
  });

  it('bad options throw the invalid-argument error naming the argument', () => {
    const r = runScript(
      `const { configure, backend } = require(SPINDLE);
       for (const bad of [null, 'inplace', { backend: 'fast' }, { backend: 'carrier' }, { backend: 1 }]) {
         try { configure(bad); console.log('no error'); } catch (e) { console.log(e.constructor.name + ' ' + e.code + ': ' + e.message); }
       }
       configure({}); // nothing asked: SPINDLE_BACKEND decides
       console.log(backend().reason);`,
      { env: { SPINDLE_BACKEND: 'threads' } },
    );
    expectClean(r);
    expect(r.stdout.trim().split('\n')).toEqual([
      'TypeError ERR_INVALID_ARG_TYPE: The "options" argument must be an object. Received null',
      "TypeError ERR_INVALID_ARG_TYPE: The \"options\" argument must be an object. Received type string ('inplace')",
      "TypeError ERR_INVALID_ARG_TYPE: The \"options.backend\" argument must be one of 'auto', 'inplace', 'threads'. Received type string ('fast')",
      "TypeError ERR_INVALID_ARG_TYPE: The \"options.backend\" argument must be one of 'auto', 'inplace', 'threads'. Received type string ('carrier')",
      "TypeError ERR_INVALID_ARG_TYPE: The \"options.backend\" argument must be one of 'auto', 'inplace', 'threads'. Received type number (1)",
      'SPINDLE_BACKEND=threads',
    ]);
  });

  it.runIf(SUPPORTED)('is per thread: a Worker configures its own runtime', () => {
    const r = runScript(`
      const { Worker } = require('node:worker_threads');
      const { backend, configure } = require(SPINDLE);
      configure({ backend: 'threads' });
      const w = new Worker(\`
        const { backend, configure } = require(\${JSON.stringify(SPINDLE)});
        configure({ backend: 'inplace' });
        require('node:worker_threads').parentPort.postMessage(backend().name);
      \`, { eval: true });
      w.on('message', (m) => console.log('main ' + backend().name + ', worker ' + m));
    `, { env: { SPINDLE_BACKEND: '' } });
    expectClean(r);
    expect(r.stdout).toBe('main threads, worker inplace\n');
  });
});

describe.runIf(SUPPORTED)('the inplace backend under stress', () => {
  const env = { SPINDLE_BACKEND: 'inplace' };

  it('objects held only by parked fibers survive compacting GCs', () => {
    const r = runScript(`
      const { spawn, yieldNow } = require(SPINDLE);
      const { native } = require(SPINDLE.replace(/index\\.js$/, 'native.js'));
      const fibers = [];
      for (let i = 0; i < 200; i++) {
        fibers.push(spawn(() => {
          const held = { i, list: Array.from({ length: 50 }, (_, k) => ({ k: k + i })) };
          for (let t = 0; t < 20; t++) { yieldNow(); new Array(2000).fill({}); }
          return held.list.reduce((a, o) => a + o.k, 0) - 50 * i;
        }));
      }
      spawn(() => {
        let ok = 0;
        for (const f of fibers) ok += f.join() === 1225 ? 1 : 0;
        console.log(native.stats().backend + ' ' + ok);
      });
    `, { env, args: ['--stress-compaction', '--max-semi-space-size=1', '--expose-gc'], timeoutMs: 120_000 });
    expectClean(r);
    expect(r.stdout).toBe('inplace 200\n');
    expect(r.code).toBe(0);
  });

  it('deep recursion in a fiber ends in a RangeError, small and large stacks', () => {
    const r = runScript(`
      const { spawn } = require(SPINDLE);
      const deep = (n) => deep(n + 1) + 1;
      for (const stackSize of [256 * 1024, 8 * 1024 * 1024]) {
        spawn(() => { try { deep(0); } catch (e) { console.log(stackSize + ' ' + e.constructor.name); } }, { stackSize });
      }
    `, { env });
    expectClean(r);
    expect(r.stdout).toBe('262144 RangeError\n8388608 RangeError\n');
  });

  it('a heap snapshot and the CPU profiler with parked fibers', () => {
    const r = runScript(`
      const { spawn, sleep, wait } = require(SPINDLE);
      const v8 = require('node:v8');
      const { Session } = require('node:inspector');
      const session = new Session();
      session.connect();
      const post = (m, p) => new Promise((res, rej) => session.post(m, p, (e, v) => (e ? rej(e) : res(v))));
      (async () => {
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 50 });
        await post('Profiler.start');
        const never = new Promise(() => {});
        const parked = [];
        for (let i = 0; i < 50; i++) parked.push(spawn(() => wait(never)));
        const busy = [];
        for (let i = 0; i < 20; i++) busy.push(spawn(() => { let x = 0; for (let k = 0; k < 2000; k++) { x += Math.sqrt(k); if (k % 100 === 0) sleep(0); } return x; }));
        for (const f of busy) await f.result();
        const file = v8.writeHeapSnapshot(require('node:path').join(require('node:os').tmpdir(), 'spindle-' + process.pid + '.heapsnapshot'));
        require('node:fs').unlinkSync(file);
        const { profile } = await post('Profiler.stop');
        console.log('ok ' + (profile.nodes.length > 0));
        for (const f of parked) f.interrupt();
      })();
    `, { env, timeoutMs: 120_000 });
    expectClean(r);
    expect(r.stdout).toBe('ok true\n');
  });

  it('exit paths with thousands of parked fibers end cleanly', () => {
    const cases: Array<[string, number]> = [
      ['setTimeout(() => process.exit(3), 20);', 3],
      ['spawn(() => { sleep(10); process.exit(4); });', 4],
      ["setTimeout(() => { throw new Error('uncaught'); }, 20);", 1],
      ["spawn(() => { sleep(10); throw new Error('uncaught in fiber'); });", 1],
      // natural exit: the waits on a promise nothing can settle end in DeadlockError (as with threads)
      ['', -1],
    ];
    for (const [tail, code] of cases) {
      const source = `
        const { spawn, sleep, wait, coroutine, suspend } = require(SPINDLE);
        const never = new Promise(() => {});
        for (let i = 0; i < 3000; i++) spawn(() => wait(never));
        for (let i = 0; i < 1000; i++) coroutine(() => { suspend(); }).resume();
        ${tail}
      `;
      const r = runScript(source, { env, timeoutMs: 60_000 });
      expectClean(r);
      const threads = runScript(source, { env: { SPINDLE_BACKEND: 'threads' }, timeoutMs: 60_000 });
      expect(r.code).toBe(threads.code);
      if (code >= 0) expect(r.code).toBe(code);
    }
  });
});
