// IO benchmarks of the CLI (bench/cli.mjs, `--only io`): spindle/net and spindle/fs against Node's
// own ways of doing the same, in one run, on loopback and in os.tmpdir(), each bounded in time.
//
// Measures (each the median of several batches; within a batch the contenders run one after the
// other, in an order that rotates from batch to batch, so a noisy stretch hits all of them alike):
//   (j) TCP echo, 64-byte messages, ping-pong, with 1, 10 and 100 concurrent connections, messages/s:
//       a spindle/net server (a fiber per connection, blocking-style read/write) vs a Node `net`
//       server with callbacks vs a Node `net` server written with async/await over `events.once`.
//       The load generator is the same for all three: bench/io-load.mjs (Node `net` callbacks) in a
//       child process, which reports messages/s on stdout. The servers run in this process.
//   (k) reading a cached 256 MiB file (64 MiB with --quick) with 64 KiB reads, MB/s (10^6 bytes):
//       a spindle/fs File.read loop (in a fiber) vs an fs.promises FileHandle.read loop vs an
//       fs.readSync loop.
//   (l) reading 10,000 4 KiB files (1,000 with --quick), files/s: spindle/fs readFile by 100 fibers
//       vs Promise.all batches of 100 fs.promises.readFile.
// Targets (issue 4): (j) spindle at 100 connections >= 1.0x the callback server; (k) >= 2x the
// fs.promises loop and >= 0.5x the readSync loop; (l) >= 1.0x fs.promises.
// The JSON's info.fsReadPaths counts how spindle's reads in (k) and (l) went: inline (from the page
// cache, no threadpool), through the threadpool, and how often a fiber yielded for its inline budget
// (src/fs/index.ts; SPINDLE_FS_INLINE=0 sends every read through the threadpool).
// The files live in a fresh directory under os.tmpdir(), created once per run and removed at the end.
// The CLI's --io option runs some of the three parts only (tcp, file, small), and --connections picks
// the connection counts of (j).
import { spawn as spawnProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { spawn } from '../dist/index.js';
import { _ioCounters, open as spindleOpen, readFile as spindleReadFile } from '../dist/fs/index.js';
import { listen } from '../dist/net/index.js';
import { fmt, lpad, pad, row, summary, tableHeader, tick } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const LOAD = path.join(here, 'io-load.mjs');

export function ioParams(quick) {
  return quick
    ? {
        tcpBatches: 1,
        tcpWarmupMs: 50,
        tcpDurationMs: 150,
        fileBatches: 3,
        fileMiB: 64,
        smallBatches: 3,
        smallFiles: 1_000,
      }
    : {
        tcpBatches: 5,
        tcpWarmupMs: 500,
        tcpDurationMs: 1_500,
        fileBatches: 7,
        fileMiB: 256,
        smallBatches: 7,
        smallFiles: 10_000,
      };
}

export const IO_PARTS = ['tcp', 'file', 'small'];
export const CONNECTIONS = [1, 10, 100];
const MESSAGE_BYTES = 64;
const READ_BYTES = 64 * 1024;
const SMALL_BYTES = 4 * 1024;
const SMALL_FIBERS = 100;
const SMALL_BATCH = 100;

const TARGETS = {
  tcpEcho100VsCallback: 1.0,
  fileReadVsPromises: 2.0,
  fileReadVsReadSync: 0.5,
  smallFilesVsPromises: 1.0,
};

const SERVERS = ['spindle', 'callback', 'await'];
const SERVER_LABEL = {
  spindle: 'spindle, fiber/conn',
  callback: 'Node net, callbacks',
  await: 'Node net, await events.once',
};

// ---------------------------------------------------------------------------------------------------
// (j) the three echo servers, on 127.0.0.1, each on a port of its own

/** spindle/net: an accept loop in a fiber, a fiber per connection. */
function spindleEchoServer() {
  const server = listen({ port: 0, host: '127.0.0.1' });
  const conns = new Set();
  const acceptor = spawn(
    () => {
      for (const socket of server) {
        conns.add(socket);
        spawn(
          () => {
            try {
              socket.setNoDelay(true);
              const buf = Buffer.allocUnsafe(16 * 1024);
              for (let n; (n = socket.read(buf)) > 0; ) socket.write(buf.subarray(0, n));
            } catch {
              // a reset by the load generator, or the close at the end: the connection is over
            } finally {
              conns.delete(socket);
              socket.close();
            }
          },
          { name: 'echo connection' },
        );
      }
    },
    { name: 'echo acceptor' },
  );
  return {
    port: server.address().port,
    async close() {
      server.close();
      for (const s of conns) s.close();
      await acceptor.result().catch(() => {});
    },
  };
}

/** `server` listening on loopback; close() destroys the connections in `conns`, then closes it. */
async function listening(server, conns) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: server.address().port,
    async close() {
      for (const s of conns) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Node `net`, callbacks. */
async function callbackEchoServer() {
  const conns = new Set();
  const server = net.createServer((socket) => {
    conns.add(socket);
    socket.setNoDelay(true);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
    socket.on('close', () => conns.delete(socket));
  });
  return listening(server, conns);
}

/** Node `net`, an async function per connection awaiting events with `events.once`. */
async function awaitEchoServer() {
  const conns = new Set();
  async function handle(socket) {
    try {
      for (;;) {
        await once(socket, 'readable');
        let any = false;
        for (let chunk; (chunk = socket.read()) !== null; ) {
          any = true;
          if (!socket.write(chunk)) await once(socket, 'drain');
        }
        if (!any) break; // 'readable' with nothing to read: the end of the stream
      }
      socket.end();
    } catch {
      socket.destroy();
    }
  }
  const server = net.createServer((socket) => {
    conns.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => conns.delete(socket));
    handle(socket);
  });
  return listening(server, conns);
}

/**
 * Runs the load generator against `port`; resolves with its messages/s and this process's CPU time
 * (the server's: the generator runs in its child) per echoed message over the measured span, in us.
 */
async function loadRun(port, connections, P) {
  const child = spawnProcess(
    process.execPath,
    [
      LOAD,
      '--port',
      String(port),
      '--connections',
      String(connections),
      '--size',
      String(MESSAGE_BYTES),
      '--warmup-ms',
      String(P.tcpWarmupMs),
      '--duration-ms',
      String(P.tcpDurationMs),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  let cpuAtStart;
  let cpuSpan;
  child.stdout.setEncoding('utf8').on('data', (s) => {
    out += s;
    if (cpuAtStart === undefined && out.includes('measuring\n')) cpuAtStart = process.cpuUsage();
    if (cpuSpan === undefined && cpuAtStart !== undefined && out.includes('stopped\n')) cpuSpan = process.cpuUsage(cpuAtStart);
  });
  child.stderr.setEncoding('utf8').on('data', (s) => (err += s));
  const killer = setTimeout(() => child.kill('SIGKILL'), P.tcpWarmupMs + P.tcpDurationMs + 30_000);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(killer);
  const line = out.split('\n').find((l) => l.startsWith('{'));
  if (code !== 0 || line === undefined || cpuSpan === undefined) {
    throw new Error(`io-load (port ${port}, ${connections} connections) ended with ${signal ?? code}: ${err.trim() || out.trim()}`);
  }
  const { perSec, messages } = JSON.parse(line);
  return { perSec, cpuUsPerMsg: (cpuSpan.user + cpuSpan.system) / messages };
}

// ---------------------------------------------------------------------------------------------------
// (k) one big cached file, 64 KiB reads

function makeBigFile(file, mib) {
  const chunk = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + 7) & 0xff;
  const fd = fs.openSync(file, 'w');
  try {
    for (let i = 0; i < mib; i++) fs.writeSync(fd, chunk);
  } finally {
    fs.closeSync(fd);
  }
}

const mbPerSec = (bytes, ms) => bytes / 1e6 / (ms / 1000);

async function readSpindle(file, size) {
  return spawn(() => {
    const buf = Buffer.allocUnsafe(READ_BYTES);
    const t0 = performance.now();
    const f = spindleOpen(file);
    let total = 0;
    try {
      for (let n; (n = f.read(buf, 0, READ_BYTES, total)) > 0; ) total += n;
    } finally {
      f.close();
    }
    if (total !== size) throw new Error(`spindle read ${total} of ${size} bytes`);
    return mbPerSec(total, performance.now() - t0);
  }).result();
}

async function readPromises(file, size) {
  const buf = Buffer.allocUnsafe(READ_BYTES);
  const t0 = performance.now();
  const fh = await fsp.open(file);
  let total = 0;
  try {
    for (let n; (n = (await fh.read(buf, 0, READ_BYTES, total)).bytesRead) > 0; ) total += n;
  } finally {
    await fh.close();
  }
  if (total !== size) throw new Error(`fs.promises read ${total} of ${size} bytes`);
  return mbPerSec(total, performance.now() - t0);
}

function readSyncLoop(file, size) {
  const buf = Buffer.allocUnsafe(READ_BYTES);
  const t0 = performance.now();
  const fd = fs.openSync(file);
  let total = 0;
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, READ_BYTES, total)) > 0; ) total += n;
  } finally {
    fs.closeSync(fd);
  }
  if (total !== size) throw new Error(`readSync read ${total} of ${size} bytes`);
  return mbPerSec(total, performance.now() - t0);
}

// ---------------------------------------------------------------------------------------------------
// (l) many small files

function makeSmallFiles(dir, n) {
  fs.mkdirSync(dir);
  const data = Buffer.alloc(SMALL_BYTES, 's');
  const files = [];
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `f${i}`);
    fs.writeFileSync(f, data);
    files.push(f);
  }
  return files;
}

async function smallSpindle(files) {
  let next = 0;
  let bytes = 0;
  const t0 = performance.now();
  const workers = [];
  for (let w = 0; w < SMALL_FIBERS; w++) {
    workers.push(
      spawn(() => {
        for (let i; (i = next++) < files.length; ) {
          const n = spindleReadFile(files[i]).length; // (not `bytes += ...`: readFile suspends in between)
          bytes += n;
        }
      }).result(),
    );
  }
  await Promise.all(workers);
  const ms = performance.now() - t0;
  if (bytes !== files.length * SMALL_BYTES) throw new Error(`spindle readFile: ${bytes} bytes`);
  return files.length / (ms / 1000);
}

async function smallPromises(files) {
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < files.length; i += SMALL_BATCH) {
    const got = await Promise.all(files.slice(i, i + SMALL_BATCH).map((f) => fsp.readFile(f)));
    for (const b of got) bytes += b.length;
  }
  const ms = performance.now() - t0;
  if (bytes !== files.length * SMALL_BYTES) throw new Error(`fs.promises.readFile: ${bytes} bytes`);
  return files.length / (ms / 1000);
}

// ---------------------------------------------------------------------------------------------------
// The section

/** Rotates `list` by `k`: batch k runs the contenders in this order. */
const rotate = (list, k) => list.map((_, i) => list[(i + k) % list.length]);

/**
 * Runs (j)-(l), or the `parts` of them (tcp, file, small), (j) with `connections` connections. Returns
 * the section of the JSON document: params, results, info, ratios.
 */
export async function runIo({ quick, progress, parts = IO_PARTS, connections = CONNECTIONS }) {
  const P = ioParams(quick);
  const results = {};
  const paths = { fileRead: {}, smallFiles: {} };
  const tcpCpu = {};  // per connection count: each server's CPU time per echo (us), medians
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spindle-bench-io-'));
  try {
    // ---- (j) TCP echo ---------------------------------------------------------------------------
    if (parts.includes('tcp')) await runTcp(P, connections, results, progress, tcpCpu);

    // ---- (k) big file ---------------------------------------------------------------------------
    if (parts.includes('file')) await runFile(P, tmp, results, progress, paths.fileRead);

    // ---- (l) small files ------------------------------------------------------------------------
    if (parts.includes('small')) await runSmall(P, tmp, results, progress, paths.smallFiles);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const r = results;
  const vs = (name, value) => ({ name, value, target: null, met: null });
  const goal = (name, value, min) => ({ name, value, target: `>= ${min}`, met: value >= min });
  const ratios = [];
  if (parts.includes('tcp')) {
    for (const c of connections) {
      const spindleVs = r[`tcpEcho${c}Spindle`].value / r[`tcpEcho${c}Callback`].value;
      const name = `(j) echo, ${c} conn: spindle / callbacks`;
      ratios.push(c === 100 ? goal(name, spindleVs, TARGETS.tcpEcho100VsCallback) : vs(name, spindleVs));
      ratios.push(vs(`(j) echo, ${c} conn: await / callbacks`, r[`tcpEcho${c}Await`].value / r[`tcpEcho${c}Callback`].value));
    }
  }
  if (parts.includes('file')) {
    ratios.push(goal('(k) file read: spindle / fs.promises', r.fileReadSpindle.value / r.fileReadPromises.value, TARGETS.fileReadVsPromises));
    ratios.push(goal('(k) file read: spindle / readSync', r.fileReadSpindle.value / r.fileReadSync.value, TARGETS.fileReadVsReadSync));
  }
  if (parts.includes('small')) {
    ratios.push(goal('(l) small files: spindle / fs.promises', r.smallFilesSpindle.value / r.smallFilesPromises.value, TARGETS.smallFilesVsPromises));
  }

  return {
    params: {
      ...P,
      parts,
      connections,
      messageBytes: MESSAGE_BYTES,
      readBytes: READ_BYTES,
      smallFileBytes: SMALL_BYTES,
      smallFibers: SMALL_FIBERS,
      smallBatch: SMALL_BATCH,
      loopbackHost: '127.0.0.1',
    },
    results,
    info: { fsReadPaths: paths, tcpServerCpuUsPerMsg: tcpCpu },
    ratios,
  };
}

async function runTcp(P, connections, results, progress, cpuPerMsg) {
  const servers = {
    spindle: spindleEchoServer(),
    callback: await callbackEchoServer(),
    await: await awaitEchoServer(),
  };
  try {
    for (const c of connections) {
      progress(`(j) TCP echo, ${c} connection(s): ${P.tcpBatches} batch(es) x 3 servers x ${P.tcpDurationMs} ms`);
      const s = { spindle: [], callback: [], await: [] };
      const cpu = { spindle: [], callback: [], await: [] };
      for (let b = 0; b < P.tcpBatches; b++) {
        for (const kind of rotate(SERVERS, b + c)) {
          const run = await loadRun(servers[kind].port, c, P);
          s[kind].push(run.perSec);
          cpu[kind].push(run.cpuUsPerMsg);
        }
        await tick();
      }
      results[`tcpEcho${c}Spindle`] = summary(s.spindle, 'msgs/s');
      results[`tcpEcho${c}Callback`] = summary(s.callback, 'msgs/s');
      results[`tcpEcho${c}Await`] = summary(s.await, 'msgs/s');
      cpuPerMsg[c] = Object.fromEntries(SERVERS.map((kind) => [kind, summary(cpu[kind], 'us/msg').value]));
    }
  } finally {
    for (const srv of Object.values(servers)) await srv.close();
  }
}

const PATH_COUNTERS = ['inlineReads', 'pooledReads', 'budgetSpent', 'inlineSizes'];

/** Runs `fn` (async) and adds what it did to spindle/fs's read-path counters into `into`. */
async function countingPaths(into, fn) {
  const before = _ioCounters();
  const value = await fn();
  const after = _ioCounters();
  for (const k of PATH_COUNTERS) into[k] = (into[k] ?? 0) + after[k] - before[k];
  return value;
}

async function runFile(P, tmp, results, progress, paths) {
  const big = path.join(tmp, 'big.bin');
  const size = P.fileMiB * 1024 * 1024;
  progress(`(k) creating a ${P.fileMiB} MiB file in ${tmp}`);
  makeBigFile(big, P.fileMiB);
  readSyncLoop(big, size); // into the page cache, and warm-up
  await readPromises(big, size);
  await readSpindle(big, size);
  progress(`(k) file read: ${P.fileBatches} batches x 3 readers x ${P.fileMiB} MiB`);
  const k = { spindle: [], promises: [], readSync: [] };
  const readers = {
    spindle: () => countingPaths(paths, () => readSpindle(big, size)),
    promises: () => readPromises(big, size),
    readSync: async () => readSyncLoop(big, size),
  };
  for (let b = 0; b < P.fileBatches; b++) {
    for (const kind of rotate(Object.keys(readers), b)) k[kind].push(await readers[kind]());
    await tick();
  }
  fs.rmSync(big, { force: true });
  results.fileReadSpindle = summary(k.spindle, 'MB/s');
  results.fileReadPromises = summary(k.promises, 'MB/s');
  results.fileReadSync = summary(k.readSync, 'MB/s');
}

async function runSmall(P, tmp, results, progress, paths) {
  progress(`(l) creating ${fmt(P.smallFiles, 0)} files of ${SMALL_BYTES / 1024} KiB`);
  const files = makeSmallFiles(path.join(tmp, 'small'), P.smallFiles);
  await smallPromises(files); // warm-up (and the page cache)
  await smallSpindle(files);
  progress(`(l) small files: ${P.smallBatches} batches x 2 readers x ${fmt(P.smallFiles, 0)} files`);
  const l = { spindle: [], promises: [] };
  for (let b = 0; b < P.smallBatches; b++) {
    if (b % 2 === 0) {
      l.spindle.push(await countingPaths(paths, () => smallSpindle(files)));
      l.promises.push(await smallPromises(files));
    } else {
      l.promises.push(await smallPromises(files));
      l.spindle.push(await countingPaths(paths, () => smallSpindle(files)));
    }
    await tick();
  }
  results.smallFilesSpindle = summary(l.spindle, 'files/s');
  results.smallFilesPromises = summary(l.promises, 'files/s');
}

// ---------------------------------------------------------------------------------------------------
// The table

/** The io section of the printed report (the ratios are printed by the CLI, with every section's). */
export function reportIo(doc) {
  const r = doc.results;
  const p = doc.params.io;
  const parts = p.parts ?? IO_PARTS;
  const has = (part) => parts.includes(part);
  const lines = [];
  lines.push(
    `io: medians of batches (TCP ${p.tcpBatches}, file read ${p.fileBatches}, small files ${p.smallBatches}); the contenders alternate within each batch`,
    `    TCP: loopback, ${p.messageBytes}-byte ping-pong, ${p.tcpDurationMs} ms per run after ${p.tcpWarmupMs} ms warm-up, load from bench/io-load.mjs (native epoll loop) in a child process`,
    ...(parts.length < IO_PARTS.length ? [`    parts run: ${parts.join(', ')} (--io)`] : []),
    '',
  );
  lines.push(...tableHeader());
  if (has('tcp')) {
    for (const c of p.connections) {
      lines.push(row(`(j) TCP echo, ${c} conn: ${SERVER_LABEL.spindle}`, r[`tcpEcho${c}Spindle`], 0));
      lines.push(row(`(j) ... ${SERVER_LABEL.callback}`, r[`tcpEcho${c}Callback`], 0));
      lines.push(row(`(j) ... ${SERVER_LABEL.await}`, r[`tcpEcho${c}Await`], 0));
    }
  }
  if (has('file')) {
    lines.push(row(`(k) ${p.fileMiB} MiB read, 64 KiB, spindle File.read`, r.fileReadSpindle, 0));
    lines.push(row('(k) ... fs.promises FileHandle.read', r.fileReadPromises, 0));
    lines.push(row('(k) ... fs.readSync', r.fileReadSync, 0));
  }
  if (has('small')) {
    lines.push(row(`(l) ${fmt(p.smallFiles, 0)} 4 KiB files, ${p.smallFibers} fibers readFile`, r.smallFilesSpindle, 0));
    lines.push(row(`(l) ... fs.promises.readFile x${p.smallBatch} batches`, r.smallFilesPromises, 0));
  }
  lines.push('');

  lines.push(`${pad('side by side (medians)', 30)}${lpad('spindle', 12)}${lpad('baseline', 12)}${lpad('ratio', 8)}  ${pad('unit', 9)}baseline`);
  const side = (label, a, b, base) => `  ${pad(label, 28)}${lpad(fmt(a.value, 0), 12)}${lpad(fmt(b.value, 0), 12)}${lpad(fmt(a.value / b.value, 2), 8)}  ${pad(a.unit, 9)}${base}`;
  if (has('tcp')) {
    for (const c of p.connections) {
      lines.push(side(`(j) TCP echo, ${c} conn`, r[`tcpEcho${c}Spindle`], r[`tcpEcho${c}Callback`], 'net callbacks'));
      lines.push(side(`(j) TCP echo, ${c} conn`, r[`tcpEcho${c}Spindle`], r[`tcpEcho${c}Await`], 'net async/await (events.once)'));
    }
  }
  if (has('file')) {
    lines.push(side('(k) file read', r.fileReadSpindle, r.fileReadPromises, 'fs.promises FileHandle.read'));
    lines.push(side('(k) file read', r.fileReadSpindle, r.fileReadSync, 'fs.readSync'));
  }
  if (has('small')) lines.push(side('(l) small files', r.smallFilesSpindle, r.smallFilesPromises, 'fs.promises.readFile'));
  const cpu = doc.info.tcpServerCpuUsPerMsg;
  if (cpu !== undefined && has('tcp')) {
    const at = (c) => `${c} conn ${SERVERS.map((kind) => fmt(cpu[c][kind], 2)).join(' / ')}`;
    lines.push('', `server CPU per echo, us (${SERVERS.map((kind) => SERVER_LABEL[kind]).join(' / ')}): ${p.connections.map(at).join('; ')}`);
  }
  const paths = doc.info.fsReadPaths;
  if (paths !== undefined && (has('file') || has('small'))) {
    const how = (c) => `${fmt(c.inlineReads ?? 0, 0)} inline, ${fmt(c.pooledReads ?? 0, 0)} threadpool, ${fmt(c.budgetSpent ?? 0, 0)} budget yields`;
    lines.push('', `spindle/fs reads (measured batches): (k) ${how(paths.fileRead)}; (l) ${how(paths.smallFiles)}`);
  }
  return lines;
}
