// spindle/fs inline reads: a read the page cache can serve completes on the fiber's own thread
// (preadv2 RWF_NOWAIT) without the threadpool, reads that cannot go to the pool, and the cooperative
// budget keeps a fiber reading a cached file from starving the others. The counters (_ioCounters) show
// which path each read took.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import * as nfs from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { FiberInterruptedError, spawn, uninterruptible } from '../dist/index.js';
import * as fs from '../dist/fs/index.js';

import { inFiber, thrown, until, untilParked, waitingOn, yieldUntil } from './helpers.js';

let dir: string;
const at = (...parts: string[]): string => path.join(dir, ...parts);

beforeAll(() => {
  dir = nfs.mkdtempSync(path.join(tmpdir(), 'spindle-fsi-'));
});
afterAll(() => {
  nfs.rmSync(dir, { recursive: true, force: true });
});

type Counts = Omit<fs.IoCounters, 'inlineOff'>;

/** What `fn` did to the counters. */
function counting<T>(fn: () => T): { value: T; delta: Counts } {
  const before = fs._ioCounters();
  const value = fn();
  const after = fs._ioCounters();
  const delta = {} as Counts;
  for (const k of ['inlineReads', 'pooledReads', 'inlineSizes', 'refusedFds', 'budgetSpent'] as const) delta[k] = after[k] - before[k];
  return { value, delta };
}

/**
 * A file of `bytes` bytes whose byte i is (i * 7 + 3) & 0xff, written through the page cache (in 4 KiB
 * writes when `pages`: page-sized folios, so that part of the file can be dropped from the cache).
 */
function patterned(name: string, bytes: number, pages = false): { path: string; data: Buffer } {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 7 + 3) & 0xff;
  const p = at(name);
  if (pages) {
    const fd = nfs.openSync(p, 'w');
    for (let i = 0; i < bytes; i += 4096) nfs.writeSync(fd, data, i, Math.min(4096, bytes - i));
    nfs.fsyncSync(fd);
    nfs.closeSync(fd);
  } else {
    nfs.writeFileSync(p, data);
  }
  return { path: p, data };
}

const MIB = 1 << 20;
const CHUNK = 64 * 1024;

describe('spindle/fs: reads from the page cache complete inline', () => {
  it('is on here (Linux with preadv2 and statx)', () => {
    expect(fs._ioCounters().inlineOff).toBe(false);
  });

  it('a cached file is read inline, at given positions and at the current position, which advances as with read(2)', async () => {
    const { path: p, data } = patterned('cached.bin', 3 * CHUNK + 100);
    const out = await inFiber(() =>
      counting(() => {
        const f = fs.open(p);
        try {
          const buf = Buffer.alloc(CHUNK);
          const positional = f.read(buf, 0, 10, 1000) === 10 && buf.subarray(0, 10).equals(data.subarray(1000, 1010));
          // The current position is still 0: a positional read does not move it.
          const chunks: Buffer[] = [];
          for (let n; (n = f.read(buf)) > 0; ) chunks.push(Buffer.from(buf.subarray(0, n)));
          // Node's own read at the current position agrees on where it is (the end).
          const nodeAfter = nfs.readSync(f.fd, Buffer.alloc(1), 0, 1, null);
          return { positional, sizes: chunks.map((c) => c.length), same: Buffer.concat(chunks).equals(data), nodeAfter };
        } finally {
          f.close();
        }
      }),
    );
    expect(out.value).toEqual({ positional: true, sizes: [CHUNK, CHUNK, CHUNK, 100], same: true, nodeAfter: 0 });
    // 1 positional + 4 chunks + the read that returned 0 at the end.
    expect(out.delta).toMatchObject({ inlineReads: 6, pooledReads: 0 });
  });

  it('readFile takes the size and the contents inline: only open and close use the threadpool', async () => {
    const { path: p, data } = patterned('whole.bin', 10_000);
    nfs.writeFileSync(at('empty.bin'), '');
    const out = await inFiber(() => counting(() => ({ whole: fs.readFile(p), empty: fs.readFile(at('empty.bin')) })));
    expect(out.value.whole.equals(data)).toBe(true);
    expect(out.value.empty.length).toBe(0);
    // whole: one read of the known size; empty: size 0, so one chunk read that finds the end.
    expect(out.delta).toMatchObject({ inlineSizes: 2, inlineReads: 2, pooledReads: 0 });
  });

  it('a cached read completes while every threadpool thread is busy (it never waits for the pool)', async () => {
    const { path: p, data } = patterned('busy.bin', CHUNK);
    const blocker = at('blocker');
    execFileSync('mkfifo', [blocker]);
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const out = await inFiber(() => {
      const f = fs.open(p);
      try {
        // Each open of a FIFO with no writer holds a threadpool thread until a writer comes.
        let released = 0;
        for (let i = 0; i < threads; i++) nfs.open(blocker, 'r', (err, fd) => (released++, err || nfs.closeSync(fd)));
        // The pool is freed at the next turn of the event loop: a read that waited for the pool would
        // let the loop turn first.
        let freed = false;
        let w = -1;
        setImmediate(() => {
          freed = true;
          w = nfs.openSync(blocker, nfs.constants.O_RDWR | nfs.constants.O_NONBLOCK);
        });
        const buf = Buffer.alloc(CHUNK);
        const read = counting(() => f.read(buf, 0, CHUNK, 0));
        const poolStillBusy = !freed;
        yieldUntil(() => released === threads, 'the FIFO opens');
        nfs.closeSync(w);
        return { n: read.value, same: buf.equals(data), poolStillBusy, delta: read.delta };
      } finally {
        f.close();
      }
    });
    expect(out).toMatchObject({ n: CHUNK, same: true, poolStillBusy: true, delta: { inlineReads: 1, pooledReads: 0 } });
  });

  it('a read that finds only part of its range cached is redone whole on the threadpool; the position stays right', async () => {
    const { path: p, data } = patterned('partial.bin', MIB, true);
    const resident = () => Number(execFileSync('fincore', ['--raw', '--noheadings', '--output', 'PAGES', p], { encoding: 'utf8' }).trim());
    const drop = () => {
      // The second half dropped from the page cache (dd's nocache: posix_fadvise DONTNEED). The kernel
      // may keep pages it is still busy with: ask again until fincore shows them gone.
      for (let i = 0; i < 50; i++) {
        execFileSync('dd', [`if=${p}`, 'iflag=nocache', 'bs=4096', 'skip=128', 'count=128', 'of=/dev/null', 'status=none']);
        if (resident() <= 128) return;
      }
      throw new Error(`test setup: the second half of ${p} stays in the page cache (${resident()} pages resident)`);
    };
    const out = await inFiber(() => {
      // The kernel may have the second half back between drop() and the read (seen under load): then
      // the read is whole inline. The bytes and the position must be right on every attempt; the
      // threadpool path must be seen on one of them.
      const attempts: { value: { n: number; same: boolean; next: number }; delta: Counts }[] = [];
      for (let i = 0; i < 5; i++) {
        const f = fs.open(p);
        try {
          drop();
          const cur = counting(() => {
            const buf = Buffer.alloc(MIB);
            const n = f.read(buf); // at the current position
            return { n, same: buf.equals(data), next: f.read(Buffer.alloc(10)) };
          });
          attempts.push(cur);
          if (cur.delta.pooledReads === 0) continue;
          drop();
          const pos = counting(() => {
            const buf = Buffer.alloc(MIB - 4096);
            const n = f.read(buf, 0, buf.length, 4096);
            return { n, same: buf.equals(data.subarray(4096)) };
          });
          return { attempts, pos };
        } finally {
          f.close();
        }
      }
      return { attempts, pos: undefined };
    });
    for (const cur of out.attempts) expect(cur.value).toEqual({ n: MIB, same: true, next: 0 });
    const cur = out.attempts[out.attempts.length - 1];
    expect(cur.delta).toMatchObject({ pooledReads: 1, inlineReads: 1 }); // the whole MiB, then the end (inline)
    expect(out.pos!.value).toEqual({ n: MIB - 4096, same: true });
    // Read once more (the pages of the first read were dropped again just before): usually on the pool
    // as above, but the kernel may have the second half back by the time of the read (seen once in
    // ~20 runs under load): the position and the bytes are what must hold either way.
    expect(out.pos!.delta.pooledReads + out.pos!.delta.inlineReads).toBe(1);
  });

  it('a FIFO reads correctly through the pool: its read returns what the FIFO holds', async () => {
    const fifo = at('fifo');
    execFileSync('mkfifo', [fifo]);
    // A writer end that never blocks (O_RDWR on a FIFO), so spindle's open for reading completes.
    const w = nfs.openSync(fifo, nfs.constants.O_RDWR | nfs.constants.O_NONBLOCK);
    let phase = 0;
    try {
      const reader = spawn(() => {
        const f = fs.open(fifo);
        try {
          const buf = Buffer.alloc(100);
          const first = counting(() => buf.toString('utf8', 0, f.read(buf)));
          phase = 1;
          yieldUntil(() => phase === 2, "'abc' written");
          const second = counting(() => buf.toString('utf8', 0, f.read(buf)));
          return { first, second };
        } finally {
          f.close();
        }
      });
      await inFiber(() => untilParked(reader, 'fs.read('));
      nfs.writeSync(w, 'hello'); // completes the read waiting in the pool
      await until(() => phase === 1);
      nfs.writeSync(w, 'abc'); // there before the second read starts: 3 bytes, no wait for 100
      phase = 2;
      const out = await reader.result();
      // Named FIFOs refuse RWF_NOWAIT (EOPNOTSUPP) on this kernel: the first read learns it, the second
      // does not ask again. (Were they to support it, an empty FIFO would answer EAGAIN: the pool too.)
      expect(out.first).toEqual({ value: 'hello', delta: expect.objectContaining({ pooledReads: 1, inlineReads: 0 }) });
      expect(out.second).toEqual({ value: 'abc', delta: expect.objectContaining({ pooledReads: 1, inlineReads: 0, refusedFds: 0 }) });
      expect(out.first.delta.refusedFds + out.second.delta.refusedFds).toBeLessThanOrEqual(1);
    } finally {
      nfs.closeSync(w);
    }
  });

  it('a character device that honours RWF_NOWAIT (/dev/zero) reads inline', async () => {
    const out = await inFiber(() => {
      const f = fs.open('/dev/zero');
      try {
        return counting(() => {
          const buf = Buffer.alloc(1000, 1);
          return f.read(buf) === 1000 && buf.every((b) => b === 0);
        });
      } finally {
        f.close();
      }
    });
    expect(out).toEqual({ value: true, delta: expect.objectContaining({ inlineReads: 1, pooledReads: 0 }) });
  });

  it('a file system that refuses RWF_NOWAIT (procfs) reads through the pool; the refusal is remembered per descriptor until it is reopened', async () => {
    const { path: p } = patterned('after-proc.bin', 100);
    const out = await inFiber(() => {
      const proc = fs.open('/proc/self/cmdline');
      const fd = proc.fd;
      const reads = counting(() => {
        const buf = Buffer.alloc(16);
        const got: string[] = [];
        for (let i = 0; i < 5; i++) got.push(buf.toString('latin1', 0, proc.read(buf)));
        return got.join('');
      });
      proc.close();
      // The lowest free descriptor: the same number, now a file that honours RWF_NOWAIT.
      const f = fs.open(p);
      const reuse = counting(() => ({ sameFd: f.fd === fd, n: f.read(Buffer.alloc(100)) }));
      f.close();
      return { reads, reuse };
    });
    expect(out.reads.value).toBe(nfs.readFileSync('/proc/self/cmdline', 'latin1').slice(0, 80));
    expect(out.reads.delta).toMatchObject({ refusedFds: 1, pooledReads: 5, inlineReads: 0 });
    expect(out.reuse.value).toEqual({ sameFd: true, n: 100 });
    expect(out.reuse.delta).toMatchObject({ refusedFds: 0, pooledReads: 0, inlineReads: 1 });
  });

  it('O_DIRECT descriptors always use the pool (a direct read waits for the device even with RWF_NOWAIT)', async () => {
    const { path: p } = patterned('direct.bin', CHUNK);
    const out = await inFiber(() => {
      const f = fs.open(p, nfs.constants.O_RDONLY | nfs.constants.O_DIRECT);
      try {
        // The buffer may not be aligned as O_DIRECT wants: EINVAL is a fine outcome here.
        return counting(() => {
          try {
            return f.read(Buffer.alloc(CHUNK), 0, CHUNK, 0);
          } catch (error) {
            return (error as NodeJS.ErrnoException).code;
          }
        });
      } finally {
        f.close();
      }
    });
    expect([CHUNK, 'EINVAL']).toContain(out.value);
    expect(out.delta).toMatchObject({ pooledReads: 1, inlineReads: 0 });
  });

  it('errors keep their Node shape: the pool repeats a read the kernel refused and reports its error', async () => {
    const p = at('write-only.txt');
    nfs.writeFileSync(p, 'data');
    const out = await inFiber(() => {
      const f = fs.open(p, 'a');
      try {
        return counting(() => thrown(() => f.read(Buffer.alloc(4), 0, 4, 0)) as NodeJS.ErrnoException);
      } finally {
        f.close();
      }
    });
    const fd = nfs.openSync(p, 'a');
    const theirs = thrown(() => nfs.readSync(fd, Buffer.alloc(4), 0, 4, 0)) as NodeJS.ErrnoException;
    nfs.closeSync(fd);
    expect({ code: out.value.code, errno: out.value.errno, syscall: out.value.syscall, message: out.value.message }).toEqual({
      code: theirs.code,
      errno: theirs.errno,
      syscall: theirs.syscall,
      message: theirs.message,
    });
    expect(out.delta).toMatchObject({ pooledReads: 1, inlineReads: 0 });
  });
});

describe('spindle/fs: the inline budget keeps fibers and the event loop running', () => {
  const BIG = 16 * MIB; // 256 reads of 64 KiB: four times the budget of 64 reads (or 4 MiB)

  /** Reads `p` in 64 KiB reads at the current position, calling `each` after every read. */
  function readAllChunks(p: string, each: () => void): number {
    const f = fs.open(p);
    try {
      const buf = Buffer.alloc(CHUNK);
      let total = 0;
      for (let n; (n = f.read(buf)) > 0; ) {
        total += n;
        each();
      }
      return total;
    } finally {
      f.close();
    }
  }

  it('two fibers reading cached files concurrently take turns', async () => {
    const a = patterned('a.bin', BIG).path;
    const b = patterned('b.bin', BIG).path;
    const order: string[] = [];
    const out = await inFiber(() =>
      counting(() => {
        const fa = spawn(() => readAllChunks(a, () => order.push('a')));
        const fb = spawn(() => readAllChunks(b, () => order.push('b')));
        return [fa.join(), fb.join()];
      }),
    );
    expect(out.value).toEqual([BIG, BIG]);
    // Without the budget: two runs, all of a's 256 reads then all of b's. With it, turns of at most 64
    // reads (a fiber may get two turns in a row when both become ready in the same loop turn).
    const runs = runLengths(order);
    expect(runs.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...runs)).toBeLessThanOrEqual(128);
    expect(out.delta.inlineReads).toBeGreaterThanOrEqual(2 * 256);
    expect(out.delta.budgetSpent).toBeGreaterThanOrEqual(6);
  });

  it('timers and IO callbacks run while a fiber reads a big cached file', async () => {
    const p = patterned('loop.bin', BIG).path;
    // A loopback connection: data the client sends is in the server socket's buffer at once, and its
    // 'data' callback runs at the loop's next poll.
    const server = net.createServer();
    const accepted = once(server, 'connection');
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await once(client, 'connect');
    const [conn] = (await accepted) as [net.Socket];
    const seen: { timer?: number; immediate?: number; io?: number } = {};
    let reads = 0;
    conn.on('data', () => (seen.io ??= reads));
    try {
      const out = await inFiber(() =>
        counting(() =>
          readAllChunks(p, () => {
            if (++reads !== 1) return;
            // After the first read: from here on the fiber suspends only if the budget makes it.
            setTimeout(() => (seen.timer = reads), 0);
            setImmediate(() => (seen.immediate = reads));
            client.write('x');
          }),
        ),
      );
      expect(out.value).toBe(BIG);
      expect(reads).toBe(256);
      // Each ran while the fiber still had reads to do (without the budget: only after all 256).
      for (const k of ['timer', 'immediate', 'io'] as const) expect([k, seen[k]! < 256]).toEqual([k, true]);
      expect(out.delta).toMatchObject({ pooledReads: 0 });
    } finally {
      client.destroy();
      conn.destroy();
      server.close();
    }
  });

  it('the yield of a spent budget is an interruption point; nothing read is lost', async () => {
    const { path: p, data } = patterned('interrupt.bin', BIG);
    let parkedIn = '';
    const out = await inFiber(() => {
      const reader = spawn(() => {
        const f = fs.open(p);
        const buf = Buffer.alloc(CHUNK);
        const chunks: Buffer[] = [];
        try {
          // Runs at this fiber's first suspension after the open: the budget's yield.
          spawn(() => {
            parkedIn = waitingOn(reader);
            reader.interrupt('stop');
          });
          for (let n; (n = f.read(buf)) > 0; ) chunks.push(Buffer.from(buf.subarray(0, n)));
          return { chunks: chunks.length };
        } catch (error) {
          // The interrupted read did not start: the rest of the file is still there to read.
          const rest = uninterruptible(() => f.readAll());
          return { chunks: chunks.length, error, whole: Buffer.concat([...chunks, rest]).equals(data) };
        } finally {
          f.close();
        }
      });
      return reader.join();
    });
    expect(parkedIn).toMatch(/^fs\.read\(fd \d+\)$/);
    expect(out.error).toBeInstanceOf(FiberInterruptedError);
    expect(out.chunks).toBe(64);
    expect(out.whole).toBe(true);
  });
});

function runLengths(order: string[]): number[] {
  const lengths: number[] = [];
  let n = 0;
  for (let i = 0; i < order.length; i++) {
    n++;
    if (i === order.length - 1 || order[i + 1] !== order[i]) {
      lengths.push(n);
      n = 0;
    }
  }
  return lengths;
}
