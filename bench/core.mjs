// Core benchmarks of the CLI (bench/cli.mjs, `--only core`): the fiber switch and its floors.
//
// Measures (each the median of several batches; the machines this runs on are noisy):
//   (a) coroutine resume/suspend round trip from the loop thread, ns
//   (b) the same with 1,000 and 10,000 other fibers parked in wait(), ns
//   (c) spawn+join throughput with a warm carrier pool (one by one, and 100 at a time), fibers/s
//   (d) RSS per parked fiber at 10,000 parked, KiB, with the kernel-side cost per thread beside it
//   (e) floors: the native two-thread Baton round trip (pinned to one core, unpinned) and the
//       async/await equivalent of (a), ns
// (a) and (e) run interleaved batch by batch, so a noisy stretch hits all of them alike.
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

import { coroutine, spawn, suspend, wait } from '../dist/index.js';
import nativeModule from '../dist/cjs/native.js';
import { fmt, lpad, row, summary, tableHeader, tick } from './common.mjs';

const { native } = nativeModule;

export function coreParams(quick) {
  return quick
    ? {
        batches: 3,
        roundTrips: 2_000, // per batch, (a) and (b)
        floorIterations: 2_000, // per batch, Baton floors
        asyncRoundTrips: 20_000, // per batch
        spawnJoins: 2_000, // per batch, (c), both variants
        spawnWarmup: 500,
        parkedSteps: [1_000, 10_000],
      }
    : {
        batches: 15,
        roundTrips: 30_000,
        floorIterations: 30_000,
        asyncRoundTrips: 200_000,
        spawnJoins: 20_000,
        spawnWarmup: 5_000,
        parkedSteps: [1_000, 10_000],
      };
}

const BATCH_SPAWN = 100; // (c) batch variant: spawn this many, then join them all
const PARK_CHUNK = 1_000; // (b)/(d): fibers are parked this many at a time
const STACK_KIB = 1024; // DEFAULT_STACK_SIZE / 1024: the size of each carrier's stack mapping

const TARGETS = {
  resumeVsFloor: 1.2,
  parkedVsIdle: 1.2,
  spawnJoinPerSec: 200_000,
  rssPerParkedKiB: 16,
};

// Optional forced GC (for cleaner memory deltas): enable it at run time, without a node flag.
let gc = () => {};
let gcForced = false;
try {
  v8.setFlagsFromString('--expose-gc');
  gc = vm.runInNewContext('gc');
  gcForced = typeof gc === 'function';
} catch {
  // no forced GC: memory deltas then include some garbage
}

// ---------------------------------------------------------------------------------------------------
// Helpers

function readKv(file) {
  const out = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(-?\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

function tryRead(fn) {
  try {
    return fn();
  } catch {
    return null;
  }
}

// /proc/slabinfo (root only): per cache, bytes held (num_objs * objsize) and the object size.
function readSlabinfo() {
  return tryRead(() => {
    const caches = {};
    for (const line of fs.readFileSync('/proc/slabinfo', 'utf8').split('\n').slice(2)) {
      const p = line.trim().split(/\s+/);
      if (p.length > 5) caches[p[0]] = { bytes: Number(p[2]) * Number(p[3]), objsize: Number(p[3]) };
    }
    return caches;
  });
}

// Anonymous read-write mappings of this process grouped by size (kB): count and resident kB. Thread
// stacks are the group of STACK_KIB-sized mappings.
function readStackMappings() {
  return tryRead(() => {
    let count = 0;
    let rss = 0;
    let current = false;
    for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      let m;
      if ((m = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ (\d+)/.exec(line))) {
        current = false;
        if (m[1] === 'rw-p' && m[2] === '0') current = 'maybe';
      } else if (current === 'maybe' && (m = /^Size:\s+(\d+) kB/.exec(line))) {
        const kb = Number(m[1]);
        current = kb === STACK_KIB || kb === STACK_KIB + 4 ? 'stack' : false;
      } else if (current === 'stack' && (m = /^Rss:\s+(\d+) kB/.exec(line))) {
        count++;
        rss += Number(m[1]);
        current = false;
      }
    }
    return { count, rssKiB: rss };
  });
}

// System-wide kernel figures, plus the system's and this process's thread counts.
function kernelSnapshot() {
  return {
    // 4th field of /proc/loadavg: running/total scheduling entities (threads) in the system.
    systemThreads: tryRead(() => Number(fs.readFileSync('/proc/loadavg', 'utf8').split(/\s+/)[3].split('/')[1])),
    threads: tryRead(() => readKv('/proc/self/status').Threads),
    meminfo: tryRead(() => readKv('/proc/meminfo')),
    slab: readSlabinfo(),
  };
}

function memorySnapshot() {
  gc();
  const mu = process.memoryUsage();
  return {
    mu,
    status: tryRead(() => readKv('/proc/self/status')),
    meminfo: tryRead(() => readKv('/proc/meminfo')),
    slab: readSlabinfo(),
    stacks: readStackMappings(),
    carriers: native.stats().carrierThreads,
  };
}

// ---------------------------------------------------------------------------------------------------
// Measurements

// (a): resumes from the loop thread; ns per resume/suspend round trip.
function resumeBatch(co, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) co.resume();
  return ((performance.now() - t0) * 1e6) / n;
}

// (e) async/await: two async functions handing a value back and forth through resolved promises.
async function asyncBatch(n) {
  let toB;
  let toA;
  const b = (async () => {
    for (;;) {
      const v = await new Promise((resolve) => {
        toB = resolve;
      });
      if (v < 0) return;
      toA(v);
    }
  })();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const p = new Promise((resolve) => {
      toA = resolve;
    });
    toB(i);
    await p;
  }
  const ns = ((performance.now() - t0) * 1e6) / n;
  toB(-1);
  await b;
  return ns;
}

// (c), inside a fiber.
function spawnJoinBatch(n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) spawn(() => i).join();
  return n / ((performance.now() - t0) / 1000);
}

function spawnBatchJoinBatch(n) {
  const fibers = new Array(BATCH_SPAWN);
  const rounds = Math.max(1, Math.round(n / BATCH_SPAWN));
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < BATCH_SPAWN; j++) {
      const k = j;
      fibers[j] = spawn(() => k);
    }
    for (let j = 0; j < BATCH_SPAWN; j++) fibers[j].join();
  }
  return (rounds * BATCH_SPAWN) / ((performance.now() - t0) / 1000);
}

const STOP = Symbol('stop');

/**
 * Runs (a)-(e). Returns the section of the JSON document: params, results, info, memory, ratios,
 * unmeasured.
 */
export async function runCore({ quick, progress }) {
  const P = coreParams(quick);
  const co = coroutine(() => {
    for (;;) suspend();
  });
  co.resume(); // start it: its carrier thread exists from here on

  // ---- (a) + (e), interleaved ---------------------------------------------------------------------
  progress(`(a)+(e) interleaved: ${P.batches} batches + 1 warm-up`);
  const aS = [];
  const pinS = [];
  const freeS = [];
  const asyncS = [];
  for (let b = -1; b < P.batches; b++) {
    const a = resumeBatch(co, P.roundTrips);
    const pin = native.benchBatonFloor(P.floorIterations, 1, true);
    const free = native.benchBatonFloor(P.floorIterations, 1, false);
    const as = await asyncBatch(P.asyncRoundTrips);
    if (b < 0) continue; // warm-up
    aS.push(a);
    pinS.push(pin);
    freeS.push(free);
    asyncS.push(as);
  }

  // ---- (c) spawn+join, warm pool, inside one fiber --------------------------------------------------
  progress(`(c) spawn+join: ${P.batches} batches of ${P.spawnJoins} each variant`);
  const driver = spawn(
    () => {
      for (let i = 0; i < P.spawnWarmup; i++) spawn(() => i).join();
      spawnBatchJoinBatch(P.spawnWarmup);
      const seq = [];
      const batch = [];
      for (let b = 0; b < P.batches; b++) {
        seq.push(spawnJoinBatch(P.spawnJoins));
        batch.push(spawnBatchJoinBatch(P.spawnJoins));
      }
      return { seq, batch };
    },
    { name: 'bench-spawn-join' },
  );
  const spawnResults = await driver.result();

  // ---- (b) + (d): parked fibers ------------------------------------------------------------------
  let release;
  const never = new Promise((resolve) => {
    release = resolve;
  });
  const parkedFibers = [];
  let entered = 0;
  let target = 0;
  let reached = null;
  const parkedSamples = {};
  let before = null;
  let after = null;
  const kernelChunks = [];
  try {
    await tick();
    before = memorySnapshot();
    for (const step of P.parkedSteps) {
      progress(`(b) parking ${step} fibers`);
      // In chunks, with a snapshot of the system-wide kernel figures around each: a chunk during which
      // other processes started or ended threads is left out of the kernel figures.
      while (parkedFibers.length < step) {
        const k0 = kernelSnapshot();
        target = Math.min(step, parkedFibers.length + PARK_CHUNK);
        const chunkParked = new Promise((resolve) => {
          reached = resolve;
        });
        while (parkedFibers.length < target) {
          parkedFibers.push(
            spawn(() => {
              if (++entered === target) reached();
              wait(never);
            }),
          );
        }
        await chunkParked; // every fiber ran up to its wait() ...
        while (!parkedFibers.every((f) => f.status === 'suspended')) await tick(); // ... and parked in it
        kernelChunks.push([k0, kernelSnapshot()]);
      }
      if (step === P.parkedSteps[P.parkedSteps.length - 1]) after = memorySnapshot();
      resumeBatch(co, P.roundTrips); // warm-up
      const s = [];
      for (let b = 0; b < P.batches; b++) s.push(resumeBatch(co, P.roundTrips));
      parkedSamples[step] = s;
    }
  } finally {
    progress('releasing the parked fibers');
    release();
    await Promise.allSettled(parkedFibers.map((f) => f.result()));
  }

  // (a) once more, after the release: a drift check on the noisy machine (informational).
  const aAfter = [];
  resumeBatch(co, P.roundTrips);
  for (let b = 0; b < P.batches; b++) aAfter.push(resumeBatch(co, P.roundTrips));
  try {
    co.throwInto(STOP); // ends the coroutine
  } catch (err) {
    if (err !== STOP) throw err;
  }

  // ---- results --------------------------------------------------------------------------------------
  const nParked = P.parkedSteps[P.parkedSteps.length - 1];
  const results = {
    resumeRoundTrip: summary(aS, 'ns'),
    resumeRoundTripParked1k: summary(parkedSamples[1000], 'ns'),
    resumeRoundTripParked10k: summary(parkedSamples[10000], 'ns'),
    spawnJoin: summary(spawnResults.seq, 'fibers/s'),
    spawnJoinBatch100: summary(spawnResults.batch, 'fibers/s'),
    rssPerParkedFiber: {
      value: (after.mu.rss - before.mu.rss) / 1024 / nParked,
      unit: 'KiB',
      parked: nParked,
    },
    floorSameCore: summary(pinS, 'ns'),
    floorUnpinned: summary(freeS, 'ns'),
    asyncAwaitRoundTrip: summary(asyncS, 'ns'),
  };
  const info = { resumeRoundTripAfterRelease: summary(aAfter, 'ns') };

  // Memory detail at 10,000 parked: what can be read, per fiber/thread.
  const unmeasured = [];
  if (!gcForced) unmeasured.push('no forced GC was available: the memory deltas include some garbage');
  const mem = {
    parked: nParked,
    forcedGc: gcForced,
    rssDeltaKiB: (after.mu.rss - before.mu.rss) / 1024,
    heapTotalPerFiberKiB: (after.mu.heapTotal - before.mu.heapTotal) / 1024 / nParked,
    heapUsedPerFiberKiB: (after.mu.heapUsed - before.mu.heapUsed) / 1024 / nParked,
  };
  if (before.status && after.status) {
    mem.threadsBefore = before.status.Threads;
    mem.threadsAfter = after.status.Threads;
    mem.threadsDelta = after.status.Threads - before.status.Threads;
    mem.vmRssDeltaKiB = after.status.VmRSS - before.status.VmRSS;
    if (mem.threadsDelta > 0) {
      mem.pageTablesPerThreadKiB = (after.status.VmPTE - before.status.VmPTE) / mem.threadsDelta;
      mem.vmSizePerThreadKiB = (after.status.VmSize - before.status.VmSize) / mem.threadsDelta;
    }
  } else {
    unmeasured.push('/proc/self/status is not readable: no thread count, VmRSS or page-table (VmPTE) figures');
  }
  // Kernel figures: system-wide deltas over the parking chunks during which no other process started
  // or ended threads (the system's thread count moved by ours, within 2%), per system-wide new thread.
  const usable = [];
  let chunksReadable = 0;
  for (const [k0, k1] of kernelChunks) {
    if (![k0.systemThreads, k1.systemThreads, k0.threads, k1.threads].every(Number.isFinite) || !k0.meminfo || !k1.meminfo) continue;
    chunksReadable++;
    const ours = k1.threads - k0.threads;
    const sys = k1.systemThreads - k0.systemThreads;
    if (ours > 0 && Math.abs(sys - ours) <= 0.02 * ours) usable.push({ k0, k1, sys });
  }
  const threads = usable.reduce((n, c) => n + c.sys, 0);
  const kernelDeltasUsable = threads >= Math.min(1000, nParked / 2);
  mem.kernelChunks = { total: kernelChunks.length, usable: usable.length, threads };
  mem.kernelSource = kernelDeltasUsable ? 'measured' : 'estimate';
  if (chunksReadable === 0) {
    unmeasured.push('/proc/loadavg, /proc/self/status or /proc/meminfo are not readable: no kernel stack or slab deltas; figures shown are estimates');
  } else if (!kernelDeltasUsable) {
    unmeasured.push(
      `kernel stack and slab per thread: not measurable in this run, other processes started or ended threads during ${kernelChunks.length - usable.length} of ${kernelChunks.length} parking chunks (/proc/loadavg); figures shown are estimates`,
    );
  } else if (usable.length < kernelChunks.length) {
    unmeasured.push(
      `kernel figures use ${usable.length} of ${kernelChunks.length} parking chunks (${threads} threads): other processes started or ended threads during the rest`,
    );
  }
  const sumDelta = (get) => usable.reduce((acc, c) => acc + (get(c.k1) - get(c.k0)), 0);
  if (before.stacks && after.stacks && after.stacks.count > before.stacks.count) {
    mem.stackMappingsDelta = after.stacks.count - before.stacks.count;
    mem.stackRssPerThreadKiB = (after.stacks.rssKiB - before.stacks.rssKiB) / mem.stackMappingsDelta;
  } else {
    unmeasured.push('thread-stack residency (/proc/self/smaps) could not be read');
  }
  if (kernelDeltasUsable && 'KernelStack' in usable[0].k1.meminfo) {
    mem.kernelStackPerThreadKiB = sumDelta((k) => k.meminfo.KernelStack) / threads;
    mem.slabUnreclaimablePerThreadKiB = sumDelta((k) => k.meminfo.SUnreclaim) / threads;
    mem.slabPerThreadKiB = sumDelta((k) => k.meminfo.Slab) / threads;
  } else if (kernelDeltasUsable) {
    unmeasured.push('/proc/meminfo has no KernelStack/SUnreclaim: no kernel stack or slab figures');
  }
  const lastSlab = kernelChunks.at(-1)?.[1].slab;
  if (lastSlab?.task_struct) mem.taskStructBytes = lastSlab.task_struct.objsize;
  if (kernelDeltasUsable && usable.every((c) => c.k0.slab && c.k1.slab)) {
    const top = Object.keys(lastSlab)
      .map((name) => [name, sumDelta((k) => k.slab[name]?.bytes ?? 0) / threads])
      .filter(([, per]) => per >= 64)
      .sort((x, y) => y[1] - x[1])
      .slice(0, 6);
    mem.slabTopPerThreadBytes = Object.fromEntries(top.map(([n, v]) => [n, Math.round(v)]));
  } else if (!lastSlab) {
    unmeasured.push('/proc/slabinfo is not readable (root only): no per-cache slab breakdown (task_struct etc.)');
  }
  unmeasured.push(
    'kernel stack and slab deltas come from /proc/meminfo, which is system-wide: other processes still add noise (allocations without new threads)',
    'kernel memory (kernel stacks, slab, page tables) is not in RSS; the per-process split of kernel stack and slab is not exposed by /proc/self',
    "the carriers' 1 MiB stacks are virtual reservations: only their touched pages count, which depends on what a fiber ran before parking",
  );
  if (mem.stackRssPerThreadKiB !== undefined) {
    mem.otherRssPerFiberKiB =
      (mem.rssDeltaKiB - mem.heapUsedPerFiberKiB * nParked - mem.stackRssPerThreadKiB * mem.stackMappingsDelta) / nParked;
  }
  if (!kernelDeltasUsable) {
    // Estimates: THREAD_SIZE is 16 KiB on x86-64 and arm64 (4 KiB pages); one task_struct per thread
    // is a lower bound of the slab cost.
    mem.kernelStackEstimateKiB = process.arch === 'x64' || process.arch === 'arm64' ? 16 : undefined;
    mem.slabEstimatePerThreadKiB = mem.taskStructBytes !== undefined ? mem.taskStructBytes / 1024 : undefined;
  }
  const kStack = mem.kernelStackPerThreadKiB ?? mem.kernelStackEstimateKiB;
  const kSlab = mem.slabUnreclaimablePerThreadKiB ?? mem.slabEstimatePerThreadKiB;
  // With the inplace backend parked fibers create no threads: no per-thread kernel cost to add.
  mem.kernelPerThreadKiB =
    mem.threadsDelta === 0 ? 0 : kStack !== undefined ? kStack + (kSlab ?? 0) + (mem.pageTablesPerThreadKiB ?? 0) : undefined;
  mem.totalPerFiberKiB = mem.kernelPerThreadKiB !== undefined ? results.rssPerParkedFiber.value + mem.kernelPerThreadKiB : undefined;

  const bestFloor = Math.min(results.floorSameCore.value, results.floorUnpinned.value);
  const a = results.resumeRoundTrip.value;
  const ratios = [
    { name: '(a) / best floor (e)', value: a / bestFloor, target: `<= ${TARGETS.resumeVsFloor}`, met: a / bestFloor <= TARGETS.resumeVsFloor },
    {
      name: '(b) 1,000 parked / (a)',
      value: results.resumeRoundTripParked1k.value / a,
      target: `<= ${TARGETS.parkedVsIdle}`,
      met: results.resumeRoundTripParked1k.value / a <= TARGETS.parkedVsIdle,
    },
    {
      name: '(b) 10,000 parked / (a)',
      value: results.resumeRoundTripParked10k.value / a,
      target: `<= ${TARGETS.parkedVsIdle}`,
      met: results.resumeRoundTripParked10k.value / a <= TARGETS.parkedVsIdle,
    },
    {
      name: '(c) spawn+join / 200,000/s',
      value: results.spawnJoin.value / TARGETS.spawnJoinPerSec,
      target: '>= 1',
      met: results.spawnJoin.value >= TARGETS.spawnJoinPerSec,
    },
    {
      name: '(c) batch of 100 / 200,000/s',
      value: results.spawnJoinBatch100.value / TARGETS.spawnJoinPerSec,
      target: '>= 1',
      met: results.spawnJoinBatch100.value >= TARGETS.spawnJoinPerSec,
    },
    {
      name: '(d) RSS per parked fiber / 16 KiB',
      value: results.rssPerParkedFiber.value / TARGETS.rssPerParkedKiB,
      target: '<= 1',
      met: results.rssPerParkedFiber.value <= TARGETS.rssPerParkedKiB,
    },
    { name: '(a) / async-await (e)', value: a / results.asyncAwaitRoundTrip.value, target: null, met: null },
  ];

  return { params: { ...P, batchSpawn: BATCH_SPAWN }, results, info, memory: mem, ratios, unmeasured };
}

// ---------------------------------------------------------------------------------------------------
// The table

/** The core section of the printed report (the ratios are printed by the CLI, with every section's). */
export function reportCore(doc) {
  const r = doc.results;
  const m = doc.memory;
  const lines = [];
  lines.push(`core: medians of ${doc.params.core.batches} batches; (a) and (e) interleaved batch by batch`, '');
  lines.push(...tableHeader());
  lines.push(row('(a) resume/suspend round trip', r.resumeRoundTrip));
  lines.push(row('(b) ... with 1,000 fibers parked', r.resumeRoundTripParked1k));
  lines.push(row('(b) ... with 10,000 fibers parked', r.resumeRoundTripParked10k));
  lines.push(row('(c) spawn+join, one at a time', r.spawnJoin, 0));
  lines.push(row(`(c) spawn ${BATCH_SPAWN}, then join all`, r.spawnJoinBatch100, 0));
  lines.push(row(`(d) RSS per parked fiber (${fmt(m.parked, 0)} parked)`, r.rssPerParkedFiber));
  lines.push(row('(e) floor: Baton round trip, same core', r.floorSameCore));
  lines.push(row('(e) floor: Baton round trip, unpinned', r.floorUnpinned));
  lines.push(row('(e) async/await ping-pong round trip', r.asyncAwaitRoundTrip));
  lines.push(row('    (a) again, after the release (drift)', doc.info.resumeRoundTripAfterRelease));
  lines.push('');

  lines.push(`memory at ${fmt(m.parked, 0)} parked fibers (per fiber = per carrier thread)`);
  lines.push(
    `  RSS (user memory)    ${lpad(fmt(r.rssPerParkedFiber.value), 7)} KiB   (process.memoryUsage().rss delta ${fmt(m.rssDeltaKiB / 1024)} MiB; VmRSS delta ${fmt((m.vmRssDeltaKiB ?? NaN) / 1024)} MiB)`,
  );
  lines.push(`    of which JS heap   ${lpad(fmt(m.heapUsedPerFiberKiB), 7)} KiB   (heapUsed${m.forcedGc ? ' after a forced GC' : ''}; heapTotal grew ${fmt(m.heapTotalPerFiberKiB)} KiB)`);
  lines.push(
    `    of which stacks    ${lpad(fmt(m.stackRssPerThreadKiB), 7)} KiB   (resident pages of the ${STACK_KIB} KiB stack mappings, /proc/self/smaps; ${fmt(m.stackMappingsDelta ?? NaN, 0)} new)`,
  );
  lines.push(`    other              ${lpad(fmt(m.otherRssPerFiberKiB), 7)} KiB   (the rest: V8 per-thread data, malloc arenas, TLS...)`);
  lines.push(
    `  threads              ${lpad(fmt(m.threadsDelta ?? NaN, 0), 7)} new     (Threads ${fmt(m.threadsBefore ?? NaN, 0)} -> ${fmt(m.threadsAfter ?? NaN, 0)}, /proc/self/status)`,
  );
  if (m.threadsDelta === 0) {
    lines.push('  no new threads: parked fibers stay on the loop thread (inplace backend); no kernel cost per fiber');
    return lines;
  }
  const measured = m.kernelSource === 'measured';
  const ts = m.taskStructBytes ? `task_struct is ${fmt(m.taskStructBytes, 0)} B` : '';
  lines.push(
    measured
      ? `  kernel stack         ${lpad(fmt(m.kernelStackPerThreadKiB), 7)} KiB   per thread (/proc/meminfo KernelStack delta over ${m.kernelChunks.usable}/${m.kernelChunks.total} chunks; 16 KiB expected on x86-64)`
      : `  kernel stack         ${lpad(fmt(m.kernelStackEstimateKiB), 7)} KiB   per thread, ESTIMATE (THREAD_SIZE; the KernelStack delta was unusable, see below)`,
  );
  lines.push(
    measured
      ? `  slab (unreclaimable) ${lpad(fmt(m.slabUnreclaimablePerThreadKiB), 7)} KiB   per thread (/proc/meminfo SUnreclaim delta${ts ? `; ${ts}` : ''})`
      : `  slab                 ${lpad(fmt(m.slabEstimatePerThreadKiB), 7)} KiB   per thread, ESTIMATE (lower bound: one task_struct, /proc/slabinfo)`,
  );
  if (m.slabTopPerThreadBytes) {
    lines.push(`    largest caches     ${Object.entries(m.slabTopPerThreadBytes).map(([k, v]) => `${k} ${v} B`).join(', ')}  (/proc/slabinfo, per thread)`);
  }
  lines.push(`  page tables          ${lpad(fmt(m.pageTablesPerThreadKiB), 7)} KiB   per thread (VmPTE delta)`);
  lines.push(`  kernel, total        ${lpad(fmt(m.kernelPerThreadKiB), 7)} KiB   per thread (not in RSS)${measured ? '' : ', ESTIMATE'}`);
  lines.push(`  RSS + kernel         ${lpad(fmt(m.totalPerFiberKiB), 7)} KiB   per parked fiber${measured ? '' : ', ESTIMATE'}`);
  lines.push('  not measured / caveats:');
  for (const u of doc.unmeasured) lines.push(`    - ${u}`);
  return lines;
}
