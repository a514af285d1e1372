export { WriterLease } from './writerLease';
export { WorkResult, LeaseState } from './types';
export type { WorkReturn, WorkFunc, WriterLeaseOptions, LeaseSnapshot, TryStatus, TryOutcome } from './types';
export { exponentialBackoff, constantBackoff } from './backoff';
export type { BackoffPolicy, ExponentialBackoffOptions } from './backoff';
export { limitRetries } from './limitRetries';
export { WorkReturnError, LeaseRunningError, LeaseDisposedError } from './errors';
export type * from './events';
