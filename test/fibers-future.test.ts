// spindle/fibers/future: `Future` of the `fibers` package (5.0.3), written from its README.
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import Fiber from '../dist/fibers/index.js';
import Future from '../dist/fibers/future.js';
import { spawn } from '../dist/index.js';
import { root, runScript, thrown, until } from './helpers.js';

const fibersEntry = path.join(root, 'dist', 'cjs', 'fibers', 'index.js');
const futureEntry = path.join(root, 'dist', 'cjs', 'fibers', 'future.js');

function runFutureScript(source: string, cwd?: string, args?: string[]) {
  const text = source.replaceAll('FUTURE', JSON.stringify(futureEntry)).replaceAll('FIBERS', JSON.stringify(fibersEntry));
  return runScript(cwd === undefined ? text : `process.chdir(${JSON.stringify(cwd)});\n${text}`, { args });
}

/** Runs `fn` in a Fiber of this API and resolves with its result (or rejects with its error). */
function inFiber<T>(fn: () => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    Fiber(() => {
      try {
        resolve(fn());
      } catch (e) {
        reject(e);
      }
    }).run();
  });
}

function later<T>(value: T, ms = 1): Future<T> {
  const f = new Future<T>();
  setTimeout(() => f.return(value), ms);
  return f;
}

describe('README examples, with their documented output', () => {
  it('ls.js: Future.wrap(fs), Future.task, wait, detach', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spindle-ls-'));
    const files: Record<string, string> = { 'a.txt': 'x'.repeat(10), 'b.js': 'y'.repeat(1708), 'c.md': '' };
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
    const r = runFutureScript(
      `
      var Future = require(FUTURE);
      var fs = Future.wrap(require('fs'));
      Future.task(function() {
        var fileNames = fs.readdirFuture('.').wait();
        console.log('Found '+ fileNames.length+ ' files');
        var stats = [];
        for (var ii = 0; ii < fileNames.length; ++ii) {
          stats.push(fs.statFuture(fileNames[ii]));
        }
        stats.map(function(f) {
          f.wait()
        });
        for (var ii = 0; ii < fileNames.length; ++ii) {
          console.log(fileNames[ii]+ ': '+ stats[ii].get().size);
        }
      }).detach();
    `,
      dir,
    );
    expect(r.stderr).toBe('');
    const expected = ['Found 3 files', ...Object.keys(files).map((n) => `${n}: ${statSync(path.join(dir, n)).size}`)];
    expect(r.stdout.trim().split('\n').sort()).toEqual(expected.sort());
    expect(r.code).toBe(0);
  });

  it('ls.js, first version: Future.wrap(fn) and Future.wait(array) in a Fiber', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spindle-ls-'));
    writeFileSync(path.join(dir, 'one'), '1234');
    writeFileSync(path.join(dir, 'two'), '12');
    const r = runFutureScript(
      `
      var Fiber = require(FIBERS);
      var Future = require(FUTURE), wait = Future.wait;
      var fs = require('fs');
      var readdir = Future.wrap(fs.readdir);
      var stat = Future.wrap(fs.stat);
      Fiber(function() {
        var fileNames = readdir('.').wait().sort();
        console.log('Found '+ fileNames.length+ ' files');
        var stats = [];
        for (var ii = 0; ii < fileNames.length; ++ii) {
          stats.push(stat(fileNames[ii]));
        }
        wait(stats);
        for (var ii = 0; ii < fileNames.length; ++ii) {
          console.log(fileNames[ii]+ ': '+ stats[ii].get().size);
        }
      }).run();
    `,
      dir,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('Found 2 files\none: 4\ntwo: 2\n');
  });

  it('sleep.js: new Future, return(), Function.prototype.future, resolve()', () => {
    const r = runFutureScript(`
      var Future = require(FUTURE), wait = Future.wait;
      function sleep(ms) {
        var future = new Future;
        setTimeout(function() {
          future.return();
        }, ms);
        return future;
      }
      var calcTimerDelta = function(ms) {
        var start = new Date;
        sleep(ms).wait();
        return new Date - start;
      }.future(); // <-- important!
      calcTimerDelta(2000).resolve(function(err, val) {
        console.log('Set timer for 2000ms, waited '+ val+ 'ms');
      });
    `);
    expect(r.stderr).toBe('');
    const m = /^Set timer for 2000ms, waited (\d+)ms\n$/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(1995);
    expect(Number(m![1])).toBeLessThan(4000);
  });
});

describe('Future', () => {
  it('get, return, throw, isResolved, and their misuse errors', () => {
    const f = new Future<number>();
    expect(f).toBeInstanceOf(Future);
    expect(f.isResolved()).toBe(false);
    expect((thrown(() => f.get()) as Error).message).toBe('Future must resolve before value is ready');
    f.return(7);
    expect(f.isResolved()).toBe(true);
    expect(f.get()).toBe(7);
    expect((thrown(() => f.return(8)) as Error).message).toBe('Future resolved more than once');
    const g = new Future();
    expect((thrown(() => g.throw(undefined)) as Error).message).toBe('Must throw non-empty error');
    const boom = new Error('boom');
    g.throw(boom);
    expect(thrown(() => g.get())).toBe(boom);
    expect((thrown(() => g.throw(boom)) as Error).message).toBe('Future resolved more than once');
  });

  it('resolve(errback), resolve(future, callback), resolveSuccess, resolver', () => {
    const log: unknown[] = [];
    const ok = new Future<string>();
    expect(ok.resolve((err, val) => log.push(['errback', err, val]))).toBe(ok);
    ok.resolveSuccess((v) => log.push(['success', v]));
    ok.return('v');
    ok.resolve((err, val) => log.push(['late', err, val]));  // already resolved: called now

    const bad = new Future();
    const sink = new Future();
    bad.resolve(sink, () => log.push('not called'));
    bad.resolveSuccess(() => log.push('not called either'));
    const e = new Error('bad');
    bad.resolver()(e);
    expect(sink.isResolved() && thrown(() => sink.get())).toBe(e);
    const good = new Future<number>();
    good.resolve(new Future(), (v) => log.push(['two-arg', v]));
    good.resolver()(null, 5);
    expect(good.get()).toBe(5);
    expect(log).toEqual([['errback', undefined, 'v'], ['success', 'v'], ['late', undefined, 'v'], ['two-arg', 5]]);
  });

  it('proxy and proxyErrors', () => {
    const a = new Future();
    const b = new Future();
    a.proxy(b);
    a.return(1);
    expect(b.get()).toBe(1);
    const c = new Future();
    const d = new Future();
    c.proxy(d);
    const e = new Error('e');
    c.throw(e);
    expect(thrown(() => d.get())).toBe(e);

    const src = new Future();
    const one = new Future();
    const many = [new Future(), new Future()];
    expect(src.proxyErrors(one)).toBe(src);
    src.proxyErrors(many);
    src.throw(e);
    expect([one, ...many].map((f) => thrown(() => f.get()))).toEqual([e, e, e]);
    const fine = new Future();
    const untouched = new Future();
    fine.proxyErrors(untouched);
    fine.return(1);
    expect(untouched.isResolved()).toBe(false);
  });

  it('promise() and Future.fromPromise', async () => {
    const f = new Future<number>();
    const p = f.promise();
    f.return(3);
    await expect(p).resolves.toBe(3);
    const g = new Future();
    const q = g.promise();
    g.throw(new Error('no'));
    await expect(q).rejects.toThrow('no');

    const fromOk = Future.fromPromise(Promise.resolve('ok'));
    const fromBad = Future.fromPromise(Promise.reject(new Error('rejected')));
    const result = await inFiber(() => [fromOk.wait(), (thrown(() => fromBad.wait()) as Error).message]);
    expect(result).toEqual(['ok', 'rejected']);
  });

  it('wait() in a Fiber: run() returns undefined meanwhile; the resolver resumes it at once', () => {
    const f = new Future<string>();
    const log: string[] = [];
    const fiber = Fiber(() => {
      log.push('waiting');
      log.push(`got ${f.wait()}`);
    });
    expect(fiber.run()).toBeUndefined();
    expect(log).toEqual(['waiting']);
    f.return('it');
    log.push('after return()');
    expect(log).toEqual(['waiting', 'got it', 'after return()']);
    expect(fiber.started).toBe(false);
  });

  it('wait() throws the error the future threw; outside fibers it refuses', async () => {
    const e = new Error('failed');
    const f = new Future();
    setTimeout(() => f.throw(e), 1);
    await expect(inFiber(() => f.wait())).rejects.toBe(e);
    const err = thrown(() => new Future().wait()) as Error;
    expect(err.constructor).toBe(Error);
    expect(err.message).toBe("Can't wait without a fiber");
  });

  it('wait() also works in a fiber made by spawn (it parks on the scheduler)', async () => {
    const result = await spawn(() => later('spawned', 2).wait() + Future.task(() => '!').wait()).result();
    expect(result).toBe('spawned!');
  });

  it('detach(): an error goes to the uncaught-exception path; a throwing callback is rethrown on the next tick', () => {
    const r = runFutureScript(`
      var Future = require(FUTURE);
      process.on('uncaughtException', function (e) { console.log('uncaught', e.message); });
      Future.task(function () { throw new Error('task failed'); }).detach();
      var f = new Future;
      f.resolve(function () { throw new Error('callback threw'); });
      f.resolve(function (err, v) { console.log('next callback still runs', v); });
      f.return(1);
      console.log('return() returned');
    `);
    expect(r.stdout).toBe('next callback still runs 1\nreturn() returned\nuncaught callback threw\nuncaught task failed\n');
  });
});

describe('Future statics and Function.prototype.future', () => {
  it('Future.wait: many futures and arrays; does not throw their errors', async () => {
    const a = later(1, 3);
    const b = later(2, 1);
    const c = new Future();
    setTimeout(() => c.throw(new Error('c')), 2);
    const done = new Future();
    done.return('already');
    const r = await inFiber(() => {
      Future.wait(a, [b, c], done, []);
      return [a.get(), b.get(), c.isResolved(), done.get()];
    });
    expect(r).toEqual([1, 2, true, 'already']);
    const notFuture = await inFiber(() => thrown(() => Future.wait(a, 42 as never)) as Error);
    expect(notFuture.message).toBe('42 is not a future');
    const inArray = await inFiber(() => thrown(() => Future.wait([a, 'x' as never])) as Error);
    expect(inArray.message).toBe('x is not a future');
  });

  it('Future.wait runs a fiber future not started yet in the waiting fiber itself', async () => {
    const task = function (this: { name: string }, x: number) {
      return [this.name, x, Fiber.current];
    }.future();
    const r = await inFiber(() => {
      const f = task.call({ name: 'ctx' }, 5);
      Future.wait(f);
      return [...(f.get() as unknown[]), Fiber.current];
    });
    expect(r[0]).toBe('ctx');
    expect(r[1]).toBe(5);
    expect(r[2]).toBe(r[3]);
  });

  it('Function.prototype.future: runs in its own fiber on the next tick; detach; toString', async () => {
    const plain = function (a: number, b: number) {
      return [a + b, Fiber.current !== undefined];
    };
    const add = plain.future();
    expect(String(add)).toBe(`<<Future ${String(plain)}.future()>>`);
    const f = add(1, 2);
    expect(f).toBeInstanceOf(Future);
    expect(f.isResolved()).toBe(false);
    await until(() => f.isResolved());
    expect(f.get()).toEqual([3, true]);

    const r = runFutureScript(`
      require(FUTURE);
      process.on('uncaughtException', function (e) { console.log('uncaught', e.message); });
      (function () { throw new Error('detached'); }).future(true)();
    `);
    expect(r.stdout).toBe('uncaught detached\n');
  });

  it('Future.task: one function, or several (an array of results, or the error)', async () => {
    const one = Future.task(() => 'one');
    const many = Future.task(
      () => later('a', 2).wait(),
      () => 'b',
    );
    const failing = Future.task(
      () => 'fine',
      () => {
        throw new Error('second failed');
      },
    );
    await until(() => one.isResolved() && many.isResolved() && failing.isResolved());
    expect(one.get()).toBe('one');
    expect(many.get()).toEqual(['a', 'b']);
    expect((thrown(() => failing.get()) as Error).message).toBe('second failed');
  });

  it('Future.wrap: a function (callback last, `_`, multi) and an object (suffix)', async () => {
    function nodeStyle(this: unknown, a: number, b: number, cb: (err: unknown, ...v: number[]) => void) {
      setImmediate(() => (a < 0 ? cb(new Error('negative')) : cb(null, a + b, a * b)));
      return 'returned';
    }
    const wrapped = Future.wrap(nodeStyle);
    const multi = Future.wrap(nodeStyle, true);
    const api = { base: 10, add(x: number, cb: (e: unknown, v?: number) => void) { setImmediate(() => cb(null, this.base + x)); }, value: 3 };
    const obj = Future.wrap(api);
    const custom = Future.wrap(api, false, 'Async');
    const r = await inFiber(() => {
      const f = wrapped(2, 3);
      return [
        f._,
        f.wait(),
        multi(2, 3).wait(),
        (thrown(() => wrapped(-1, 0).wait()) as Error).message,
        obj.addFuture(5).wait(),
        custom.addAsync(6).wait(),
        typeof (custom as Record<string, unknown>).addFuture,
        obj.value,
        Object.getPrototypeOf(obj) === api,
      ];
    });
    expect(r).toEqual(['returned', 5, [5, 6], 'negative', 15, 16, 'undefined', 3, true]);

    // A function with methods as properties (like `request`): those are wrapped too.
    const fn = Object.assign((cb: (e: unknown, v: string) => void) => cb(null, 'called'), {
      get: (url: string, cb: (e: unknown, v: string) => void) => cb(null, `got ${url}`),
    });
    const wrappedFn = Future.wrap(fn);
    expect(wrappedFn().get()).toBe('called');
    expect(wrappedFn.getFuture('/x').get()).toBe('got /x');
  });

  it('under --frozen-intrinsics: loads, Future.task and wait work, and only Function.prototype.future is missing', () => {
    const r = runFutureScript(`
      var Fiber = require(FIBERS), Future = require(FUTURE);
      Fiber(function () {
        var one = Future.task(function () { Fiber.yield; return 1; }).wait();
        var both = Future.task(function () { return 'a'; }, function () { return 'b'; }).wait();
        console.log(one, both.join(''), typeof Function.prototype.future);
      }).run();
    `, undefined, ['--frozen-intrinsics', '--no-warnings']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toBe('1 ab undefined\n');
  });
});
