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
  // The access is deliberate: do not print DEP0111 to the user. Under --no-deprecation the flag is
  // already set, as a read-only property: assigning it would throw.
  const quiet = proc.noDeprecation;
  const silence = !quiet && Object.getOwnPropertyDescriptor(process, 'noDeprecation')?.writable !== false;
  if (silence) proc.noDeprecation = true;
  try {
    const aw = proc.binding('async_wrap') as AsyncWrap;
    const ok = aw && typeof aw.pushAsyncContext === 'function' && typeof aw.popAsyncContext === 'function' &&
      aw.async_hook_fields instanceof Uint32Array && aw.async_ids_stack instanceof Float64Array &&
      typeof aw.constants?.kStackLength === 'number' && typeof aw.executionAsyncResource === 'function';
    return ok ? aw : undefined;
  } catch {
    return undefined;
  } finally {
    if (silence) proc.noDeprecation = quiet;
  }
}

const aw = loadAsyncWrap();

// Read once: node:async_hooks' exports object is in dictionary mode (Node 22+), so a call through it
// would look the function up on every switch (optimized code cannot inline that load).
const currentAsyncId = executionAsyncId;

/** One level of the async id stack. */
interface Level {
  id: number;
  trigger: number;
  resource: object;
}

/** The fiber's own async resource (Node 20 and 22): what executionAsyncResource() shows in a fiber. */
class FiberResource extends AsyncResource {
  constructor(private readonly owner: { readonly name: string }) {
    super('SpindleFiber', { requireManualDestroy: true });
  }
  get fiberName(): string {
    return this.owner.name;
  }
}

// What push() and popPushed() read on every switch, read once: the binding object is slow to load
// properties from. Its id stack is not among them: Node replaces that array when it grows it.
const fields = aw && {
  hook: aw.async_hook_fields,
  ids: aw.async_id_fields,
  resources: aw.execution_async_resources,
  kStackLength: aw.constants.kStackLength,
  kExecutionAsyncId: aw.constants.kExecutionAsyncId,
  kTriggerAsyncId: aw.constants.kTriggerAsyncId,
};

// A switch pushes a fiber's level onto the resource stack and pops it again, and at top level that
// pop empties the array. V8 drops an array's backing store when a pop empties it from a capacity over
// 16 (its fast path refuses), and the next push allocates 17 slots again: a runtime call and an
// allocation per switch. A capacity of exactly 16, set once, keeps both on the fast path.
if (fields && fields.resources.length === 0) {
  fields.resources.length = 16;
  while (fields.resources.length > 0) fields.resources.pop();
}

// Node's own JavaScript push and pop of the stack (lib/internal/async_hooks.js), which work on the
// shared arrays without a native call; the binding's versions are the fallback for what they leave to
// native code (growing the stack, levels native code pushed). A switch does both, so this matters.
function push(binding: AsyncWrap, level: Level): void {
  const { hook, ids, resources, kStackLength, kExecutionAsyncId, kTriggerAsyncId } = fields!;
  const offset = hook[kStackLength];
  const stack = binding.async_ids_stack;
  resources[offset] = level.resource;
  // Past the end when a read there gives undefined: optimized code inlines that, not `stack.length`
  // (a call to the typed array's length getter, on every switch).
  if (stack[2 * offset + 1] === undefined) {
    binding.pushAsyncContext(level.id, level.trigger, level.resource);
    return;
  }
  stack[2 * offset] = ids[kExecutionAsyncId];
  stack[2 * offset + 1] = ids[kTriggerAsyncId];
  hook[kStackLength] = offset + 1;
  ids[kExecutionAsyncId] = level.id;
  ids[kTriggerAsyncId] = level.trigger;
}

/** Pops the top level, known to be pushed by push() above. */
function popPushed(binding: AsyncWrap, id: number): void {
  const { hook, ids, resources, kStackLength, kExecutionAsyncId, kTriggerAsyncId } = fields!;
  const offset = hook[kStackLength] - 1;
  if (ids[kExecutionAsyncId] !== id || resources.length !== offset + 1) {
    binding.popAsyncContext(id);
    return;
  }
  const stack = binding.async_ids_stack;
  ids[kExecutionAsyncId] = stack[2 * offset];
  ids[kTriggerAsyncId] = stack[2 * offset + 1];
  resources.pop();
  hook[kStackLength] = offset;
}

/** Per-fiber async state, kept on the fiber's record. */
export class FiberAsyncState {
  /** The fiber's own level (Node 20 and 22), pushed whenever it runs. */
  private own: Level | undefined;
  /** Levels user code had pushed above the fiber's own when it last gave up the runner role. */
  private more: Level[] | undefined;
  /** Stack depth (or, without stack access, the execution id) when the fiber last got to run. */
  private base = 0;

  /** Created in the spawner's context: AsyncLocalStorage copies the spawner's stores into it. */
  constructor(owner: { readonly name: string }) {
    if (aw) {
      const resource = new FiberResource(owner);
      this.own = { id: resource.asyncId(), trigger: resource.triggerAsyncId(), resource };
    }
  }

  /** The fiber (re)gains the runner role: put its levels back on top of the resumer's. */
  enter(): void {
    if (!aw) {
      this.base = currentAsyncId();
      return;
    }
    this.base = aw.async_hook_fields[aw.constants.kStackLength];
    if (this.own === undefined) return;  // exit() ran
    push(aw, this.own);
    const more = this.more;
    if (more !== undefined) {
      this.more = undefined;
      for (const level of more) push(aw, level);
    }
  }

  /**
   * The fiber gives up the runner role: take its levels off. Throws (before anything switches) when
   * the stack cannot be restored correctly on this Node.
   */
  leave(operation: { toString(): string }): void {
    if (!aw) {
      if (currentAsyncId() !== this.base) {
        throw new FiberStateError(`${operation} cannot suspend inside an async scope opened in this fiber ` +
          '(AsyncResource.runInAsyncScope or bind) on this Node version: suspend outside it');
      }
      return;
    }
    const { kStackLength, kExecutionAsyncId, kTriggerAsyncId } = aw.constants;
    const depth = aw.async_hook_fields[kStackLength];
    if (depth > this.base + 1) {
      // Suspending inside scopes this fiber opened: they travel with it. Whoever pushed them (this
      // module, Node's JavaScript or native code), the binding's pop keeps Node's books straight.
      const levels: Level[] = [];
      for (let i = this.base + 1; i < depth; i++) {
        const top = i === depth - 1;
        levels.push({
          id: top ? aw.async_id_fields[kExecutionAsyncId] : aw.async_ids_stack[2 * (i + 1)],
          trigger: top ? aw.async_id_fields[kTriggerAsyncId] : aw.async_ids_stack[2 * (i + 1) + 1],
          resource: aw.execution_async_resources[i] ?? aw.executionAsyncResource(i),
        });
      }
      for (let i = levels.length - 1; i >= 0; i--) aw.popAsyncContext(levels[i].id);
      this.more = levels;
    }
    if (this.own !== undefined && aw.async_hook_fields[kStackLength] === this.base + 1) popPushed(aw, this.own.id);
  }

  /** The fiber ended: take its levels off for good and release its resource. Never throws. */
  exit(): void {
    if (!aw) return;
    this.leave('exit');
    this.more = undefined;
    const own = this.own;
    if (own === undefined) return;
    this.own = undefined;
    (own.resource as AsyncResource).emitDestroy();
  }
}

/** Whether fibers get their own async id (Node 20 and 22) or share the resumer's (24+). */
export const perFiberAsyncIds = aw !== undefined;
