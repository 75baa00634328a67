import { promises as nodeDns } from 'node:dns';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { FiberInterruptedError, NotInFiberError, TimeoutError, spawn } from '../dist/index.js';
import { type LookupAddress, type LookupError, lookup, lookupAll } from '../dist/dns/index.js';

import { inFiber, root, runScript, terminateBusyWorkers, thrown } from './helpers.js';

const dnsEntry = JSON.stringify(path.join(root, 'dist', 'cjs', 'dns', 'index.js'));

/** What Node's dns.lookup answers (all addresses), or its error code. */
async function nodeLookupAll(host: string, family: 0 | 4 | 6 = 0): Promise<LookupAddress[] | string> {
  try {
    return (await nodeDns.lookup(host, { all: true, family })) as LookupAddress[];
  } catch (error) {
    return (error as { code: string }).code;
  }
}

function ours(fn: () => LookupAddress[]): Promise<LookupAddress[] | string> {
  return inFiber(() => {
    try {
      return fn();
    } catch (error) {
      return (error as { code: string }).code;
    }
  });
}

const byAddress = (list: LookupAddress[] | string) => (typeof list === 'string' ? list : [...list].sort((a, b) => a.address.localeCompare(b.address)));

describe('dns.lookup / lookupAll', () => {
  it("resolves 'localhost' as Node's dns.lookup does", async () => {
    const expected = await nodeLookupAll('localhost');
    expect(Array.isArray(expected)).toBe(true);
    const all = await ours(() => lookupAll('localhost'));
    expect(byAddress(all)).toEqual(byAddress(expected));
    const first = await inFiber(() => lookup('localhost'));
    expect(first).toEqual((expected as LookupAddress[])[0]);
    expect([4, 6]).toContain(first.family);
  });

  it('honours the family option (4, 6, IPv4, IPv6), matching Node', async () => {
    for (const family of [4, 6] as const) {
      const expected = await nodeLookupAll('localhost', family);
      const got = await ours(() => lookupAll('localhost', { family }));
      expect(byAddress(got)).toEqual(byAddress(expected));
      if (typeof got !== 'string') for (const a of got) expect(a.family).toBe(family);
    }
    const v4 = await inFiber(() => lookupAll('localhost', { family: 'IPv4' }));
    expect(v4.every((a) => a.family === 4)).toBe(true);
    expect(v4.map((a) => a.address)).toContain('127.0.0.1');
  });

  it('returns numeric addresses as they are, without a lookup', async () => {
    const r = await inFiber(() => [lookup('127.0.0.1'), lookup('::1'), lookupAll('10.1.2.3'), lookup('fe80::1', { family: 4 })]);
    expect(r).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
      [{ address: '10.1.2.3', family: 4 }],
      { address: 'fe80::1', family: 6 },
    ]);
  });

  it('fails a nonexistent name quickly with a Node-style error (ENOTFOUND, or EAI_AGAIN in a sandbox)', async () => {
    const started = performance.now();
    const err = (await inFiber(() => thrown(() => lookup('no-such-host.invalid')))) as LookupError;
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(err).toBeInstanceOf(Error);
    expect(['ENOTFOUND', 'EAI_AGAIN']).toContain(err.code);
    expect(typeof err.errno).toBe('number');
    expect(err.errno).toBeLessThan(0);
    expect(err.syscall).toBe('getaddrinfo');
    expect(err.hostname).toBe('no-such-host.invalid');
    expect(err.message).toBe(`getaddrinfo ${err.code} no-such-host.invalid`);
    // The same code as Node's own lookup.
    expect([await nodeLookupAll('no-such-host.invalid'), 'EAI_AGAIN', 'ENOTFOUND']).toContain(err.code);
    const all = (await inFiber(() => thrown(() => lookupAll('no-such-host.invalid')))) as LookupError;
    expect(['ENOTFOUND', 'EAI_AGAIN']).toContain(all.code);
  });

  it('runs many lookups from many fibers at once', async () => {
    const fibers = Array.from({ length: 100 }, (_, i) => spawn(() => (i % 2 === 0 ? lookup('localhost') : lookup(`127.0.0.${i}`))));
    const results = await Promise.all(fibers.map((f) => f.result()));
    results.forEach((r, i) => expect(r.address).toBe(i % 2 === 0 ? (results[0] as LookupAddress).address : `127.0.0.${i}`));
  });

  it('checks its arguments before any lookup', async () => {
    const errs = await inFiber(() => [
      thrown(() => lookup(42 as unknown as string)),
      thrown(() => lookup('localhost', { family: 5 as 4 })),
      thrown(() => lookup('localhost', null as unknown as object)),
      thrown(() => lookup('localhost', { timeout: -1 })),
      thrown(() => lookupAll(undefined as unknown as string)),
    ]);
    expect((errs[0] as { code: string }).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(errs[0]).toBeInstanceOf(TypeError);
    expect((errs[1] as { code: string }).code).toBe('ERR_INVALID_ARG_VALUE');
    expect((errs[2] as { code: string }).code).toBe('ERR_INVALID_ARG_TYPE');
    expect((errs[3] as { code: string }).code).toBe('ERR_OUT_OF_RANGE');
    expect((errs[4] as { code: string }).code).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('must run in a fiber', () => {
    expect(thrown(() => lookup('localhost'))).toBeInstanceOf(NotInFiberError);
  });

  it('is an interruption point: an interrupted fiber does not look up', async () => {
    const f = spawn(() => {
      spawn(() => {}).join();
      return lookup('localhost');
    });
    f.interrupt('stop');
    await expect(f.result()).rejects.toBeInstanceOf(FiberInterruptedError);
  });
});

// With the one threadpool thread blocked (opening a FIFO that has no writer yet), a lookup queues
// behind it: interruption and timeouts then cancel it before it starts (uv_cancel), and the fiber
// resumes at once. release() opens the writer end, which unblocks the thread.
const busyPool = `
  const fs = require('node:fs');
  const path = require('node:path');
  const { execFileSync } = require('node:child_process');
  const { spawn, sleep, TimeoutError, FiberInterruptedError } = require(SPINDLE);
  const { lookup } = require(${dnsEntry});
  const fifo = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'spindle-dns-')), 'fifo');
  execFileSync('mkfifo', [fifo]);
  let busy = true;
  const t0 = Date.now();
  fs.open(fifo, 'r', (err, fd) => { busy = false; if (!err) fs.closeSync(fd); });
  const release = () => fs.closeSync(fs.openSync(fifo, 'w'));
`;

describe('dns: cancellation (child process, one threadpool thread)', () => {
  it('a timeout cancels a queued lookup and throws TimeoutError', () => {
    const r = runScript(
      `${busyPool}
      spawn(() => {
        try { lookup('localhost', { timeout: 50 }); console.log('no timeout'); }
        catch (e) { console.log(e instanceof TimeoutError, e.code, Date.now() - t0 < 5000 ? 'fast' : 'slow ' + (Date.now() - t0), busy); }
        // Once the pool is free, lookups work again.
        release();
        console.log(lookup('localhost').address);
      }).result().catch((e) => { console.log('failed', e); process.exitCode = 1; });
    `,
      { env: { UV_THREADPOOL_SIZE: '1' } },
    );
    expect(r.stderr).toBe('');
    const [line1, line2] = r.stdout.trim().split('\n');
    expect(line1).toBe('true ERR_FIBER_TIMEOUT fast true');
    expect(line2).toBe('127.0.0.1');
    expect(r.code).toBe(0);
  });

  it('interruption cancels a queued lookup; the fiber resumes at once', () => {
    const r = runScript(
      `${busyPool}
      const f = spawn(() => lookup('localhost'));
      spawn(() => { sleep(30); f.interrupt('bye'); });
      f.result().then(
        () => console.log('completed'),
        (e) => console.log(e instanceof FiberInterruptedError, e.reason, Date.now() - t0 < 5000 ? 'fast' : 'slow', busy),
      ).finally(release);
    `,
      { env: { UV_THREADPOOL_SIZE: '1' } },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('true bye fast true');
    expect(r.code).toBe(0);
  });

  it('a Worker terminated with a lookup in flight closes cleanly', () => {
    const r = runScript(
      `${busyPool}
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const { spawn } = require(\${JSON.stringify(SPINDLE)});
        const { lookup } = require(\${JSON.stringify(${dnsEntry})});
        const { parentPort } = require('node:worker_threads');
        spawn(() => { parentPort.postMessage('started'); lookup('localhost'); parentPort.postMessage('done'); });
      \`, { eval: true });
      w.on('message', (m) => { console.log(m); if (m === 'started') setTimeout(() => w.terminate().then(() => { console.log('terminated', busy); release(); }), 50); });
      w.on('error', (e) => console.log('error', e));
    `,
      { env: { UV_THREADPOOL_SIZE: '1' } },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('started\nterminated true');
    expect(r.code).toBe(0);
  });

  it('the process may exit with a lookup in flight', () => {
    const r = runScript(
      `${busyPool}
      spawn(() => lookup('localhost')).detach();
      // (libuv joins its threadpool at exit: unblock it first; the lookup is still queued or running.)
      setTimeout(() => { console.log('exiting', busy); release(); process.exit(0); }, 50);
    `,
      { env: { UV_THREADPOOL_SIZE: '1' } },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('exiting true');
    expect(r.code).toBe(0);
  });
});

describe('dns: Worker termination', () => {
  it('Workers terminated amid a stream of lookups from many fibers end cleanly, every time', () => {
    // While a Worker terminates, fibers may still make a call or two into the addon: with the lookup
    // an ObjectWrap, its methods' napi_unwrap failed and node-addon-api aborted the process.
    const r = terminateBusyWorkers(`
      const { lookup } = require(${dnsEntry});
      for (let i = 0; i < 16; i++) spawn(() => { for (;;) { lookup('localhost'); busy(); } });
    `);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(Array(16).fill(1));
  });
});
