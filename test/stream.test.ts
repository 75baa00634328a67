import { spawn as spawnProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable, Writable } from 'node:stream';
import zlib from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { FiberInterruptedError, NotInFiberError, TimeoutError, sleep, spawn } from '../dist/index.js';
import { ReadLimitError, type StreamReader, UnexpectedEofError, once, reader, writer } from '../dist/stream/index.js';

import { inFiber, thrown, untilParked, yieldUntil } from './helpers.js';

/** Lines until the end of the stream (readUntil throws UnexpectedEofError with nothing partial there). */
function readLines(rd: StreamReader): string[] {
  const out: string[] = [];
  for (;;) {
    try {
      out.push(rd.readUntil('\n').toString());
    } catch (error) {
      if (error instanceof UnexpectedEofError && error.partial.length === 0) return out;
      throw error;
    }
  }
}

function code(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

/** A Writable that takes each chunk only when release() is called (for backpressure tests). */
function slowSink(highWaterMark = 4) {
  const got: Buffer[] = [];
  let pending: (() => void) | undefined;
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      pending = cb;
    },
  });
  return {
    sink,
    got,
    release: () => {
      const cb = pending;
      pending = undefined;
      cb?.();
    },
    get waiting() {
      return pending !== undefined;
    },
  };
}

describe('reader', () => {
  it('read(buf) copies what is there (0 at EOF); read() returns chunks (null at EOF)', async () => {
    const r = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      s.write('hello ');
      const buf = Buffer.alloc(3);
      const n1 = rd.read(buf);
      const first = buf.toString('utf8', 0, n1);
      const rest = rd.read()!.toString();
      s.end('world');
      const last = rd.read()!.toString();
      return [first, rest, last, rd.read(), rd.read(Buffer.alloc(4)), reader(s) === rd];
    });
    expect(r).toEqual(['hel', 'lo ', 'world', null, 0, true]);
  });

  it('readExactly and readUntil across chunk boundaries; null at a clean EOF', async () => {
    const r = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      spawn(() => {
        for (const part of ['GE', 'T /a HT', 'TP/1.1\r', '\n', 'Host: x\r\n\r', '\nBODY']) {
          s.write(part);
          sleep(1);
        }
        s.end('!');
      });
      const line1 = rd.readUntil('\r\n').toString();
      const line2 = rd.readUntil(Buffer.from('\r\n')).toString();
      const blank = rd.readUntil('\r\n').toString();
      const body = rd.readExactly(5).toString();
      const eof = thrown(() => rd.readUntil('\n')) as UnexpectedEofError;
      return [line1, line2, blank, body, eof instanceof UnexpectedEofError, eof.partial.length, rd.readExactly(0).length];
    });
    expect(r).toEqual(['GET /a HTTP/1.1\r\n', 'Host: x\r\n', '\r\n', 'BODY!', true, 0, 0]);
  });

  it('an early EOF throws UnexpectedEofError carrying the partial bytes', async () => {
    const [a, b] = await inFiber(() => {
      const s = Readable.from([Buffer.from('abc')], { objectMode: false });
      const e1 = thrown(() => reader(s).readExactly(10));
      const s2 = Readable.from([Buffer.from('no newline')], { objectMode: false });
      const e2 = thrown(() => reader(s2).readUntil('\n'));
      return [e1, e2];
    });
    expect(a).toBeInstanceOf(UnexpectedEofError);
    expect(code(a)).toBe('ERR_UNEXPECTED_EOF');
    expect((a as UnexpectedEofError).partial.toString()).toBe('abc');
    expect((b as UnexpectedEofError).partial.toString()).toBe('no newline');
  });

  it('readUntil throws ReadLimitError past maxBytes and keeps the bytes', async () => {
    const r = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      s.write('0123456789');
      const e = thrown(() => rd.readUntil('\n', { maxBytes: 8 }));
      s.end('\n');
      return [e, rd.readUntil('\n', { maxBytes: 100 }).toString()];
    });
    expect(r[0]).toBeInstanceOf(ReadLimitError);
    expect(code(r[0])).toBe('ERR_READ_LIMIT_EXCEEDED');
    expect((r[0] as ReadLimitError).maxBytes).toBe(8);
    expect(r[1]).toBe('0123456789\n');
  });

  it('does not suspend when data is already buffered', async () => {
    const r = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      s.write('abcdef');
      rd.read(Buffer.alloc(1));  // takes the stream's buffer into the reader
      let ran = false;
      spawn(() => (ran = true));
      const got = [rd.readExactly(2).toString(), rd.readUntil('e').toString()];
      return [...got, ran];
    });
    expect(r).toEqual(['bc', 'de', false]);
  });

  it('rethrows the stream error, after the bytes taken before it', async () => {
    const r = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      s.write('abcd');
      const two = rd.readExactly(2).toString();
      s.destroy(new Error('boom'));
      const rest = rd.read()!.toString();  // taken from the stream before the error: delivered
      const e1 = thrown(() => rd.read());
      const e2 = thrown(() => rd.readExactly(1));
      return [two, rest, (e1 as Error).message, (e2 as Error).message];
    });
    expect(r).toEqual(['ab', 'cd', 'boom', 'boom']);
  });

  it('a stream destroyed without an error or an end is a premature close', async () => {
    const e = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      spawn(() => s.destroy());
      return thrown(() => rd.read());
    });
    expect(code(e)).toBe('ERR_STREAM_PREMATURE_CLOSE');
  });

  it('timeouts on read, readExactly and readUntil', async () => {
    const errs = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      s.write('ab');
      return [
        thrown(() => rd.readExactly(3, { timeout: 20 })),
        thrown(() => rd.readUntil('\n', { timeout: 20 })),
        rd.read()!.toString(),
        thrown(() => rd.read(undefined, { timeout: 20 })),
        thrown(() => rd.read(Buffer.alloc(1), { timeout: 0 })),
      ];
    });
    for (const i of [0, 1, 3, 4]) {
      expect(errs[i]).toBeInstanceOf(TimeoutError);
      expect(code(errs[i])).toBe('ERR_FIBER_TIMEOUT');
    }
    expect(errs[2]).toBe('ab');  // nothing was lost to the timeouts
  });

  it('interruption: a blocked read wakes with FiberInterruptedError and loses no bytes', async () => {
    const r = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      const f = spawn(() => rd.readExactly(10), { name: 'r' });
      s.write('12345');
      untilParked(f, 'read(');
      f.interrupt('stop');
      const e = thrown(() => f.join());
      return [e instanceof FiberInterruptedError, (e as FiberInterruptedError).reason, rd.readExactly(5).toString()];
    });
    expect(r).toEqual([true, 'stop', '12345']);
  });

  it('serializes concurrent reads in arrival order; waiting for a turn is interruptible and timed', async () => {
    const r = await inFiber(() => {
      const s = new PassThrough();
      const rd = reader(s);
      const a = spawn(() => rd.readExactly(3).toString(), { name: 'a' });
      untilParked(a, 'read(');
      const b = spawn(() => rd.readExactly(3).toString(), { name: 'b' });
      untilParked(b, 'readExactly(');
      const c = spawn(() => rd.readExactly(3).toString(), { name: 'c' });
      untilParked(c, 'readExactly(');
      const d = spawn(() => thrown(() => rd.readExactly(3, { timeout: 10 })), { name: 'd' });
      c.interrupt();
      s.write('abcdef');
      return [a.join(), b.join(), thrown(() => c.join()) instanceof FiberInterruptedError, d.join() instanceof TimeoutError];
    });
    expect(r).toEqual(['abc', 'def', true, true]);
  });

  it('handles streams with an encoding set, and refuses object mode and non-streams', async () => {
    const r = await inFiber(() => {
      const s = new PassThrough();
      s.setEncoding('utf8');
      const rd = reader(s);
      s.end('héllo\n');
      return rd.readUntil('\n').toString();
    });
    expect(r).toBe('héllo\n');
    expect(code(thrown(() => reader(new PassThrough({ objectMode: true }))))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(thrown(() => reader({} as Readable)))).toBe('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => reader(new PassThrough()).read())).toBeInstanceOf(NotInFiberError);
    await inFiber(() => {
      const rd = reader(new PassThrough());
      expect(code(thrown(() => rd.readExactly(-1)))).toBe('ERR_OUT_OF_RANGE');
      expect(code(thrown(() => rd.readUntil('')))).toBe('ERR_OUT_OF_RANGE');
      expect(code(thrown(() => rd.readUntil('\n', { maxBytes: 0 })))).toBe('ERR_OUT_OF_RANGE');
      expect(code(thrown(() => rd.read('x' as unknown as Buffer)))).toBe('ERR_INVALID_ARG_TYPE');
    });
  });
});

describe('writer', () => {
  it('honours backpressure: suspends until drain before handing over more', async () => {
    const r = await inFiber(() => {
      const { sink, got, release } = slowSink(4);
      const w = writer(sink);
      const f = spawn(() => {
        w.write('aaaa');  // fills the buffer to the highWaterMark: the stream asks for drain
        w.write('bbbb');  // waits for that drain first
        return 'wrote';
      });
      untilParked(f, 'write(');
      const before = got.length;
      release();
      yieldUntil(() => f.status === 'done');
      release();
      return [before, f.join(), got.map(String)];
    });
    expect(r).toEqual([1, 'wrote', ['aaaa', 'bbbb']]);
  });

  it('end() waits until the stream finished; a timeout or interruption while waiting for drain writes nothing', async () => {
    const r = await inFiber(() => {
      const h = slowSink(1);
      const w = writer(h.sink);
      w.write('x');
      const e1 = thrown(() => w.write('y', { timeout: 20 }));
      const f = spawn(() => w.write('z'));
      untilParked(f, 'write(');
      f.interrupt();
      const e2 = thrown(() => f.join());
      const ender = spawn(() => w.end('end'));
      untilParked(ender, 'write(');
      h.release();
      yieldUntil(() => h.waiting);
      untilParked(ender, 'end(');
      h.release();
      ender.join();
      return [e1 instanceof TimeoutError, e2 instanceof FiberInterruptedError, h.got.map(String), h.sink.writableFinished];
    });
    expect(r).toEqual([true, true, ['x', 'end'], true]);
  });

  it('rethrows write errors at the next call; write after end fails', async () => {
    const r = await inFiber(() => {
      const sink = new Writable({ write: (_c, _e, cb) => cb(new Error('disk full')) });
      const w = writer(sink);
      w.write('a');
      sleep(1);
      const e1 = thrown(() => w.write('b'));
      const e2 = thrown(() => w.end());
      const ok = writer(new PassThrough());
      ok.end();
      const e3 = thrown(() => ok.write('late'));
      return [(e1 as Error).message, (e2 as Error).message, code(e3)];
    });
    expect(r).toEqual(['disk full', 'disk full', 'ERR_STREAM_WRITE_AFTER_END']);
  });

  it('checks its arguments', async () => {
    expect(code(thrown(() => writer({} as Writable)))).toBe('ERR_INVALID_ARG_TYPE');
    await inFiber(() => {
      const w = writer(new PassThrough());
      expect(code(thrown(() => w.write(42 as unknown as string)))).toBe('ERR_INVALID_ARG_TYPE');
      expect(code(thrown(() => w.write('x', { timeout: -1 })))).toBe('ERR_OUT_OF_RANGE');
    });
    expect(thrown(() => writer(new PassThrough()).write('x'))).toBeInstanceOf(NotInFiberError);
  });
});

describe('once', () => {
  it("returns the event's arguments; throws an 'error' event; takes a timeout; is interruptible", async () => {
    const r = await inFiber(() => {
      const ee = new EventEmitter();
      spawn(() => ee.emit('ready', 1, 'two'));
      const args = once(ee, 'ready');
      spawn(() => ee.emit('error', new Error('bad')));
      const e = thrown(() => once(ee, 'ready'));
      const t = thrown(() => once(ee, 'ready', { timeout: 15 }));
      const f = spawn(() => once(ee, 'never'));
      untilParked(f, 'once(never)');
      f.interrupt();
      const i = thrown(() => f.join());
      const target = new EventTarget();
      spawn(() => target.dispatchEvent(new Event('ping')));
      const [ev] = once(target, 'ping') as [Event];
      const err = new Error('as event');
      spawn(() => ee.emit('error', err));
      const [asEvent] = once(ee, 'error');
      return [args, (e as Error).message, t instanceof TimeoutError, i instanceof FiberInterruptedError, ev.type, asEvent === err, ee.listenerCount('ready'), ee.listenerCount('error')];
    });
    expect(r).toEqual([[1, 'two'], 'bad', true, true, 'ping', true, 0, 0]);
  });
});

describe('with Node libraries', () => {
  it("child_process stdio: write the child's stdin, read its stdout line by line", async () => {
    const r = await inFiber(() => {
      const child = spawnProcess(process.execPath, ['-e', "process.stdin.pipe(require('zlib').createGzip()).pipe(process.stdout)"]);
      const gunzip = zlib.createGunzip();
      const input = writer(child.stdin);
      const lines = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'x'.repeat(i % 97)}\n`);
      const feeder = spawn(() => {
        for (const l of lines) input.write(l);
        input.end();
      });
      // Compressed bytes from the child into a gunzip stream, from a third fiber.
      const pump = spawn(() => {
        const out = reader(child.stdout);
        const w = writer(gunzip);
        for (let chunk; (chunk = out.read()) !== null; ) w.write(chunk);
        w.end();
      });
      const rd = reader(gunzip);
      const got = readLines(rd);
      feeder.join();
      pump.join();
      const [exitCode] = child.exitCode === null ? once(child, 'exit') : [child.exitCode];
      return { same: got.join('') === lines.join(''), count: got.length, exitCode };
    });
    expect(r).toEqual({ same: true, count: 2000, exitCode: 0 });
  });

  it('child_process: readExactly over stdout, and EPIPE-style errors from a child that exits early', async () => {
    const r = await inFiber(() => {
      const child = spawnProcess(process.execPath, ['-e', "process.stdout.write(Buffer.alloc(100000, 7)); process.stdout.write('end')"]);
      const rd = reader(child.stdout);
      const big = rd.readExactly(100000);
      const tail = rd.readExactly(3).toString();
      const eof = rd.read();
      const quitter = spawnProcess(process.execPath, ['-e', 'process.exit(0)']);
      const w = writer(quitter.stdin);
      let error: unknown;
      try {
        once(quitter, 'exit');
        for (let i = 0; i < 100; i++) w.write(Buffer.alloc(65536));
        w.end();
      } catch (e) {
        error = e;
      }
      return [big.every((b) => b === 7), tail, eof, code(error)];
    });
    expect(r.slice(0, 3)).toEqual([true, 'end', null]);
    expect(['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'ERR_STREAM_DESTROYED']).toContain(r[3]);
  });

  it('zlib: a gzip/gunzip round trip of 4 MiB through writers and readers, bounded by backpressure', async () => {
    const r = await inFiber(() => {
      const data = Buffer.alloc(4 * 1024 * 1024);
      for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
      const gzip = zlib.createGzip();
      const gunzip = zlib.createGunzip();
      let maxBuffered = 0;
      const producer = spawn(() => {
        const w = writer(gzip);
        for (let at = 0; at < data.length; at += 65536) {
          w.write(data.subarray(at, at + 65536));
          maxBuffered = Math.max(maxBuffered, gzip.writableLength);
        }
        w.end();
      });
      const middle = spawn(() => {
        const rd = reader(gzip);
        const w = writer(gunzip);
        const buf = Buffer.alloc(16384);
        for (let n; (n = rd.read(buf)) > 0; ) w.write(Buffer.from(buf.subarray(0, n)));
        w.end();
      });
      const rd = reader(gunzip);
      const parts: Buffer[] = [];
      for (let chunk; (chunk = rd.read()) !== null; ) parts.push(chunk);
      producer.join();
      middle.join();
      return { equal: Buffer.concat(parts).equals(data), maxBuffered };
    });
    expect(r.equal).toBe(true);
    expect(r.maxBuffered).toBeLessThanOrEqual(16384 + 65536);
  });

  it('zlib: a corrupt input rethrows the zlib error', async () => {
    const e = await inFiber(() => {
      const gunzip = zlib.createGunzip();
      writer(gunzip).write(Buffer.from('definitely not gzip data'));
      return thrown(() => reader(gunzip).read());
    });
    expect(code(e)).toBe('Z_DATA_ERROR');
  });

  it('http bodies: a server reading requests and writing responses, a client doing the same', async () => {
    const server = http.createServer((req, res) => {
      spawn(() => {
        const rd = reader(req);
        const first = rd.readUntil('\n').toString().trim();
        let rest = 0;
        for (let c; (c = rd.read()) !== null; ) rest += c.length;
        const w = writer(res);
        res.setHeader('content-type', 'text/plain');
        for (let i = 0; i < 100; i++) w.write(`${first}:${rest}:${i}\n`);
        w.end();
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const r = await inFiber(() => {
        const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/' });
        const w = writer(req);
        w.write('hello\n');
        w.write(Buffer.alloc(300_000, 1));
        w.end();
        const [res] = once(req, 'response') as [http.IncomingMessage];
        const rd = reader(res);
        const lines = readLines(rd).map((l) => l.trim());
        return { status: res.statusCode, count: lines.length, first: lines[0], last: lines[99] };
      });
      expect(r).toEqual({ status: 200, count: 100, first: 'hello:300000:0', last: 'hello:300000:99' });
    } finally {
      server.close();
    }
  });

  it('http: a timed-out body read, then an aborted request surfaces as an error', async () => {
    let serverErr: unknown;
    let timedOut = false;
    const server = http.createServer((req) => {
      spawn(() => {
        const rd = reader(req);
        rd.readUntil('\n');
        timedOut = thrown(() => rd.read(undefined, { timeout: 30 })) instanceof TimeoutError;
        serverErr = thrown(() => rd.readExactly(1_000_000));
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      await inFiber(() => {
        const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/' });
        req.on('error', () => {});
        writer(req).write('start\n');
        sleep(100);
        req.destroy();
        for (let i = 0; i < 200 && serverErr === undefined; i++) sleep(5);
      });
      expect(timedOut).toBe(true);
      expect(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_UNEXPECTED_EOF']).toContain(code(serverErr));
    } finally {
      server.close();
    }
  });
});
