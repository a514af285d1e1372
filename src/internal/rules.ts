import { LeaseState, WorkResult, type LeaseSnapshot } from '../types.js';

/**
 * The rules of the lease (docs/lease.md, "Rules"), as functions of
 * (snapshot, input, now, options): no clock, no queue, no unit. They are
 * pure but for what the options they are given do: `backoffDuration`
 * reports a policy's bad value as a `backoff-error` event, and rule 16's
 * spread (`internal/timing.ts`) draws its random delays and keeps them for
 * the tick. `WriterLease` holds the machinery and asks these what to do;
 * spec/rules.spec.ts tests them as tables, and the reference model of the
 * property tests (marbles/model.ts) checks the same rules from the outside.
 */

/** What the rules need of the lease's options. */
export interface RuleOptions {
  readonly leaseDuration: number;
  /** `backoff(tick)` already capped by {@link cappedBackoff}. */
  readonly backoffDuration: (tick: number) => number;
  /**
   * Rule 16: replicas that learn the same thing at the same moment do not
   * all write at once. False: the reference rules, exactly.
   */
  readonly spread: boolean;
}

/**
 * Rule 16's windows, in steps of `backoff(0)`. The election's is wide: a
 * first write costs nothing to delay, and replicas started together spread
 * over it so that most see the first write before their own turn (30
 * replica processes on Redis: 5–7 conflicts at the election with 2 steps,
 * 0 with 8). The follower's must keep the failover within
 * `leaseDuration + retryInterval + one backoff step`: 2 steps (40–60 ms by
 * default) took the failover's conflicts at 30 replicas on Redis from 3–19
 * (1 step) to 0–1.
 */
export const ELECTION_SPREAD_STEPS = 8;
export const FOLLOWER_SPREAD_STEPS = 2;

/**
 * The longest delay rule 16 may add, whatever the backoff policy: a quarter
 * of the lease (so that the failover stays within its bound) and never more
 * than a second (a policy of minutes must not hold a lone replica's first
 * write for minutes).
 */
export function spreadBound(leaseDuration: number): number {
  return Math.min(leaseDuration / 4, MAX_SPREAD_MS);
}

const MAX_SPREAD_MS = 1_000;

/**
 * Rule 16's delays, drawn by the lease (the only randomness of the rules):
 * one for the election, a share of {@link ELECTION_SPREAD_STEPS} ×
 * `backoff(0)`, and one per renewal of the other writer's lease, a share of
 * {@link FOLLOWER_SPREAD_STEPS} × `backoff(0)`. One draw serves every key,
 * so that keys keep the order they became due in.
 */
export interface Spread {
  readonly electionMs: number;
  readonly followerMs: number;
}

/** No spread: the reference rules. */
export const NO_SPREAD: Spread = Object.freeze({ electionMs: 0, followerMs: 0 });

/**
 * The backoff cap: what a policy returned, capped at the lease duration;
 * undefined when it is not a number >= 0 (the lease then uses the lease
 * duration and reports a `backoff-error`).
 */
export function cappedBackoff(value: unknown, leaseDuration: number): number | undefined {
  return typeof value === 'number' && value >= 0 ? Math.min(value, leaseDuration) : undefined;
}

/**
 * Rule 1: when new work is due. A follower gives the nominal leader the
 * first chance. With rule 16, work of the election waits `spread.electionMs`
 * and a follower's work `spread.followerMs` more.
 */
export function dueTimeOfNewWork(
  { state, expires }: LeaseSnapshot,
  now: number,
  rules: RuleOptions,
  spread: Spread = NO_SPREAD,
): number {
  switch (state) {
    case LeaseState.Leader:
      return now;
    case LeaseState.Election:
      return now + spread.electionMs;
    default:
      return now + Math.max(expires - now, 2 * rules.backoffDuration(0)) + spread.followerMs;
  }
}

/**
 * Rule 2: when a due key must wait instead of running: a follower's, until
 * the other lease runs out; with rule 16, `spread.followerMs` more, so that
 * followers capped at the same lease duration do not all wake at the same
 * instant when the leader dies.
 */
export function deferredUntil(
  { state, expires }: LeaseSnapshot,
  now: number,
  spread: Spread = NO_SPREAD,
): number | undefined {
  return state === LeaseState.Follower && now < expires ? expires + spread.followerMs : undefined;
}

/** Rule 4: the state change of a settled unit's result. */
export function afterResult(
  snapshot: LeaseSnapshot,
  result: WorkResult,
  now: number,
  rules: RuleOptions,
): LeaseSnapshot {
  switch (result) {
    case WorkResult.Extend:
      return { state: LeaseState.Leader, expires: now + rules.leaseDuration, tick: 0 };
    case WorkResult.Release:
      return follower(snapshot.state === LeaseState.Follower ? snapshot.tick + 1 : 0, now, rules);
    default:
      return snapshot;
  }
}

/**
 * Rules 5, 13 and 16: the state change of `extend(key)` for a key that had
 * pending work. `at` (on the lease's clock, at most now) renews the other
 * lease as of a write found late: never shortened, and not at all when that
 * renewal has already run out. `letGo`: the key's unit was running and was
 * let go of; it lost the race to the other writer, which is a release. With
 * rule 16's spread, another writer seen during the election ends it: this
 * replica follows, as after a release.
 */
export function afterExtend(
  snapshot: LeaseSnapshot,
  now: number,
  rules: RuleOptions,
  { at = now, letGo = false }: { readonly at?: number; readonly letGo?: boolean } = {},
): LeaseSnapshot {
  if (snapshot.state !== LeaseState.Follower) {
    const lostTheElection = snapshot.state === LeaseState.Election && rules.spread;
    return letGo || lostTheElection ? afterResult(snapshot, WorkResult.Release, now, rules) : snapshot;
  }
  if (at >= now) return follower(snapshot.tick + 1, now, rules);
  const renewed = follower(snapshot.tick + 1, at, rules);
  if (renewed.expires <= now) return snapshot;
  return { ...renewed, expires: Math.max(renewed.expires, snapshot.expires) };
}

/** Rule 7: the lease counts as run out from now. */
export function afterExpire(snapshot: LeaseSnapshot, now: number): LeaseSnapshot {
  return snapshot.expires > now ? { ...snapshot, expires: now } : snapshot;
}

/** Someone else's lease, renewed `tick` times in a row, as of `at`. */
function follower(tick: number, at: number, rules: RuleOptions): LeaseSnapshot {
  return { state: LeaseState.Follower, expires: at + rules.backoffDuration(tick), tick };
}

/**
 * Rule 18: until it leads, a replica runs one unit at a time. Its first
 * write decides whether it leads; with `workers` units in flight at once, a
 * replica that loses the election (or whose failover attempt meets a live
 * writer) would lose every one of them, a conflict each. Once it leads,
 * all `workers` run. With one worker (the default) this is rule 2 as is.
 *
 * @example
 * ```ts
 * workersFor({ state: LeaseState.Election, expires: 0, tick: 0 }, 64); // 1
 * workersFor({ state: LeaseState.Leader, expires: 9, tick: 0 }, 64); // 64
 * ```
 * @param snapshot The lease now.
 * @param workers The `workers` option.
 * @returns How many units may run at once.
 */
export function workersFor(snapshot: LeaseSnapshot, workers: number): number {
  return snapshot.state === LeaseState.Leader ? workers : 1;
}
