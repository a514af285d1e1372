export { WriterLease } from './writerLease';
export { WorkResult, LeaseState } from './types';
export type { WorkReturn, WorkFunc, WriterLeaseOptions, LeaseSnapshot, TryStatus, TryOutcome } from './types';
export { exponentialBackoff, constantBackoff } from './backoff';
export type { BackoffPolicy, ExponentialBackoffOptions } from './backoff';
export { limitRetries } from './limitRetries';
export { WorkReturnError, LeaseRunningError, LeaseDisposedError } from './errors';
export type * from './events';
export { ContentionTracker } from './contentionTracker';
export type { ContentionTrackerOptions, ContentionSnapshot } from './contentionTracker';
export { StatusWriter } from './statusWriter';
export type { StatusWriterOptions, StatusWriterEvent } from './statusWriter';
export type {
  RecordStore,
  RecordKind,
  RecordChange,
  Versioned,
  Generational,
  SpecValue,
  StatusValue,
  CasOutcome,
} from './stores/store';
export { MemoryStore } from './stores/memory';
export { openStore } from './stores/openStore';
export type { OpenStoreOptions } from './stores/openStore';
export {
  StoreUrlError,
  StoreUnreachableError,
  StoreClientMissingError,
  StoreValueError,
  StoreClosedError,
} from './stores/errors';
