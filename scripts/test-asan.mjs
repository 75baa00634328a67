#!/usr/bin/env node
// Runs the test suite against an AddressSanitizer + UndefinedBehaviorSanitizer build of the addon.
//   npm run test:asan                 the whole suite
//   npm run test:asan -- -t mutex     extra arguments go to vitest
//
// 1. Builds the instrumented addon: scripts/build-native.mjs with SPINDLE_SANITIZE=address,undefined
//    (cmake-js --debug, so it lands in build-sanitize/Debug/spindle.node).
// 2. Runs vitest (the running Node) with
//      SPINDLE_ADDON=build-sanitize/Debug/spindle.node   src/native.ts loads this build instead
//      LD_PRELOAD=<gcc's libasan.so> <gcc's libubsan.so>  Node itself is not instrumented, and the ASan
//                 runtime must come first in the process's library list or it refuses to start; UBSan's
//                 runtime is preloaded too so UBSAN_OPTIONS apply from process start.
//    Everything inherits this environment: vitest's fork workers and the child processes tests spawn
//    (process.execPath) run sanitized too. Of the two vitest projects (one per switch backend), only
//    threads runs: the inplace backend refuses an ASan build, so that half is reported as skipped with
//    the reason.
// 3. ASan reports are written to build-sanitize/sanitizer-logs/asan.<pid> (log_path), so that reports
//    from child processes whose output a test captures are not lost. gcc's UBSan runtime, when combined
//    with ASan, ignores log_path and always writes to stderr: its reports ("runtime error:") are picked
//    out of vitest's output (build-sanitize/vitest.log) and out of the failed tests' messages (which
//    usually include a crashed child's stderr). All reports are printed at the end, with the frames in
//    native/ picked out. Exits non-zero on a failed test or any report.
//   SPINDLE_SANITIZE  sanitizers to build with (default address,undefined)
//   ASAN_OPTIONS / UBSAN_OPTIONS from the environment are appended to ours (later options win).
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { indent, printDetails, readLog, readResults } from './vitest-report.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sanitize = process.env.SPINDLE_SANITIZE || 'address,undefined';
const outDir = path.join(root, 'build-sanitize');
const addon = path.join(outDir, 'Debug', 'spindle.node');
const logDir = path.join(outDir, 'sanitizer-logs');
const resultsFile = path.join(outDir, 'vitest-results.json');
const logFile = path.join(outDir, 'vitest.log');

function log(msg) {
  console.log(`\n[test-asan] ${msg}`);
}

function run(cmd, args, env = process.env) {
  console.log(`> ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`[test-asan] ${path.basename(args[0] ?? cmd)} failed (${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

/** Absolute path of one of gcc's runtime libraries, or null if gcc does not know it. */
function gccRuntime(name) {
  const r = spawnSync(process.env.CC && /gcc/.test(process.env.CC) ? process.env.CC : 'gcc', [`-print-file-name=${name}`], { encoding: 'utf8' });
  const file = r.status === 0 ? r.stdout.trim() : '';
  // gcc echoes the bare name back when it has no such file.
  return file && path.isAbsolute(file) && existsSync(file) ? file : null;
}

// 1. Build: the addon (instrumented) and dist/ (the tests load the built package).
log(`building the addon with -fsanitize=${sanitize}`);
run(process.execPath, [path.join(root, 'scripts', 'build-native.mjs')], { ...process.env, SPINDLE_SANITIZE: sanitize });
if (!existsSync(addon)) {
  console.error(`[test-asan] the build finished but ${addon} does not exist`);
  process.exit(1);
}
log('building dist/ (TypeScript)');
run(process.execPath, [path.join(root, 'scripts', 'build-ts.mjs')]);

// 2. Environment.
const preload = [];
if (sanitize.includes('address')) {
  const asan = gccRuntime('libasan.so');
  if (!asan) {
    console.error('[test-asan] gcc -print-file-name=libasan.so found no ASan runtime');
    process.exit(1);
  }
  preload.push(asan);
}
if (sanitize.includes('undefined')) {
  const ubsan = gccRuntime('libubsan.so');
  if (ubsan) preload.push(ubsan);
}

rmSync(logDir, { recursive: true, force: true });
mkdirSync(logDir, { recursive: true });
const asanOptions = [
  // Node and V8 deliberately leave memory allocated at exit (isolates, platform, static caches), and
  // so does a process that exits with live fibers: LeakSanitizer would report all of that as leaks.
  'detect_leaks=0',
  'halt_on_error=1',
  // Node/V8 install their own SIGSEGV handler (WebAssembly trap handling); let them.
  'allow_user_segv_handler=1',
  `log_path=${path.join(logDir, 'asan')}`,
  process.env.ASAN_OPTIONS,
].filter(Boolean).join(':');
const ubsanOptions = [
  'print_stacktrace=1',
  'halt_on_error=1',
  `log_path=${path.join(logDir, 'ubsan')}`,
  process.env.UBSAN_OPTIONS,
].filter(Boolean).join(':');
const env = {
  ...process.env,
  SPINDLE_ADDON: addon,
  LD_PRELOAD: [...preload, process.env.LD_PRELOAD].filter(Boolean).join(' '),
  ASAN_OPTIONS: asanOptions,
  UBSAN_OPTIONS: ubsanOptions,
};
if (!process.env.FORCE_COLOR && !process.env.NO_COLOR) {
  if (process.stdout.isTTY) env.FORCE_COLOR = '1';
  else env.NO_COLOR = '1';
}

// Preflight: the instrumented addon loads, and the sanitizer runtime really is in the process.
{
  const check = `require(${JSON.stringify(addon)}); const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');` +
    `if (${JSON.stringify(sanitize.includes('address'))} && !maps.includes('libasan')) { console.error('libasan is not loaded'); process.exit(3); }`;
  const r = spawnSync(process.execPath, ['-e', check], { env, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`[test-asan] the instrumented addon does not load under LD_PRELOAD=${env.LD_PRELOAD}:\n${r.stderr}`);
    process.exit(1);
  }
}

// 3. Tests.
rmSync(resultsFile, { force: true });
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
// test/resources.test.ts exhausts threads under `ulimit -v`; ASan cannot reserve its shadow memory
// under any address-space limit, so that one file runs in the plain suite only.
const vargs = [
  vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${resultsFile}`,
  '--exclude', 'test/resources.test.ts', ...process.argv.slice(2),
];
log('running the tests');
for (const k of ['SPINDLE_ADDON', 'LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS']) console.log(`  ${k}=${env[k]}`);
console.log(`> ${process.execPath} ${vargs.join(' ')}`);
const logStream = createWriteStream(logFile);
const res = await new Promise((resolve) => {
  const child = spawn(process.execPath, vargs, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => {
    process.stdout.write(d);
    logStream.write(d);
  });
  child.stderr.on('data', (d) => {
    process.stderr.write(d);
    logStream.write(d);
  });
  child.on('close', (code, signal) => resolve({ code, signal }));
});
await new Promise((resolve) => logStream.end(resolve));

// 4. Report.
const results = readResults(resultsFile, root);
const logInfo = readLog(logFile);
const passed = results?.passed ?? 0;
const failed = results ? results.failed : 1;
// For the sanitizer-report scan: failure messages and the failure blocks of the output (with diffs,
// which hold the stderr of child processes that tests compare).
const failures = [
  ...(results?.failures ?? []),
  ...(results?.brokenFiles ?? []),
  ...logInfo.failBlocks.map((b) => ({ name: b.split('\n')[0].replace(/^ FAIL {2}/, ''), message: b })),
];

// Sanitizer reports: one file per process that reported something.
const reports = [];
for (const f of readdirSync(logDir).sort()) {
  const text = readFileSync(path.join(logDir, f), 'utf8');
  if (!text.trim()) continue;
  const lines = text.split('\n');
  const kind =
    lines.find((l) => /ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)/.test(l)) ??
    lines.find((l) => /runtime error:/.test(l)) ??
    lines.find((l) => l.trim()) ?? '';
  const summary = lines.find((l) => /^SUMMARY:/.test(l)) ?? '';
  const nativeFrames = [...new Set(lines.map((l) => l.match(/native\/[\w.-]+:\d+(:\d+)?/)?.[0]).filter(Boolean))];
  reports.push({ file: f, kind: kind.trim(), summary, nativeFrames, text });
}

// Reports printed to stderr (UBSan always; ASan only if log_path failed): from vitest's output and from
// failure messages. A report is its first line plus the stack frames and SUMMARY line that follow it.
function reportsIn(text, where) {
  // eslint-disable-next-line no-control-regex
  const lines = text.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/runtime error:|ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)/.test(lines[i])) continue;
    const block = [lines[i]];
    for (let j = i + 1; j < lines.length && j < i + 80; j++) {
      if (/^\s*#\d+ /.test(lines[j]) || /^SUMMARY:/.test(lines[j].trim()) || /^\s*$/.test(lines[j]) && /^\s*#\d+ /.test(lines[j + 1] ?? '')) block.push(lines[j]);
      else if (block.length > 1) break;
    }
    found.push({ where, text: block.join('\n') });
  }
  return found;
}
const seen = new Set(reports.map((r) => r.kind.replace(/==\d+==/g, '')));
const streamReports = [
  ...(existsSync(logFile) ? reportsIn(readFileSync(logFile, 'utf8'), 'vitest output') : []),
  ...failures.flatMap((f) => reportsIn(f.message, `failure message of ${f.name}`)),
];
for (const sr of streamReports) {
  const first = sr.text.split('\n')[0].trim();
  const key = first.replace(/==\d+==/g, '').replace(/^.*?(\S+:\d+:\d+: runtime error)/, '$1');
  if (seen.has(key)) continue;
  seen.add(key);
  const lines = sr.text.split('\n');
  reports.push({
    file: `(${sr.where})`,
    kind: first,
    summary: lines.find((l) => /^SUMMARY:/.test(l.trim()))?.trim() ?? '',
    nativeFrames: [...new Set(lines.map((l) => l.match(/native\/[\w.-]+:\d+(:\d+)?/)?.[0]).filter(Boolean))],
    text: sr.text,
  });
}

console.log('\n==================== sanitizer test run ====================');
console.log(`addon:   ${path.relative(root, addon)} (-fsanitize=${sanitize})`);
console.log(`tests:   ${passed} passed, ${failed} failed, ${results?.notRun ?? '?'} not run, ` +
  `${results?.refusedSkips ?? '?'} skipped (backend refused: ${Object.keys(results?.refused ?? {}).join(', ') || 'none'}), ` +
  `${logInfo.errorCount || (logInfo.unhandled ? 1 : 0)} unhandled error(s) (vitest exit ${res.code ?? res.signal})`);
console.log(`reports: ${reports.length} distinct sanitizer report(s) (ASan logs in ${path.relative(root, logDir)}/, UBSan from stderr)`);
if (!results) console.log('  no JSON results from vitest');
printDetails(results, logInfo, path.relative(root, logFile));
for (const r of reports) {
  const from = r.file.startsWith('(') ? r.file : path.relative(root, path.join(logDir, r.file));
  console.log(`\n--- ${from}: ${r.kind}`);
  if (r.summary) console.log(`    ${r.summary}`);
  if (r.nativeFrames.length) console.log(`    in native/: ${r.nativeFrames.join(', ')}`);
  console.log(indent(r.text, 4, 60));
}
if (reports.length === 0) console.log('No sanitizer reports.');

console.log(`\nsummary: ${passed} passed, ${failed} failed, ${reports.length} sanitizer report(s)`);
process.exit(failed > 0 || reports.length > 0 || logInfo.unhandled || res.code !== 0 ? 1 : 0);
