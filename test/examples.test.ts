// The runnable examples (examples/echo-server.mjs, examples/cat.mjs), run for real in child processes:
// the echo server over loopback TCP with real clients and a real SIGTERM; cat over real files.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { root } from './helpers.js';

const echoServer = path.join(root, 'examples', 'echo-server.mjs');
const cat = path.join(root, 'examples', 'cat.mjs');
const dir = mkdtempSync(path.join(tmpdir(), 'spindle-examples-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A line-oriented client: send(), nextLine() (resolves with the next line, without '\n'), closed. */
class LineClient {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  #buffered = '';
  #waiters: Array<(line: string) => void> = [];

  constructor(port: number) {
    this.socket = net.connect({ port, host: '127.0.0.1' });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      this.#buffered += chunk;
      for (let at; (at = this.#buffered.indexOf('\n')) >= 0 && this.#waiters.length > 0; ) {
        const line = this.#buffered.slice(0, at);
        this.#buffered = this.#buffered.slice(at + 1);
        this.#waiters.shift()!(line);
      }
    });
    this.socket.on('error', () => {});
    this.closed = once(this.socket, 'close').then(() => {});
  }

  async connected(): Promise<void> {
    if (!this.socket.connecting) return;
    await once(this.socket, 'connect');
  }

  send(text: string): void {
    this.socket.write(text);
  }

  nextLine(): Promise<string> {
    const at = this.#buffered.indexOf('\n');
    if (at >= 0) {
      const line = this.#buffered.slice(0, at);
      this.#buffered = this.#buffered.slice(at + 1);
      return Promise.resolve(line);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** Resolves with what `child` printed once `pattern` matches its stdout (rejects if it exits first). */
function waitForOutput(child: ChildProcess, pattern: RegExp, output: { text: string }): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = pattern.exec(output.text);
      if (m) {
        child.stdout!.off('data', check);
        child.off('exit', exited);
        resolve(m);
      }
    };
    const exited = (code: number | null, signal: string | null) => reject(new Error(`exited with ${signal ?? code} before printing ${pattern}: ${output.text}`));
    child.stdout!.on('data', check);
    child.once('exit', exited);
    check();
  });
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function startEchoServer(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [echoServer, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const output = { text: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output.text += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output.stderr += s));
  const exit = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  return { child, output, exit };
}

describe('examples/echo-server.mjs', () => {
  it('echoes lines on many connections at once, and shuts down gracefully on SIGTERM', { timeout: 60_000 }, async () => {
    const { child, output, exit } = startEchoServer(['0']);
    const [, port] = await waitForOutput(child, /listening on 127\.0\.0\.1:(\d+)\n/, output);

    const clients = Array.from({ length: 5 }, () => new LineClient(Number(port)));
    await Promise.all(clients.map((c) => c.connected()));
    // Interleave the clients: each line comes back on its own connection, in order.
    for (let round = 0; round < 3; round++) {
      clients.forEach((c, i) => c.send(`client ${i} line ${round}\n`));
      const lines = await Promise.all(clients.map((c) => c.nextLine()));
      expect(lines).toEqual(clients.map((_, i) => `client ${i} line ${round}`));
    }
    // A line in pieces, and two lines in one packet.
    clients[0].send('in ');
    await new Promise((resolve) => setTimeout(resolve, 50));
    clients[0].send('pieces\nsecond\nthird\n');
    expect([await clients[0].nextLine(), await clients[0].nextLine(), await clients[0].nextLine()]).toEqual(['in pieces', 'second', 'third']);
    // A client that hangs up is simply closed; the others go on.
    clients[4].socket.end();
    await clients[4].closed;
    await waitForOutput(child, /closed \(4 open\)/, output);
    clients[1].send('still here\n');
    expect(await clients[1].nextLine()).toBe('still here');

    child.kill('SIGTERM');
    const [code, signal] = await exit;
    expect(signal, output.stderr).toBeNull();
    expect(code, output.stderr).toBe(0);
    // Every open connection heard the goodbye from its fiber's cleanup, then was closed by the server.
    for (const c of clients.slice(0, 4)) {
      expect(await c.nextLine()).toBe('server shutting down, bye');
      await c.closed;
    }
    expect(output.text).toContain('shutting down');
    expect(output.text).toMatch(/closed \(0 open\)/);
    expect(output.stderr).toBe('');
  });

  it('takes the port from PORT, and exits at once on SIGINT with no client', { timeout: 30_000 }, async () => {
    // Find a free port, then hand it over (a tiny race with other processes, retried once).
    for (let attempt = 0; ; attempt++) {
      const probe = net.createServer().listen(0, '127.0.0.1');
      await once(probe, 'listening');
      const port = (probe.address() as net.AddressInfo).port;
      await new Promise((resolve) => probe.close(resolve));
      const { child, output, exit } = startEchoServer([], { PORT: String(port) });
      try {
        await waitForOutput(child, new RegExp(`listening on 127\\.0\\.0\\.1:${port}\\n`), output);
      } catch (error) {
        if (attempt < 1 && output.stderr.includes('EADDRINUSE')) continue;
        throw error;
      }
      const client = new LineClient(port);
      client.send('ping\n');
      expect(await client.nextLine()).toBe('ping');
      client.socket.end();
      await client.closed;
      child.kill('SIGINT');
      const [code] = await exit;
      expect(code, output.stderr).toBe(0);
      return;
    }
  });
});

describe('examples/cat.mjs', () => {
  const text = path.join(dir, 'a.txt');
  const binary = path.join(dir, 'b.bin');
  const empty = path.join(dir, 'empty');
  const textData = Buffer.from('first line\nsecond line\nno newline at the end');
  const binaryData = randomBytes(3 * 1024 * 1024 + 123); // several 64 KiB reads, an odd tail
  writeFileSync(text, textData);
  writeFileSync(binary, binaryData);
  writeFileSync(empty, '');

  const run = (...files: string[]) => spawnSync(process.execPath, [cat, ...files], { cwd: root, timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });

  it('copies the named files to stdout, in order, byte for byte', () => {
    const r = run(text, empty, binary, text);
    expect(r.stderr.toString()).toBe('');
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, Buffer.concat([textData, binaryData, textData]))).toBe(0);
  });

  it('reports a missing file on stderr, copies the others and exits with 1', () => {
    const r = run(text, path.join(dir, 'nope'), text);
    expect(r.status).toBe(1);
    expect(r.stderr.toString()).toMatch(/^cat\.mjs: .*nope: ENOENT/);
    expect(r.stdout.toString()).toBe(`${textData}${textData}`);
  });

  it('without arguments prints its usage and exits with 2', () => {
    const r = run();
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toContain('usage: node examples/cat.mjs');
  });
});
