// 1,000 concurrent connections to a spindle/net echo server on loopback: a fiber per connection on
// both sides, all 1,000 open at the same time, every byte echoed to the right client, everything
// closed and the process exiting cleanly, within a bounded time.
//
// It runs in a child process, so that the file-descriptor limit can be raised for that process alone:
// 1,000 connections take 2,000 descriptors here (both ends live in one process). When the soft
// RLIMIT_NOFILE is lower than that, the child is started through bash with `ulimit -S -n` raised up to
// the hard limit (nothing system-wide changes); when even the hard limit is too low the test is skipped.
// (Node itself raises its soft limit to the hard one at startup, so the bash step is a belt and braces;
// the child reports the limit it ran with, and the test checks it.)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { esmEntry, root } from './helpers.js';

const CONNECTIONS = 1_000;
const ROUNDS = 3;
/** Descriptors the child needs: two per connection, plus what Node itself and the test harness hold. */
const NEEDED_FDS = 2 * CONNECTIONS + 512;

const dir = mkdtempSync(path.join(tmpdir(), 'spindle-net-scale-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The soft and hard RLIMIT_NOFILE of this process, from /proc (Infinity for "unlimited"). */
function fdLimits(): { soft: number; hard: number } {
  const parse = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const [soft, hard] = line!.trim().split(/\s+/).slice(3, 5);
    return { soft: parse(soft), hard: parse(hard) };
  } catch {
    const r = spawnSync('bash', ['-c', 'ulimit -S -n; ulimit -H -n'], { encoding: 'utf8' });
    const [soft, hard] = r.stdout.trim().split('\n');
    return { soft: parse(soft), hard: parse(hard) };
  }
}

const SCRIPT = String.raw`
import { Barrier, spawn, sleep } from ${JSON.stringify(esmEntry)};
import { listen, connect } from ${JSON.stringify(esmEntry.replace(/index\.js$/, 'net/index.js'))};

const N = Number(process.env.CONNECTIONS);
const ROUNDS = Number(process.env.ROUNDS);
const started = performance.now();
const deadline = setTimeout(() => {
  process.stderr.write('net-scale: gave up after 90 s\n');
  process.exit(3);
}, 90_000);

// The server: an accept loop, a fiber per connection echoing lines.
const server = listen({ port: 0, host: '127.0.0.1', backlog: 2048 });
const port = server.address().port;
let open = 0;
let maxOpen = 0;
let served = 0;
let serverErrors = 0;
const acceptor = spawn(() => {
  for (let i = 0; i < N; i++) {
    const socket = server.accept({ timeout: 60_000 });
    spawn(() => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      try {
        for (;;) {
          const line = socket.readUntil('\n');
          socket.write(line);
        }
      } catch (error) {
        if (error.name !== 'UnexpectedEofError' || error.partial?.length) serverErrors++;
      } finally {
        socket.close();
        open--;
        served++;
      }
    });
  }
  server.close();
});

// The clients: a fiber each; all connected (and each one echo verified) before any goes on.
const allConnected = new Barrier(N);
let mismatches = 0;
let connectedAtBarrier = 0;
const clients = [];
for (let i = 0; i < N; i++) {
  clients.push(
    spawn(() => {
      const s = connect({ port, host: '127.0.0.1', timeout: 60_000 });
      try {
        for (let round = 0; round < ROUNDS; round++) {
          const msg = 'client ' + i + ' round ' + round + ' ' + 'x'.repeat(i % 100) + '\n';
          s.write(msg);
          if (s.readUntil('\n', { timeout: 60_000 }).toString() !== msg) mismatches++;
          if (round === 0) {
            allConnected.wait({ timeout: 60_000 });
            connectedAtBarrier = Math.max(connectedAtBarrier, open);
          }
        }
      } finally {
        s.close();
      }
    }).result(),
  );
}

await Promise.all(clients);
await acceptor.result();
// The server's fibers see EOF and finish.
const t0 = performance.now();
while (served < N && performance.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 10));
clearTimeout(deadline);
const limits = (await import('node:fs')).readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files')) ?? '';
const fdSoftLimit = limits.trim().split(/\s+/)[3];
process.stdout.write(JSON.stringify({ n: N, fdSoftLimit, maxOpen, connectedAtBarrier, served, open, mismatches, serverErrors, ms: performance.now() - started }) + '\n');
`;

describe('spindle/net at scale', () => {
  it(`serves ${CONNECTIONS.toLocaleString('en-US')} concurrent connections on loopback`, { timeout: 150_000 }, (ctx) => {
    const { soft, hard } = fdLimits();
    if (hard < NEEDED_FDS) {
      ctx.skip(); // cannot raise the soft limit far enough without privileges
      return;
    }
    const script = path.join(dir, 'scale.mjs');
    writeFileSync(script, SCRIPT);
    const env = { ...process.env, CONNECTIONS: String(CONNECTIONS), ROUNDS: String(ROUNDS) };
    const opts = { encoding: 'utf8' as const, timeout: 120_000, env, cwd: root };
    // Raise the soft limit for the child alone when it is too low (never beyond the hard limit).
    const r =
      soft >= NEEDED_FDS
        ? spawnSync(process.execPath, [script], opts)
        : spawnSync('bash', ['-c', `ulimit -S -n ${Math.min(hard, 4 * NEEDED_FDS)} && exec "$0" "$1"`, process.execPath, script], opts);

    expect(r.error).toBeUndefined();
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0); // a clean exit with thousands of sockets closed
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
    if (result.fdSoftLimit !== 'unlimited') expect(Number(result.fdSoftLimit)).toBeGreaterThanOrEqual(NEEDED_FDS);
    expect(result.mismatches).toBe(0);
    expect(result.serverErrors, r.stderr).toBe(0);
    // All of them were open at the same time: every client waited at the barrier with its connection up.
    expect(result.maxOpen).toBe(CONNECTIONS);
    expect(result.connectedAtBarrier).toBe(CONNECTIONS);
    expect(result.served).toBe(CONNECTIONS);
    expect(result.open).toBe(0);
    expect(result.ms).toBeLessThan(100_000);
  });
});
