// The inspector attached while fibers run: an in-process node:inspector Session (Debugger.paused is
// handled synchronously on the thread that paused, as Node documents for same-thread debugging). A
// pause inside a fiber shows that fiber's own frames, down to spindle's trampoline; what the loop
// thread was running below the fiber does not show. Runs in a child process under the vitest project's
// backend (SPINDLE_BACKEND is inherited), so once per backend.
import { describe, expect, it } from 'vitest';

import { type RunResult, runScript } from './helpers.js';

function expectClean(r: RunResult): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.stderr).not.toMatch(/FATAL|Check failed|Segmentation|Abort|core dumped/i);
  expect(r.code, r.stderr).toBe(0);
}

// Records every pause: the paused frames' function names, the running fiber's name as seen by an
// expression evaluated on the top frame, the top frame's line relative to the line marked BREAK, and
// whether the debugger attached an async stack trace. `onPause` says what to do next (resume or step).
const PRELUDE = `
  const { spawn, sleep, yieldNow, current, backend } = require(SPINDLE);
  const { Session } = require('node:inspector');
  const BREAK = require('node:fs').readFileSync(__filename, 'utf8').split('\\n').findIndex((l) => l.endsWith('// BREAK'));
  globalThis.fiberName = () => current()?.name ?? 'no fiber';
  const session = new Session();
  session.connect();
  const post = (method, params) => {
    let out;
    session.post(method, params, (err, res) => { if (err) throw err; out = res; });
    return out; // an in-process session answers synchronously
  };
  const pauses = [];
  let next = () => 'Debugger.resume';
  session.on('Debugger.paused', ({ params }) => {
    const top = params.callFrames[0];
    pauses.push({
      frames: params.callFrames.map((f) => f.functionName),
      fiber: post('Debugger.evaluateOnCallFrame', { callFrameId: top.callFrameId, expression: 'fiberName()' }).result.value,
      line: top.location.lineNumber - BREAK,
      async: params.asyncStackTrace !== undefined,
    });
    session.post(next(pauses.length));
  });
  post('Debugger.enable');
  post('Debugger.setAsyncCallStackDepth', { maxDepth: 16 });
`;

describe('the inspector attached', () => {
  it('a debugger statement inside a fiber pauses in that fiber and shows its frames only, across parks', () => {
    const r = runScript(`${PRELUDE}
      function inner(i) {
        debugger;
        return i;
      }
      function body(i) {
        inner(i);
        sleep(1);          // parks: the other fibers run and pause meanwhile
        return inner(i) * 2;
      }
      (async () => {
        await null;        // spawned from an async function, after an await
        const fibers = [0, 1, 2].map((i) => spawn(body.bind(null, i), { name: 'f' + i }));
        const results = [];
        for (const f of fibers) results.push(await f.result());
        console.log(JSON.stringify({ backend: backend().name, results, pauses }));
        session.disconnect();
      })();
    `);
    expectClean(r);
    const out = JSON.parse(r.stdout);
    expect(out.backend).toBe(process.env.SPINDLE_BACKEND);
    expect(out.results).toEqual([0, 2, 4]);
    expect(out.pauses).toHaveLength(6);
    for (const p of out.pauses) {
      // The fiber's own frames, ending at spindle's trampoline: nothing of the loop thread below it,
      // and no async stack trace (the fiber's stack does not start in an async function).
      expect(p.frames).toEqual(['inner', 'body', 'trampoline']);
      expect(p.async).toBe(false);
    }
    expect(out.pauses.map((p: { fiber: string }) => p.fiber).sort()).toEqual(['f0', 'f0', 'f1', 'f1', 'f2', 'f2']);
  });

  // Relocking restores a thread's debugger state: with the threads backend, a carrier that relocked
  // before entering the isolate crashed V8 here (a breakpoint by URL, and a step over a park).
  it('breakpoints by URL and stepping over a suspension stay in the fiber', () => {
    const r = runScript(`${PRELUDE}
      next = (n) => (n < 4 ? 'Debugger.stepOver' : 'Debugger.resume');
      function body() {
        const before = 1;
        sleep(2); // BREAK
        const after = before + 1;
        return after;
      }
      function other() {
        for (let i = 0; i < 20; i++) yieldNow();
        return 'other';
      }
      const url = require('node:url').pathToFileURL(__filename).href;
      const bp = post('Debugger.setBreakpointByUrl', { url, lineNumber: BREAK });
      (async () => {
        const f = spawn(body, { name: 'dbg' });
        const o = spawn(other, { name: 'other' });
        const results = [await f.result(), await o.result()];
        console.log(JSON.stringify({ backend: backend().name, located: bp.locations.length, results, pauses }));
        session.disconnect();
      })();
    `);
    expectClean(r);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ located: 1, results: [2, 'other'] });
    // The breakpoint, then one step over the parking sleep() (fiber 'other' ran meanwhile) to the next
    // line of the same fiber, then the return.
    expect(out.pauses.slice(0, 3)).toEqual([
      { frames: ['body', 'trampoline'], fiber: 'dbg', line: 0, async: false },
      { frames: ['body', 'trampoline'], fiber: 'dbg', line: 1, async: false },
      { frames: ['body', 'trampoline'], fiber: 'dbg', line: 2, async: false },
    ]);
  });
});
