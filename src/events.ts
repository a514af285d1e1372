import type { LeaseSnapshot, WorkResult } from './types.js';

/** Fields every event has. */
interface EventBase {
  /** When it happened, on the lease's scheduler clock. */
  readonly at: number;
  /** The lease's `name`. */
  readonly lease: string;
}

/** Fields of events about one submission. */
interface SubmissionEventBase extends EventBase {
  /** The key the work is for. */
  readonly key: string;
  /** The submission's id: increasing, one per `try`. */
  readonly id: number;
}

/**
 * `try(key, work)` recorded a submission, due at `due`.
 *
 * @example
 * ```ts
 * { type: 'submitted', key: 'route/a', id: 7, due: 40, at: 0, lease: 'routes' }
 * ```
 */
export interface SubmittedEvent extends SubmissionEventBase {
  readonly type: 'submitted';
  /** When the key becomes due (rule 1). */
  readonly due: number;
}

/**
 * A newer submission (`by`) replaced this one. If this one was running, it still settles and its result applies.
 *
 * @example
 * ```ts
 * { type: 'superseded', key: 'route/a', id: 7, by: 8, at: 5, lease: 'routes' }
 * ```
 */
export interface SupersededEvent extends SubmissionEventBase {
  readonly type: 'superseded';
  /** The id of the submission that replaced it. */
  readonly by: number;
}

/**
 * A follower's key came due before the lease ran out; it waits until `until`.
 *
 * @example
 * ```ts
 * { type: 'deferred', key: 'route/a', id: 8, until: 1_020, at: 40, lease: 'routes' }
 * ```
 */
export interface DeferredEvent extends SubmissionEventBase {
  readonly type: 'deferred';
  /** When the lease should run out; the key is due again then. */
  readonly until: number;
}

/**
 * A unit started running.
 *
 * @example
 * ```ts
 * { type: 'started', key: 'route/a', id: 8, at: 1_020, lease: 'routes' }
 * ```
 */
export interface StartedEvent extends SubmissionEventBase {
  readonly type: 'started';
}

/**
 * A unit returned (or threw: then `release` with retry). `started` gives its duration.
 *
 * @example
 * ```ts
 * { type: 'settled', key: 'route/a', id: 8, result: 'extend', retry: false, started: 1_020, at: 1_032, lease: 'routes' }
 * ```
 */
export interface SettledEvent extends SubmissionEventBase {
  readonly type: 'settled';
  readonly result: WorkResult;
  /** Whether the unit asked to run again. */
  readonly retry: boolean;
  /** When the unit started: `at - started` is its duration. */
  readonly started: number;
}

/**
 * A unit that asked to retry is due again at `due`.
 *
 * @example
 * ```ts
 * { type: 'retried', key: 'route/a', id: 8, due: 2_032, at: 1_032, lease: 'routes' }
 * ```
 */
export interface RetriedEvent extends SubmissionEventBase {
  readonly type: 'retried';
  /** When the key runs again. */
  readonly due: number;
}

/**
 * Pending work was forgotten by `remove(key)` or `extend(key)`.
 *
 * @example
 * ```ts
 * { type: 'dropped', key: 'route/a', id: 9, reason: 'extended', at: 1_500, lease: 'routes' }
 * ```
 */
export interface DroppedEvent extends SubmissionEventBase {
  readonly type: 'dropped';
  /** `extended`: another writer did the work; `removed`: `remove(key)`. */
  readonly reason: 'removed' | 'extended';
}

/**
 * A unit threw, rejected, errored or returned something that is not a `WorkReturn`.
 *
 * @example
 * ```ts
 * { type: 'error', key: 'route/a', id: 9, error: new Error('connection reset'), at: 1_600, lease: 'routes' }
 * ```
 */
export interface ErrorEvent extends SubmissionEventBase {
  readonly type: 'error';
  /** What was thrown, rejected or errored, or a `WorkReturnError` for garbage. */
  readonly error: unknown;
}

/**
 * The lease let go of a running unit: aborted its signal, unsubscribed it
 * (an Observable unit), freed its worker, and will ignore what it returns.
 * `timeout`: it ran past `workTimeout` (an `error` event with a
 * `WorkTimeoutError` and a `settled` release + retry follow); `removed` /
 * `extended`: its key was removed or extended while it ran; `stopped`: the
 * lease stopped or was disposed (its key stays pending).
 *
 * @example
 * ```ts
 * { type: 'let-go', key: 'route/a', id: 9, reason: 'removed', started: 1_500, at: 1_540, lease: 'routes' }
 * ```
 */
export interface LetGoEvent extends SubmissionEventBase {
  readonly type: 'let-go';
  /** Why the lease let go of the unit. */
  readonly reason: LetGoReason;
  /** When the unit started. */
  readonly started: number;
}

/**
 * Why the lease let go of a running unit; see {@link LetGoEvent}.
 *
 * @example
 * ```ts
 * const reason: LetGoReason = 'timeout';
 * ```
 */
export type LetGoReason = 'timeout' | 'removed' | 'extended' | 'stopped';

/**
 * A key stream given to `extend(keys$)` or `remove(keys$)` emitted a bad key
 * or errored; that stream ended, the lease goes on.
 *
 * @example
 * ```ts
 * { type: 'input-error', call: 'extend(keys$)', error: new TypeError('... must be a non-empty string, received ""'), at: 12, lease: 'routes' }
 * ```
 */
export interface InputErrorEvent extends EventBase {
  readonly type: 'input-error';
  /** Which input: `extend(keys$)` or `remove(keys$)`. */
  readonly call: string;
  /** The TypeError of a bad key, or what the stream errored with. */
  readonly error: unknown;
}

/**
 * The snapshot changed.
 *
 * @example
 * ```ts
 * { type: 'state', previous: { state: 'election', expires: 0, tick: 0 }, snapshot: { state: 'leader', expires: 10_012, tick: 0 }, at: 12, lease: 'routes' }
 * ```
 */
export interface StateEvent extends EventBase {
  readonly type: 'state';
  /** The snapshot before the change. */
  readonly previous: LeaseSnapshot;
  /** The snapshot now. */
  readonly snapshot: LeaseSnapshot;
}

/**
 * The backoff policy returned something that is not a number >= 0; the lease used `leaseDuration`.
 *
 * @example
 * ```ts
 * { type: 'backoff-error', tick: 2, received: NaN, at: 80, lease: 'routes',
 *   message: 'backoff(2) returned NaN, expected a number >= 0: the lease waits its lease duration, 1000 ms' }
 * ```
 */
export interface BackoffErrorEvent extends EventBase {
  readonly type: 'backoff-error';
  /** The tick the policy was asked for. */
  readonly tick: number;
  /** What the policy returned (or threw). */
  readonly received: unknown;
  /** What went wrong and what the lease does instead, for logs. */
  readonly message: string;
}

/**
 * Processing stopped; `pending` lists the keys whose work is kept.
 *
 * @example
 * ```ts
 * { type: 'stopped', pending: ['route/b'], at: 90_000, lease: 'routes' }
 * ```
 */
export interface StoppedEvent extends EventBase {
  readonly type: 'stopped';
  /** The keys whose work is kept for the next `run()`. */
  readonly pending: readonly string[];
}

/**
 * Everything a lease reports on `events$`, told apart by `type`.
 *
 * @example
 * ```ts
 * lease.events$.subscribe((e) => console.log(e.type, e.at));
 * // submitted 0
 * // started 0
 * // settled 0
 * // state 0
 * ```
 */
export type LeaseEvent =
  | SubmittedEvent
  | SupersededEvent
  | DeferredEvent
  | StartedEvent
  | SettledEvent
  | RetriedEvent
  | DroppedEvent
  | LetGoEvent
  | ErrorEvent
  | StateEvent
  | BackoffErrorEvent
  | InputErrorEvent
  | StoppedEvent;

/**
 * The `type` of every event.
 *
 * @example
 * ```ts
 * const counts = new Map<LeaseEventType, number>();
 * lease.events$.subscribe(({ type }) => counts.set(type, (counts.get(type) ?? 0) + 1));
 * ```
 */
export type LeaseEventType = LeaseEvent['type'];
