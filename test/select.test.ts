import { describe, expect, it } from 'vitest';

import {
  Channel,
  ChannelClosedError,
  type Fiber,
  FiberInterruptedError,
  FiberStateError,
  NotInFiberError,
  TimeoutError,
  after,
  promiseCase,
  select,
  spawn,
  yieldNow,
} from '../dist/index.js';

import { inFiber, thrown, untilParked, waitingOn, yieldUntil } from './helpers.js';

function joinError(fiber: Fiber<unknown>): unknown {
  return thrown(() => fiber.join());
}

/** A promise and its resolvers. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('select: each case kind fires', () => {
  it('recvCase: ready at once, and after blocking', async () => {
    await inFiber(() => {
      const a = new Channel<string>(1);
      const b = new Channel<string>(1);
      b.send('now');
      expect(select([a.recvCase(), b.recvCase()])).toEqual({ index: 1, value: 'now', ok: true });

      const selector = spawn(() => select([a.recvCase(), b.recvCase()]));
      untilParked(selector, 'select(');
      expect(waitingOn(selector)).toMatch(/recv\(Channel .*recv\(Channel /);
      a.send('later');
      expect(selector.join()).toEqual({ index: 0, value: 'later', ok: true });
      expect(a.size).toBe(0);
    });
  });

  it('sendCase: ready at once with a waiting receiver, and after blocking until one comes', async () => {
    await inFiber(() => {
      const ch = new Channel<string>(0);
      const r1 = spawn(() => ch.recv());
      untilParked(r1, 'recv(');
      expect(select([ch.sendCase('direct')])).toEqual({ index: 0, value: undefined, ok: true });
      expect(r1.join()).toBe('direct');

      const log: string[] = [];
      const selector = spawn(() => {
        const r = select([ch.sendCase('queued')]);
        log.push('select returned');
        return r;
      });
      untilParked(selector, 'select(');
      expect(waitingOn(selector)).toContain('send(Channel ');
      log.push('recv starts');
      expect(ch.recv()).toBe('queued');
      expect(selector.join()).toEqual({ index: 0, value: undefined, ok: true });
      expect(log).toEqual(['recv starts', 'select returned']);
    });
  });

  it('sendCase on a buffered channel with room fires at once', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(1);
      expect(select([ch.sendCase(1)]).index).toBe(0);
      expect(ch.size).toBe(1);
      expect(select([ch.sendCase(2)], { default: true }).index).toBe(-1);
      expect(ch.size).toBe(1);
      expect(ch.recv()).toBe(1);
      expect(ch.tryRecv().ok).toBe(false);
    });
  });

  it('after(ms) fires when nothing else does, leaving the channels untouched', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(0);
      const started = performance.now();
      const r = select([ch.recvCase(), after(30)]);
      expect(r).toEqual({ index: 1, value: undefined, ok: true });
      expect(performance.now() - started).toBeGreaterThanOrEqual(25);
      expect(ch.trySend(1)).toBe(false); // no receiver left behind
    });
  });

  it('the earliest of several after cases fires', async () => {
    await inFiber(() => {
      const r = select([after(10_000), after(20), after(5_000)]);
      expect(r.index).toBe(1);
    });
  });

  it('after(0) is ready at once and does not suspend', async () => {
    const log: string[] = [];
    await inFiber(() => {
      const ch = new Channel<number>(0);
      const bystander = spawn(() => log.push('bystander ran'));
      expect(select([ch.recvCase(), after(0)])).toEqual({ index: 1, value: undefined, ok: true });
      expect(select([ch.recvCase(), after(0)], { default: true }).index).toBe(1);
      expect(log).toEqual([]);
      bystander.join();
    });
  });

  it('joinCase delivers the fiber value, when done already and after blocking', async () => {
    await inFiber(() => {
      const done = spawn(() => 'early');
      yieldUntil(() => done.status === 'done');
      expect(select([done.joinCase()])).toEqual({ index: 0, value: 'early', ok: true });

      const gate = new Channel<void>(0);
      const worker = spawn(() => {
        gate.recv();
        return 'late';
      });
      const ch = new Channel<number>(0);
      const selector = spawn(() => select([ch.recvCase(), worker.joinCase()]));
      untilParked(selector, 'select(');
      expect(waitingOn(selector)).toMatch(/join\(#\d+/);
      gate.send();
      expect(selector.join()).toEqual({ index: 1, value: 'late', ok: true });
    });
  });

  it('joinCase throws the fiber error and counts as a join', async () => {
    await inFiber(() => {
      const boom = new Error('boom');
      const failing = spawn(() => {
        yieldNow();
        throw boom;
      });
      expect(thrown(() => select([failing.joinCase()]))).toBe(boom);
      expect(failing.joinable).toBe(false);
      expect(thrown(() => failing.join())).toBeInstanceOf(FiberStateError);

      const ok = spawn(() => 5);
      expect(select([ok.joinCase()]).value).toBe(5);
      expect(ok.joinable).toBe(false);
      const again = thrown(() => ok.join());
      expect(again).toBeInstanceOf(FiberStateError);
      expect((again as FiberStateError).code).toBe('ERR_FIBER_STATE');
      // A joinCase of an already joined fiber is misuse too.
      expect(thrown(() => select([ok.joinCase()]))).toBeInstanceOf(FiberStateError);
    });
  });

  it('while a select waits on joinCase, the fiber is being joined: a second join is refused', async () => {
    await inFiber(() => {
      const gate = new Channel<void>(0);
      const worker = spawn(() => {
        gate.recv();
        return 'v';
      });
      const selector = spawn(() => select([worker.joinCase()]));
      untilParked(selector, 'select(');
      expect(worker.joinable).toBe(false);
      expect(thrown(() => worker.join())).toBeInstanceOf(FiberStateError);
      gate.send();
      expect(selector.join()).toEqual({ index: 0, value: 'v', ok: true });
    });
  });

  it('misuse of joinCase is refused even when another case is ready', async () => {
    await inFiber(() => {
      const done = spawn(() => 1);
      done.join();
      for (let i = 0; i < 30; i++) {
        const ch = new Channel<number>(1);
        ch.trySend(1);
        expect(thrown(() => select([ch.recvCase(), done.joinCase()]))).toBeInstanceOf(FiberStateError);
        expect(ch.size).toBe(1); // nothing taken
      }
    });
  });

  it('a joinCase that did not fire leaves the fiber joinable', async () => {
    await inFiber(() => {
      const gate = new Channel<void>(0);
      const worker = spawn(() => {
        gate.recv();
        return 'value';
      });
      const ch = new Channel<string>(1);
      const selector = spawn(() => select([worker.joinCase(), ch.recvCase()]));
      untilParked(selector, 'select(');
      ch.send('first');
      expect(selector.join()).toEqual({ index: 1, value: 'first', ok: true });
      gate.send();
      expect(worker.joinable).toBe(true);
      expect(worker.join()).toBe('value');
      // The timer case losing leaves it joinable too.
      const slow = spawn(() => gate.recv());
      expect(select([slow.joinCase(), after(10)]).index).toBe(1);
      expect(slow.joinable).toBe(true);
      gate.send();
      slow.join();
    });
  });

  it('promiseCase delivers the value, or throws the rejection reason', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(0);
      expect(select([ch.recvCase(), promiseCase(Promise.resolve('p'))])).toEqual({ index: 1, value: 'p', ok: true });
      const reason = new Error('rejected');
      expect(thrown(() => select([ch.recvCase(), promiseCase(Promise.reject(reason))]))).toBe(reason);
      const d = deferred<number>();
      setTimeout(() => d.resolve(9), 10);
      expect(select([ch.recvCase(), promiseCase(d.promise)])).toEqual({ index: 1, value: 9, ok: true });
      expect(ch.trySend(1)).toBe(false); // the losing recv case left no receiver
    });
  });

  it('a promiseCase that settles after another case fired is ignored (its rejection is handled)', async () => {
    await inFiber(() => {
      const d = deferred<string>();
      const ch = new Channel<string>(0);
      const selector = spawn(() => select([promiseCase(d.promise), ch.recvCase()]));
      untilParked(selector, 'select(');
      ch.send('chan');
      expect(selector.join()).toEqual({ index: 1, value: 'chan', ok: true });
      // Nobody else listens to this promise: an unhandled rejection would fail the test run.
      d.reject(new Error('late rejection'));
      expect(select([promiseCase(Promise.resolve('fresh'))]).value).toBe('fresh');
    });
  });
});

describe('select: exactly one case takes effect', () => {
  it('with two ready channels it takes from exactly one; the other keeps its value', async () => {
    await inFiber(() => {
      for (let round = 0; round < 20; round++) {
        const a = new Channel<string>(1);
        const b = new Channel<string>(1);
        a.send('a');
        b.send('b');
        const r = select([a.recvCase(), b.recvCase()]);
        expect(r.ok).toBe(true);
        expect(r.value).toBe(r.index === 0 ? 'a' : 'b');
        const [taken, kept] = r.index === 0 ? [a, b] : [b, a];
        expect(taken.size).toBe(0);
        expect(kept.size).toBe(1);
      }
    });
  });

  it('with a ready send and a ready recv only one happens', async () => {
    await inFiber(() => {
      for (let round = 0; round < 20; round++) {
        const out = new Channel<string>(1);
        const inp = new Channel<string>(1);
        inp.send('in');
        const r = select([out.sendCase('out'), inp.recvCase()]);
        if (r.index === 0) {
          expect(out.size).toBe(1);
          expect(inp.size).toBe(1);
        } else {
          expect(r.value).toBe('in');
          expect(out.size).toBe(0);
          expect(inp.size).toBe(0);
        }
      }
    });
  });

  it('a select woken by A leaves no waiter on B', async () => {
    await inFiber(() => {
      const a = new Channel<string>(0);
      const b = new Channel<string>(0);
      const selector = spawn(() => select([a.recvCase(), b.recvCase()]));
      untilParked(selector, 'select(');
      a.send('on a');
      expect(selector.join()).toEqual({ index: 0, value: 'on a', ok: true });
      expect(b.trySend('lost?')).toBe(false);
      // A sender on B blocks until another receiver comes.
      const sender = spawn(() => b.send('for the next receiver'));
      untilParked(sender, 'send(');
      for (let i = 0; i < 3; i++) {
        yieldNow();
        expect(sender.status).toBe('suspended');
      }
      expect(b.recv()).toBe('for the next receiver');
      sender.join();
    });
  });

  it('once one case completed the select, the others cannot complete it too (before it even runs)', async () => {
    await inFiber(() => {
      const a = new Channel<string>(0);
      const b = new Channel<string>(0);
      const selector = spawn(() => select([a.recvCase(), b.recvCase()]));
      untilParked(selector, 'select(');
      // The selector has not run since: its entry on B is still queued, but its wait is taken.
      expect(a.trySend('first')).toBe(true);
      expect(b.trySend('second')).toBe(false);
      expect(selector.join()).toEqual({ index: 0, value: 'first', ok: true });
    });
  });

  it('two blocked send cases: a receiver on one leaves the other value unsent', async () => {
    await inFiber(() => {
      const a = new Channel<string>(0);
      const b = new Channel<string>(0);
      const selector = spawn(() => select([a.sendCase('x'), b.sendCase('y')]));
      untilParked(selector, 'select(');
      expect(b.tryRecv()).toEqual({ ok: true, value: 'y' });
      expect(a.tryRecv()).toEqual({ ok: false, value: undefined });
      expect(selector.join().index).toBe(1);
      expect(a.tryRecv().ok).toBe(false);
    });
  });

  it('sendCase on a rendezvous channel: when the timer wins, no receiver ever gets the value', async () => {
    await inFiber(() => {
      const ch = new Channel<string>(0);
      const r = select([ch.sendCase('x'), after(20)]);
      expect(r.index).toBe(1);
      expect(ch.tryRecv()).toEqual({ ok: false, value: undefined });
      const receiver = spawn(() => {
        const got: string[] = [];
        for (const v of ch) got.push(v);
        return got;
      });
      untilParked(receiver, 'recv(');
      ch.send('y');
      ch.close();
      expect(receiver.join()).toEqual(['y']);
    });
  });

  it('a send case loses to a recv case: its value is never delivered', async () => {
    await inFiber(() => {
      const out = new Channel<string>(0);
      const inp = new Channel<string>(0);
      const selector = spawn(() => select([out.sendCase('x'), inp.recvCase()]));
      untilParked(selector, 'select(');
      inp.send('in');
      expect(selector.join()).toEqual({ index: 1, value: 'in', ok: true });
      expect(out.tryRecv().ok).toBe(false);
    });
  });
});

describe('select: default and timeout', () => {
  it('default never suspends and returns index -1 when nothing is ready', async () => {
    const log: string[] = [];
    await inFiber(() => {
      const a = new Channel<number>(0);
      const b = new Channel<number>(1);
      const bystander = spawn(() => log.push('bystander ran'));
      const r = select([a.recvCase(), b.recvCase(), a.sendCase(1), promiseCase(Promise.resolve(1))], { default: true });
      expect(r).toEqual({ index: -1, value: undefined, ok: false });
      expect(log).toEqual([]);
      // Nothing was left behind.
      expect(a.trySend(1)).toBe(false);
      expect(a.tryRecv().ok).toBe(false);
      b.send(3);
      expect(select([a.recvCase(), b.recvCase()], { default: true })).toEqual({ index: 1, value: 3, ok: true });
      expect(select([], { default: true }).index).toBe(-1);
      bystander.join();
    });
  });

  it('timeout throws TimeoutError and leaves no trace', async () => {
    await inFiber(() => {
      const a = new Channel<number>(0);
      const b = new Channel<string>(0);
      const started = performance.now();
      const error = thrown(() => select([a.recvCase(), b.sendCase('x')], { timeout: 30 }));
      expect(error).toBeInstanceOf(TimeoutError);
      expect((error as TimeoutError).code).toBe('ERR_FIBER_TIMEOUT');
      expect(performance.now() - started).toBeGreaterThanOrEqual(25);
      expect(a.trySend(1)).toBe(false);
      expect(b.tryRecv().ok).toBe(false);
    });
  });

  it('an after case shorter than the timeout wins; a longer one loses to the timeout', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(0);
      expect(select([ch.recvCase(), after(10)], { timeout: 5_000 }).index).toBe(1);
      expect(thrown(() => select([ch.recvCase(), after(5_000)], { timeout: 10 }))).toBeInstanceOf(TimeoutError);
    });
  });
});

describe('select: closed channels', () => {
  it('recvCase fires with ok:false on a closed, drained channel (buffered values first)', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(2);
      ch.send(1);
      ch.close();
      const other = new Channel<number>(0);
      expect(select([ch.recvCase(), other.recvCase()])).toEqual({ index: 0, value: 1, ok: true });
      expect(select([ch.recvCase(), other.recvCase()])).toEqual({ index: 0, value: undefined, ok: false });
    });
  });

  it('a select blocked on recv wakes with ok:false when the channel closes', async () => {
    await inFiber(() => {
      const ch = new Channel<number>(0);
      const other = new Channel<number>(0);
      const selector = spawn(() => select([other.recvCase(), ch.recvCase()]));
      untilParked(selector, 'select(');
      ch.close();
      expect(selector.join()).toEqual({ index: 1, value: undefined, ok: false });
      expect(other.trySend(1)).toBe(false);
    });
  });

  it('sendCase on a closed channel throws ChannelClosedError, also when it closes while blocked', async () => {
    await inFiber(() => {
      const closed = new Channel<number>(1);
      closed.close();
      const e = thrown(() => select([closed.sendCase(1)]));
      expect(e).toBeInstanceOf(ChannelClosedError);
      expect((e as ChannelClosedError).code).toBe('ERR_CHANNEL_CLOSED');

      const ch = new Channel<string>(0);
      const other = new Channel<string>(0);
      const selector = spawn(() => select([ch.sendCase('x'), other.recvCase()]));
      untilParked(selector, 'select(');
      ch.close();
      expect(joinError(selector)).toBeInstanceOf(ChannelClosedError);
      expect(other.trySend('y')).toBe(false);
      expect(ch.tryRecv().ok).toBe(false);
    });
  });
});

describe('select: interruption', () => {
  it('an interrupted select throws FiberInterruptedError and no case took effect', async () => {
    await inFiber(() => {
      const a = new Channel<string>(0);
      const b = new Channel<string>(0);
      const gate = new Channel<void>(0);
      const worker = spawn(() => {
        gate.recv();
        return 'w';
      });
      const d = deferred<string>();
      const selector = spawn(() => select([a.recvCase(), b.sendCase('x'), worker.joinCase(), promiseCase(d.promise), after(60_000)]));
      untilParked(selector, 'select(');
      selector.interrupt('cancel');
      const error = joinError(selector);
      expect(error).toBeInstanceOf(FiberInterruptedError);
      expect((error as FiberInterruptedError).reason).toBe('cancel');
      expect(a.trySend('v')).toBe(false);
      expect(b.tryRecv().ok).toBe(false);
      gate.send();
      expect(worker.join()).toBe('w'); // not joined by the interrupted select
      d.resolve('late');
    });
  });

  it('an interrupted fiber reaching a select with a ready case loses no value', async () => {
    // Either the select throws (and the value stays in the channel) or it takes the value.
    await inFiber(() => {
      const ch = new Channel<number>(1);
      ch.send(1);
      const f = spawn(() => {
        const r = select([ch.recvCase()]);
        return r.value;
      });
      f.interrupt();
      let outcome: unknown;
      try {
        outcome = f.join();
      } catch (error) {
        outcome = error;
      }
      if (outcome instanceof FiberInterruptedError) expect(ch.size).toBe(1);
      else {
        expect(outcome).toBe(1);
        expect(ch.size).toBe(0);
      }
    });
  });
});

describe('select: random choice among ready cases', () => {
  it('over 200 runs both of two ready cases get chosen', async () => {
    const counts = [0, 0];
    await inFiber(() => {
      const a = new Channel<string>(1);
      const b = new Channel<string>(1);
      for (let i = 0; i < 200; i++) {
        if (a.size === 0) a.send('a');
        if (b.size === 0) b.send('b');
        counts[select([a.recvCase(), b.recvCase()]).index]++;
      }
    });
    expect(counts[0] + counts[1]).toBe(200);
    expect(counts[0]).toBeGreaterThan(20);
    expect(counts[1]).toBeGreaterThan(20);
  });
});

describe('select: bad input', () => {
  it('rejects a non-array, naming "cases"', () => {
    for (const bad of ['x', undefined, null, 5, { length: 0 }]) {
      const e = thrown(() => select(bad as never));
      expect(e).toBeInstanceOf(TypeError);
      expect((e as Error).message).toContain('"cases"');
    }
  });

  it('rejects a non-case element, naming its position', () => {
    const ch = new Channel<number>(1);
    const e = thrown(() => select([ch.recvCase(), 42 as never]));
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toContain('"cases[1]"');
    // Bad input is rejected before any case is polled.
    ch.send(1);
    thrown(() => select([ch.recvCase(), {} as never]));
    expect(ch.size).toBe(1);
  });

  it('rejects bad options, naming them', () => {
    const ch = new Channel<number>(1);
    ch.send(1);
    const neg = thrown(() => select([ch.recvCase()], { timeout: -1 }));
    expect(neg).toBeInstanceOf(RangeError);
    expect((neg as Error).message).toContain('timeout');
    const str = thrown(() => select([ch.recvCase()], { timeout: 'x' as never }));
    expect(str).toBeInstanceOf(TypeError);
    expect((str as Error).message).toContain('timeout');
    const nan = thrown(() => select([ch.recvCase()], { timeout: Number.NaN }));
    expect(nan).toBeInstanceOf(TypeError);
    const dflt = thrown(() => select([ch.recvCase()], { default: 'yes' as never }));
    expect(dflt).toBeInstanceOf(TypeError);
    expect((dflt as Error).message).toContain('default');
    const opts = thrown(() => select([ch.recvCase()], 5 as never));
    expect(opts).toBeInstanceOf(TypeError);
    // Nothing was taken by the rejected calls.
    expect(ch.size).toBe(1);
  });

  it('rejects bad after() and promiseCase() arguments, naming them', () => {
    const neg = thrown(() => after(-1));
    expect(neg).toBeInstanceOf(RangeError);
    expect((neg as Error).message).toContain('"ms"');
    const str = thrown(() => after('5' as never));
    expect(str).toBeInstanceOf(TypeError);
    expect((str as Error).message).toContain('"ms"');
    const p = thrown(() => promiseCase(5 as never));
    expect(p).toBeInstanceOf(TypeError);
    expect((p as Error).message).toContain('"promise"');
  });
});

describe('select: outside fibers', () => {
  it('throws NotInFiberError when it would wait, and leaves no trace', () => {
    const ch = new Channel<number>(0);
    const e = thrown(() => select([ch.recvCase(), ch.sendCase(1)]));
    expect(e).toBeInstanceOf(NotInFiberError);
    expect((e as NotInFiberError).code).toBe('ERR_NOT_IN_FIBER');
    expect(ch.trySend(1)).toBe(false);
    expect(ch.tryRecv().ok).toBe(false);
  });

  it('works when a case is ready, or with default', () => {
    const ch = new Channel<number>(1);
    expect(select([ch.recvCase()], { default: true })).toEqual({ index: -1, value: undefined, ok: false });
    expect(select([ch.sendCase(4)])).toEqual({ index: 0, value: undefined, ok: true });
    expect(select([ch.recvCase()])).toEqual({ index: 0, value: 4, ok: true });
    expect(select([ch.recvCase(), after(0)]).index).toBe(1);
  });
});
