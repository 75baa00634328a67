// Who holds a lock: a fiber, or code outside fibers (async functions and callbacks on the loop thread
// share one identity, since they have none of their own).
import { handleOf, type Fiber } from '../fiber.js';
import { type FiberRecord, currentRecord } from '../runtime.js';

/** The owner standing for code outside fibers. */
export const LOOP = Object.freeze({ label: 'code outside fibers' });

export type Owner = FiberRecord | typeof LOOP;

/** The running fiber, or LOOP outside fibers. */
export function currentOwner(): Owner {
  return currentRecord() ?? LOOP;
}

/** A Fiber handle for an owner (undefined for LOOP). */
export function ownerFiber(owner: Owner | undefined): Fiber<unknown> | undefined {
  return owner === undefined || owner === LOOP ? undefined : handleOf(owner as FiberRecord);
}

/** The fibers among `owners`, for deadlock reports. */
export function fiberOwners(...owners: Array<Owner | undefined>): FiberRecord[] {
  return owners.filter((o): o is FiberRecord => o !== undefined && o !== LOOP);
}

let nextObjectId = 1;
/** A display name for a new primitive: "Mutex #3". */
export function objectName(kind: string): string {
  return `${kind} #${nextObjectId++}`;
}
