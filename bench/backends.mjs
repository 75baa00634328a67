// Both switch backends side by side (`node bench/cli.mjs --backend both`, the default).
//
// The backend is chosen once per process, when spindle's runtime starts (SPINDLE_BACKEND), so each section runs
// in a child process per backend: threads, then inplace, section by section, so that both see about the
// same machine load. The children print their JSON documents; this module merges them, prints each
// backend's report, then the comparison and the inplace backend's own targets (issue 6).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { fmt, lpad, pad } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BACKENDS = ['threads', 'inplace'];

// Issue 6's targets for the inplace backend, on this machine.
const INPLACE_TARGETS = {
  roundTripNs: 600,
  parked10kVsRoundTrip: 1.2,
  spawnJoinPerSec: 500_000,
  rssPerParkedKiB: 12,
  pipelineVsAsync: 1.0,
  tcpEcho100VsCallback: 1.2,
};

// Units where a smaller figure is better (times, sizes: 'ns', 'ns/hand-off', 'KiB'...); every other
// unit is a rate.
const lowerIsBetter = (unit) => /^(ns|us|ms|KiB)\b/.test(unit);

/** Runs one section under one backend in a child process; resolves with its JSON document. */
function runChild(section, backend, quick, progress, extra) {
  const args = [path.join(here, 'cli.mjs'), '--only', section, '--json-only', '--backend', backend, '--no-write', ...extra];
  if (quick) args.push('--quick');
  progress(`${section} under ${backend}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`bench section ${section} under ${backend} exited with ${code ?? signal}`));
      try {
        resolve(JSON.parse(out));
      } catch (err) {
        reject(new Error(`bench section ${section} under ${backend} printed no JSON document: ${err.message}`));
      }
    });
  });
}

/** Merges one backend's per-section documents into one document of the single-backend shape. */
function merge(docs) {
  const doc = { ...docs[0], sections: [], params: {}, results: {}, info: {}, ratios: [], durationSeconds: 0 };
  for (const d of docs) {
    doc.sections.push(...d.sections);
    Object.assign(doc.params, d.params);
    Object.assign(doc.results, d.results);
    Object.assign(doc.info, d.info);
    doc.ratios.push(...d.ratios);
    if (d.memory !== undefined) doc.memory = d.memory;
    if (d.unmeasured !== undefined) doc.unmeasured = d.unmeasured;
    doc.durationSeconds += d.durationSeconds;
  }
  return doc;
}

/** Whether the child asked for `backend` got it (inplace is refused on builds it does not support). */
function granted(doc, backend) {
  return backend === 'threads' || doc.backend === 'inplace';
}

/** Every measurement both backends made: the figures and how much better inplace does. */
function compare(threads, inplace) {
  const rows = [];
  for (const [key, t] of Object.entries(threads.results)) {
    const i = inplace.results[key];
    if (i === undefined || typeof t.value !== 'number' || typeof i.value !== 'number') continue;
    const lower = lowerIsBetter(t.unit);
    const speedup = lower ? t.value / i.value : i.value / t.value;
    rows.push({ key, unit: t.unit, threads: t.value, inplace: i.value, speedup });
  }
  return rows;
}

function ratioNamed(doc, prefix) {
  return doc.ratios.find((q) => q.name.startsWith(prefix))?.value;
}

/** Issue 6's targets, checked on the inplace document (only those whose sections ran). */
function inplaceTargets(doc) {
  const r = doc.results;
  const T = INPLACE_TARGETS;
  const out = [];
  const check = (name, value, target, met) => value !== undefined && out.push({ name, value, target, met: met(value) });
  check('round trip (a), ns', r.resumeRoundTrip?.value, `<= ${T.roundTripNs}`, (v) => v <= T.roundTripNs);
  if (r.resumeRoundTrip && r.resumeRoundTripParked10k) {
    check('10,000 parked / (a)', r.resumeRoundTripParked10k.value / r.resumeRoundTrip.value, `<= ${T.parked10kVsRoundTrip}`, (v) => v <= T.parked10kVsRoundTrip);
  }
  check('spawn+join, fibers/s', r.spawnJoin?.value, `>= ${T.spawnJoinPerSec.toLocaleString('en-US')}`, (v) => v >= T.spawnJoinPerSec);
  check('RSS per parked fiber, KiB', r.rssPerParkedFiber?.value, `<= ${T.rssPerParkedKiB}`, (v) => v <= T.rssPerParkedKiB);
  check('pipeline / async-await', ratioNamed(doc, '(h) pipeline'), `>= ${T.pipelineVsAsync}`, (v) => v >= T.pipelineVsAsync);
  check('TCP echo, 100 conn / net callbacks', ratioNamed(doc, '(j) echo, 100 conn: spindle'), `>= ${T.tcpEcho100VsCallback}`, (v) => v >= T.tcpEcho100VsCallback);
  return out;
}

/**
 * Runs `sections` under both backends (`extra`: CLI options passed on, such as --io). Resolves with the combined document: { schema: 3, backends:
 * { threads, inplace }, comparison, inplaceTargets, refused? }.
 */
export async function runBoth({ sections, quick, progress, extra = [] }) {
  const perBackend = { threads: [], inplace: [] };
  let refused;
  for (const section of sections) {
    for (const backend of BACKENDS) {
      if (backend === 'inplace' && refused !== undefined) continue;
      const doc = await runChild(section, backend, quick, progress, extra);
      if (!granted(doc, backend)) {
        refused = doc.backendReason;
        continue;
      }
      perBackend[backend].push(doc);
    }
  }
  const threads = merge(perBackend.threads);
  const combined = { schema: 3, date: threads.date, mode: threads.mode, sections, node: threads.node, backends: { threads } };
  if (refused !== undefined) {
    combined.refused = refused;
    return combined;
  }
  const inplace = merge(perBackend.inplace);
  combined.backends.inplace = inplace;
  combined.comparison = compare(threads, inplace);
  combined.inplaceTargets = inplaceTargets(inplace);
  return combined;
}

/** The printed comparison (after each backend's own report). */
export function reportComparison(combined) {
  const lines = [];
  if (combined.refused !== undefined) {
    lines.push(`inplace: not measured, it was refused (${combined.refused})`, '');
    return lines;
  }
  lines.push('both backends, side by side (medians; speedup = how many times better inplace does)');
  lines.push(`  ${pad('measurement', 30)}${lpad('threads', 14)}${lpad('inplace', 14)}  ${pad('unit', 10)}${lpad('speedup', 9)}`);
  for (const c of combined.comparison) {
    lines.push(`  ${pad(c.key, 30)}${lpad(fmt(c.threads), 14)}${lpad(fmt(c.inplace), 14)}  ${pad(c.unit, 10)}${lpad(fmt(c.speedup, 2), 9)}`);
  }
  lines.push('', 'inplace targets (issue 6)');
  for (const q of combined.inplaceTargets) {
    lines.push(`  ${pad(q.name, 44)}${lpad(fmt(q.value, 2), 12)}   ${pad(`target ${q.target}`, 18)} ${q.met ? 'met' : 'NOT MET'}`);
  }
  lines.push('');
  return lines;
}
