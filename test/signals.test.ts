// signals.wait and shutdownOn, in child processes: signals are sent by the child to itself, or by the
// test (the parent) once the child printed that it is ready.
import { spawnSync, spawn as spawnProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { NotInFiberError, shutdownOn, signals } from '../dist/index.js';

import { cjsEntry, inFiber, runScript, terminateBusyWorkers, thrown } from './helpers.js';

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from the first signal the parent sent to the child's exit. */
  afterSignal: number;
}

/**
 * Runs `source` in a child Node process; each time it prints a line `send SIGxxx`, the parent sends it
 * that signal. Resolves when the child exits.
 */
function runChild(source: string, timeoutMs = 30_000): Promise<ChildResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'spindle-signals-'));
  const file = path.join(dir, 'script.cjs');
  writeFileSync(file, source.replaceAll('SPINDLE', JSON.stringify(cjsEntry)));
  const child = spawnProcess(process.execPath, [file], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let sentAt = 0;
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    pending += d;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      const m = /^send (SIG\w+)$/.exec(line);
      if (m) {
        if (sentAt === 0) sentAt = performance.now();
        child.kill(m[1] as NodeJS.Signals);
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, afterSignal: sentAt === 0 ? -1 : performance.now() - sentAt });
    });
  });
}

const lines = (s: string) => s.trim().split('\n').filter((l) => !l.startsWith('send '));

describe('signals.wait', () => {
  it('suspends until the signal arrives and returns its name; every waiter wakes', () => {
    const r = runScript(`
      const { spawn, signals, sleep, fibers } = require(SPINDLE);
      const a = spawn(() => signals.wait('SIGUSR2'), { name: 'a' });
      const b = spawn(() => signals.wait(['SIGUSR1', 'SIGUSR2']), { name: 'b' });
      const c = spawn(() => signals.wait(['SIGHUP', 31 - 31 + require('os').constants.signals.SIGUSR1]), { name: 'c' });
      spawn(() => {
        sleep(20);
        console.log(fibers().filter((f) => f.name.length === 1).map((f) => f.name + ':' + f.waitingOn).join(' '));
        process.kill(process.pid, 'SIGUSR2');
        console.log(a.join(), b.join());
        process.kill(process.pid, 'SIGUSR1');
        console.log(c.join());
      });
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['a:signal(SIGUSR2) b:signal(SIGUSR1|SIGUSR2) c:signal(SIGHUP|SIGUSR1)', 'SIGUSR2 SIGUSR2', 'SIGUSR1']);
    expect(r.code).toBe(0);
  });

  it('keeps the process alive while a fiber waits, and receives a signal from another process', async () => {
    const r = await runChild(`
      const { spawn, signals } = require(SPINDLE);
      spawn(() => {
        setTimeout(() => console.log('send SIGHUP'), 50);
        console.log('got', signals.wait('SIGHUP'));
      });
    `);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual(['got SIGHUP']);
    expect(r.code).toBe(0);
  });

  it('takes a timeout, and is an interruption point; neither leaves the signal caught', () => {
    const r = runScript(`
      const { spawn, signals, sleep, TimeoutError, FiberInterruptedError } = require(SPINDLE);
      spawn(() => {
        const t0 = Date.now();
        try { signals.wait('SIGUSR2', { timeout: 30 }); } catch (e) { console.log(e instanceof TimeoutError, e.code, Date.now() - t0 >= 25); }
        const f = spawn(() => signals.wait('SIGUSR2'));
        sleep(10);
        f.interrupt('stop');
        try { f.join(); } catch (e) { console.log(e instanceof FiberInterruptedError, e.reason); }
        // Nobody waits any more: the signal has its default action again (it ends the process).
        process.kill(process.pid, 'SIGUSR2');
        sleep(1000);
        console.log('still alive');
      });
    `);
    expect(r.stdout.trim().split('\n')).toEqual(['true ERR_FIBER_TIMEOUT true', 'true stop']);
    expect(r.signal).toBe('SIGUSR2');
  });

  it("between waits the signal has its usual effect (Node's listeners still run)", () => {
    const r = runScript(`
      const { spawn, signals, sleep } = require(SPINDLE);
      let heard = 0;
      process.on('SIGUSR1', () => heard++);
      spawn(() => {
        const f = spawn(() => signals.wait('SIGUSR1'));
        sleep(10);
        process.kill(process.pid, 'SIGUSR1');
        console.log(f.join());
        sleep(10);
        process.kill(process.pid, 'SIGUSR1');
        sleep(20);
        console.log('heard', heard);
        process.removeAllListeners('SIGUSR1');
      });
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['SIGUSR1', 'heard 2']);
    expect(r.code).toBe(0);
  });

  it('checks its arguments', async () => {
    const errs = await inFiber(() => [
      thrown(() => signals.wait('SIGFOO' as NodeJS.Signals)),
      thrown(() => signals.wait('SIGKILL')),
      thrown(() => signals.wait(['SIGINT', 'SIGSTOP'])),
      thrown(() => signals.wait([])),
      thrown(() => signals.wait(12345)),
      thrown(() => signals.wait({} as NodeJS.Signals)),
      thrown(() => signals.wait('SIGINT', { timeout: -5 })),
    ]);
    expect(errs.map((e) => (e as { code: string }).code)).toEqual([
      'ERR_OUT_OF_RANGE',
      'ERR_OUT_OF_RANGE',
      'ERR_OUT_OF_RANGE',
      'ERR_OUT_OF_RANGE',
      'ERR_OUT_OF_RANGE',
      'ERR_INVALID_ARG_TYPE',
      'ERR_OUT_OF_RANGE',
    ]);
    expect(String((errs[1] as Error).message)).toContain('SIGKILL');
    expect(thrown(() => signals.wait('SIGINT'))).toBeInstanceOf(NotInFiberError);
    expect((thrown(() => shutdownOn(['SIGTERM'], { graceMs: -1 })) as { code: string }).code).toBe('ERR_OUT_OF_RANGE');
    expect((thrown(() => shutdownOn('SIGKILL')) as { code: string }).code).toBe('ERR_OUT_OF_RANGE');
    expect((thrown(() => shutdownOn('SIGTERM', { exitCode: 1.5 })) as { code: string }).code).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('a Worker can wait on a signal, and terminating it while it waits is clean', () => {
    const r = runScript(`
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const { spawn, signals } = require(\${JSON.stringify(SPINDLE)});
        const { parentPort } = require('node:worker_threads');
        spawn(() => { parentPort.postMessage('waiting'); signals.wait('SIGUSR2'); parentPort.postMessage('woke'); });
      \`, { eval: true });
      w.on('message', (m) => { console.log(m); setTimeout(() => w.terminate().then(() => console.log('terminated')), 30); });
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('waiting\nterminated');
    expect(r.code).toBe(0);
  });

  it('Workers terminated while many fibers wait on signals, in a loop or for good, end cleanly, every time', () => {
    // While a Worker terminates, fibers may still make a call or two into the addon: with the wait an
    // ObjectWrap, its methods' napi_unwrap failed and node-addon-api aborted the process.
    const r = terminateBusyWorkers(`
      for (let i = 0; i < 16; i++) {
        spawn(() => {
          for (;;) {
            try { signals.wait(['SIGUSR2', 'SIGWINCH'], { timeout: i % 2 }); } catch (e) { if (e.code !== 'ERR_FIBER_TIMEOUT') throw e; }
            busy();
          }
        });
        spawn(() => signals.wait('SIGUSR2'));
      }
    `);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(Array(16).fill(1));
  });
});

// A server-like program: fibers blocked in every kind of wait, each with a finally that reports.
const server = (opts: string, extra = '') => `
  const { spawn, sleep, wait, signals, shutdownOn, uninterruptible, Channel, Mutex, Event } = require(SPINDLE);
  const { reader } = require(${JSON.stringify(cjsEntry.replace(/index\.js$/, 'stream/index.js'))});
  shutdownOn(['SIGTERM', 'SIGINT'], ${opts});
  const done = (name) => process.stdout.write('finally ' + name + '\\n');
  const job = (name, fn) => spawn(() => { try { fn(); } finally { done(name); } }, { name });
  const ch = new Channel();
  const m = new Mutex();
  const ev = new Event();
  job('sleeper', () => sleep(Infinity));
  job('receiver', () => ch.recv());
  job('holder', () => m.withLock(() => ev.wait()));
  job('locker', () => { sleep(5); m.lock(); });
  job('promise', () => wait(new Promise(() => {})));
  job('stdin', () => reader(process.stdin).read());
  job('signal', () => signals.wait('SIGUSR2'));
  job('cleanup', () => { try { ev.wait(); } finally { uninterruptible(() => sleep(100)); } });
  const d = job('detached', () => sleep(60_000)); d.detach();
  job('worker', () => {
    const kids = [];
    try { for (let i = 0; i < 3; i++) kids.push(job('kid' + i, () => sleep(Infinity))); for (const k of kids) k.join(); }
    finally { job('late', () => sleep(Infinity)); }
  });
  ${extra}
  setTimeout(() => console.log('send SIGTERM'), 100);
`;
const allFinallies = ['cleanup', 'detached', 'holder', 'kid0', 'kid1', 'kid2', 'late', 'locker', 'promise', 'receiver', 'signal', 'sleeper', 'stdin', 'worker'];
const finallies = (stdout: string) =>
  lines(stdout)
    .filter((l) => l.startsWith('finally '))
    .map((l) => l.slice(8))
    .sort();

describe('shutdownOn', () => {
  it('SIGTERM interrupts every fiber, runs every finally, then ends the process by SIGTERM', async () => {
    const r = await runChild(server('{ graceMs: 5000 }'));
    expect(r.stderr).toBe('');
    expect(finallies(r.stdout)).toEqual(allFinallies);
    expect(r.signal).toBe('SIGTERM');
    expect(r.code).toBe(null);
    expect(r.afterSignal).toBeLessThan(4000);
  });

  it('with exitCode, a clean shutdown exits with it', async () => {
    const r = await runChild(server('{ graceMs: 5000, exitCode: 0 }'));
    expect(r.stderr).toBe('');
    expect(finallies(r.stdout)).toEqual(allFinallies);
    expect(r.signal).toBe(null);
    expect(r.code).toBe(0);
  });

  it('a fiber that ignores interruption: exit with timeoutExitCode after graceMs, naming it', async () => {
    const r = await runChild(server('{ graceMs: 400 }', `job('stubborn', () => uninterruptible(() => sleep(60_000)));`));
    expect(finallies(r.stdout)).toEqual(allFinallies);
    expect(r.code).toBe(1);
    expect(r.signal).toBe(null);
    expect(r.stderr).toMatch(/shutdown on SIGTERM: 1 fiber\(s\) still running after 400 ms: #\d+ 'stubborn' \(waiting on sleep\(60000\)\)/);
    expect(r.afterSignal).toBeGreaterThanOrEqual(380);
    expect(r.afterSignal).toBeLessThan(5000);
  });

  it('a second signal stops waiting at once', async () => {
    const r = await runChild(`
      const { spawn, sleep, shutdownOn, uninterruptible } = require(SPINDLE);
      shutdownOn(['SIGINT', 'SIGTERM'], { graceMs: 20_000, timeoutExitCode: 7 });
      spawn(() => uninterruptible(() => sleep(60_000)), { name: 'stubborn' });
      setTimeout(() => console.log('send SIGINT'), 50);
      // The second one once the first was handled (two sent at once could arrive as one).
      process.once('SIGINT', () => setTimeout(() => console.log('send SIGINT'), 50));
    `);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain("'stubborn'");
    expect(r.afterSignal).toBeLessThan(5000);
  });

  it('with no fiber running, ends the process by the signal at once; SIGINT shows 130 in a shell', async () => {
    const r = await runChild(`
      require(SPINDLE).shutdownOn();
      setTimeout(() => console.log('send SIGINT'), 50);
      setTimeout(() => {}, 20_000);
    `);
    expect(r.signal).toBe('SIGINT');
    expect(r.afterSignal).toBeLessThan(5000);
    // What a shell sees: the status of a death by SIGINT.
    const dir = mkdtempSync(path.join(tmpdir(), 'spindle-signals-'));
    const file = path.join(dir, 'int.cjs');
    writeFileSync(file, `require(${JSON.stringify(cjsEntry)}).shutdownOn(); process.kill(process.pid, 'SIGINT'); setTimeout(() => {}, 5000);`);
    const shell = spawnSync('sh', ['-c', '"$0" "$1"; echo $?', process.execPath, file], { encoding: 'utf8', timeout: 30_000 });
    expect(shell.stdout.trim()).toBe('130');
  });

  it('uninstalled before a signal, leaves the default action', () => {
    const r = runScript(`
      const stop = require(SPINDLE).shutdownOn('SIGTERM');
      stop();
      process.kill(process.pid, 'SIGTERM');
      setTimeout(() => console.log('survived'), 1000);
    `);
    expect(r.stdout).toBe('');
    expect(r.signal).toBe('SIGTERM');
  });
});
