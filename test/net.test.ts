// spindle/net over real sockets on loopback (127.0.0.1, ::1) and Unix sockets in a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { FiberInterruptedError, NotInFiberError, TimeoutError, sleep, spawn } from '../dist/index.js';
import {
  type Server,
  ReadLimitError,
  ServerClosedError,
  type Socket,
  SocketClosedError,
  UnexpectedEofError,
  connect,
  listen,
} from '../dist/net/index.js';

import { inFiber, runScript, thrown, untilParked, waitingOn, yieldUntil } from './helpers.js';

const netEntry = path.join(__dirname, '..', 'dist', 'cjs', 'net', 'index.js');
const dir = mkdtempSync(path.join(tmpdir(), 'spindle-net-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let sockets = 0;
const sockPath = () => path.join(dir, `s${++sockets}.sock`);

function loopback(): Server {
  return listen({ port: 0, host: '127.0.0.1' });
}

function portOf(server: Server): number {
  return (server.address() as { port: number }).port;
}

/** A connected pair over loopback TCP: [client, server side]. */
function pair(server = loopback()): [Socket, Socket, Server] {
  const acceptor = spawn(() => server.accept());
  const client = connect({ port: portOf(server), host: '127.0.0.1' });
  return [client, acceptor.join(), server];
}

/** A connected pair over a Unix-domain socket: [client, server side]. A write there is in the peer's receive queue when it returns. */
function unixPair(): [Socket, Socket, Server] {
  const server = listen({ path: sockPath() });
  const acceptor = spawn(() => server.accept());
  const client = connect({ path: server.address() as string });
  return [client, acceptor.join(), server];
}

/** A fiber made ready now, which runs only once the calling fiber suspends: ran() tells whether it did. */
function witness(): { ran(): boolean } {
  let ran = false;
  spawn(() => {
    ran = true;
  });
  return { ran: () => ran };
}

function expectCode(error: unknown, code: string): void {
  expect(error).toBeInstanceOf(Error);
  expect((error as { code: string }).code).toBe(code);
}

describe('echo', () => {
  it('serves 200 concurrent connections, one fiber per connection, with linear code', async () => {
    const server = loopback();
    const port = portOf(server);
    const acceptLoop = spawn(() => {
      let handled = 0;
      for (const socket of server) {
        handled++;
        spawn(() => {
          using s = socket;
          const buf = Buffer.alloc(1024);
          for (let n; (n = s.read(buf)) > 0; ) s.write(buf.subarray(0, n));
        });
      }
      return handled;
    });
    const clients = Array.from({ length: 200 }, (_, i) =>
      spawn(() => {
        using s = connect({ port, host: '127.0.0.1' });
        let ok = 0;
        for (let round = 0; round < 5; round++) {
          const msg = `client ${i} round ${round}\n`;
          s.write(msg);
          if (s.readUntil('\n').toString() === msg) ok++;
        }
        s.shutdown();
        expect(s.read(Buffer.alloc(10))).toBe(0);
        return ok;
      }),
    );
    const results = await Promise.all(clients.map((c) => c.result()));
    expect(results).toEqual(new Array(200).fill(5));
    server.close();
    expect(await acceptLoop.result()).toBe(200);
  });

  it('moves 8 MiB through one connection intact, both directions at once', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const data = Buffer.alloc(8 << 20);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 10)) & 0xff;
      const writer = spawn(() => {
        a.write(data);
        a.shutdown();
      });
      const echo = spawn(() => {
        const buf = Buffer.alloc(50_000);
        for (let n; (n = b.read(buf)) > 0; ) b.write(buf.subarray(0, n));
        b.shutdown();
      });
      const back = a.readExactly(data.length);
      expect(a.read(Buffer.alloc(1))).toBe(0);
      writer.join();
      echo.join();
      expect(back.equals(data)).toBe(true);
      a.close();
      b.close();
      server.close();
    });
  });
});

describe('readExactly and readUntil', () => {
  it('readExactly gathers several writes; readUntil splits on a delimiter and keeps the rest', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const writer = spawn(() => {
        for (const part of ['he', 'llo', ' wor', 'ld\r\nsecond line\r\n', 'tail']) {
          a.write(part);
          sleep(2);
        }
        a.shutdown();
      });
      expect(b.readExactly(5).toString()).toBe('hello');
      expect(b.readUntil('\r\n').toString()).toBe(' world\r\n');
      expect(b.readUntil(Buffer.from('\r\n')).toString()).toBe('second line\r\n');
      expect(b.readExactly(0).length).toBe(0);
      const eof = thrown(() => b.readUntil('\n'));
      expect(eof).toBeInstanceOf(UnexpectedEofError);
      expect((eof as UnexpectedEofError).partial.toString()).toBe('tail');
      expect(b.read(Buffer.alloc(4))).toBe(0);
      writer.join();
      a.close();
      b.close();
      server.close();
    });
  });

  it('readUntil past maxBytes throws ReadLimitError and consumes nothing', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      a.write('0123456789abcdef\n');
      const error = thrown(() => b.readUntil('\n', { maxBytes: 8 }));
      expect(error).toBeInstanceOf(ReadLimitError);
      expectCode(error, 'ERR_READ_LIMIT_EXCEEDED');
      expect(b.readUntil('\n', { maxBytes: 17 }).toString()).toBe('0123456789abcdef\n');
      a.write('xy');
      a.close();
      const eof = thrown(() => b.readExactly(3));
      expect(eof).toBeInstanceOf(UnexpectedEofError);
      expectCode(eof, 'ERR_UNEXPECTED_EOF');
      expect((eof as UnexpectedEofError).partial.toString()).toBe('xy');
      b.close();
      server.close();
    });
  });

  it('two concurrent readExactly calls are served whole, in arrival order', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const first = spawn(() => b.readExactly(6).toString());
      const second = spawn(() => b.readExactly(6).toString());
      untilParked(first, 'read');
      untilParked(second, 'readExactly');
      for (const c of 'AAAAAABBBBBB') {
        a.write(c);
        sleep(1);
      }
      expect(first.join()).toBe('AAAAAA');
      expect(second.join()).toBe('BBBBBB');
      a.close();
      b.close();
      server.close();
    });
  });
});

describe('backpressure', () => {
  it('a writer to a peer that does not read suspends, holding only its own buffer', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const chunk = Buffer.alloc(1 << 20, 7);
      let written = 0;
      const writer = spawn(() => {
        for (let i = 0; i < 64; i++) written += a.write(chunk);
      });
      untilParked(writer, 'write');
      // The kernel's buffers (both sides) and our 64 KiB read-ahead hold a bounded amount; the writer waits.
      sleep(50);
      expect(writer.status).toBe('suspended');
      expect(written).toBeLessThan(32 << 20);
      expect(b.bufferedLength).toBeLessThanOrEqual(64 * 1024);
      const rss = process.memoryUsage().rss;
      sleep(50);
      expect(process.memoryUsage().rss - rss).toBeLessThan(16 << 20);
      // Draining lets it finish; every byte arrives.
      let total = 0;
      const buf = Buffer.alloc(256 * 1024);
      while (total < 64 << 20) {
        const n = b.read(buf);
        expect(buf[0]).toBe(7);
        total += n;
      }
      writer.join();
      expect(written).toBe(64 << 20);
      a.close();
      b.close();
      server.close();
    });
  });

  it('a reader that does not read stops reading at its buffer bound (the peer feels it)', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const writer = spawn(() => {
        for (;;) a.write(Buffer.alloc(256 * 1024));
      });
      untilParked(writer, 'write');
      sleep(20);
      expect(b.bufferedLength).toBe(64 * 1024);
      a.close();
      expectCode(thrown(() => writer.join()), 'ERR_SOCKET_CLOSED');
      b.close();
      server.close();
    });
  });
});

describe('EOF, shutdown, close', () => {
  it('shutdown half-closes: the peer reads EOF and can still answer', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      a.write('request');
      a.shutdown();
      const buf = Buffer.alloc(100);
      expect(b.read(buf)).toBe(7);
      expect(b.read(buf)).toBe(0);
      expect(b.read(buf)).toBe(0);
      b.write('response');
      b.close();
      expect(a.readExactly(8).toString()).toBe('response');
      expect(a.read(buf)).toBe(0);
      expectCode(thrown(() => a.write('x')), 'EPIPE');
      a.close();
      server.close();
    });
  });

  it('close() wakes a reader, a writer and an accepter blocked on it with a closed error', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const reader = spawn(() => thrown(() => b.read(Buffer.alloc(10))));
      const writer = spawn(() => thrown(() => b.write(Buffer.alloc(64 << 20))));
      const accepter = spawn(() => thrown(() => server.accept()));
      untilParked(reader, 'read');
      untilParked(writer, 'write');
      untilParked(accepter, 'accept');
      b.close();
      server.close();
      expect(reader.join()).toBeInstanceOf(SocketClosedError);
      const w = writer.join() as SocketClosedError;
      expect(w).toBeInstanceOf(SocketClosedError);
      expect(w.bytesWritten).toBeGreaterThan(0);
      expect(w.bytesWritten).toBeLessThan(64 << 20);
      expect(accepter.join()).toBeInstanceOf(ServerClosedError);
      expect(thrown(() => b.read(Buffer.alloc(1)))).toBeInstanceOf(SocketClosedError);
      expect(thrown(() => server.accept())).toBeInstanceOf(ServerClosedError);
      b.close();  // idempotent
      a.close();
    });
  });

  it('a peer reset surfaces as ECONNRESET (or EOF) at the reader', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      a.setKeepAlive(true, 1000);
      b.write('unread');
      sleep(10);
      a.close();  // closing with unread data makes Linux send RST
      const buf = Buffer.alloc(10);
      const error = thrown(() => {
        for (;;) if (b.read(buf) === 0) throw Object.assign(new Error('eof'), { code: 'EOF' });
      });
      expect(['ECONNRESET', 'EOF']).toContain((error as { code: string }).code);
      b.close();
      server.close();
    });
  });
});

describe('a read that finds its bytes in the kernel', () => {
  // Bytes that libuv has not read yet (the loop has not polled since they came): the read takes them
  // itself instead of suspending until the loop's next turn.
  it('takes them without suspending, after the bytes already read ahead, in order', async () => {
    await inFiber(() => {
      const [a, b, server] = unixPair();
      const buf = Buffer.alloc(16);
      let w = witness();
      a.write('abc');
      expect(b.read(buf)).toBe(3);
      expect(w.ran()).toBe(false);
      expect(buf.subarray(0, 3).toString()).toBe('abc');

      a.write('12');
      yieldUntil(() => b.bufferedLength === 2, 'the read-ahead to take 2 bytes');
      a.write('34');
      w = witness();
      expect(b.read(buf)).toBe(2);
      expect(buf.subarray(0, 2).toString()).toBe('12');
      expect(b.read(buf)).toBe(2);
      expect(buf.subarray(0, 2).toString()).toBe('34');
      expect(w.ran()).toBe(false);
      a.close();
      b.close();
      server.close();
    });
  });

  it('still lets the loop and the other fibers run every 64 reads when the peer always has more', async () => {
    await inFiber(() => {
      const [a, b, server] = unixPair();
      const data = Buffer.alloc(32 * 1024);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
      a.write(data); // all of it waits in b's receive queue
      const w = witness();
      const got = Buffer.alloc(data.length);
      const one = Buffer.alloc(1);
      let firstRan = -1;
      for (let i = 0; i < data.length; i++) {
        if (b.read(one) !== 1) throw new Error(`read ${i} returned no byte`);
        got[i] = one[0];
        if (firstRan < 0 && w.ran()) firstRan = i;
      }
      expect(got.equals(data)).toBe(true);
      expect(firstRan).toBeGreaterThanOrEqual(0);
      expect(firstRan).toBeLessThanOrEqual(64);
      a.close();
      b.close();
      server.close();
    });
  });

  it('leaves EOF to libuv: the bytes before it, then 0 for good', async () => {
    await inFiber(() => {
      const [a, b, server] = unixPair();
      const buf = Buffer.alloc(16);
      a.write('last');
      a.shutdown();
      const w = witness();
      expect(b.read(buf)).toBe(4);
      expect(w.ran()).toBe(false);
      expect(b.read(buf)).toBe(0);
      expect(b.read(buf)).toBe(0);
      b.write('still writable');
      expect(a.readExactly(14).toString()).toBe('still writable');
      a.close();
      b.close();
      server.close();
    });
  });

  it('reports a reset it finds there as ECONNRESET, and again on the next read', async () => {
    await inFiber(() => {
      const [a, b, server] = unixPair();
      b.write('never read');
      a.close(); // closed with unread bytes: the peer's next read fails with ECONNRESET
      const w = witness();
      const buf = Buffer.alloc(16);
      expect(thrown(() => b.read(buf))).toMatchObject({ code: 'ECONNRESET', syscall: 'read' });
      expect(w.ran()).toBe(false);
      expect(thrown(() => b.read(buf))).toMatchObject({ code: 'ECONNRESET', syscall: 'read' });
      b.close();
      server.close();
    });
  });
});

describe('errors', () => {
  it('ECONNREFUSED has Node\'s shape', async () => {
    const server = loopback();
    const port = portOf(server);
    server.close();
    const error = await inFiber(() => thrown(() => connect({ port, host: '127.0.0.1' })));
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: 'ECONNREFUSED', errno: -111, syscall: 'connect', address: '127.0.0.1', port });
    expect((error as Error).message).toBe(`connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  it('EADDRINUSE has Node\'s shape', () => {
    const server = loopback();
    const port = portOf(server);
    const error = thrown(() => listen({ port, host: '127.0.0.1' }));
    expect(error).toMatchObject({ code: 'EADDRINUSE', syscall: 'listen', address: '127.0.0.1', port });
    server.close();
    const p = sockPath();
    const unix = listen({ path: p });
    expect(thrown(() => listen({ path: p }))).toMatchObject({ code: 'EADDRINUSE', syscall: 'listen', path: p });
    unix.close();
    const missing = path.join(dir, 'missing', 'x.sock');
    // libuv reports a missing directory as EACCES (as on Windows).
    expect(thrown(() => listen({ path: missing }))).toMatchObject({ code: 'EACCES', syscall: 'listen', path: missing });
  });

  it('bad arguments throw before any IO, naming the argument', async () => {
    const cases: Array<[() => unknown, string, string]> = [
      [() => listen({ port: 70000 }), 'ERR_OUT_OF_RANGE', 'opts.port'],
      [() => listen({ port: -1 }), 'ERR_OUT_OF_RANGE', 'opts.port'],
      [() => listen({ port: '80' as unknown as number }), 'ERR_INVALID_ARG_TYPE', 'opts.port'],
      [() => listen({ port: 0, host: 'example.com' }), 'ERR_INVALID_ARG_VALUE', 'opts.host'],
      [() => listen({ port: 0, backlog: -5 }), 'ERR_OUT_OF_RANGE', 'opts.backlog'],
      [() => listen({ path: 'x'.repeat(200) }), 'ERR_OUT_OF_RANGE', 'opts.path'],
      [() => listen({ path: 5 as unknown as string }), 'ERR_INVALID_ARG_TYPE', 'opts.path'],
      [() => listen(null as unknown as { port: number }), 'ERR_INVALID_ARG_TYPE', 'opts'],
      [() => connect({ port: 0 }), 'ERR_OUT_OF_RANGE', 'opts.port'],
      [() => connect({ port: 80, timeout: -1 }), 'ERR_OUT_OF_RANGE', 'opts.timeout'],
    ];
    await inFiber(() => {
      for (const [fn, code, name] of cases) {
        const error = thrown(fn);
        expectCode(error, code);
        expect((error as Error).message).toContain(`"${name}`);
      }
      const [a, b, server] = pair();
      expectCode(thrown(() => a.read('nope' as unknown as Buffer)), 'ERR_INVALID_ARG_TYPE');
      expectCode(thrown(() => a.write(42 as unknown as Buffer)), 'ERR_INVALID_ARG_TYPE');
      expectCode(thrown(() => a.readExactly(-1)), 'ERR_OUT_OF_RANGE');
      expectCode(thrown(() => a.readUntil('')), 'ERR_OUT_OF_RANGE');
      expectCode(thrown(() => a.readUntil('\n', { maxBytes: 0 })), 'ERR_OUT_OF_RANGE');
      a.close();
      expect(thrown(() => a.write('x'))).toBeInstanceOf(SocketClosedError);
      expect(thrown(() => a.setNoDelay())).toBeInstanceOf(SocketClosedError);
      b.close();
      server.close();
    });
    // Blocking calls need a fiber; listen does not.
    const server = loopback();
    expect(thrown(() => server.accept())).toBeInstanceOf(NotInFiberError);
    expect(thrown(() => connect({ port: portOf(server), host: '127.0.0.1' }))).toBeInstanceOf(NotInFiberError);
    server.close();
  });
});

describe('Unix sockets and IPv6', () => {
  it('echo over a Unix-domain socket; close() removes the path', async () => {
    const p = sockPath();
    const server = listen({ path: p });
    expect(server.address()).toBe(p);
    await inFiber(() => {
      const handler = spawn(() => {
        using s = server.accept();
        expect(s.path).toBe(p);
        expect(s.remoteAddress).toBeUndefined();
        s.write(s.readUntil('\n'));
      });
      using c = connect({ path: p });
      c.setNoDelay();
      c.write('over unix\n');
      expect(c.readUntil('\n').toString()).toBe('over unix\n');
      handler.join();
      expect(c.read(Buffer.alloc(1))).toBe(0);
    });
    server.close();
    await inFiber(() => expect(thrown(() => connect({ path: p }))).toMatchObject({ code: 'ENOENT', syscall: 'connect', path: p }));
  });

  it('IPv6 loopback, if the machine has it', async () => {
    let server: Server;
    try {
      server = listen({ port: 0, host: '::1', ipv6Only: true });
    } catch (error) {
      expect(['EADDRNOTAVAIL', 'EAFNOSUPPORT']).toContain((error as { code: string }).code);
      return;
    }
    const addr = server.address() as { address: string; family: string; port: number };
    expect(addr).toMatchObject({ address: '::1', family: 'IPv6' });
    await inFiber(() => {
      const acceptor = spawn(() => server.accept());
      using c = connect({ port: addr.port, host: '::1' });
      using s = acceptor.join();
      expect(c.remoteAddress).toBe('::1');
      expect(c.remoteFamily).toBe('IPv6');
      expect(s.remotePort).toBe(c.localPort);
      c.write('six');
      expect(s.readExactly(3).toString()).toBe('six');
      // 'localhost' falls back to ::1 when nothing listens on 127.0.0.1:port.
      const viaLocalhost = spawn(() => server.accept());
      using l = connect({ port: addr.port });
      using ls = viaLocalhost.join();
      expect(l.remoteAddress).toBe('::1');
      expect(ls.localPort).toBe(addr.port);
    });
    server.close();
  });
});

describe('timeouts and interruption', () => {
  it('read, readExactly, readUntil, accept time out; nothing is lost', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const buf = Buffer.alloc(10);
      const t0 = performance.now();
      expect(thrown(() => b.read(buf, { timeout: 30 }))).toBeInstanceOf(TimeoutError);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
      a.write('abc');
      const e = thrown(() => b.readExactly(5, { timeout: 30 }));
      expect(e).toBeInstanceOf(TimeoutError);
      expectCode(e, 'ERR_FIBER_TIMEOUT');
      expect(thrown(() => b.readUntil('\n', { timeout: 30 }))).toBeInstanceOf(TimeoutError);
      expect(b.bufferedLength).toBe(3);
      a.write('de\n');
      expect(b.readUntil('\n', { timeout: 1000 }).toString()).toBe('abcde\n');
      expect(thrown(() => server.accept({ timeout: 20 }))).toBeInstanceOf(TimeoutError);
      // The connection arriving after the timed-out accept is not lost.
      const late = connect({ port: portOf(server), host: '127.0.0.1' });
      using s = server.accept({ timeout: 1000 });
      expect(s.remotePort).toBe(late.localPort);
      late.close();
      a.close();
      b.close();
      server.close();
    });
  });

  it('a write that times out closes the socket and reports bytesWritten', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const error = thrown(() => a.write(Buffer.alloc(64 << 20), { timeout: 50 })) as TimeoutError & { bytesWritten: number };
      expect(error).toBeInstanceOf(TimeoutError);
      expect(error.bytesWritten).toBeGreaterThan(0);
      expect(error.bytesWritten).toBeLessThan(64 << 20);
      expect(a.closed).toBe(true);
      expect(thrown(() => a.write('x'))).toBeInstanceOf(SocketClosedError);
      // The peer gets exactly the bytes reported (then EOF or a reset).
      let got = 0;
      const buf = Buffer.alloc(1 << 20);
      try {
        for (let n; (n = b.read(buf)) > 0; ) got += n;
      } catch (err) {
        expectCode(err, 'ECONNRESET');
      }
      expect(got).toBeLessThanOrEqual(error.bytesWritten);
      b.close();
      server.close();
    });
  });

  it('connect times out (and can be interrupted) against a listener whose backlog is full', async () => {
    await inFiber(() => {
      const server = listen({ port: 0, host: '127.0.0.1', backlog: 1 });
      const port = portOf(server);
      const held: Socket[] = [];
      let timedOut: unknown;
      for (let i = 0; i < 16 && timedOut === undefined; i++) {
        try {
          held.push(connect({ port, host: '127.0.0.1', timeout: 300 }));
        } catch (error) {
          timedOut = error;
        }
      }
      expect(timedOut).toBeInstanceOf(TimeoutError);
      const connecting = spawn(() => connect({ port, host: '127.0.0.1' }));
      untilParked(connecting, 'connect');
      connecting.interrupt('stop');
      expect(thrown(() => connecting.join())).toBeInstanceOf(FiberInterruptedError);
      for (const s of held) s.close();
      server.close();
    });
  });

  it('an interrupted read loses no bytes; an interrupted accept loses no connection', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      const buf = Buffer.alloc(16);
      const reader = spawn(() => b.read(buf));
      untilParked(reader, 'read');
      reader.interrupt('enough');
      expect(thrown(() => reader.join())).toBeInstanceOf(FiberInterruptedError);
      a.write('after');
      expect(b.read(buf)).toBe(5);
      expect(buf.subarray(0, 5).toString()).toBe('after');

      // readExactly interrupted half-way gives its bytes back.
      const exact = spawn(() => b.readExactly(8));
      a.write('1234');
      yieldUntil(() => b.bufferedLength === 0 && waitingOn(exact).startsWith('read'), 'readExactly to take 4 bytes');
      exact.interrupt();
      expect(thrown(() => exact.join())).toBeInstanceOf(FiberInterruptedError);
      a.write('5678');
      expect(b.readExactly(8).toString()).toBe('12345678');

      const accepter = spawn(() => server.accept());
      untilParked(accepter, 'accept');
      accepter.interrupt();
      expect(thrown(() => accepter.join())).toBeInstanceOf(FiberInterruptedError);
      const c = connect({ port: portOf(server), host: '127.0.0.1' });
      sleep(5);
      using s = server.accept({ timeout: 1000 });
      expect(s.remotePort).toBe(c.localPort);
      c.close();
      a.close();
      b.close();
      server.close();
    });
  });

  it('an interruption pending before a call is thrown before any IO', async () => {
    await inFiber(() => {
      const [a, b, server] = pair();
      a.write('kept');
      const f = spawn(() => {
        sleep(20);
        return thrown(() => b.read(Buffer.alloc(10)));
      });
      f.interrupt();
      // The sleep was the interruption point.
      expect(thrown(() => f.join())).toBeInstanceOf(FiberInterruptedError);
      expect(b.readExactly(4).toString()).toBe('kept');
      a.close();
      b.close();
      server.close();
    });
  });
});

describe('process and Worker lifetime', () => {
  it('terminating a Worker with open sockets and fibers blocked on them ends cleanly', () => {
    const r = runScript(`
      const { Worker } = require('node:worker_threads');
      const body = \`
        const { parentPort } = require('node:worker_threads');
        const { spawn, yieldNow, fibers } = require(\${JSON.stringify(SPINDLE)});
        const { listen, connect } = require(\${JSON.stringify(${JSON.stringify(netEntry)})});
        const server = listen({ port: 0, host: '127.0.0.1' });
        const { port } = server.address();
        const serverSide = [];
        spawn(() => { for (const s of server) { serverSide.push(s); spawn(() => s.read(Buffer.alloc(10))); } });
        for (let i = 0; i < 50; i++) spawn(() => {
          const c = connect({ port, host: '127.0.0.1' });
          if (i % 2) c.write(Buffer.alloc(32 << 20)); else c.read(Buffer.alloc(10));
        });
        spawn(() => {
          while (serverSide.length < 50) yieldNow();
          for (let i = 0; i < 200; i++) yieldNow();
          parentPort.postMessage('blocked ' + fibers().filter((f) => f.status === 'suspended').length);
        });
      \`;
      const w = new Worker(body, { eval: true });
      w.on('message', (m) => { console.log(m.replace(/\\d+/, (n) => n >= 75 ? 'many' : n)); w.terminate().then((code) => console.log('terminated ' + code)); });
      w.on('error', (e) => console.log('worker error ' + e));
    `, { timeoutMs: 30_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('blocked many\nterminated 1\n');
    expect(r.code).toBe(0);
  });

  it('a Worker that ends with process.exit while sockets are open exits cleanly', () => {
    const r = runScript(`
      const { Worker } = require('node:worker_threads');
      const body = \`
        const { spawn, sleep } = require(\${JSON.stringify(SPINDLE)});
        const { listen, connect } = require(\${JSON.stringify(${JSON.stringify(netEntry)})});
        const server = listen({ port: 0, host: '127.0.0.1' });
        const { port } = server.address();
        spawn(() => { for (const s of server) spawn(() => s.read(Buffer.alloc(1))); });
        for (let i = 0; i < 20; i++) spawn(() => connect({ port, host: '127.0.0.1' }).read(Buffer.alloc(1)));
        spawn(() => { sleep(50); process.exit(3); });
      \`;
      const w = new Worker(body, { eval: true });
      w.on('exit', (code) => console.log('worker exit ' + code));
    `, { timeoutMs: 30_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('worker exit 3\n');
    expect(r.code).toBe(0);
  });

  it('the process exits cleanly with 1,000 sockets open and fibers blocked on them', () => {
    const r = runScript(`
      const { spawn, sleep } = require(SPINDLE);
      const { listen, connect } = require(${JSON.stringify(netEntry)});
      const server = listen({ port: 0, host: '127.0.0.1', backlog: 1024 });
      const { port } = server.address();
      let accepted = 0;
      spawn(() => { for (const s of server) { accepted++; spawn(() => s.read(Buffer.alloc(1))); } });
      const clients = [];
      for (let i = 0; i < 500; i++) spawn(() => { clients.push(connect({ port, host: '127.0.0.1' })); clients.at(-1).read(Buffer.alloc(1)); });
      spawn(() => {
        while (accepted < 500) sleep(5);
        console.log('open ' + (accepted + clients.length));
        process.exit(0);
      });
    `, { timeoutMs: 30_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('open 1000\n');
    expect(r.code).toBe(0);
  });

  it('a dropped socket is closed when collected (the peer sees EOF)', () => {
    const r = runScript(`
      const { spawn, sleep } = require(SPINDLE);
      const { listen, connect } = require(${JSON.stringify(netEntry)});
      const server = listen({ port: 0, host: '127.0.0.1' });
      const { port } = server.address();
      spawn(() => {
        const peer = spawn(() => server.accept());
        (() => { connect({ port, host: '127.0.0.1' }); })();
        const s = peer.join();
        const reader = spawn(() => s.read(Buffer.alloc(1)));
        for (let i = 0; i < 50 && reader.status !== 'done'; i++) { globalThis.gc(); sleep(10); }
        console.log('peer read ' + reader.join());
        s.close();
        server.close();
      });
    `, { timeoutMs: 30_000, args: ['--expose-gc'] });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('peer read 0\n');
    expect(r.code).toBe(0);
  });
});
