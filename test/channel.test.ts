import { describe, expect, it } from 'vitest';

import {
  Channel,
  ChannelClosedError,
  type Fiber,
  FiberInterruptedError,
  NotInFiberError,
  TimeoutError,
  spawn,
  yieldNow,
} from '../dist/index.js';

import { inFiber, runScript, thrown, untilParked } from './helpers.js';

function expectClosed(error: unknown): void {
  expect(error).toBeInstanceOf(ChannelClosedError);
  expect((error as ChannelClosedError).code).toBe('ERR_CHANNEL_CLOSED');
}

function expectTimeout(error: unknown): void {
  expect(error).toBeInstanceOf(TimeoutError);
  expect((error as TimeoutError).code).toBe('ERR_FIBER_TIMEOUT');
}

function joinError(fiber: Fiber<unknown>): unknown {
  return thrown(() => fiber.join());
}

describe('Channel: construction and properties', () => {
  it('defaults to a rendezvous channel and reports capacity, size and closed', () => {
    const r = new Channel();
    expect(r.capacity).toBe(0);
    expect(r.size).toBe(0);
    expect(r.closed).toBe(false);
    const b = new Channel<number>(3);
    expect(b.capacity).toBe(3);
    expect(b.trySend(1)).toBe(true);
    expect(b.trySend(2)).toBe(true);
    expect(b.size).toBe(2);
    expect(b.tryRecv()).toEqual({ ok: true, value: 1 });
    expect(b.size).toBe(1);
    b.close();
    expect(b.closed).toBe(true);
    expect(b.size).toBe(1);
    expect(b.capacity).toBe(3);
  });

  it.each([
    [-1, RangeError],
    [1.5, RangeError],
    [Number.NaN, RangeError],
    [Infinity, RangeError],
    ['x', TypeError],
    [null, TypeError],
  ])('rejects capacity %s with %s naming "capacity"', (capacity, type) => {
    const error = thrown(() => new Channel(capacity as number));
    expect(error).toBeInstanceOf(type);
    expect((error as Error).message).toContain('"capacity"');
  });

  it('takes a huge capacity without allocating it, and buffers in order past its initial ring', () => {
    const huge = new Channel<number>(2 ** 32);
    expect(huge.capacity).toBe(2 ** 32);
    for (let i = 0; i < 1000; i++) expect(huge.trySend(i)).toBe(true);
    const out: number[] = [];
    for (let i = 0; i < 500; i++) out.push(huge.tryRecv().value!);
    for (let i = 1000; i < 1300; i++) huge.trySend(i); // wraps around, then grows again
    for (let r = huge.tryRecv(); r.ok; r = huge.tryRecv()) out.push(r.value);
    expect(out).toEqual(Array.from({ length: 1300 }, (_, i) => i));
  });

  it('rejects bad timeouts on send and recv, naming the option', async () => {
    const ch = new Channel<number>(1);
    await inFiber(() => {
      const e1 = thrown(() => ch.recv({ timeout: -1 }));
      expect(e1).toBeInstanceOf(RangeError);
      expect((e1 as Error).message).toContain('timeout');
      const e2 = thrown(() => ch.send(1, { timeout: 'soon' as unknown as number }));
      expect(e2).toBeInstanceOf(TypeError);
      expect((e2 as Error).message).toContain('timeout');
    });
    // A rejected call had no effect.
    expect(ch.size).toBe(0);
  });
});

describe('Channel: rendezvous (capacity 0)', () => {
  it('send returns only once a receiver has taken the value', async () => {
    const log: string[] = [];
    await inFiber(() => {
      const ch = new Channel<string>(0);
      const sender = spawn(() => {
        log.push('send starts');
        ch.send('v');
        log.push('send returned');
      });
      untilParked(sender, 'send(');
      // The receiver takes its time: the sender stays blocked all along.
      for (let i = 0; i < 5; i++) {
        log.push(`tick ${i}`);
        yieldNow();
        expect(sender.status).toBe('suspended');
      }
      expect(ch.size).toBe(0);
      log.push('recv starts');
      const v = ch.recv();
      log.push(`recv got ${v}`);
      sender.join();
    });
    expect(log).toEqual(['send starts', 'tick 0', 'tick 1', 'tick 2', 'tick 3', 'tick 4', 'recv starts', 'recv got v', 'send returned']);
  });

  it('a waiting receiver gets the value directly; nothing is ever buffered', async () => {
    const log: string[] = [];
    await inFiber(() => {
      const ch = new Channel<number>();
      const receiver = spawn(() => {
        log.push('recv starts');
        log.push(`recv got ${ch.recv()}`);
      });
      untilParked(receiver, 'recv(');
      expect(ch.trySend(7)).toBe(true); // handed to the receiver
      expect(ch.size).toBe(0);
      expect(ch.trySend(8)).toBe(false); // nobody waits now
      receiver.join();
    });
    expect(log).toEqual(['recv starts', 'recv got 7']);
  });
});

describe('Channel: buffered (capacity n)', () => {
  it('sends up to n do not suspend; the n+1th does until a value is taken', async () => {
    const log: string[] = [];
    await inFiber(() => {
      const ch = new Channel<number>(3);
      // Would log if the sending fiber suspended and let it run.
      const bystander = spawn(() => log.push('bystander ran'));
      for (let i = 0; i < 3; i++) {
        ch.send(i);
        log.push(`sent ${i}`);
      }
      expect(ch.size).toBe(3);
      expect(log).toEqual(['sent 0', 'sent 1', 'sent 2']);
      bystander.join();

      const sender = spawn(() => {
        log.push('send 3 starts');
        ch.send(3);
        log.push('sent 3');
      });
      untilParked(sender, 'send(');
      expect(log.at(-1)).toBe('send 3 starts');
      expect(ch.size).toBe(3);
      expect(ch.recv()).toBe(0);
      // Taking a value moved the waiting sender's value into the buffer and released it.
      expect(ch.size).toBe(3);
      sender.join();
      expect(log.at(-1)).toBe('sent 3');
      expect([ch.recv(), ch.recv(), ch.recv()]).toEqual([1, 2, 3]);
      expect(ch.size).toBe(0);
    });
  });

  it('recv on a non-empty buffer does not suspend', async () => {
    const log: string[] = [];
    await inFiber(() => {
      const ch = new Channel<number>(2);
      ch.send(1);
      ch.send(2);
      const bystander = spawn(() => log.push('bystander ran'));
      expect(ch.recv()).toBe(1);
      expect(ch.recv()).toBe(2);
      expect(log).toEqual([]);
      bystander.join();
    });
  });
});

describe('Channel: FIFO order', () => {
  it('values come out in the order they were sent', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(8);
      const producer = spawn(() => {
        for (let i = 0; i < 50; i++) ch.send(i);
        ch.close();
      });
      const got: number[] = [];
      for (const v of ch) got.push(v);
      producer.join();
      expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i));
    });
  });

  it.each([0, 1])('waiting senders are served in arrival order (capacity %i)', async (capacity) => {
    await inFiber(() => {
      const ch = new Channel<string>(capacity);
      if (capacity === 1) ch.send('buffered');
      const senders: Array<Fiber<void>> = [];
      for (let i = 0; i < 5; i++) {
        const s = spawn(() => ch.send(`s${i}`), { name: `s${i}` });
        untilParked(s, 'send(');
        senders.push(s);
      }
      const got: string[] = [];
      for (let i = 0; i < senders.length + capacity; i++) got.push(ch.recv());
      for (const s of senders) s.join();
      expect(got).toEqual([...(capacity === 1 ? ['buffered'] : []), 's0', 's1', 's2', 's3', 's4']);
    });
  });

  it.each([0, 4])('waiting receivers are served in arrival order (capacity %i)', async (capacity) => {
    await inFiber(() => {
      const ch = new Channel<number>(capacity);
      const receivers: Array<Fiber<number>> = [];
      for (let i = 0; i < 5; i++) {
        const r = spawn(() => ch.recv(), { name: `r${i}` });
        untilParked(r, 'recv(');
        receivers.push(r);
      }
      for (let i = 0; i < 5; i++) ch.send(i);
      expect(receivers.map((r) => r.join())).toEqual([0, 1, 2, 3, 4]);
    });
  });
});

describe('Channel: close', () => {
  it('buffered values are still received, then recv throws ChannelClosedError and iteration ends', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(4);
      ch.send(1);
      ch.send(2);
      ch.send(3);
      ch.close();
      expect(ch.recv()).toBe(1);
      const rest: number[] = [];
      for (const v of ch) rest.push(v);
      expect(rest).toEqual([2, 3]);
      expectClosed(thrown(() => ch.recv()));
      expectClosed(thrown(() => ch.recv({ timeout: 10_000 })));
      expect(ch.tryRecv()).toEqual({ ok: false, value: undefined });
      // Iterating a closed, drained channel ends at once.
      let n = 0;
      for (const _ of ch) n++;
      expect(n).toBe(0);
    });
  });

  it('send on a closed channel throws at once, even when there is room', async () => {
    const ch = new Channel<number>(4);
    ch.close();
    expectClosed(thrown(() => ch.trySend(1)));
    await inFiber(() => {
      expectClosed(thrown(() => ch.send(1)));
      expectClosed(thrown(() => ch.send(1, { timeout: 10_000 })));
    });
    expect(ch.size).toBe(0);
    await expect(ch.sendAsync(1)).rejects.toBeInstanceOf(ChannelClosedError);
    expect(ch.size).toBe(0);
  });

  it('senders blocked at the close wake with ChannelClosedError and their values are never received', async () => {
    await inFiber(() => {
      const ch = new Channel<string>(1);
      ch.send('buffered');
      const senders = ['x1', 'x2', 'x3'].map((v) => {
        const s = spawn(() => ch.send(v), { name: v });
        untilParked(s, 'send(');
        return s;
      });
      ch.close();
      for (const s of senders) expectClosed(joinError(s));
      const got: string[] = [];
      for (const v of ch) got.push(v);
      expect(got).toEqual(['buffered']);
      expect(ch.tryRecv().ok).toBe(false);
    });
  });

  it('rendezvous senders blocked at the close are not received either', async () => {
    await inFiber(() => {
      const ch = new Channel<string>(0);
      const sender = spawn(() => ch.send('lost'));
      untilParked(sender, 'send(');
      ch.close();
      expect(ch.tryRecv()).toEqual({ ok: false, value: undefined });
      expectClosed(thrown(() => ch.recv()));
      expectClosed(joinError(sender));
    });
  });

  it('receivers blocked at the close wake and see the channel closed', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(2);
      const r1 = spawn(() => ch.recv(), { name: 'r1' });
      const r2 = spawn(() => {
        const got: number[] = [];
        for (const v of ch) got.push(v);
        return got;
      }, { name: 'r2' });
      untilParked(r1, 'recv(');
      untilParked(r2, 'recv(');
      ch.close();
      expectClosed(joinError(r1));
      expect(r2.join()).toEqual([]);
    });
  });

  it('closing twice is a no-op', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(2);
      ch.send(5);
      ch.close();
      expect(() => ch.close()).not.toThrow();
      expect(ch.closed).toBe(true);
      expect(ch.size).toBe(1);
      expect(ch.recv()).toBe(5);
      expectClosed(thrown(() => ch.recv()));
    });
  });
});

describe('Channel: trySend / tryRecv', () => {
  it('never suspend, and report whether they took effect', async () => {
    const ch = new Channel<number>(1);
    expect(ch.tryRecv()).toEqual({ ok: false, value: undefined });
    expect(ch.trySend(1)).toBe(true);
    expect(ch.trySend(2)).toBe(false);
    expect(ch.size).toBe(1);
    expect(ch.tryRecv()).toEqual({ ok: true, value: 1 });
    expect(ch.tryRecv()).toEqual({ ok: false, value: undefined });
    // A falsy value is still a value.
    expect(ch.trySend(0)).toBe(true);
    expect(ch.tryRecv()).toEqual({ ok: true, value: 0 });
    // Work inside fibers the same, without suspending.
    await inFiber(() => {
      expect(ch.trySend(3)).toBe(true);
      expect(ch.trySend(4)).toBe(false);
      expect(ch.tryRecv()).toEqual({ ok: true, value: 3 });
    });
  });

  it('tryRecv takes the value of a waiting rendezvous sender and releases it', async () => {
    await inFiber(() => {
      const ch = new Channel<string>();
      let returned = false;
      const sender = spawn(() => {
        ch.send('hello');
        returned = true;
      });
      untilParked(sender, 'send(');
      expect(ch.tryRecv()).toEqual({ ok: true, value: 'hello' });
      sender.join();
      expect(returned).toBe(true);
      expect(ch.tryRecv().ok).toBe(false);
    });
  });
});

describe('Channel: timeouts', () => {
  it('recv times out with TimeoutError', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(1);
      const started = performance.now();
      expectTimeout(thrown(() => ch.recv({ timeout: 30 })));
      expect(performance.now() - started).toBeGreaterThanOrEqual(25);
      // The timed-out receiver left no trace: a later value is buffered, not handed to it.
      expect(ch.trySend(1)).toBe(true);
      expect(ch.size).toBe(1);
    });
  });

  it.each([0, 1])('a timed-out send (capacity %i) is never delivered later', async (capacity) => {
    await inFiber(() => {
      const ch = new Channel<string>(capacity);
      if (capacity === 1) ch.send('first');
      const started = performance.now();
      expectTimeout(thrown(() => ch.send('late', { timeout: 30 })));
      expect(performance.now() - started).toBeGreaterThanOrEqual(25);
      const got: string[] = [];
      const receiver = spawn(() => {
        for (const v of ch) got.push(v);
      });
      // A rendezvous trySend succeeds only with a receiver waiting; be sure the receiver is waiting.
      untilParked(receiver, 'recv(');
      ch.send('next');
      ch.close();
      receiver.join();
      expect(got).toEqual([...(capacity === 1 ? ['first'] : []), 'next']);
    });
  });

  it('a timeout does not fire when the operation completes first', async () => {
    await inFiber(() => {
      const ch = new Channel<number>();
      const receiver = spawn(() => ch.recv({ timeout: 60_000 }));
      untilParked(receiver, 'recv(');
      ch.send(42, { timeout: 60_000 });
      expect(receiver.join()).toBe(42);
    });
  });
});

describe('Channel: interruption', () => {
  it('an interrupted send has not delivered its value', async () => {
    await inFiber(() => {
      const ch = new Channel<string>();
      const sender = spawn(() => ch.send('never'));
      untilParked(sender, 'send(');
      sender.interrupt('stop');
      const error = joinError(sender);
      expect(error).toBeInstanceOf(FiberInterruptedError);
      expect((error as FiberInterruptedError).reason).toBe('stop');
      expect(ch.tryRecv()).toEqual({ ok: false, value: undefined });
      const got: string[] = [];
      const receiver = spawn(() => {
        for (const v of ch) got.push(v);
      });
      untilParked(receiver, 'recv(');
      ch.send('after');
      ch.close();
      receiver.join();
      expect(got).toEqual(['after']);
    });
  });

  it('an interrupted send on a full buffer has not delivered its value', async () => {
    await inFiber(() => {
      const ch = new Channel<string>(1);
      ch.send('kept');
      const sender = spawn(() => ch.send('never'));
      untilParked(sender, 'send(');
      sender.interrupt();
      expect(joinError(sender)).toBeInstanceOf(FiberInterruptedError);
      expect(ch.recv()).toBe('kept');
      expect(ch.tryRecv().ok).toBe(false);
      expect(ch.size).toBe(0);
    });
  });

  it('an interrupted recv has not consumed a value: the next send goes to another receiver', async () => {
    await inFiber(() => {
      const ch = new Channel<string>();
      const r1 = spawn(() => ch.recv(), { name: 'r1' });
      untilParked(r1, 'recv(');
      r1.interrupt('cancel');
      expect(joinError(r1)).toBeInstanceOf(FiberInterruptedError);
      // r1 left the queue: nobody waits now.
      expect(ch.trySend('nobody')).toBe(false);
      const r2 = spawn(() => ch.recv(), { name: 'r2' });
      untilParked(r2, 'recv(');
      ch.send('v');
      expect(r2.join()).toBe('v');
    });
  });

  it('a value handed over at the moment of the interruption is not lost', async () => {
    await inFiber(() => {
      const ch = new Channel<string>();
      let got: string | undefined;
      const r = spawn(() => {
        got = ch.recv();
        return 'received';
      });
      untilParked(r, 'recv(');
      r.interrupt();
      // The receiver has not run yet. If the channel still hands it the value, recv must return it.
      const handed = ch.trySend('v');
      let outcome: unknown;
      try {
        outcome = r.join();
      } catch (error) {
        outcome = error;
      }
      if (handed) {
        expect(outcome).toBe('received');
        expect(got).toBe('v');
      } else {
        expect(outcome).toBeInstanceOf(FiberInterruptedError);
        expect(got).toBeUndefined();
      }
    });
  });

  it('an interrupted iteration stops without consuming a value', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(2);
      const seen: number[] = [];
      const consumer = spawn(() => {
        for (const v of ch) seen.push(v);
      });
      untilParked(consumer, 'recv(');
      ch.send(1);
      untilParked(consumer, 'recv(');
      consumer.interrupt();
      expect(joinError(consumer)).toBeInstanceOf(FiberInterruptedError);
      ch.send(2);
      expect(seen).toEqual([1]);
      expect(ch.tryRecv()).toEqual({ ok: true, value: 2 });
    });
  });
});

describe('Channel: iteration inside fibers', () => {
  it('for...of receives until the channel is closed and drained', async () => {
    const got = await inFiber(() => {
      const ch = new Channel<number>(0);
      const producer = spawn(() => {
        for (let i = 1; i <= 5; i++) ch.send(i * 10);
        ch.close();
      });
      const out: number[] = [];
      for (const v of ch) out.push(v);
      producer.join();
      return out;
    });
    expect(got).toEqual([10, 20, 30, 40, 50]);
  });

  it('breaking out of the loop leaves the remaining values in the channel', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(5);
      for (let i = 0; i < 5; i++) ch.send(i);
      const out: number[] = [];
      for (const v of ch) {
        out.push(v);
        if (v === 1) break;
      }
      expect(out).toEqual([0, 1]);
      expect(ch.size).toBe(3);
    });
  });
});

describe('Channel: outside fibers', () => {
  it('send/recv that would wait throw NotInFiberError and leave no trace', () => {
    const ch = new Channel<number>();
    const e1 = thrown(() => ch.send(1));
    expect(e1).toBeInstanceOf(NotInFiberError);
    expect((e1 as NotInFiberError).code).toBe('ERR_NOT_IN_FIBER');
    expect(ch.tryRecv().ok).toBe(false); // the value was not left queued
    const e2 = thrown(() => ch.recv());
    expect(e2).toBeInstanceOf(NotInFiberError);
    expect(ch.trySend(1)).toBe(false); // no receiver was left queued
  });

  it('send/recv that need not wait work outside fibers', () => {
    const ch = new Channel<number>(2);
    ch.send(1);
    ch.send(2);
    expect(thrown(() => ch.send(3))).toBeInstanceOf(NotInFiberError);
    expect(ch.recv()).toBe(1);
    expect(ch.recv()).toBe(2);
    expect(thrown(() => ch.recv())).toBeInstanceOf(NotInFiberError);
  });

  it('sendAsync/recvAsync and for await work from async code', async () => {
    const ch = new Channel<number>(0);
    const received = (async () => {
      const out: number[] = [];
      for await (const v of ch) out.push(v);
      return out;
    })();
    for (let i = 0; i < 5; i++) await ch.sendAsync(i);
    ch.close();
    expect(await received).toEqual([0, 1, 2, 3, 4]);
    await expect(ch.recvAsync()).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('sendAsync on a rendezvous channel resolves only once a receiver took the value', async () => {
    const ch = new Channel<string>(0);
    let sent = false;
    const p = ch.sendAsync('a').then(() => (sent = true));
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toBe(false);
    expect(await ch.recvAsync()).toBe('a');
    await p;
    expect(sent).toBe(true);
  });

  it('async timeouts reject with TimeoutError and leave no trace', async () => {
    const ch = new Channel<string>(0);
    const e1 = await ch.recvAsync({ timeout: 20 }).catch((e: unknown) => e);
    expectTimeout(e1);
    expect(ch.trySend('x')).toBe(false); // no receiver left behind
    const e2 = await ch.sendAsync('late', { timeout: 20 }).catch((e: unknown) => e);
    expectTimeout(e2);
    expect(ch.tryRecv().ok).toBe(false); // the value was withdrawn
  });

  it('async senders blocked at the close reject with ChannelClosedError; async receivers see it too', async () => {
    const ch = new Channel<number>(0);
    const s = ch.sendAsync(1).catch((e: unknown) => e);
    const ch2 = new Channel<number>(0);
    const r = ch2.recvAsync().catch((e: unknown) => e);
    ch.close();
    ch2.close();
    expectClosed(await s);
    expectClosed(await r);
    expect(ch.tryRecv().ok).toBe(false);
  });

  it('fibers and async functions share one channel in both directions', async () => {
    const ch = new Channel<string>(0);
    // Fiber producers, async consumer.
    const producers = [0, 1, 2].map((p) =>
      spawn(() => {
        for (let i = 0; i < 10; i++) ch.send(`f${p}-${i}`);
      }),
    );
    // Async producer too.
    const asyncProducer = (async () => {
      for (let i = 0; i < 10; i++) await ch.sendAsync(`a-${i}`);
    })();
    // One fiber consumer and the async consumer share the receiving side.
    const fiberConsumer = spawn(() => {
      const out: string[] = [];
      for (const v of ch) out.push(v);
      return out;
    });
    const asyncConsumer = (async () => {
      const out: string[] = [];
      for await (const v of ch) out.push(v);
      return out;
    })();
    await Promise.all([...producers.map((p) => p.result()), asyncProducer]);
    ch.close();
    const [a, b] = await Promise.all([fiberConsumer.result(), asyncConsumer]);
    const all = [...a, ...b].sort();
    const expected = [...[0, 1, 2].flatMap((p) => Array.from({ length: 10 }, (_, i) => `f${p}-${i}`)), ...Array.from({ length: 10 }, (_, i) => `a-${i}`)].sort();
    expect(all).toEqual(expected);
    // Per producer, each consumer sees values in send order.
    for (const out of [a, b]) {
      for (const prefix of ['f0-', 'f1-', 'f2-', 'a-']) {
        const seq = out.filter((v) => v.startsWith(prefix)).map((v) => Number(v.slice(prefix.length)));
        expect(seq).toEqual([...seq].sort((x, y) => x - y));
      }
    }
  });

  it('a fiber receives what an async function sends and vice versa (rendezvous)', async () => {
    const ch = new Channel<number>(0);
    const back = new Channel<number>(0);
    const echo = spawn(() => {
      for (const v of ch) back.send(v * 2);
    });
    const out: number[] = [];
    for (let i = 1; i <= 5; i++) {
      await ch.sendAsync(i);
      out.push(await back.recvAsync());
    }
    ch.close();
    await echo.result();
    expect(out).toEqual([2, 4, 6, 8, 10]);
  });
});

describe('Channel: deadlock', () => {
  it('a fiber receiving from a channel nobody sends on gets DeadlockError naming recv(Channel ...)', () => {
    const r = runScript(`
      const { spawn, Channel, DeadlockError } = require(SPINDLE);
      const ch = new Channel();
      const f = spawn(() => ch.recv(), { name: 'lonely' });
      f.result().then(
        () => console.log('RESULT value'),
        (e) => console.log('RESULT ' + JSON.stringify({ name: e.name, code: e.code, isDeadlock: e instanceof DeadlockError, message: e.message, waitingOn: e.waitingOn })),
      );
    `);
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    expect(line, r.stderr).toBeDefined();
    const info = JSON.parse(line!.slice('RESULT '.length));
    expect(info.isDeadlock).toBe(true);
    expect(info.code).toBe('ERR_FIBER_DEADLOCK');
    expect(info.message).toMatch(/recv\(Channel [^)]*\)/);
    expect(info.message).toContain("'lonely'");
    expect(info.waitingOn).toMatch(/^recv\(Channel/);
  });

  it('a fiber sending on a channel nobody receives from gets DeadlockError naming send(Channel ...)', () => {
    const r = runScript(`
      const { spawn, Channel } = require(SPINDLE);
      const ch = new Channel(1);
      const f = spawn(() => { ch.send(1); ch.send(2); });
      f.result().catch((e) => console.log('RESULT ' + e.code + ' ' + e.message));
    `);
    expect(r.stdout, r.stderr).toMatch(/RESULT ERR_FIBER_DEADLOCK .*send\(Channel /);
  });
});
