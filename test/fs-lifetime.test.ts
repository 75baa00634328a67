// spindle/fs in child processes: interruption and timeouts of operations queued behind a busy
// threadpool (UV_THREADPOOL_SIZE=1, held by a long pbkdf2), Worker termination and process exit with
// operations in flight.
import { describe, expect, it } from 'vitest';

import { runScript } from './helpers.js';

const PRELUDE = `
const { spawn, sleep, fibers, yieldNow } = require(SPINDLE);
const fs = require(SPINDLE.replace(/index\\.js$/, 'fs/index.js'));
const nfs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const crypto = require('node:crypto');
const dir = nfs.mkdtempSync(path.join(os.tmpdir(), 'spindle-fsl-'));
process.on('exit', () => nfs.rmSync(dir, { recursive: true, force: true }));
const at = (name) => path.join(dir, name);
// Occupies the only threadpool thread for about ms milliseconds; calls back when done.
function blockPool(ms, done) {
  crypto.pbkdf2('pw', 'salt', Math.max(1, Math.round(ms * 2000)), 32, 'sha512', done);
}
const outcome = (fiber) => { try { return ['ok', fiber.join()]; } catch (e) { return [e.constructor.name, e.code]; } };
`;

// Reads of cached files complete without the threadpool (inline); tests of reads queued in the pool
// turn that off.
const NO_INLINE = { SPINDLE_FS_INLINE: '0' };

function run(source: string, env: NodeJS.ProcessEnv = {}): { code: number | null; out: Record<string, unknown>; stderr: string } {
  const r = runScript(PRELUDE + source, { env: { UV_THREADPOOL_SIZE: '1', ...env }, timeoutMs: 60_000 });
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  return { code: r.code, out: line ? (JSON.parse(line) as Record<string, unknown>) : { stdout: r.stdout }, stderr: r.stderr };
}

describe('spindle/fs: interruption and timeouts of queued operations', () => {
  it('interrupted calls cancel their operation at once: nothing read, written, created, or moved', () => {
    const r = run(`
      nfs.writeFileSync(at('data'), 'original');
      spawn(() => {
        const f = fs.open(at('data'), 'r+');
        let poolFree = false;
        blockPool(1500, () => { poolFree = true; });
        const buf = Buffer.alloc(8, 0x2e);
        const t0 = Date.now();
        const victims = [
          spawn(() => f.read(buf, 0, 8)),
          spawn(() => f.write('CHANGED!', 0)),
          spawn(() => fs.writeFile(at('created'), 'x')),
          spawn(() => fs.rename(at('data'), at('moved'))),
          spawn(() => fs.readFile(at('data'))),
          spawn(() => fs.mkdir(at('d1/d2'), { recursive: true })),
        ];
        sleep(50);
        const waiting = fibers().filter((x) => victims.some((v) => v.id === x.id)).map((x) => x.waitingOn);
        const inFlightBefore = fs._inFlight();
        for (const v of victims) v.interrupt('stop');
        const outcomes = victims.map(outcome);
        const elapsed = Date.now() - t0;
        const state = { poolFreeAfterInterrupts: poolFree, elapsed, inFlightAfter: fs._inFlight(), buf: buf.toString() };
        while (!poolFree) sleep(20);
        const rest = f.readAll().toString(); // the interrupted read moved no position
        f.close();
        console.log(JSON.stringify({ waiting, inFlightBefore, outcomes, ...state, rest,
          data: nfs.readFileSync(at('data'), 'utf8'), created: nfs.existsSync(at('created')), moved: nfs.existsSync(at('moved')),
          d1: nfs.existsSync(at('d1')), inline: fs._ioCounters().inlineReads }));
      });
    `, NO_INLINE);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.out;
    expect(out.inline).toBe(0);
    expect(out.waiting).toEqual([
      expect.stringMatching(/^fs\.read\(fd \d+\)$/),
      expect.stringMatching(/^fs\.write\(fd \d+\)$/),
      expect.stringMatching(/^fs\.open\(".*created"\)$/),
      expect.stringMatching(/^fs\.rename\(".*data"\)$/),
      expect.stringMatching(/^fs\.open\(".*data"\)$/),
      expect.stringMatching(/^fs\.mkdir\(".*d2"\)$/),
    ]);
    expect(out.inFlightBefore).toBe(6);
    expect(out.outcomes).toEqual(Array(6).fill(['FiberInterruptedError', 'ERR_FIBER_INTERRUPTED']));
    expect(out.poolFreeAfterInterrupts).toBe(false); // cancelled, not completed after the pool freed up
    expect(out.elapsed).toBeLessThan(1000);
    expect(out.inFlightAfter).toBe(0);
    expect(out.buf).toBe('........');
    expect(out.rest).toBe('original');
    expect(out.data).toBe('original');
    expect(out.created).toBe(false);
    expect(out.moved).toBe(false);
    expect(out.d1).toBe(false);
  });

  it('timeouts cancel the operation in flight and throw TimeoutError with the whole call\'s timeout', () => {
    const r = run(`
      nfs.writeFileSync(at('data'), 'original');
      spawn(() => {
        let poolFree = false;
        blockPool(1500, () => { poolFree = true; });
        const t0 = Date.now();
        const calls = [
          spawn(() => fs.readFile(at('data'), { timeout: 100 })),
          spawn(() => fs.writeFile(at('new'), 'x', { timeout: 50 })),
          spawn(() => fs.stat(at('data'), { timeout: 80 })),
          spawn(() => fs.open(at('data'), 'r', 0o666, { timeout: 30 })),
          spawn(() => fs.readdir(dir, { timeout: 60 })),
        ];
        const results = calls.map((c) => { try { c.join(); return ['ok']; } catch (e) { return [e.constructor.name, e.code, e.message]; } });
        const outcomes = results.map((x) => x.slice(0, 2));
        const messages = results.map((x) => x[2]);
        const elapsed = Date.now() - t0;
        const early = !poolFree;
        while (!poolFree) sleep(20);
        console.log(JSON.stringify({ outcomes, messages, elapsed, early, inFlight: fs._inFlight(), created: nfs.existsSync(at('new')) }));
      });
    `);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.outcomes).toEqual(Array(5).fill(['TimeoutError', 'ERR_FIBER_TIMEOUT']));
    expect(r.out.messages).toEqual([
      'fs.readFile timed out after 100 ms',
      'fs.writeFile timed out after 50 ms',
      'fs.stat timed out after 80 ms',
      'fs.open timed out after 30 ms',
      'fs.readdir timed out after 60 ms',
    ]);
    expect(r.out.elapsed).toBeGreaterThanOrEqual(95);
    expect(r.out.elapsed).toBeLessThan(1000);
    expect(r.out.early).toBe(true);
    expect(r.out.inFlight).toBe(0);
    expect(r.out.created).toBe(false);
  });

  it('a File closed while another fiber\'s queued read is interrupted closes after the cancellation', () => {
    const r = run(`
      nfs.writeFileSync(at('data'), 'abc');
      spawn(() => {
        const f = fs.open(at('data'));
        const fd = f.fd;
        let poolFree = false;
        blockPool(800, () => { poolFree = true; });
        const reader = spawn(() => f.read(Buffer.alloc(3)));
        const closer = spawn(() => { f.close(); return 'closed'; });
        sleep(30);
        const closerWaits = fibers().find((x) => x.id === closer.id).waitingOn;
        reader.interrupt();
        const outcomes = [outcome(reader), outcome(closer)];
        console.log(JSON.stringify({ closerWaits, outcomes, fd: f.fd, early: !poolFree }));
      });
    `, NO_INLINE);
    expect(r.stderr).toBe('');
    expect(r.out.closerWaits).toMatch(/^fs\.close\(fd \d+\): calls in flight$/);
    expect(r.out.outcomes).toEqual([
      ['FiberInterruptedError', 'ERR_FIBER_INTERRUPTED'],
      ['ok', 'closed'],
    ]);
    expect(r.out.fd).toBe(-1);
  });
});

describe('spindle/fs: environment teardown with operations in flight', () => {
  it('terminating a Worker whose fibers wait on queued fs operations ends it at once and cleanly', () => {
    const r = run(`
      const { Worker } = require('node:worker_threads');
      nfs.writeFileSync(at('data'), 'x'.repeat(100000));
      let poolFree = false;
      const worker = new Worker(\`
        const { spawn, yieldNow } = require(\${JSON.stringify(SPINDLE)});
        const fs = require(\${JSON.stringify(SPINDLE.replace(/index\\.js$/, 'fs/index.js'))});
        const { parentPort } = require('node:worker_threads');
        const buf = Buffer.alloc(1000);
        for (let i = 0; i < 20; i++) spawn(() => { for (;;) fs.readFile(\${JSON.stringify(at('data'))}); });
        spawn(() => { const f = fs.open(\${JSON.stringify(at('data'))}); parentPort.postMessage('opened'); f.read(buf); });
        \`, { eval: true });
      worker.once('message', () => {
        blockPool(2000, () => { poolFree = true; });
        setTimeout(() => {
          const t0 = Date.now();
          worker.terminate().then((code) => {
            console.log(JSON.stringify({ code, ms: Date.now() - t0, early: !poolFree }));
          });
        }, 100);
      });
    `);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.code).toBe(1);
    expect(r.out.early).toBe(true); // the queued operations were cancelled, not waited for
    expect(r.out.ms).toBeLessThan(1500);
  });

  it('terminating Workers at random moments of busy fs traffic never crashes or hangs', () => {
    const r = run(
      `
      const { Worker } = require('node:worker_threads');
      nfs.writeFileSync(at('data'), Buffer.alloc(1 << 20, 7));
      const source = \`
        const { spawn } = require(\${JSON.stringify(SPINDLE)});
        const fs = require(\${JSON.stringify(SPINDLE.replace(/index\\.js$/, 'fs/index.js'))});
        const { parentPort } = require('node:worker_threads');
        for (let i = 0; i < 30; i++) spawn(() => {
          for (let k = 0; ; k++) {
            if (i === 0 && k === 3) parentPort.postMessage('busy');
            const f = fs.open(\${JSON.stringify(at('data'))});
            try { f.read(Buffer.alloc(65536), 0, 65536, (k * 65536) % (1 << 20)); f.stat(); } finally { f.close(); }
            fs.readFile(\${JSON.stringify(at('data'))});
          }
        });
      \`;
      let done = 0;
      const codes = [];
      for (let i = 0; i < 8; i++) {
        const w = new Worker(source, { eval: true });
        w.once('message', () => setTimeout(() => w.terminate().then((code) => {
          codes.push(code);
          if (++done === 8) console.log(JSON.stringify({ codes }));
        }), i * 7));
      }
    `,
      { UV_THREADPOOL_SIZE: '4' },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.codes).toEqual(Array(8).fill(1));
  });

  it('process.exit with operations queued and running exits with its code, silently', () => {
    const r = run(`
      nfs.writeFileSync(at('data'), Buffer.alloc(1 << 20, 1));
      blockPool(2000, () => {});
      for (let i = 0; i < 50; i++) spawn(() => { for (;;) fs.readFile(at('data')); });
      spawn(() => { sleep(50); console.log(JSON.stringify({ inFlight: fs._inFlight() })); process.exit(7); });
    `);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(7);
    expect(r.out.inFlight).toBe(50);
  });

  it('process.exit from the loop thread while fibers read with a free threadpool', () => {
    const r = run(
      `
      nfs.writeFileSync(at('data'), Buffer.alloc(1 << 20, 1));
      for (let i = 0; i < 50; i++) spawn(() => { for (;;) fs.readFile(at('data')); });
      setTimeout(() => { console.log(JSON.stringify({ exiting: true })); process.exit(3); }, 100);
    `,
      { UV_THREADPOOL_SIZE: '4' },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(3);
    expect(r.out.exiting).toBe(true);
  });

  it('a program whose fibers finish their fs work exits normally', () => {
    const r = run(
      `
      nfs.writeFileSync(at('data'), 'hello');
      const results = [];
      for (let i = 0; i < 10; i++) spawn(() => { results.push(fs.readFile(at('data'), 'utf8')); });
      process.on('exit', (code) => console.log(JSON.stringify({ code, n: results.length, inFlight: fs._inFlight() })));
    `,
      { UV_THREADPOOL_SIZE: '4' },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toEqual({ code: 0, n: 10, inFlight: 0 });
  });
});
