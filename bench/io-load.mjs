#!/usr/bin/env node
// The load generator of the io section's TCP echo benchmark (bench/io.mjs), run in a child process so
// that it takes no time from the server under test. The same for every server: the addon's native
// epoll loop (native/bench_load.h), which costs little more than the kernel's share of an echo. (A
// generator made of Node `net` callbacks took as much CPU per message as the servers it measured, and
// capped their ratios near 1.)
//
//   node bench/io-load.mjs --port <p> [--host 127.0.0.1] [--connections 1] [--size 64]
//                          [--warmup-ms 200] [--duration-ms 1000]
//
// Opens `connections` sockets (Nagle off), and on each one plays ping-pong: send `size` bytes, wait
// until all `size` come back, send again. Messages echoed during the warm-up are not counted; those
// echoed during the next `duration-ms` are. It prints `measuring` and `stopped` lines on stdout when
// that span starts and ends (the server's process reads its own CPU time at each), then half-closes
// every socket (the server sees EOF), and prints one JSON line: { connections, messages, seconds,
// perSec }. Exits 1 on a socket error (the error on stderr).
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const { native } = require('../dist/cjs/native.js');

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
const opts = {
  host: a.host,
  port: Number(a.port),
  connections: Number(a.connections),
  size: Number(a.size),
  warmupMs: Number(a['warmup-ms']),
  durationMs: Number(a['duration-ms']),
  markFd: 1,
};
try {
  const { messages, seconds } = native.benchEchoLoad(opts);
  process.stdout.write(`${JSON.stringify({ connections: opts.connections, messages, seconds, perSec: messages / seconds })}\n`);
} catch (err) {
  process.stderr.write(`io-load: ${err.message}\n`);
  process.exit(err.code === 'ERR_BENCH_LOAD' ? 1 : 2);
}
