#!/usr/bin/env node
// The load generator of the io section's TCP echo benchmark (bench/io.mjs), run in a child process so
// that it takes no time from the server under test. Plain Node `net` with callbacks, the same for
// every server.
//
//   node bench/io-load.mjs --port <p> [--host 127.0.0.1] [--connections 1] [--size 64]
//                          [--warmup-ms 200] [--duration-ms 1000]
//
// Opens `connections` sockets (Nagle off), and on each one plays ping-pong: send `size` bytes, wait
// until all `size` come back, send again. Messages echoed during the warm-up are not counted; those
// echoed during the next `duration-ms` are. Then it half-closes every socket (the server sees EOF),
// and prints one JSON line on stdout: { connections, messages, seconds, perSec }. Exits 1 on a socket
// error (the error on stderr).
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    connections: { type: 'string', default: '1' },
    size: { type: 'string', default: '64' },
    'warmup-ms': { type: 'string', default: '200' },
    'duration-ms': { type: 'string', default: '1000' },
  },
  strict: true,
});
const port = Number(a.port);
const connections = Number(a.connections);
const size = Number(a.size);
const warmupMs = Number(a['warmup-ms']);
const durationMs = Number(a['duration-ms']);
if (!(port > 0 && connections > 0 && size > 0 && warmupMs >= 0 && durationMs > 0)) {
  process.stderr.write('io-load: bad arguments\n');
  process.exit(2);
}

const message = Buffer.alloc(size, 'x');
const sockets = [];
let connected = 0;
let counting = false;
let stopped = false;
let messages = 0;
let closed = 0;

function fail(err) {
  process.stderr.write(`io-load: ${err.stack ?? err}\n`);
  process.exit(1);
}

for (let i = 0; i < connections; i++) {
  const s = net.connect({ port, host: a.host, noDelay: true });
  sockets.push(s);
  let got = 0;
  s.on('connect', () => {
    if (++connected === connections) start();
  });
  s.on('data', (chunk) => {
    if (stopped) return;
    got += chunk.length;
    while (got >= size) {
      got -= size;
      if (counting) messages++;
      s.write(message);
    }
  });
  s.on('error', (err) => {
    if (!stopped) fail(err);
  });
  s.on('close', () => {
    if (++closed === connections) process.exit(0);
  });
}

function start() {
  for (const s of sockets) s.write(message);
  setTimeout(() => {
    counting = true;
    const t0 = performance.now();
    setTimeout(() => {
      const seconds = (performance.now() - t0) / 1000;
      counting = false;
      stopped = true;
      process.stdout.write(`${JSON.stringify({ connections, messages, seconds, perSec: messages / seconds })}\n`);
      for (const s of sockets) s.end();
      // A server that never closes its side must not keep us alive.
      setTimeout(() => process.exit(0), 2000).unref();
    }, durationMs);
  }, warmupMs);
}
