// The async context (async_hooks ids, AsyncLocalStorage) belongs to whoever runs. Node keeps it in
// one per-environment stack that must stay LIFO, and fibers interleave: so each fiber takes its part
// of the stack off when it gives up the runner role and puts it back when it runs again.
//
// - Where Node exposes that stack (Node 20 and 22, process.binding('async_wrap')), a fiber runs with
//   its own AsyncResource pushed, so executionAsyncId() and AsyncLocalStorage are per fiber, and
//   whatever user code pushed (runInAsyncScope around a suspension) travels with the fiber.
// - Node 24+ keeps AsyncLocalStorage in V8's continuation-preserved data instead, which the native
//   core swaps per fiber. Its id stack is unreachable there, so a suspension inside a scope pushed in
//   that fiber is refused with an error rather than corrupting the stack (which would abort Node).
import { AsyncResource, executionAsyncId } from 'node:async_hooks';

import { FiberStateError } from './errors.js';

interface AsyncWrap {
  async_hook_fields: Uint32Array;
  async_id_fields: Float64Array;
  async_ids_stack: Float64Array;
  execution_async_resources: object[];
  executionAsyncResource(index: number): object;
  pushAsyncContext(asyncId: number, triggerAsyncId: number, resource: object): void;
  popAsyncContext(asyncId: number): boolean;
  constants: { kStackLength: number; kExecutionAsyncId: number; kTriggerAsyncId: number };
}

function loadAsyncWrap(): AsyncWrap | undefined {
  const proc = process as unknown as { binding?: (name: string) => unknown; noDeprecation?: boolean };
  if (typeof proc.binding !== 'function') return undefined;
  const quiet = proc.noDeprecation;
  proc.noDeprecation = true;  // the access is deliberate: do not print DEP0111 to the user
  try {
    const aw = proc.binding('async_wrap') as AsyncWrap;
    const ok = aw && typeof aw.pushAsyncContext === 'function' && typeof aw.popAsyncContext === 'function' &&
      aw.async_hook_fields instanceof Uint32Array && aw.async_ids_stack instanceof Float64Array &&
      typeof aw.constants?.kStackLength === 'number' && typeof aw.executionAsyncResource === 'function';
    return ok ? aw : undefined;
  } catch {
    return undefined;
  } finally {
    proc.noDeprecation = quiet;
  }
}

const aw = loadAsyncWrap();
const { kStackLength: STACK_LENGTH = 0, kExecutionAsyncId: EXECUTION_ID = 0, kTriggerAsyncId: TRIGGER_ID = 0 } = aw?.constants ?? {};

/** One level of the async id stack. */
interface Level {
  id: number;
  trigger: number;
  resource: object;
}

// A fiber takes its levels off and puts them back at every suspension. Those it puts back itself are
// pushed and popped as Node's own JavaScript pushes and pops the levels it opens
// (lib/internal/async_hooks.js pushAsyncContext, popAsyncContext): the ids go straight into the
// binding's typed arrays, and the binding is called only to grow its id stack. Levels opened while the
// fiber ran (runInAsyncScope, or native code) are popped by the binding, which also trims its native
// list of resources.

function pushLevel(a: AsyncWrap, level: Level): void {
  const offset = a.async_hook_fields[STACK_LENGTH];
  const stack = a.async_ids_stack; // replaced when the binding grows it: read it each time
  if (offset * 2 >= stack.length) {
    a.pushAsyncContext(level.id, level.trigger, level.resource);
  } else {
    const ids = a.async_id_fields;
    stack[offset * 2] = ids[EXECUTION_ID];
    stack[offset * 2 + 1] = ids[TRIGGER_ID];
    a.async_hook_fields[STACK_LENGTH] = offset + 1;
    ids[EXECUTION_ID] = level.id;
    ids[TRIGGER_ID] = level.trigger;
  }
  a.execution_async_resources[offset] = level.resource;
}

/** Pops the top level, at `offset`, which pushLevel pushed. */
function popLevel(a: AsyncWrap, offset: number): void {
  const resources = a.execution_async_resources;
  const ids = a.async_id_fields;
  const stack = a.async_ids_stack;
  ids[EXECUTION_ID] = stack[2 * offset];
  ids[TRIGGER_ID] = stack[2 * offset + 1];
  if (resources.length === offset + 1) resources.pop();
  else resources.length = offset;
  a.async_hook_fields[STACK_LENGTH] = offset;
}

/** Per-fiber async state, kept on the fiber's record. */
export class FiberAsyncState {
  /**
   * While the fiber does not run: the levels it has on the stack when it runs, the first `count` of
   * this array (the objects are reused from one suspension to the next; the first is the fiber's own).
   */
  private readonly levels: Level[];
  private count: number;
  /** How many levels enter() pushed (at `base` and up). */
  private pushed = 0;
  /** Stack depth (or, without stack access, the execution id) when the fiber last got to run. */
  private base = 0;

  constructor(name: string) {
    if (aw) {
      // Created in the spawner's context: AsyncLocalStorage copies the spawner's stores into it.
      const resource = new AsyncResource('SpindleFiber', { requireManualDestroy: true });
      (resource as unknown as { fiberName: string }).fiberName = name;
      this.levels = [{ id: resource.asyncId(), trigger: resource.triggerAsyncId(), resource }];
      this.count = 1;
    } else {
      this.levels = [];
      this.count = 0;
    }
  }

  /** The fiber (re)gains the runner role: put its levels back on top of the resumer's. */
  enter(): void {
    if (!aw) {
      this.base = executionAsyncId();
      return;
    }
    this.base = aw.async_hook_fields[STACK_LENGTH];
    const count = this.count;
    for (let i = 0; i < count; i++) pushLevel(aw, this.levels[i]);
    this.pushed = count;
    this.count = 0;
    if (count > 1) this.levels.length = 1; // hold no resource of a scope opened in the fiber
  }

  /**
   * The fiber gives up the runner role: take its levels off. Throws (before anything switches) when
   * the stack cannot be restored correctly on this Node.
   */
  leave(operation: string): void {
    if (!aw) {
      if (executionAsyncId() !== this.base) {
        throw new FiberStateError(`${operation} cannot suspend inside an async scope opened in this fiber ` +
          '(AsyncResource.runInAsyncScope or bind) on this Node version: suspend outside it');
      }
      return;
    }
    const base = this.base;
    const depth = aw.async_hook_fields[STACK_LENGTH];
    const levels = this.levels;
    for (let i = base; i < depth; i++) {
      const top = i === depth - 1;
      const id = top ? aw.async_id_fields[EXECUTION_ID] : aw.async_ids_stack[2 * (i + 1)];
      const trigger = top ? aw.async_id_fields[TRIGGER_ID] : aw.async_ids_stack[2 * (i + 1) + 1];
      const resource = aw.execution_async_resources[i] ?? aw.executionAsyncResource(i);
      const level = levels[i - base];
      if (level === undefined) {
        levels.push({ id, trigger, resource });
      } else {
        level.id = id;
        level.trigger = trigger;
        level.resource = resource;
      }
    }
    for (let i = depth - 1; i >= base; i--) {
      if (i < base + this.pushed) popLevel(aw, i);
      else aw.popAsyncContext(levels[i - base].id);
    }
    this.pushed = 0;
    this.count = Math.max(0, depth - base);
  }

  /** The fiber ended: take its levels off for good and release its resource. Never throws. */
  exit(): void {
    if (!aw) return;
    this.leave('exit');
    const first = this.count > 0 ? this.levels[0] : undefined;
    this.count = 0;
    this.levels.length = 0;
    if (first !== undefined && first.resource instanceof AsyncResource) first.resource.emitDestroy();
  }
}

/** Whether fibers get their own async id (Node 20 and 22) or share the resumer's (24+). */
export const perFiberAsyncIds = aw !== undefined;
