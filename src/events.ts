import type { LeaseSnapshot, WorkResult } from './types';

/** Fields every event has. */
interface EventBase {
  /** When it happened, on the lease's scheduler clock. */
  readonly at: number;
  /** The lease's `name`. */
  readonly lease: string;
}

/** Fields of events about one submission. */
interface SubmissionEventBase extends EventBase {
  readonly key: string;
  /** The submission's id: increasing, one per `try`. */
  readonly id: number;
}

/** `try(key, work)` recorded a submission, due at `due`. */
export interface SubmittedEvent extends SubmissionEventBase {
  readonly type: 'submitted';
  readonly due: number;
}

/** A newer submission (`by`) replaced this one. If this one was running, it still settles and its result applies. */
export interface SupersededEvent extends SubmissionEventBase {
  readonly type: 'superseded';
  readonly by: number;
}

/** A follower's key came due before the lease ran out; it waits until `until`. */
export interface DeferredEvent extends SubmissionEventBase {
  readonly type: 'deferred';
  readonly until: number;
}

/** A unit started running. */
export interface StartedEvent extends SubmissionEventBase {
  readonly type: 'started';
}

/** A unit returned (or threw: then `release` with retry). `started` gives its duration. */
export interface SettledEvent extends SubmissionEventBase {
  readonly type: 'settled';
  readonly result: WorkResult;
  readonly retry: boolean;
  readonly started: number;
}

/** A unit that asked to retry is due again at `due`. */
export interface RetriedEvent extends SubmissionEventBase {
  readonly type: 'retried';
  readonly due: number;
}

/** Pending work was forgotten by `remove(key)` or `extend(key)`. */
export interface DroppedEvent extends SubmissionEventBase {
  readonly type: 'dropped';
  readonly reason: 'removed' | 'extended';
}

/** A unit threw, rejected, errored or returned something that is not a `WorkReturn`. */
export interface ErrorEvent extends SubmissionEventBase {
  readonly type: 'error';
  readonly error: unknown;
}

/** The snapshot changed. */
export interface StateEvent extends EventBase {
  readonly type: 'state';
  readonly previous: LeaseSnapshot;
  readonly snapshot: LeaseSnapshot;
}

/** The backoff policy returned something that is not a number >= 0; the lease used `leaseDuration`. */
export interface BackoffErrorEvent extends EventBase {
  readonly type: 'backoff-error';
  readonly tick: number;
  readonly received: unknown;
}

/** Processing stopped; `pending` lists the keys whose work is kept. */
export interface StoppedEvent extends EventBase {
  readonly type: 'stopped';
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
  | ErrorEvent
  | StateEvent
  | BackoffErrorEvent
  | StoppedEvent;

/** The `type` of every event. */
export type LeaseEventType = LeaseEvent['type'];
