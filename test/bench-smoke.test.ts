// Smoke test of the benchmark CLI: it runs, prints its table and writes well-formed JSON. No timing
// assertions: the numbers depend on the machine.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { root } from './helpers.js';

const cli = path.join(root, 'bench', 'cli.mjs');
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
  'kernel stack',
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

// The ratios with a target, by name prefix, in the sync section.
const SYNC_TARGET_RATIOS = ['(h) pipeline msgs/s', '(i) lock+unlock / 50 ns', '(i) buffered send+recv / 100 ns'];

function runCli(extra: string[]) {
  // --out-dir keeps the smoke run out of bench/results (whose files are real runs).
  return spawnSync(process.execPath, [cli, '--quick', '--out-dir', outDir, ...extra], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env },
  });
}

function checkDocument(doc: Record<string, any>, sections = ['core', 'sync', 'fibers']) {
  expect(doc.mode).toBe('quick');
  expect(doc.sections).toEqual(sections);
  expect(doc.node).toBe(process.version);
  expect(doc.env).toHaveProperty('SPINDLE_CPU_FOLLOW');
  const bySection: Record<string, string[]> = { core: CORE_MEASUREMENTS, sync: SYNC_MEASUREMENTS, fibers: FIBERS_MEASUREMENTS };
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
    (sections.includes('core') ? 7 : 0) + (sections.includes('sync') ? 7 : 0) + (sections.includes('fibers') ? 4 : 0),
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
    const fibersHeadings = ['fibers: medians of', 'spindle/fibers run()/yield() round trip', 'old fibers 5.0.3 on Node 14'];
    for (const heading of ['measurement', 'median', 'core: medians of', ...CORE_HEADINGS, 'sync: medians of', ...SYNC_HEADINGS, ...fibersHeadings, 'ratios']) {
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

  it('--only rejects an unknown section', () => {
    const r = runCli(['--only', 'nope']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--only');
  });
});
