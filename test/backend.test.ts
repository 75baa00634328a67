// Switch backend selection (native/same_thread.h): carrier threads by default; SPINDLE_BACKEND=same-thread
// asks for the same-thread backend, used only on an allowlisted Node build whose load-time self-check
// passes, with a clean fallback to carriers otherwise. Each case runs in a child process, since the
// backend is chosen once per environment.
import { describe, expect, it } from 'vitest';

import { type RunResult, runScript } from './helpers.js';

const CRASH = /FATAL|Check failed|Segmentation|Abort|core dumped|double free|heap corruption/i;
const ALLOWLISTED = ['20.20.2', '22.23.3', '24.21.0', '26.10.0'];
// npm run test:asan loads an AddressSanitizer build, where the same-thread backend refuses to run.
const SANITIZED = /build-sanitize/.test(process.env.SPINDLE_ADDON ?? '');
const SUPPORTED = process.platform === 'linux' && process.arch === 'x64' && ALLOWLISTED.includes(process.versions.node) && !SANITIZED;

function expectClean(r: RunResult): void {
  expect(r.signal).toBeNull();
  expect(r.stderr).not.toMatch(CRASH);
}

/** Prints the backend, its reason, then runs fibers that switch, throw, park and finish. */
const REPORT = `
  const { spawn, sleep, yieldNow } = require(SPINDLE);
  const { native } = require(SPINDLE.replace(/index\\.js$/, 'native.js'));
  spawn(() => {
    let n = 0;
    for (let i = 0; i < 100; i++) { yieldNow(); n++; }
    sleep(1);
    try { spawn(() => { throw new Error('inner'); }).join(); } catch (e) { n += e.message === 'inner' ? 1 : 0; }
    const s = native.stats();
    console.log(JSON.stringify({ backend: s.backend, reason: s.backendReason, n }));
  });
`;

function report(env: NodeJS.ProcessEnv, args: string[] = []): { backend: string; reason: string; n: number } {
  const r = runScript(REPORT, { env, args, timeoutMs: 30_000 });
  expectClean(r);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout.trim());
}

describe('switch backend selection', () => {
  it('carrier threads are the default', () => {
    const out = report({ SPINDLE_BACKEND: '' });
    expect(out).toEqual({ backend: 'carrier', reason: 'default', n: 101 });
  });

  it('backend() reports the backend in use and why', () => {
    const r = runScript(
      `const { backend } = require(SPINDLE); const { native } = require(SPINDLE.replace(/index\\.js$/, 'native.js'));
       const b = backend(); const s = native.stats();
       console.log(JSON.stringify({ b, same: b.name === s.backend && b.reason === s.backendReason }));`,
      { env: { SPINDLE_BACKEND: 'same-thread' } },
    );
    expectClean(r);
    const out = JSON.parse(r.stdout.trim());
    expect(out.same).toBe(true);
    expect(out.b.name).toBe(SUPPORTED ? 'same-thread' : 'carrier');
    expect(out.b.reason.length).toBeGreaterThan(0);
  });

  it('SPINDLE_BACKEND=carrier selects carrier threads', () => {
    expect(report({ SPINDLE_BACKEND: 'carrier' })).toMatchObject({ backend: 'carrier', n: 101 });
  });

  it('an unknown SPINDLE_BACKEND falls back to carriers with the reason', () => {
    const out = report({ SPINDLE_BACKEND: 'bogus' });
    expect(out.backend).toBe('carrier');
    expect(out.reason).toMatch(/unknown SPINDLE_BACKEND value 'bogus'/);
  });

  it('SPINDLE_BACKEND=same-thread selects the same-thread backend on an allowlisted build', () => {
    const out = report({ SPINDLE_BACKEND: 'same-thread' });
    expect(out.n).toBe(101);
    if (SUPPORTED) {
      expect(out).toMatchObject({ backend: 'same-thread', reason: 'allowlisted build, self-check passed' });
    } else {
      expect(out.backend).toBe('carrier');
      expect(out.reason).toMatch(/^same-thread refused: /);
    }
  });

  it('a build not on the allowlist is refused before anything is patched, and carriers run', () => {
    const out = report({ SPINDLE_BACKEND: 'same-thread', SPINDLE_TEST_NODE_VERSION: '19.99.0' });
    expect(out.backend).toBe('carrier');
    expect(out.reason).toMatch(/same-thread refused: .*(not on the same-thread allowlist|supports only|AddressSanitizer)/);
    expect(out.n).toBe(101);
  });

  it.runIf(SUPPORTED)('the self-check refuses a slot offset shifted by 8 bytes, and carriers run', () => {
    for (const shift of ['8', '-8']) {
      const out = report({ SPINDLE_BACKEND: 'same-thread', SPINDLE_TEST_SLOT_SHIFT: shift });
      expect(out.backend).toBe('carrier');
      expect(out.reason).toMatch(/same-thread refused: self-check: /);
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
    `, { env: { SPINDLE_BACKEND: 'same-thread' } });
    expectClean(r);
    expect(r.stdout).toBe('worker same-thread\nterminated 1\n');
    expect(r.code).toBe(0);
  });
});

describe.runIf(SUPPORTED)('the same-thread backend under stress', () => {
  const env = { SPINDLE_BACKEND: 'same-thread' };

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
    expect(r.stdout).toBe('same-thread 200\n');
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
      // natural exit: the waits on a promise nothing can settle end in DeadlockError (as with carriers)
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
      const carrier = runScript(source, { env: { SPINDLE_BACKEND: 'carrier' }, timeoutMs: 60_000 });
      expect(r.code).toBe(carrier.code);
      if (code >= 0) expect(r.code).toBe(code);
    }
  });
});
