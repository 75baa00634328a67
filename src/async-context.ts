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

/** One level of the async id stack. */
interface Level {
  id: number;
  trigger: number;
  resource: object;
}

/** Per-fiber async state, kept on the fiber's record. */
export class FiberAsyncState {
  /** The levels this fiber has on the stack while it runs; saved while it does not. */
  private saved: Level[];
  /** Stack depth (or, without stack access, the execution id) when the fiber last got to run. */
  private base = 0;

  constructor(name: string) {
    if (aw) {
      // Created in the spawner's context: AsyncLocalStorage copies the spawner's stores into it.
      const resource = new AsyncResource('SpindleFiber', { requireManualDestroy: true });
      (resource as unknown as { fiberName: string }).fiberName = name;
      this.saved = [{ id: resource.asyncId(), trigger: resource.triggerAsyncId(), resource }];
    } else {
      this.saved = [];
    }
  }

  /** The fiber (re)gains the runner role: put its levels back on top of the resumer's. */
  enter(): void {
    if (!aw) {
      this.base = executionAsyncId();
      return;
    }
    const { kStackLength } = aw.constants;
    this.base = aw.async_hook_fields[kStackLength];
    for (const level of this.saved) {
      // The binding's push records ids only; resources of JS-pushed levels live in this array (as
      // Node's own JS push does), and the binding's pop truncates it again.
      const offset = aw.async_hook_fields[kStackLength];
      aw.pushAsyncContext(level.id, level.trigger, level.resource);
      aw.execution_async_resources[offset] = level.resource;
    }
    this.saved.length = 0;
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
    const { kStackLength, kExecutionAsyncId, kTriggerAsyncId } = aw.constants;
    const depth = aw.async_hook_fields[kStackLength];
    const levels: Level[] = [];
    for (let i = this.base; i < depth; i++) {
      const top = i === depth - 1;
      levels.push({
        id: top ? aw.async_id_fields[kExecutionAsyncId] : aw.async_ids_stack[2 * (i + 1)],
        trigger: top ? aw.async_id_fields[kTriggerAsyncId] : aw.async_ids_stack[2 * (i + 1) + 1],
        resource: aw.execution_async_resources[i] ?? aw.executionAsyncResource(i),
      });
    }
    for (let i = levels.length - 1; i >= 0; i--) aw.popAsyncContext(levels[i].id);
    this.saved = levels;
  }

  /** The fiber ended: take its levels off for good and release its resource. Never throws. */
  exit(): void {
    if (!aw) return;
    this.leave('exit');
    const first = this.saved[0];
    this.saved = [];
    if (first !== undefined && first.resource instanceof AsyncResource) first.resource.emitDestroy();
  }
}

/** Whether fibers get their own async id (Node 20 and 22) or share the resumer's (24+). */
export const perFiberAsyncIds = aw !== undefined;
