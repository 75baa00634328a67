// Resources: running out of threads is a clear error at spawn; fibers nobody can run are freed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { cjsEntry, runScript } from './helpers.js';

/**
 * Runs a script under an address-space limit (`ulimit -v`, KiB): it spawns up to `count` fibers
 * (with `spawnOpts`) until spawn refuses, runs `after` (its value is reported), then lets them all
 * finish and prints what happened, as JSON.
 */
function spawnUnderLimit(limitKiB: number, count: number, spawnOpts: string, after: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'spindle-res-'));
  const script = path.join(dir, 'limit.cjs');
  writeFileSync(
    script,
    `
    const { spawn, wait, backend } = require(${JSON.stringify(cjsEntry)});
    let release; const gate = new Promise((r) => (release = r));
    const fibers = []; let error;
    try { for (let i = 0; i < ${count}; i++) fibers.push(spawn(() => wait(gate), ${spawnOpts})); }
    catch (e) { error = e; }
    const after = (() => { ${after} })();
    release();
    Promise.all(fibers.map((f) => f.result())).then(() => console.log(JSON.stringify({
      spawned: fibers.length, code: error && error.code, message: error && error.message, backend: backend().name, after })));
    `,
  );
  const r = spawnSync('bash', ['-c', `ulimit -v ${limitKiB} && exec "${process.execPath}" "${script}"`], { encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as { spawned: number; code?: string; message?: string; backend: string; after: unknown };
}

describe('resources', () => {
  it('spawn throws ERR_FIBER_RESOURCES when the system refuses another carrier thread or stack, and everything else keeps working', () => {
    // A 12 GB address-space limit fits only a few 1 GiB fiber stacks.
    const out = spawnUnderLimit(12_000_000, 1000, '{ stackSize: 1024 ** 3 }', 'return null;');
    expect(out.code).toBe('ERR_FIBER_RESOURCES');
    // It names what ran out: a carrier thread, or (inplace) a stack mapping.
    expect(out.message).toMatch(out.backend === 'inplace' ? /cannot map a stack/ : /cannot create a thread/);
    expect(out.spawned).toBeGreaterThan(0);
    expect(out.spawned).toBeLessThan(1000);
  });

  it('under an address-space limit, spawn stops while V8 can still grow its heap', () => {
    // Mapping stacks until mmap fails would leave V8 none: it aborts the process when its heap cannot
    // grow ("Allocation failed - JavaScript heap out of memory").
    const out = spawnUnderLimit(6_000_000, 20_000, '{}',
      'const garbage = []; for (let i = 0; i < 300000; i++) garbage.push({ i, s: "x" + i }); return garbage.length;');
    expect(out.code).toBe('ERR_FIBER_RESOURCES');
    expect(out.spawned).toBeGreaterThan(1000);
    expect(out.spawned).toBeLessThan(20_000);
    expect(out.after).toBe(300000);
  });

  it('a coroutine holds no native fiber until its first resume', () => {
    const r = runScript(
      `
      const { coroutine, suspend } = require(SPINDLE);
      const { native } = require(SPINDLE.replace(/index\\.js$/, 'native.js'));
      const cos = [];
      for (let i = 0; i < 200; i++) cos.push(coroutine(() => { suspend(); return i; }));
      const unresumed = native.stats().liveFibers;
      cos[7].resume();
      const oneSuspended = native.stats().liveFibers;
      const { value } = cos[7].resume();
      console.log(unresumed, oneSuspended, value, native.stats().liveFibers);
      `,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('0 1 7 0');
  });

  // Linux 6.16+ sizes a process's private futex hash for its CPUs (16 buckets on 2 vCPUs): with
  // thousands of parked carriers each waiting on its own futex, every hand-off walked a long bucket.
  it('carrier threads grow the futex hash with their number (kernels with a per-process hash)', () => {
    const r = runScript(
      `
      const { spawn, wait } = require(SPINDLE);
      const { native } = require(SPINDLE.replace(/index\\.js$/, 'native.js'));
      const before = native.stats().futexHashSlots;
      let release; const gate = new Promise((r) => (release = r));
      const fibers = Array.from({ length: 2000 }, () => spawn(() => wait(gate)));
      const after = native.stats().futexHashSlots;
      release();
      Promise.all(fibers.map((f) => f.result())).then(() => console.log(JSON.stringify({ before, after, backend: native.stats().backend })));
      `,
      { env: { SPINDLE_BACKEND: 'threads' } },
    );
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.backend).toBe('threads');
    if (out.before > 0) {
      // 4 buckets per carrier: 2,000 carriers want 8,192.
      expect(out.after).toBeGreaterThanOrEqual(8192);
    } else {
      // No per-process hash here (older kernel: negative) or the global one (0): left as it was.
      expect(out.after).toBe(out.before);
    }
  });
});
