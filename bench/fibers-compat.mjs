// Benchmarks of the fibers-compatible layer (spindle/fibers) against the core it is built on, measured
// in the same run, batches interleaved so that drift hits both sides alike. The CLI's "fibers" section
// (runFibers/reportFibers below); `benchFibersCompat` is the measurement itself:
//
// Returns medians of per-batch samples, in ns per operation:
//   runYieldNs            Fiber run()/Fiber.yield() round trip, from the loop thread
//   coreRoundTripNs       the core's Coroutine resume()/suspend() round trip, from the loop thread
//   createRunFinishNs     Fiber(fn).run() of a function that returns at once, from the loop thread
//   coreCreateResumeNs    the core's coroutine(fn).resume() of the same, from the loop thread
//   coreSpawnJoinNs       the core's spawn(fn).join() inside a fiber (warm carrier pool)
// plus `ratios` (layer / core) and `vsFibers` (layer / the old fibers package on Node 14 here:
// 1.35 us round trip, 2.6 us create-run-finish; figures from issue 5).
import Fiber from '../dist/fibers/index.js';
import { coroutine, spawn, suspend } from '../dist/index.js';

import { fmt, lpad, pad, summary, tableHeader, row } from './common.mjs';

const OLD_FIBERS = { runYieldNs: 1350, createRunFinishNs: 2600 };

function median(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function perOp(n, fn) {
  const t0 = performance.now();
  fn(n);
  return ((performance.now() - t0) * 1e6) / n;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Measures the layer and the core in one run. `quick` uses fewer and smaller batches (a smoke run).
 * @returns {Promise<{ runYieldNs: number, createRunFinishNs: number, coreRoundTripNs: number,
 *   coreSpawnJoinNs: number, coreCreateResumeNs: number, ratios: object, vsFibers: object,
 *   params: object }>}
 */
export async function benchFibersCompat({ quick = false } = {}) {
  const params = quick ? { batches: 5, roundTrips: 2_000, creates: 500 } : { batches: 21, roundTrips: 20_000, creates: 5_000 };

  const STOP = Symbol('stop');
  const compat = Fiber(() => {
    for (;;) if (Fiber.yield() === STOP) return;
  });
  compat.run();
  const core = coroutine(() => {
    for (;;) if (suspend() === STOP) return;
  });
  core.resume();

  const runYield = (n) => {
    for (let i = 0; i < n; i++) compat.run();
  };
  const resumeSuspend = (n) => {
    for (let i = 0; i < n; i++) core.resume();
  };
  const noop = () => 0;
  const createRunFinish = (n) => {
    for (let i = 0; i < n; i++) Fiber(noop).run();
  };
  const createResume = (n) => {
    for (let i = 0; i < n; i++) coroutine(noop).resume();
  };
  const spawnJoin = (n) =>
    spawn(() => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) spawn(noop).join();
      return ((performance.now() - t0) * 1e6) / n;
    }).result();

  // Warm-up: carrier threads exist, code is optimized.
  runYield(params.roundTrips);
  resumeSuspend(params.roundTrips);
  createRunFinish(params.creates);
  createResume(params.creates);
  await spawnJoin(params.creates);

  const s = { runYieldNs: [], coreRoundTripNs: [], createRunFinishNs: [], coreCreateResumeNs: [], coreSpawnJoinNs: [] };
  for (let b = 0; b < params.batches; b++) {
    // Alternate the order, so that neither side always runs first.
    if (b % 2 === 0) {
      s.runYieldNs.push(perOp(params.roundTrips, runYield));
      s.coreRoundTripNs.push(perOp(params.roundTrips, resumeSuspend));
      s.createRunFinishNs.push(perOp(params.creates, createRunFinish));
      s.coreCreateResumeNs.push(perOp(params.creates, createResume));
    } else {
      s.coreRoundTripNs.push(perOp(params.roundTrips, resumeSuspend));
      s.runYieldNs.push(perOp(params.roundTrips, runYield));
      s.coreCreateResumeNs.push(perOp(params.creates, createResume));
      s.createRunFinishNs.push(perOp(params.creates, createRunFinish));
    }
    s.coreSpawnJoinNs.push(await spawnJoin(params.creates));
    await tick();  // let the loop breathe (finalizers, timers)
  }
  compat.run(STOP);
  core.resume(STOP);

  const r = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, median(v)]));
  return {
    ...r,
    ratios: {
      runYieldVsCoreRoundTrip: r.runYieldNs / r.coreRoundTripNs,
      createRunFinishVsCoreCreateResume: r.createRunFinishNs / r.coreCreateResumeNs,
      createRunFinishVsCoreSpawnJoin: r.createRunFinishNs / r.coreSpawnJoinNs,
    },
    vsFibers: {
      runYield: r.runYieldNs / OLD_FIBERS.runYieldNs,
      createRunFinish: r.createRunFinishNs / OLD_FIBERS.createRunFinishNs,
    },
    params,
    samples: s,
  };
}

/** The CLI section: the same figures as results, ratios to the core (target) and to the old fibers. */
export async function runFibers({ quick, progress }) {
  progress('fibers: spindle/fibers run/yield and create-run-finish against the core');
  const r = await benchFibersCompat({ quick });
  const results = {
    fibersRunYield: summary(r.samples.runYieldNs, 'ns'),
    fibersCoreRoundTrip: summary(r.samples.coreRoundTripNs, 'ns'),
    fibersCreateRunFinish: summary(r.samples.createRunFinishNs, 'ns'),
    fibersCoreCreateResume: summary(r.samples.coreCreateResumeNs, 'ns'),
    fibersCoreSpawnJoin: summary(r.samples.coreSpawnJoinNs, 'ns'),
  };
  const layer = (name, value) => ({ name, value, target: '<= 1.1', met: value <= 1.1 });
  const old = (name, value) => ({ name, value, target: null, met: null });
  const ratios = [
    layer('run/yield / core resume/suspend', r.ratios.runYieldVsCoreRoundTrip),
    layer('create-run-finish / core create+resume', r.ratios.createRunFinishVsCoreCreateResume),
    old('run/yield / old fibers (1.35 us)', r.vsFibers.runYield),
    old('create-run-finish / old fibers (2.6 us)', r.vsFibers.createRunFinish),
  ];
  return { params: r.params, results, info: {}, ratios };
}

export function reportFibers(doc) {
  const r = doc.results;
  return [
    `fibers: medians of ${doc.params.fibers.batches} batches; the layer and the core interleaved batch by batch`,
    '',
    ...tableHeader(),
    row('spindle/fibers run()/yield() round trip', r.fibersRunYield),
    row('... core resume()/suspend() round trip', r.fibersCoreRoundTrip),
    row('spindle/fibers Fiber(fn).run(), fn returns', r.fibersCreateRunFinish),
    row('... core coroutine(fn).resume()', r.fibersCoreCreateResume),
    row('... core spawn(fn).join() in a fiber', r.fibersCoreSpawnJoin),
    `${pad('old fibers 5.0.3 on Node 14, this machine', 44)}${lpad(fmt(1350), 12)} ns round trip, ${fmt(2600)} ns create-run-finish, 12.1 KiB per parked fiber`,
  ];
}

// `node bench/fibers-compat.mjs [--quick]` prints the result.
if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchFibersCompat({ quick: process.argv.includes('--quick') });
  delete r.samples;
  console.log(JSON.stringify(r, null, 2));
}
