// A line echo server on spindle/net: an accept loop, one fiber per connection, each written as plain
// blocking code (read a line, write it back), while all of them run at once.
//
// Run:   node examples/echo-server.mjs [port]        (after `npm install`; or PORT=7007 node ...)
//        The port defaults to 7007; 0 picks a free one. The server prints "listening on <host>:<port>".
// Try:   nc 127.0.0.1 7007
//        then type lines: each comes back. Several `nc` at once each get their own fiber.
// Stop:  Ctrl-C (SIGINT) or `kill <pid>` (SIGTERM): a graceful shutdown (shutdownOn). Every fiber is
//        interrupted where it waits; each connection's `finally` says goodbye to its client and
//        closes the socket; the process exits with status 0 once they are done (or after 5 s).
import { FiberInterruptedError, UnexpectedEofError, shutdownOn, spawn, uninterruptible } from '../dist/index.js';
import { listen } from '../dist/net/index.js';

const port = Number(process.argv[2] ?? process.env.PORT ?? 7007);
const host = process.env.HOST ?? '127.0.0.1';

shutdownOn(['SIGINT', 'SIGTERM'], { graceMs: 5000, exitCode: 0 });

const server = listen({ port, host });
console.log(`listening on ${host}:${server.address().port}`);

let open = 0;

function serve(socket) {
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  open++;
  console.log(`${peer} connected (${open} open)`);
  try {
    for (;;) {
      const line = socket.readUntil('\n', { maxBytes: 64 * 1024 }); // suspends this fiber only
      socket.write(line);
    }
  } catch (error) {
    if (error instanceof FiberInterruptedError) {
      // Shutting down: tell the client, without letting the interruption cut that write short.
      try {
        uninterruptible(() => socket.write('server shutting down, bye\n', { timeout: 1000 }));
      } catch {
        // the client is gone already
      }
    } else if (!(error instanceof UnexpectedEofError)) {
      // EOF (the client hung up) is the normal end; anything else is worth a line.
      console.log(`${peer}: ${error.code ?? error.name}: ${error.message}`);
    }
  } finally {
    socket.close();
    open--;
    console.log(`${peer} closed (${open} open)`);
  }
}

spawn(
  () => {
    try {
      for (const socket of server) spawn(() => serve(socket), { name: 'connection' });
    } catch (error) {
      if (!(error instanceof FiberInterruptedError)) throw error;
    } finally {
      server.close();
      console.log('shutting down');
    }
  },
  { name: 'acceptor' },
);
