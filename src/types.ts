import type { Observable, SchedulerLike } from 'rxjs';
import type { BackoffPolicy } from './backoff.js';

/**
 * What a unit of work says about the lease when it returns.
 *
 * @example
 * ```ts
 * lease.try('route/a', () => WorkResult.Extend); // we wrote: our lease is renewed
 * ```
 */
export enum WorkResult {
  /** Nothing to say about the lease (for example nothing needed writing). */
  None = 'none',
  /** We wrote: our own lease is renewed. */
  Extend = 'extend',
  /** We could not write, or found the record contended: someone else's lease is renewed. */
  Release = 'release',
}

/**
 * Where this replica stands.
 *
 * @example
 * ```ts
 * lease.state.state; // LeaseState.Election until the first unit settles
 * ```
 */
export enum LeaseState {
  /** No unit of work has settled yet. */
  Election = 'election',
  /** Our last settled outcome was a successful write. */
  Leader = 'leader',
  /** Someone else holds the lease, or our write failed. */
  Follower = 'follower',
}

/**
 * What a unit of work returns: a bare {@link WorkResult} (no retry), or the
 * result with a retry request.
 *
 * @example
 * ```ts
 * const conflict: WorkReturn = { result: WorkResult.Release, retry: true };
 * ```
 */
export type WorkReturn = WorkResult | { result: WorkResult; retry?: boolean };

/**
 * A unit of work: synchronous, a Promise, or an Observable (its first value
 * counts). A unit that throws, rejects, errors or returns anything else counts
 * as `release` with retry, and the lease emits an `error` event.
 *
 * @example
 * ```ts
 * const work: WorkFunc = async () => ((await store.write()) ? WorkResult.Extend : WorkResult.Release);
 * ```
 */
export type WorkFunc = () => WorkReturn | PromiseLike<WorkReturn> | Observable<WorkReturn>;

/**
 * Options of a {@link WriterLease}.
 *
 * @example
 * ```ts
 * new WriterLease({ leaseDuration: 10_000, retryInterval: 1_000, workers: 4 });
 * ```
 */
export interface WriterLeaseOptions {
  /** Milliseconds a leader's write holds the lease; also the cap of every backoff. */
  leaseDuration: number;
  /** Milliseconds before a unit that asked to retry runs again. */
  retryInterval: number;
  /**
   * Milliseconds a follower waits after `tick` renewals by others in a row.
   * @default exponentialBackoff()
   */
  backoff?: BackoffPolicy;
  /**
   * How many keys are processed at once. One key is never processed twice at once.
   * @default 1
   */
  workers?: number;
  /**
   * The clock: every timer and every reading of the time goes through it.
   * Pass a `TestScheduler` (inside `run()`) to drive the lease in virtual time.
   * @default asyncScheduler
   */
  scheduler?: SchedulerLike;
  /**
   * A name for events, errors and logs.
   * @default 'writer-lease'
   */
  name?: string;
}

/**
 * The lease as it stands: state, when the current lease runs out, and how many
 * times in a row a follower's lease was renewed by others.
 *
 * @example
 * ```ts
 * lease.state; // { state: LeaseState.Leader, expires: 10_050, tick: 0 }
 * ```
 */
export interface LeaseSnapshot {
  /** Election, leader or follower. */
  readonly state: LeaseState;
  /** On the scheduler's clock (`scheduler.now()`). */
  readonly expires: number;
  /** Renewals of someone else's lease in a row, as follower; 0 otherwise. */
  readonly tick: number;
}

/**
 * How a submission made through the `try` operator ended.
 *
 * - `done`: its unit ran and settled without asking to retry;
 * - `superseded`: a newer submission for the same key replaced it;
 * - `extended`: `extend(key)` dropped it (another writer did the work);
 * - `removed`: `remove(key)` dropped it;
 * - `stopped`: the lease stopped first (the work stays pending in the lease).
 *
 * @example
 * ```ts
 * outcomes$.pipe(filter(({ status }) => status !== 'done')).subscribe(({ key, status }) => console.log(key, status));
 * // route/b superseded
 * ```
 */
export type TryStatus = 'done' | 'superseded' | 'extended' | 'removed' | 'stopped';

/**
 * One outcome of the `try` operator, for one source value.
 *
 * @example
 * ```ts
 * // { key: 'route/a', value: { name: 'a' }, status: 'done', result: WorkResult.Extend }
 * ```
 */
export interface TryOutcome<T> {
  /** The key `keyOf` gave for the value. */
  key: string;
  /** The source value. */
  value: T;
  /** How the submission ended. */
  status: TryStatus;
  /** Set when `status` is `'done'`. */
  result?: WorkResult;
}
