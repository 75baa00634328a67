#!/usr/bin/env node
// spindle benchmark CLI (`npm run bench`).
//
//   node bench/cli.mjs [--quick] [--json-only] [--out-dir <dir>] [--only core|sync|fibers|io]
//                      [--backend both|threads|inplace] [--io tcp,file,small] [--connections 1,10,100]
//
//   --backend    `both` (the default unless SPINDLE_BACKEND is set) runs every section under threads
//                and then inplace, each in a child process, and prints both reports and a side-by-side
//                comparison (bench/backends.mjs); inplace is skipped, with the reason, where the
//                inplace backend is refused. Any other value runs in this process with that
//                SPINDLE_BACKEND (threads, inplace, auto); the default then is SPINDLE_BACKEND's value
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
  'usage: node bench/cli.mjs [--quick] [--json-only] [--out-dir <dir>] [--only core|sync|fibers|io] [--backend both|threads|inplace]\n' +
  '                          [--io tcp,file,small] [--connections 1,10,100]\n';
const SECTIONS = ['core', 'sync', 'fibers', 'io'];
const BACKEND_CHOICES = ['both', 'threads', 'inplace', 'auto', 'carrier', 'same-thread'];

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
      backend: { type: 'string', default: process.env.SPINDLE_BACKEND || 'both' },
      'no-write': { type: 'boolean', default: false },  // bench/backends.mjs's children: JSON on stdout only
      io: { type: 'string' },
      connections: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
  if (args.only !== undefined && !SECTIONS.includes(args.only)) throw new Error(`--only: expected one of ${SECTIONS.join(', ')}, got '${args.only}'`);
  if (!BACKEND_CHOICES.includes(args.backend)) throw new Error(`--backend: expected one of ${BACKEND_CHOICES.join(', ')}, got '${args.backend}'`);
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
// Before anything loads the addon: the backend is chosen when it does.
if (args.backend !== 'both') process.env.SPINDLE_BACKEND = args.backend;

const progress = (msg) => {
  if (!jsonOnly) process.stderr.write(`  ${msg}\n`);
};

// Each section's module, loaded only when it runs (sync needs the async-mutex devDependency).
const SECTION_MODULES = {
  core: { file: './core.mjs', run: 'runCore', report: 'reportCore' },
  sync: { file: './sync.mjs', run: 'runSync', report: 'reportSync' },
  fibers: { file: './fibers-compat.mjs', run: 'runFibers', report: 'reportFibers' },
  io: { file: './io.mjs', run: 'runIo', report: 'reportIo' },
};

async function reportersOf(doc) {
  const reporters = [];
  for (const section of doc.sections) {
    const m = SECTION_MODULES[section];
    reporters.push((await import(m.file))[m.report]);
  }
  return reporters;
}

const cpuFollow = process.env.SPINDLE_CPU_FOLLOW;
const cpuFollowShown = cpuFollow === undefined ? '(unset: on)' : `${cpuFollow} (${cpuFollow[0] === '0' ? 'off' : 'on'})`;

/** Runs the sections in this process, under the backend the addon picks; resolves with the document. */
async function runHere() {
  const started = performance.now();
  const params = {};
  const results = {};
  const info = {};
  const ratios = [];
  let memory;
  let unmeasured;
  for (const section of sections) {
    const m = SECTION_MODULES[section];
    const out = await (await import(m.file))[m.run]({ quick, progress, parts: args.ioParts, connections: args.connectionCounts });
    params[section] = out.params;
    Object.assign(results, out.results);
    Object.assign(info, out.info ?? {});
    ratios.push(...out.ratios);
    if (out.memory !== undefined) memory = out.memory;
    if (out.unmeasured !== undefined) unmeasured = out.unmeasured;
  }

  // The switch backend ('threads' or 'inplace': the default auto, SPINDLE_BACKEND; see native/same_thread.h).
  const { name: backend, reason: backendReason } = (await import('../dist/index.js')).backend();
  return {
    schema: 2,
    date: new Date().toISOString(),
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
    durationSeconds: (performance.now() - started) / 1000,
  };
}

async function main() {
  const started = performance.now();
  let doc;
  let text;
  if (args.backend === 'both') {
    const { runBoth, reportComparison } = await import('./backends.mjs');
    const extra = [];
    if (args.io !== undefined) extra.push('--io', args.io);
    if (args.connections !== undefined) extra.push('--connections', args.connections);
    doc = await runBoth({ sections, quick, progress, extra });
    doc.durationSeconds = (performance.now() - started) / 1000;
    if (!jsonOnly) {
      const parts = [];
      for (const one of Object.values(doc.backends)) parts.push(report(one, await reportersOf(one)));
      parts.push(reportComparison(doc).join('\n'));
      text = parts.join('\n');
    }
  } else {
    doc = await runHere();
    if (!jsonOnly) text = report(doc, await reportersOf(doc));
  }

  const json = `${JSON.stringify(doc, null, 2)}\n`;
  let written = '';
  if (!args['no-write']) {
    fs.mkdirSync(outDir, { recursive: true });
    const nodeMajor = Number(process.versions.node.split('.')[0]);
    const datedFile = path.join(outDir, `${doc.date.slice(0, 10)}-node${nodeMajor}.json`);
    fs.writeFileSync(datedFile, json);
    fs.writeFileSync(path.join(outDir, 'latest.json'), json);
    const rel = path.relative(process.cwd(), datedFile);
    written = `wrote ${rel.startsWith('..') || path.isAbsolute(rel) ? datedFile : rel} and latest.json  (${fmt(doc.durationSeconds)} s)\n`;
  }
  if (jsonOnly) {
    process.stdout.write(json);
    return;
  }
  process.stdout.write(`${text}\n${written}`);
}

// ---------------------------------------------------------------------------------------------------
// The table (one backend's)

function report(doc, reporters) {
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
  return lines.join('\n');
}

await main();
