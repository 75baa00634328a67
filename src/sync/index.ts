// The synchronization primitives (each module appends its line here).
export { Mutex, RecursiveMutex, type LockGuard, type LockOptions } from './mutex.js';
export { ConditionVariable } from './condvar.js';
export { Semaphore, type AcquireOptions } from './semaphore.js';
export { WaitGroup, type WaitGroupWaitOptions } from './waitgroup.js';
export { Barrier, type BarrierWaitOptions } from './barrier.js';
export { Event, type EventWaitOptions } from './event.js';
export { RWLock } from './rwlock.js';
