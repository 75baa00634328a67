// Smoke test of the benchmark CLI: it runs, prints its table and writes well-formed JSON. No timing
// assertions: the numbers depend on the machine.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { root } from './helpers.js';

const cli = path.join(root, 'bench', 'cli.mjs');
const load = path.join(root, 'bench', 'io-load.mjs');
const outDir = mkdtempSync(path.join(tmpdir(), 'spindle-bench-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

// Every measurement the CLI reports, by its key in the JSON `results`: the core section ...
const CORE_MEASUREMENTS = [
  'resumeRoundTrip',
  'resumeRoundTripParked1k',
  'resumeRoundTripParked10k',
  'spawnJoin',
  'spawnJoinBatch100',
  'rssPerParkedFiber',
  'floorSameCore',
  'floorUnpinned',
  'asyncAwaitRoundTrip',
];

// ... and the sync section (issue 3: mutexes and channels against their async/await counterparts).
const SYNC_MEASUREMENTS = [
  'mutexHandoff2',
  'mutexHandoff2AsyncMutex',
  'mutexHandoff100',
  'mutexHandoff100AsyncMutex',
  'pingPongCap0',
  'pingPongCap0Async',
  'pingPongCap64',
  'pingPongCap64Async',
  'pipeline',
  'pipelineAsync',
  'uncontendedLockUnlock',
  'bufferedSendRecv',
];

const CORE_HEADINGS = [
  '(a) resume/suspend round trip',
  '(b) ... with 1,000 fibers parked',
  '(b) ... with 10,000 fibers parked',
  '(c) spawn+join, one at a time',
  '(c) spawn 100, then join all',
  '(d) RSS per parked fiber',
  '(e) floor: Baton round trip, same core',
  '(e) floor: Baton round trip, unpinned',
  '(e) async/await ping-pong round trip',
  'memory at 10,000 parked fibers',
];

const SYNC_HEADINGS = [
  '(f) mutex hand-off, 2 fibers',
  '(f) ... async-mutex, 2 async functions',
  '(f) mutex hand-off, 100 fibers',
  '(f) ... async-mutex, 100 async functions',
  '(g) channel ping-pong, capacity 0',
  '(g) ... promise channel, capacity 0',
  '(g) channel ping-pong, capacity 64',
  '(g) ... promise channel, capacity 64',
  '(h) 4-stage pipeline, capacity 256',
  '(h) ... async functions, promise channel',
  '(i) uncontended lock+unlock',
  '(i) buffered send+recv',
  'side by side (medians)',
  '(f) mutex hand-off, 2 contenders',
  '(f) mutex hand-off, 100 contenders',
  '(g) ping-pong, capacity 0',
  '(g) ping-pong, capacity 64',
  '(h) pipeline, 50,000 messages',
];

// The measurements of the fibers section (spindle/fibers against the core).
const FIBERS_MEASUREMENTS = ['fibersRunYield', 'fibersCoreRoundTrip', 'fibersCreateRunFinish', 'fibersCoreCreateResume', 'fibersCoreSpawnJoin'];

// The measurements of the io section (issue 4: spindle/net and spindle/fs against Node's net and fs).
const IO_MEASUREMENTS = [
  ...[1, 10, 100].flatMap((c) => [`tcpEcho${c}Spindle`, `tcpEcho${c}Callback`, `tcpEcho${c}Await`]),
  'fileReadSpindle',
  'fileReadPromises',
  'fileReadSync',
  'smallFilesSpindle',
  'smallFilesPromises',
];

const IO_HEADINGS = [
  'io: medians of batches',
  ...[1, 10, 100].map((c) => `(j) TCP echo, ${c} conn: spindle, fiber/conn`),
  '(j) ... Node net, callbacks',
  '(j) ... Node net, await events.once',
  '(k) 64 MiB read, 64 KiB, spindle File.read',
  '(k) ... fs.promises FileHandle.read',
  '(k) ... fs.readSync',
  '(l) 1,000 4 KiB files, 100 fibers readFile',
  '(l) ... fs.promises.readFile x100 batches',
];

// The io ratios with a target (issue 4), by name prefix.
const IO_TARGET_RATIOS = [
  '(j) echo, 100 conn: spindle / callbacks',
  '(k) file read: spindle / fs.promises',
  '(k) file read: spindle / readSync',
  '(l) small files: spindle / fs.promises',
];

// The ratios with a target, by name prefix, in the sync section.
const SYNC_TARGET_RATIOS = ['(h) pipeline msgs/s', '(i) lock+unlock / 50 ns', '(i) buffered send+recv / 100 ns'];

// One backend (the one this test run uses), in the CLI's own process; the comparison of both is tested apart.
const BACKEND = process.env.SPINDLE_BACKEND || 'auto';

function runCli(extra: string[], env: NodeJS.ProcessEnv = {}) {
  // --out-dir keeps the smoke run out of bench/results (whose files are real runs).
  const backend = extra.includes('--backend') ? [] : ['--backend', BACKEND];
  return spawnSync(process.execPath, [cli, '--quick', '--out-dir', outDir, ...backend, ...extra], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ...env },
  });
}

function checkDocument(doc: Record<string, any>, sections = ['core', 'sync', 'fibers', 'io']) {
  expect(doc.mode).toBe('quick');
  expect(doc.sections).toEqual(sections);
  expect(doc.node).toBe(process.version);
  expect(doc.env).toHaveProperty('SPINDLE_CPU_FOLLOW');
  const bySection: Record<string, string[]> = { core: CORE_MEASUREMENTS, sync: SYNC_MEASUREMENTS, fibers: FIBERS_MEASUREMENTS, io: IO_MEASUREMENTS };
  const expected = Object.entries(bySection).flatMap(([name, keys]) => (sections.includes(name) ? keys : []));
  const absent = Object.entries(bySection).flatMap(([name, keys]) => (sections.includes(name) ? [] : keys));
  for (const key of absent) expect(doc.results, key).not.toHaveProperty(key);
  for (const key of expected) {
    const m = doc.results[key];
    expect(m, key).toBeDefined();
    expect(typeof m.value, key).toBe('number');
    expect(Number.isFinite(m.value) && m.value > 0, `${key} = ${m.value}`).toBe(true);
    expect(typeof m.unit, key).toBe('string');
    if (m.samples !== undefined) {
      expect(m.samples.length, key).toBeGreaterThan(0);
      for (const s of m.samples) expect(Number.isFinite(s) && s > 0, `${key} sample ${s}`).toBe(true);
    }
  }
  expect(doc.ratios.length).toBeGreaterThanOrEqual(
    (sections.includes('core') ? 7 : 0) + (sections.includes('sync') ? 7 : 0) + (sections.includes('fibers') ? 4 : 0) + (sections.includes('io') ? 9 : 0),
  );
  for (const r of doc.ratios) {
    expect(Number.isFinite(r.value) && r.value > 0, `${r.name} = ${r.value}`).toBe(true);
    expect([true, false, null]).toContain(r.met);
  }
  if (sections.includes('core')) expect(doc.memory.parked).toBe(10_000);
  else expect(doc.memory).toBeUndefined();
  if (sections.includes('sync')) {
    expect(doc.params.sync.pipelineMessages).toBeGreaterThan(0);
    for (const prefix of SYNC_TARGET_RATIOS) {
      const r = doc.ratios.find((q: { name: string }) => q.name.startsWith(prefix));
      expect(r, prefix).toBeDefined();
      expect(typeof r.met, prefix).toBe('boolean');
    }
    for (const share of Object.values(doc.info.handoffShare)) expect(share as number).toBeGreaterThan(0);
  }
  if (sections.includes('io')) {
    expect(doc.params.io.fileMiB).toBe(64);
    expect(doc.params.io.smallFiles).toBe(1_000);
    expect(doc.params.io.connections).toEqual([1, 10, 100]);
    for (const prefix of IO_TARGET_RATIOS) {
      const r = doc.ratios.find((q: { name: string }) => q.name.startsWith(prefix));
      expect(r, prefix).toBeDefined();
      expect(typeof r.met, prefix).toBe('boolean');
    }
  }
}

describe('bench/cli.mjs --quick', () => {
  it('runs, prints the table and writes valid JSON', { timeout: 150_000 }, () => {
    const r = runCli([]);
    expect(r.error).toBeUndefined();
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);

    const out = r.stdout;
    expect(out).toContain(`node ${process.version}`);
    expect(out).toContain('SPINDLE_CPU_FOLLOW=');
    // The vitest project's backend (SPINDLE_BACKEND); with inplace, parked fibers create no threads.
    const backend = process.env.SPINDLE_BACKEND;
    expect(out).toMatch(new RegExp(`^backend ${backend} \\(SPINDLE_BACKEND=${backend}`, 'm'));
    expect(out).toContain(backend === 'inplace' ? 'no new threads: parked fibers stay on the loop thread' : 'kernel stack');
    const fibersHeadings = ['fibers: medians of', 'spindle/fibers run()/yield() round trip', 'old fibers 5.0.3 on Node 14'];
    for (const heading of ['measurement', 'median', 'core: medians of', ...CORE_HEADINGS, 'sync: medians of', ...SYNC_HEADINGS, ...fibersHeadings, ...IO_HEADINGS, 'ratios']) {
      expect(out, heading).toContain(heading);
    }

    const files = readdirSync(outDir);
    expect(files).toContain('latest.json');
    const dated = files.find((f) => /^\d{4}-\d{2}-\d{2}-node\d+\.json$/.test(f));
    expect(dated, files.join(', ')).toBeDefined();
    expect(dated!.endsWith(`-node${process.versions.node.split('.')[0]}.json`), dated).toBe(true);
    const latest = JSON.parse(readFileSync(path.join(outDir, 'latest.json'), 'utf8'));
    checkDocument(latest);
    checkDocument(JSON.parse(readFileSync(path.join(outDir, dated!), 'utf8')));
  });

  it('--json-only prints nothing but the JSON document', { timeout: 150_000 }, () => {
    const r = runCli(['--json-only']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    checkDocument(doc);
    expect(existsSync(path.join(outDir, 'latest.json'))).toBe(true);
  });

  it('--only sync runs the sync section alone', { timeout: 150_000 }, () => {
    const r = runCli(['--only', 'sync']);
    expect(r.status, r.stderr).toBe(0);
    for (const heading of ['sync: medians of', ...SYNC_HEADINGS, 'ratios']) expect(r.stdout, heading).toContain(heading);
    for (const heading of ['core: medians of', ...CORE_HEADINGS]) expect(r.stdout, heading).not.toContain(heading);
    checkDocument(JSON.parse(readFileSync(path.join(outDir, 'latest.json'), 'utf8')), ['sync']);
  });

  it('--only io runs the io section alone, and leaves no temp files behind', { timeout: 150_000 }, () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'spindle-bench-tmp-'));
    let r;
    let left: string[];
    try {
      r = runCli(['--only', 'io'], { TMPDIR: tmp });
      left = readdirSync(tmp);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    expect(r.status, r.stderr).toBe(0);
    expect(left).toEqual([]); // the big file and the small files were removed
    for (const heading of [...IO_HEADINGS, 'side by side (medians)', 'ratios']) expect(r.stdout, heading).toContain(heading);
    for (const heading of ['core: medians of', 'sync: medians of', 'fibers: medians of']) expect(r.stdout, heading).not.toContain(heading);
    for (const prefix of IO_TARGET_RATIOS) expect(r.stdout, prefix).toMatch(new RegExp(`${prefix.replace(/[()/.]/g, '\\$&')}.*(met|NOT MET)`));
    checkDocument(JSON.parse(readFileSync(path.join(outDir, 'latest.json'), 'utf8')), ['io']);
  });

  it('--backend both runs each section under both backends and compares them', { timeout: 150_000 }, () => {
    const r = runCli(['--only', 'core', '--backend', 'both']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(path.join(outDir, 'latest.json'), 'utf8'));
    expect(doc.schema).toBe(3);
    expect(doc.backends.threads.backend).toBe('threads');
    checkDocument(doc.backends.threads, ['core']);
    if (doc.refused !== undefined) {
      // This build does not run the inplace backend: said so, with the reason.
      expect(doc.backends.inplace).toBeUndefined();
      expect(r.stdout).toContain(`inplace: not measured, it was refused (${doc.refused})`);
      return;
    }
    expect(doc.backends.inplace.backend).toBe('inplace');
    checkDocument(doc.backends.inplace, ['core']);
    expect(doc.comparison.map((c: { key: string }) => c.key)).toEqual(expect.arrayContaining(CORE_MEASUREMENTS));
    for (const c of doc.comparison) expect(c.speedup, c.key).toBeCloseTo(/^(ns|KiB)\b/.test(c.unit) ? c.threads / c.inplace : c.inplace / c.threads, 6);
    expect(doc.inplaceTargets.map((q: { name: string }) => q.name)).toEqual([
      'round trip (a), ns',
      '10,000 parked / (a)',
      'spawn+join, fibers/s',
      'RSS per parked fiber, KiB',
    ]);
    for (const heading of ['both backends, side by side', 'inplace targets (issue 6)', 'resumeRoundTrip', 'kernel stack']) {
      expect(r.stdout, heading).toContain(heading);
    }
    expect(r.stdout.match(/^spindle bench {2}node/gm)).toHaveLength(2);  // each backend's own report
  });

  it('--backend rejects an unknown value', () => {
    const r = runCli(['--backend', 'nope']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--backend');
  });

  it('--io tcp --connections 100 runs the TCP echo alone, at 100 connections', { timeout: 150_000 }, () => {
    const r = runCli(['--only', 'io', '--io', 'tcp', '--connections', '100']);
    expect(r.status, r.stderr).toBe(0);
    for (const heading of ['(j) TCP echo, 100 conn: spindle, fiber/conn', '(j) ... Node net, callbacks', 'ratios']) expect(r.stdout, heading).toContain(heading);
    for (const heading of ['(j) TCP echo, 1 conn', '(j) TCP echo, 10 conn', '(k) ', '(l) ']) expect(r.stdout, heading).not.toContain(heading);
    expect(r.stdout).toMatch(/\(j\) echo, 100 conn: spindle \/ callbacks.*(met|NOT MET)/);
    const doc = JSON.parse(readFileSync(path.join(outDir, 'latest.json'), 'utf8'));
    expect(doc.params.io.parts).toEqual(['tcp']);
    expect(doc.params.io.connections).toEqual([100]);
    expect(Object.keys(doc.results).sort()).toEqual(['tcpEcho100Await', 'tcpEcho100Callback', 'tcpEcho100Spindle']);
    for (const m of Object.values(doc.results) as Array<{ value: number }>) expect(m.value).toBeGreaterThan(0);
    // The server's CPU time per echo, taken over the generator's measured span, for each server.
    const cpu = doc.info.tcpServerCpuUsPerMsg['100'];
    for (const kind of ['spindle', 'callback', 'await']) expect(cpu[kind], kind).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/server CPU per echo, us .*: 100 conn [\d.]+ \/ [\d.]+ \/ [\d.]+/);
  });

  it('the TCP load generator marks its measured span, counts echoes and half-closes every socket', { timeout: 30_000 }, async () => {
    const ended = { count: 0 };
    const server = net.createServer((socket) => {
      socket.on('data', (chunk) => socket.write(chunk));
      socket.on('end', () => {
        ended.count++;
        socket.end();
      });
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    try {
      const child = spawn(process.execPath, [load, '--port', String(port), '--connections', '5', '--warmup-ms', '50', '--duration-ms', '200'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      const lines = out.trim().split('\n');
      expect(lines.slice(0, 2)).toEqual(['measuring', 'stopped']);
      const result = JSON.parse(lines[2]);
      expect(result.connections).toBe(5);
      expect(result.messages).toBeGreaterThan(0);
      expect(result.seconds).toBeGreaterThanOrEqual(0.2);
      expect(result.perSec).toBeCloseTo(result.messages / result.seconds);
      expect(ended.count).toBe(5);  // every socket was half-closed before the generator exited
    } finally {
      server.close();
    }
  });

  it('the TCP load generator fails with the reason when it cannot connect, and on bad arguments', async () => {
    // A port nothing listens on: listen, note the port, close.
    const server = net.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const closedPort = (server.address() as net.AddressInfo).port;
    server.close();
    await once(server, 'close');
    const refused = spawnSync(process.execPath, [load, '--port', String(closedPort), '--duration-ms', '50'], { encoding: 'utf8' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('io-load: connect: Connection refused');
    const bad = spawnSync(process.execPath, [load, '--port', '0'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('port (1-65535)');
  });

  it('--io and --connections reject values they do not know', () => {
    for (const bad of [['--io', 'tcp,disk'], ['--connections', '10,zero'], ['--connections', '0']]) {
      const r = runCli(bad);
      expect(r.status, bad.join(' ')).toBe(2);
      expect(r.stderr).toContain(bad[0]);
    }
  });

  it('--only rejects an unknown section', () => {
    const r = runCli(['--only', 'nope']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--only');
  });
});
