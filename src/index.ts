/**
 * The writer lease (one, or one per shard), its backoff policies, the contention tracker, the status
 * writer, its health server and the record stores:
 * `import { WriterLease } from 'rx-writer-lease'`.
 * Store adapters and the Prometheus reporter are import paths of their own,
 * whose client libraries are optional peer dependencies.
 *
 * @packageDocumentation
 */
export { WriterLease } from './writerLease.js';
export { ShardedWriterLease } from './shardedWriterLease.js';
export type { ShardedWriterLeaseOptions, ShardedLeaseSnapshot } from './shardedWriterLease.js';
export { WorkResult, LeaseState } from './types.js';
export type {
  WorkReturn,
  WorkFunc,
  WorkContext,
  WriterLeaseOptions,
  LeaseSnapshot,
  TryStatus,
  TryOutcome,
} from './types.js';
export { exponentialBackoff, constantBackoff } from './backoff.js';
export type { BackoffPolicy, ExponentialBackoffOptions } from './backoff.js';
export { limitRetries } from './limitRetries.js';
export { WorkReturnError, WorkTimeoutError, LeaseRunningError, LeaseDisposedError } from './errors.js';
export { monotonicScheduler } from './monotonicScheduler.js';
export type * from './events.js';
export { ContentionTracker } from './contentionTracker.js';
export type { ContentionTrackerOptions, ContentionSnapshot } from './contentionTracker.js';
export { StatusWriter } from './statusWriter.js';
export type { StatusWriterOptions, StatusWriterEvent, HandoverHeard, LastWritten } from './statusWriter.js';
export { serveHealth } from './health.js';
export type { HealthOptions, HealthServer } from './health.js';
export type {
  RecordStore,
  RecordKind,
  RecordChange,
  Versioned,
  Generational,
  SpecValue,
  StatusValue,
  CasOutcome,
  CallOptions,
  Versioning,
} from './stores/store.js';
export { MemoryStore } from './stores/memory.js';
export type { MemoryStoreOptions } from './stores/memory.js';
export { openStore } from './stores/openStore.js';
export type { OpenStoreOptions } from './stores/openStore.js';
export {
  StoreUrlError,
  StoreUnreachableError,
  StoreClientMissingError,
  StoreValueError,
  StoreClosedError,
} from './stores/errors.js';
