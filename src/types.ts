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
 * What a running unit of work is told: which submission it runs, and a
 * signal the lease aborts when it lets go of the unit (the unit timed out,
 * its key was removed or extended, or the lease stopped). A unit that is let
 * go of has no say any more: whatever it returns later is ignored, so it
 * should stop writing (hand `signal` to the store call, or check it before
 * the write).
 *
 * @example
 * ```ts
 * lease.try('route/a', async ({ signal }) => {
 *   const ok = await store.write('route/a', { signal });
 *   return ok ? WorkResult.Extend : WorkResult.Release;
 * });
 * ```
 */
export interface WorkContext {
  /** Aborted when the lease lets go of the unit; its reason says why. */
  readonly signal: AbortSignal;
  /** The key the unit works for. */
  readonly key: string;
  /** The id of the submission it runs (as in the lease's events). */
  readonly id: number;
}

/**
 * A unit of work: synchronous, a Promise, or an Observable (its first value
 * counts). A unit that throws, rejects, errors or returns anything else counts
 * as `release` with retry, and the lease emits an `error` event. It may take
 * the {@link WorkContext}; a unit with no parameter is just as valid.
 *
 * @example
 * ```ts
 * const work: WorkFunc = async ({ signal }) =>
 *   (await store.write({ signal })) ? WorkResult.Extend : WorkResult.Release;
 * ```
 */
export type WorkFunc = (context: WorkContext) => WorkReturn | PromiseLike<WorkReturn> | Observable<WorkReturn>;

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
   * The lease caps the value it returns at `leaseDuration`.
   * @default exponentialBackoff({ cap: leaseDuration })
   */
  backoff?: BackoffPolicy;
  /**
   * How many keys are processed at once while this replica leads; one until
   * it leads, so that its first write decides the election before the others
   * run (docs/lease.md, rule 18). One key is never processed twice at once.
   * @default 1
   */
  workers?: number;
  /**
   * Milliseconds a unit may run before the lease lets go of it: its signal is
   * aborted, its worker is free at once, it counts as `release` with retry,
   * and an `error` event carries a `WorkTimeoutError`. Absent: units may run
   * for ever, as in the reference. `0` means what it says: a unit that does
   * not settle synchronously is let go of at once, so only synchronous work
   * ever completes (use it in tests of the timeout path, not in production).
   * @default undefined (no timeout)
   */
  workTimeout?: number;
  /**
   * Rule 16 (docs/lease.md, "No herd"), for large fleets: replicas that learn
   * the same thing at the same moment do not all write at once. Work of the
   * election waits a random share of `8 × backoff(0)`; a follower's work runs
   * a random share of `2 × backoff(0)` after the other lease runs out; and
   * another writer seen during the election (`extend(key)`) makes this
   * replica a follower. Each of these delays is at most
   * `min(leaseDuration / 4, 1000)` ms, whatever the backoff policy.
   * `false`: the reference rules exactly (the Go package's timing), where
   * every capped follower wakes at the same instant when a leader dies.
   * @default false
   */
  spread?: boolean;
  /**
   * Where rule 16's spread draws from: numbers in [0, 1). Inject it for
   * repeatable tests.
   * @default Math.random
   */
  random?: () => number;
  /**
   * The clock: every timer and every reading of the time goes through it.
   * The default is monotonic, so wall-clock steps move nothing, and virtual
   * inside `TestScheduler.run()`. A scheduler passed here is read as it is:
   * pass one whose `now()` never jumps (docs/lease.md, "Time").
   * @default monotonicScheduler
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
  /** On the lease's own clock (`scheduler.now()`): meaningless to another process. */
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
