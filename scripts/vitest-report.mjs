// Reads one vitest run (its JSON results and its saved console output) for scripts/node-matrix.mjs and
// scripts/test-asan.mjs. The JSON alone is not enough: when a test worker dies (a crash, an async-hook
// fatal error calling process.exit) vitest reports an "unhandled error", counts nothing as failed, and
// lists the file's remaining tests as pending, so those are counted here as "not run" and the
// unhandled errors are taken from the console output.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const SEPARATOR = /^⎯{3,}/;

// Lines pointing at a crash of Node, V8, libuv or the addon, or at async-hook corruption.
const CRASH_PATTERNS = [
  /FATAL ERROR/, /Check failed/, /Fatal error in/, /Fatal (JavaScript|process) /, /Segmentation fault/,
  /\bSIG(SEGV|ABRT|BUS|ILL|TRAP|FPE)\b/, /async hook stack has become corrupted/i, /kResourceStore/,
  /Error: .*async_?hook/i, /Assertion .* failed/, /\bAborted\b/, /core dumped/, /terminate called/,
  /Worker exited unexpectedly/, /process\.exit unexpectedly called/, /AddressSanitizer|runtime error:/,
];

// test/setup/backend-global.ts's notice that a backend is refused here (its reason may name ASan).
const REFUSED_LINE = /^\[\w+\] refused on this machine/;

/**
 * Counts from the JSON results, or null when there is no results file. The suite runs once per switch
 * backend (vitest projects, vitest.config.mjs); test/setup/backend.ts marks each test with its project's
 * backend (meta.backend) and, when that backend is refused on this machine, with the reason it was
 * skipped (meta.skipped). `byBackend` has the same counts per backend; `refused` maps a refused
 * backend to its reason. Tests skipped for a refused backend count as `refusedSkips`, not as "not run".
 */
export function readResults(resultsFile, root) {
  if (!existsSync(resultsFile)) return null;
  const r = JSON.parse(readFileSync(resultsFile, 'utf8'));
  const counts = () => ({ passed: 0, failed: 0, notRun: 0, refusedSkips: 0 });
  const out = { ...counts(), total: r.numTotalTests, failures: [], notRunTests: [], brokenFiles: [], byBackend: {}, refused: {} };
  for (const file of r.testResults) {
    const rel = path.relative(root, file.name);
    // Tests of a skipped describe block never report their meta: they take their file's.
    const fileBackend = file.assertionResults.find((t) => t.meta?.backend)?.meta.backend ?? '?';
    const fileRefused = file.assertionResults.find((t) => t.meta?.skipped)?.meta.skipped;
    if (file.status === 'failed' && file.assertionResults.length === 0) {
      out.failed += 1; // the file failed to load
      out.brokenFiles.push({ name: rel, message: file.message || '(no message)' });
    }
    for (const t of file.assertionResults) {
      const backend = t.meta?.backend ?? fileBackend;
      const mine = (out.byBackend[backend] ??= counts());
      const name = `${rel} > ${t.fullName} [${backend}]`;
      if (t.status === 'passed') {
        out.passed += 1;
        mine.passed += 1;
      } else if (t.status === 'failed') {
        out.failed += 1;
        mine.failed += 1;
        out.failures.push({ name, message: (t.failureMessages ?? []).join('\n') });
      } else if (t.meta?.skipped ?? fileRefused) {
        out.refusedSkips += 1;
        mine.refusedSkips += 1;
        out.refused[backend] = t.meta?.skipped ?? fileRefused;
      } else {
        out.notRun += 1; // skipped, todo, or never reached because its worker died
        mine.notRun += 1;
        out.notRunTests.push(`${name} (${t.status})`);
      }
    }
  }
  return out;
}

/** The saved console output: failure blocks (with diffs), unhandled errors, crash-like lines. */
export function readLog(logFile) {
  const out = { failBlocks: [], unhandled: '', errorCount: 0, crashLines: [] };
  if (!existsSync(logFile)) return out;
  const lines = readFileSync(logFile, 'utf8').replace(ANSI, '').split('\n');

  for (let i = 0; i < lines.length; i++) {
    if (!/^ FAIL {2}/.test(lines[i])) continue;
    const block = [];
    for (let j = i; j < lines.length && !SEPARATOR.test(lines[j]); j++) block.push(lines[j]);
    out.failBlocks.push(block.join('\n').trim());
  }

  const start = lines.findIndex((l) => /⎯ Unhandled Errors? ⎯/.test(l));
  if (start >= 0) {
    let end = lines.findIndex((l, k) => k > start && /^ Test Files /.test(l));
    if (end < 0) end = lines.length;
    out.unhandled = lines.slice(start, end).join('\n').trim();
  }
  const errors = lines.map((l) => l.match(/^\s+Errors\s+(\d+) errors?/)).find(Boolean);
  if (errors) out.errorCount = Number(errors[1]);

  const counts = new Map();
  for (const l of lines) {
    if (REFUSED_LINE.test(l) || !CRASH_PATTERNS.some((p) => p.test(l))) continue;
    const key = l.trim();
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  out.crashLines = [...counts].map(([line, count]) => (count > 1 ? `${line}   (x${count})` : line));
  return out;
}

export function indent(text, n = 6, max = 40) {
  const lines = text.trim().split('\n');
  const shown = lines.slice(0, max);
  if (lines.length > shown.length) shown.push(`... (${lines.length - shown.length} more lines)`);
  return shown.map((l) => ' '.repeat(n) + l).join('\n');
}

/** Prints the details of one run: failed tests, unhandled errors, tests not run, crash-like lines. */
export function printDetails(results, logInfo, logFileLabel) {
  if (results) {
    for (const f of results.brokenFiles) {
      console.log(`  FAIL ${f.name} (the file failed to load)`);
      console.log(indent(f.message));
    }
  }
  if (logInfo.failBlocks.length) {
    for (const b of logInfo.failBlocks) console.log(indent(b, 2));
  } else if (results) {
    for (const f of results.failures) {
      console.log(`  FAIL ${f.name}`);
      console.log(indent(f.message));
    }
  }
  if (logInfo.unhandled) {
    console.log(`  vitest reported ${logInfo.errorCount || 'some'} unhandled error(s) (a test worker died or threw outside a test):`);
    console.log(indent(logInfo.unhandled, 4, 80));
  }
  for (const [backend, reason] of Object.entries(results?.refused ?? {})) {
    console.log(`  ${results.byBackend[backend].refusedSkips} test(s) of the ${backend} project skipped: ${reason}`);
  }
  if (results?.notRunTests.length) {
    console.log('  not run (skipped, or their worker died first):');
    for (const t of results.notRunTests) console.log(`      ${t}`);
  }
  if (logInfo.crashLines.length) {
    console.log(`  crash-like lines in ${logFileLabel}:`);
    for (const l of logInfo.crashLines.slice(0, 40)) console.log(`      ${l}`);
  }
}
