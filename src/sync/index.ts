// The synchronization primitives (each module appends its line here).
export { Mutex, RecursiveMutex, type LockGuard, type LockOptions } from './mutex.js';
