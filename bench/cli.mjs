#!/usr/bin/env node
// spindle benchmark CLI (`npm run bench`).
//
//   node bench/cli.mjs [--quick] [--json-only] [--out-dir <dir>] [--only core|sync|fibers|io]
//                      [--io tcp,file,small] [--connections 1,10,100]
//
//   --quick      fewer iterations and batches: a smoke test, numbers are rough
//   --json-only  print only the JSON document on stdout (no table, no progress on stderr)
//   --out-dir    where to write <ISO-date>-node<major>.json and latest.json (default bench/results)
//   --only       run one section: core (bench/core.mjs), sync (bench/sync.mjs), fibers
//                (bench/fibers-compat.mjs) or io (bench/io.mjs); default all
//   --io         the parts of the io section to run, comma-separated: tcp (j), file (k), small (l);
//                default all three (`--only io --io tcp` measures TCP echo alone)
//   --connections  the connection counts of (j), comma-separated; default 1,10,100 (the target is at 100)
//
// Sections (each measurement the median of several batches; the machines this runs on are noisy):
//   core (bench/core.mjs), the fiber switch:
//     (a) coroutine resume/suspend round trip from the loop thread, ns
//     (b) the same with 1,000 and 10,000 other fibers parked in wait(), ns
//     (c) spawn+join throughput with a warm carrier pool (one by one, and 100 at a time), fibers/s
//     (d) RSS per parked fiber at 10,000 parked, KiB, with the kernel-side cost per thread beside it
//     (e) floors: the native two-thread Baton round trip (pinned to one core, unpinned) and the
//         async/await equivalent of (a), ns
//   sync (bench/sync.mjs), mutexes and channels against their async/await counterparts:
//     (f) mutex hand-off among 2 and 100 fibers vs async-mutex among as many async functions
//     (g) channel ping-pong, capacity 0 and 64, vs a promise-based channel (bench/promise-channel.mjs)
//     (h) a 4-stage pipeline over channels of capacity 256, messages/s, vs the same with async functions
//     (i) uncontended lock+unlock and buffered send+recv in one fiber, ns
//   io (bench/io.mjs), spindle/net and spindle/fs against Node's net and fs, loopback and os.tmpdir():
//     (j) TCP echo, 64-byte ping-pong, 1/10/100 connections: spindle vs net callbacks vs net with
//         async/await over events.once, load from a child process (bench/io-load.mjs), messages/s
//     (k) a cached 256 MiB file in 64 KiB reads: File.read vs FileHandle.read vs readSync, MB/s
//     (l) 10,000 4 KiB files: readFile by 100 fibers vs Promise.all batches of fs.promises.readFile
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { fmt, lpad, pad } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const USAGE =
  'usage: node bench/cli.mjs [--quick] [--json-only] [--out-dir <dir>] [--only core|sync|fibers|io] [--io tcp,file,small] [--connections 1,10,100]\n';
const SECTIONS = ['core', 'sync', 'fibers', 'io'];

// ---------------------------------------------------------------------------------------------------
// Options

/** A comma-separated option: its values (each in `allowed`, or a positive integer when `allowed` is null), or undefined when absent. */
function listOption(value, name, allowed, parse) {
  if (value === undefined) return undefined;
  const list = value.split(',').map((v) => v.trim());
  const bad = list.find((v) => (allowed ? !allowed.includes(v) : !(Number.isInteger(Number(v)) && Number(v) > 0)));
  if (list.length === 0 || bad !== undefined) {
    throw new Error(`${name}: expected ${allowed ? `a comma-separated list of ${allowed.join(', ')}` : 'a comma-separated list of positive integers'}, got '${value}'`);
  }
  return [...new Set(list.map(parse))];
}

let args;
try {
  args = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      'json-only': { type: 'boolean', default: false },
      'out-dir': { type: 'string' },
      only: { type: 'string' },
      io: { type: 'string' },
      connections: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
  if (args.only !== undefined && !SECTIONS.includes(args.only)) throw new Error(`--only: expected one of ${SECTIONS.join(', ')}, got '${args.only}'`);
  args.ioParts = listOption(args.io, '--io', ['tcp', 'file', 'small'], (v) => v);
  args.connectionCounts = listOption(args.connections, '--connections', null, Number);
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const quick = args.quick;
const jsonOnly = args['json-only'];
const outDir = path.resolve(args['out-dir'] ?? path.join(here, 'results'));
const sections = args.only ? [args.only] : SECTIONS;

const progress = (msg) => {
  if (!jsonOnly) process.stderr.write(`  ${msg}\n`);
};

async function main() {
  const started = performance.now();
  const date = new Date();
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  const cpuFollow = process.env.SPINDLE_CPU_FOLLOW;
  const cpuFollowShown = cpuFollow === undefined ? '(unset: on)' : `${cpuFollow} (${cpuFollow[0] === '0' ? 'off' : 'on'})`;

  // Each section is loaded only when it runs (sync needs the async-mutex devDependency).
  const params = {};
  const results = {};
  const info = {};
  const ratios = [];
  let memory;
  let unmeasured;
  const reporters = [];
  if (sections.includes('core')) {
    const { runCore, reportCore } = await import('./core.mjs');
    const core = await runCore({ quick, progress });
    params.core = core.params;
    Object.assign(results, core.results);
    Object.assign(info, core.info);
    ratios.push(...core.ratios);
    memory = core.memory;
    unmeasured = core.unmeasured;
    reporters.push(reportCore);
  }
  if (sections.includes('sync')) {
    const { runSync, reportSync } = await import('./sync.mjs');
    const sync = await runSync({ quick, progress });
    params.sync = sync.params;
    Object.assign(results, sync.results);
    Object.assign(info, sync.info);
    ratios.push(...sync.ratios);
    reporters.push(reportSync);
  }

  if (sections.includes('fibers')) {
    const { runFibers, reportFibers } = await import('./fibers-compat.mjs');
    const fibers = await runFibers({ quick, progress });
    params.fibers = fibers.params;
    Object.assign(results, fibers.results);
    ratios.push(...fibers.ratios);
    reporters.push(reportFibers);
  }

  if (sections.includes('io')) {
    const { runIo, reportIo } = await import('./io.mjs');
    const io = await runIo({ quick, progress, parts: args.ioParts, connections: args.connectionCounts });
    params.io = io.params;
    Object.assign(results, io.results);
    ratios.push(...io.ratios);
    reporters.push(reportIo);
  }

  // The switch backend (SPINDLE_BACKEND; see native/same_thread.h), as the addon reports it.
  const { native } = (await import('../dist/cjs/native.js')).default;
  const { backend, backendReason } = native.stats();
  const doc = {
    schema: 2,
    date: date.toISOString(),
    mode: quick ? 'quick' : 'full',
    sections,
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    env: { SPINDLE_CPU_FOLLOW: cpuFollow ?? null, SPINDLE_BACKEND: process.env.SPINDLE_BACKEND ?? null },
    backend,
    backendReason,
    params,
    results,
    info,
    ...(memory !== undefined ? { memory } : {}),
    ratios,
    ...(unmeasured !== undefined ? { unmeasured } : {}),
    durationSeconds: 0,
  };
  doc.durationSeconds = (performance.now() - started) / 1000;

  fs.mkdirSync(outDir, { recursive: true });
  const json = `${JSON.stringify(doc, null, 2)}\n`;
  const datedFile = path.join(outDir, `${date.toISOString().slice(0, 10)}-node${nodeMajor}.json`);
  fs.writeFileSync(datedFile, json);
  fs.writeFileSync(path.join(outDir, 'latest.json'), json);

  if (jsonOnly) {
    process.stdout.write(json);
    return;
  }
  process.stdout.write(report(doc, reporters, cpuFollowShown, datedFile));
}

// ---------------------------------------------------------------------------------------------------
// The table

function report(doc, reporters, cpuFollowShown, datedFile) {
  const lines = [];
  lines.push(
    `spindle bench  node ${doc.node} (${doc.platform}, ${doc.cpus} CPUs)  SPINDLE_CPU_FOLLOW=${cpuFollowShown}`,
    `backend ${doc.backend} (${doc.backendReason})`,
    `mode ${doc.mode}, sections: ${doc.sections.join(', ')}`,
    '',
  );
  for (const section of reporters) lines.push(...section(doc), '');

  lines.push('ratios');
  for (const q of doc.ratios) {
    const verdict = q.met === null ? '(no target)' : q.met ? 'met' : 'NOT MET';
    lines.push(`  ${pad(q.name, 44)}${lpad(fmt(q.value, 2), 9)}   ${pad(q.target ? `target ${q.target}` : '', 14)} ${verdict}`);
  }
  lines.push('');
  const rel = path.relative(process.cwd(), datedFile);
  lines.push(`wrote ${rel.startsWith('..') || path.isAbsolute(rel) ? datedFile : rel} and latest.json  (${fmt(doc.durationSeconds)} s)`);
  lines.push('');
  return lines.join('\n');
}

await main();
