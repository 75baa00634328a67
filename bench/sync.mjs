// Sync benchmarks of the CLI (bench/cli.mjs, `--only sync`): the fiber vocabulary of issue 3 against
// its async/await counterparts, in one run, batch by batch interleaved.
//
//   (f) mutex hand-off among 2 and among 100 contending fibers (lock, yieldNow, unlock) vs the npm
//       package async-mutex among as many async functions (acquire, a trivial op, release): ns per
//       hand-off (acquisitions by a different owner than the previous one)
//   (g) channel ping-pong between two fibers over spindle Channels of capacity 0 and 64 vs two async
//       functions over bench/promise-channel.mjs: ns per round trip
//   (h) a 4-stage pipeline (source, two relays, sink) over 3 channels of capacity 256 moving small
//       messages, vs the same pipeline of async functions over the promise channel: messages/s
//   (i) in one fiber, no contention: lock+unlock, and send+recv on a buffered channel: ns per pair
//
// The fiber side of (f) yields inside the critical section: without a suspension there, a fiber that
// unlocks and relocks finds the lock free and no hand-off ever happens. The async side needs no such
// yield: `await mutex.acquire()` always suspends, so the other functions queue up behind the holder.
import { Mutex as AsyncMutex } from 'async-mutex';

import { Channel, ChannelClosedError, Mutex, spawn, yieldNow } from '../dist/index.js';
import { fmt, lpad, pad, row, summary, tableHeader } from './common.mjs';
import { PromiseChannel, PromiseChannelClosedError } from './promise-channel.mjs';

export const SYNC_TARGETS = {
  uncontendedLockNs: 50,
  bufferedSendRecvNs: 100,
  pipelineVsAsync: 0.5, // spindle messages/s >= 0.5 x async/await messages/s ("within 2x")
};

const PIPELINE_CAPACITY = 256;
const MANY = 100; // contenders in the second hand-off measurement

export function syncParams(quick) {
  return quick
    ? {
        batches: 3,
        handoffs2: 2_000, // per batch, acquisitions in all (fibers)
        handoffs2Async: 10_000, // per batch (async functions)
        handoffsMany: 2_000,
        handoffsManyAsync: 10_000,
        pingPongs: 1_000, // per batch, round trips (fibers)
        pingPongsAsync: 10_000,
        pipelineMessages: 50_000, // per batch, both sides
        uncontended: 100_000, // per batch, pairs
      }
    : {
        batches: 11,
        handoffs2: 20_000,
        handoffs2Async: 100_000,
        handoffsMany: 20_000,
        handoffsManyAsync: 100_000,
        pingPongs: 10_000,
        pingPongsAsync: 100_000,
        pipelineMessages: 1_000_000,
        uncontended: 1_000_000,
      };
}

// ---------------------------------------------------------------------------------------------------
// Measurements: each runs one batch and returns its figure.

/** (f) fibers: `contenders` fibers share `total` acquisitions. ns per hand-off, and hand-offs. */
async function fiberHandoffBatch(contenders, total) {
  const mutex = new Mutex();
  const each = Math.max(1, Math.round(total / contenders));
  let last = -1;
  let handoffs = 0;
  let end = 0;
  const t0 = performance.now();
  const fibers = [];
  for (let j = 0; j < contenders; j++) {
    fibers.push(
      spawn(() => {
        for (let i = 0; i < each; i++) {
          mutex.lock();
          if (last !== j) {
            last = j;
            handoffs++;
          }
          yieldNow();
          mutex.unlock();
        }
        end = performance.now();
      }),
    );
  }
  await Promise.all(fibers.map((f) => f.result()));
  return { ns: ((end - t0) * 1e6) / handoffs, share: handoffs / (each * contenders) };
}

/** (f) async-mutex: `contenders` async functions share `total` acquisitions. */
async function asyncMutexHandoffBatch(contenders, total) {
  const mutex = new AsyncMutex();
  const each = Math.max(1, Math.round(total / contenders));
  let last = -1;
  let handoffs = 0;
  let end = 0;
  const t0 = performance.now();
  const tasks = [];
  for (let j = 0; j < contenders; j++) {
    tasks.push(
      (async () => {
        for (let i = 0; i < each; i++) {
          const release = await mutex.acquire();
          if (last !== j) {
            last = j;
            handoffs++;
          }
          release();
        }
        end = performance.now();
      })(),
    );
  }
  await Promise.all(tasks);
  return { ns: ((end - t0) * 1e6) / handoffs, share: handoffs / (each * contenders) };
}

/** (g) fibers: ns per round trip (send to the echo fiber, receive its reply). */
async function fiberPingPongBatch(capacity, n) {
  const ping = new Channel(capacity);
  const pong = new Channel(capacity);
  const echo = spawn(() => {
    for (;;) {
      const v = ping.recv();
      if (v < 0) return;
      pong.send(v);
    }
  });
  const ns = await spawn(() => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      ping.send(i);
      if (pong.recv() !== i) throw new Error('ping-pong: wrong reply');
    }
    const result = ((performance.now() - t0) * 1e6) / n;
    ping.send(-1);
    return result;
  }).result();
  await echo.result();
  return ns;
}

/** (g) async functions over the promise channel. */
async function asyncPingPongBatch(capacity, n) {
  const ping = new PromiseChannel(capacity);
  const pong = new PromiseChannel(capacity);
  const echo = (async () => {
    for (;;) {
      const v = await ping.recv();
      if (v < 0) return;
      await pong.send(v);
    }
  })();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await ping.send(i);
    if ((await pong.recv()) !== i) throw new Error('ping-pong: wrong reply');
  }
  const ns = ((performance.now() - t0) * 1e6) / n;
  await ping.send(-1);
  await echo;
  return ns;
}

const pipelineSum = (n) => (n * (n - 1)) / 2 + 2 * n; // the sink's sum: each message i arrives as i + 2

/** (h) fibers: source -> relay (+1) -> relay (+1) -> sink. Messages/s. */
async function fiberPipelineBatch(n) {
  const [c1, c2, c3] = [0, 1, 2].map(() => new Channel(PIPELINE_CAPACITY));
  const relay = (from, to) => () => {
    for (;;) {
      let v;
      try {
        v = from.recv();
      } catch (error) {
        if (error instanceof ChannelClosedError) break;
        throw error;
      }
      to.send(v + 1);
    }
    to.close();
  };
  let end = 0;
  const t0 = performance.now();
  const stages = [
    spawn(() => {
      for (let i = 0; i < n; i++) c1.send(i);
      c1.close();
    }),
    spawn(relay(c1, c2)),
    spawn(relay(c2, c3)),
    spawn(() => {
      let sum = 0;
      for (;;) {
        let v;
        try {
          v = c3.recv();
        } catch (error) {
          if (error instanceof ChannelClosedError) break;
          throw error;
        }
        sum += v;
      }
      end = performance.now();
      return sum;
    }),
  ];
  const [, , , sum] = await Promise.all(stages.map((f) => f.result()));
  if (sum !== pipelineSum(n)) throw new Error(`pipeline: sum ${sum}, expected ${pipelineSum(n)}`);
  return n / ((end - t0) / 1000);
}

/** (h) async functions over the promise channel. */
async function asyncPipelineBatch(n) {
  const [c1, c2, c3] = [0, 1, 2].map(() => new PromiseChannel(PIPELINE_CAPACITY));
  const relay = async (from, to) => {
    for (;;) {
      let v;
      try {
        v = await from.recv();
      } catch (error) {
        if (error instanceof PromiseChannelClosedError) break;
        throw error;
      }
      await to.send(v + 1);
    }
    to.close();
  };
  let end = 0;
  const t0 = performance.now();
  const stages = [
    (async () => {
      for (let i = 0; i < n; i++) await c1.send(i);
      c1.close();
    })(),
    relay(c1, c2),
    relay(c2, c3),
    (async () => {
      let sum = 0;
      for (;;) {
        let v;
        try {
          v = await c3.recv();
        } catch (error) {
          if (error instanceof PromiseChannelClosedError) break;
          throw error;
        }
        sum += v;
      }
      end = performance.now();
      return sum;
    })(),
  ];
  const [, , , sum] = await Promise.all(stages);
  if (sum !== pipelineSum(n)) throw new Error(`async pipeline: sum ${sum}, expected ${pipelineSum(n)}`);
  return n / ((end - t0) / 1000);
}

/** (i) in one fiber: ns per uncontended lock+unlock, and per buffered send+recv. */
function uncontendedBatch(n) {
  return spawn(() => {
    const mutex = new Mutex();
    let t0 = performance.now();
    for (let i = 0; i < n; i++) {
      mutex.lock();
      mutex.unlock();
    }
    const lockNs = ((performance.now() - t0) * 1e6) / n;
    const ch = new Channel(64);
    let sum = 0;
    t0 = performance.now();
    for (let i = 0; i < n; i++) {
      ch.send(i);
      sum += ch.recv();
    }
    const chanNs = ((performance.now() - t0) * 1e6) / n;
    if (sum !== (n * (n - 1)) / 2) throw new Error('send+recv: wrong sum');
    return { lockNs, chanNs };
  }).result();
}

// ---------------------------------------------------------------------------------------------------

/** Runs (f)-(i). Returns the section of the JSON document: params, results, info, ratios. */
export async function runSync({ quick, progress }) {
  const P = syncParams(quick);
  const s = {};
  const push = (key, v) => (s[key] ??= []).push(v);
  progress(`(f)-(i) sync primitives vs async/await, interleaved: ${P.batches} batches + 1 warm-up`);
  for (let b = -1; b < P.batches; b++) {
    const u = await uncontendedBatch(P.uncontended);
    const h2 = await fiberHandoffBatch(2, P.handoffs2);
    const h2a = await asyncMutexHandoffBatch(2, P.handoffs2Async);
    const hm = await fiberHandoffBatch(MANY, P.handoffsMany);
    const hma = await asyncMutexHandoffBatch(MANY, P.handoffsManyAsync);
    const p0 = await fiberPingPongBatch(0, P.pingPongs);
    const p0a = await asyncPingPongBatch(0, P.pingPongsAsync);
    const p64 = await fiberPingPongBatch(64, P.pingPongs);
    const p64a = await asyncPingPongBatch(64, P.pingPongsAsync);
    const pl = await fiberPipelineBatch(P.pipelineMessages);
    const pla = await asyncPipelineBatch(P.pipelineMessages);
    if (b < 0) continue; // warm-up
    push('uncontendedLockUnlock', u.lockNs);
    push('bufferedSendRecv', u.chanNs);
    push('mutexHandoff2', h2.ns);
    push('mutexHandoff2AsyncMutex', h2a.ns);
    push('mutexHandoff100', hm.ns);
    push('mutexHandoff100AsyncMutex', hma.ns);
    push('share2', h2.share);
    push('share2Async', h2a.share);
    push('share100', hm.share);
    push('share100Async', hma.share);
    push('pingPongCap0', p0);
    push('pingPongCap0Async', p0a);
    push('pingPongCap64', p64);
    push('pingPongCap64Async', p64a);
    push('pipeline', pl);
    push('pipelineAsync', pla);
    if (b === 0 || b === P.batches - 1) progress(`  batch ${b + 1}/${P.batches} done`);
  }

  const results = {
    mutexHandoff2: summary(s.mutexHandoff2, 'ns/hand-off'),
    mutexHandoff2AsyncMutex: summary(s.mutexHandoff2AsyncMutex, 'ns/hand-off'),
    mutexHandoff100: summary(s.mutexHandoff100, 'ns/hand-off'),
    mutexHandoff100AsyncMutex: summary(s.mutexHandoff100AsyncMutex, 'ns/hand-off'),
    pingPongCap0: summary(s.pingPongCap0, 'ns/round trip'),
    pingPongCap0Async: summary(s.pingPongCap0Async, 'ns/round trip'),
    pingPongCap64: summary(s.pingPongCap64, 'ns/round trip'),
    pingPongCap64Async: summary(s.pingPongCap64Async, 'ns/round trip'),
    pipeline: summary(s.pipeline, 'msgs/s'),
    pipelineAsync: summary(s.pipelineAsync, 'msgs/s'),
    uncontendedLockUnlock: summary(s.uncontendedLockUnlock, 'ns'),
    bufferedSendRecv: summary(s.bufferedSendRecv, 'ns'),
  };
  // Which share of the acquisitions changed the owner (1: every one was a hand-off).
  const info = {
    handoffShare: {
      fibers2: summary(s.share2, 'share').value,
      asyncMutex2: summary(s.share2Async, 'share').value,
      fibers100: summary(s.share100, 'share').value,
      asyncMutex100: summary(s.share100Async, 'share').value,
    },
  };

  const vs = (name, spindle, baseline) => ({ name, value: spindle / baseline, target: null, met: null });
  const pipelineRatio = results.pipeline.value / results.pipelineAsync.value;
  const ratios = [
    vs('(f) hand-off, 2: spindle / async-mutex', results.mutexHandoff2.value, results.mutexHandoff2AsyncMutex.value),
    vs(`(f) hand-off, ${MANY}: spindle / async-mutex`, results.mutexHandoff100.value, results.mutexHandoff100AsyncMutex.value),
    vs('(g) ping-pong cap 0: spindle / async', results.pingPongCap0.value, results.pingPongCap0Async.value),
    vs('(g) ping-pong cap 64: spindle / async', results.pingPongCap64.value, results.pingPongCap64Async.value),
    {
      name: '(h) pipeline msgs/s: spindle / async',
      value: pipelineRatio,
      target: `>= ${SYNC_TARGETS.pipelineVsAsync}`,
      met: pipelineRatio >= SYNC_TARGETS.pipelineVsAsync,
    },
    {
      name: `(i) lock+unlock / ${SYNC_TARGETS.uncontendedLockNs} ns`,
      value: results.uncontendedLockUnlock.value / SYNC_TARGETS.uncontendedLockNs,
      target: '<= 1',
      met: results.uncontendedLockUnlock.value <= SYNC_TARGETS.uncontendedLockNs,
    },
    {
      name: `(i) buffered send+recv / ${SYNC_TARGETS.bufferedSendRecvNs} ns`,
      value: results.bufferedSendRecv.value / SYNC_TARGETS.bufferedSendRecvNs,
      target: '<= 1',
      met: results.bufferedSendRecv.value <= SYNC_TARGETS.bufferedSendRecvNs,
    },
  ];
  return { params: { ...P, contenders: [2, MANY], pipelineStages: 4, pipelineCapacity: PIPELINE_CAPACITY }, results, info, ratios };
}

// ---------------------------------------------------------------------------------------------------
// The table

/** The sync section of the printed report (the ratios are printed by the CLI, with every section's). */
export function reportSync(doc) {
  const r = doc.results;
  const p = doc.params.sync;
  const lines = [];
  lines.push(`sync: medians of ${p.batches} batches; each spindle measurement and its baseline interleaved batch by batch`, '');
  lines.push(...tableHeader());
  lines.push(row('(f) mutex hand-off, 2 fibers', r.mutexHandoff2));
  lines.push(row('(f) ... async-mutex, 2 async functions', r.mutexHandoff2AsyncMutex));
  lines.push(row(`(f) mutex hand-off, ${MANY} fibers`, r.mutexHandoff100));
  lines.push(row(`(f) ... async-mutex, ${MANY} async functions`, r.mutexHandoff100AsyncMutex));
  lines.push(row('(g) channel ping-pong, capacity 0', r.pingPongCap0));
  lines.push(row('(g) ... promise channel, capacity 0', r.pingPongCap0Async));
  lines.push(row('(g) channel ping-pong, capacity 64', r.pingPongCap64));
  lines.push(row('(g) ... promise channel, capacity 64', r.pingPongCap64Async));
  lines.push(row(`(h) 4-stage pipeline, capacity ${PIPELINE_CAPACITY}`, r.pipeline, 0));
  lines.push(row('(h) ... async functions, promise channel', r.pipelineAsync, 0));
  lines.push(row('(i) uncontended lock+unlock', r.uncontendedLockUnlock));
  lines.push(row('(i) buffered send+recv (capacity 64)', r.bufferedSendRecv));
  lines.push('');

  lines.push(`${pad('side by side (medians)', 42)}${lpad('spindle', 12)}${lpad('async/await', 15)}${lpad('ratio', 10)}  ${pad('unit', 15)}ratio of`);
  const side = (label, a, b, digits, ratioLabel) =>
    `  ${pad(label, 40)}${lpad(fmt(a.value, digits), 12)}${lpad(fmt(b.value, digits), 15)}${lpad(fmt(a.value / b.value, 2), 10)}  ${pad(a.unit, 15)}${ratioLabel}`;
  lines.push(side('(f) mutex hand-off, 2 contenders', r.mutexHandoff2, r.mutexHandoff2AsyncMutex, 1, 'time, spindle / async-mutex'));
  lines.push(side(`(f) mutex hand-off, ${MANY} contenders`, r.mutexHandoff100, r.mutexHandoff100AsyncMutex, 1, 'time, spindle / async-mutex'));
  lines.push(side('(g) ping-pong, capacity 0', r.pingPongCap0, r.pingPongCap0Async, 1, 'time, spindle / async'));
  lines.push(side('(g) ping-pong, capacity 64', r.pingPongCap64, r.pingPongCap64Async, 1, 'time, spindle / async'));
  lines.push(
    side(
      `(h) pipeline, ${fmt(p.pipelineMessages, 0)} messages`,
      r.pipeline,
      r.pipelineAsync,
      0,
      'throughput, spindle / async',
    ),
  );
  const sh = doc.info.handoffShare;
  lines.push(
    `  acquisitions that were hand-offs: fibers ${fmt(sh.fibers2 * 100, 0)}% / ${fmt(sh.fibers100 * 100, 0)}%, async-mutex ${fmt(sh.asyncMutex2 * 100, 0)}% / ${fmt(sh.asyncMutex100 * 100, 0)}% (2 / ${MANY} contenders)`,
  );
  return lines;
}
