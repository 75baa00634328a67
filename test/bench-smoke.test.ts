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

// Every measurement the CLI reports, by its key in the JSON `results`.
const MEASUREMENTS = [
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

function runCli(extra: string[]) {
  // --out-dir keeps the smoke run out of bench/results (whose files are real runs).
  return spawnSync(process.execPath, [cli, '--quick', '--out-dir', outDir, ...extra], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env },
  });
}

function checkDocument(doc: Record<string, any>) {
  expect(doc.mode).toBe('quick');
  expect(doc.node).toBe(process.version);
  expect(doc.env).toHaveProperty('SPINDLE_CPU_FOLLOW');
  for (const key of MEASUREMENTS) {
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
  expect(doc.ratios.length).toBeGreaterThanOrEqual(7);
  for (const r of doc.ratios) {
    expect(Number.isFinite(r.value) && r.value > 0, `${r.name} = ${r.value}`).toBe(true);
    expect([true, false, null]).toContain(r.met);
  }
  expect(doc.memory.parked).toBe(10_000);
}

describe('bench/cli.mjs --quick', () => {
  it('runs, prints the table and writes valid JSON', () => {
    const r = runCli([]);
    expect(r.error).toBeUndefined();
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);

    const out = r.stdout;
    expect(out).toContain(`node ${process.version}`);
    expect(out).toContain('SPINDLE_CPU_FOLLOW=');
    for (const heading of [
      'measurement',
      'median',
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
      'ratios',
    ]) {
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

  it('--json-only prints nothing but the JSON document', () => {
    const r = runCli(['--json-only']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    checkDocument(doc);
    expect(existsSync(path.join(outDir, 'latest.json'))).toBe(true);
  });
});
