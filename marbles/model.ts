/**
 * A reference model of the rules of `docs/lease.md` ("Rules", "Backoff";
 * "the spec" below), for the property tests in `properties.spec.ts`. It is
 * written from the spec, not from `src/`: it reads only what the public API
 * shows (the commands a test makes, the `events$` a lease emits, `size`,
 * `pendingKeys()`, `state`) and says, for each of them, whether the spec
 * allows it. What it finds wrong it records as a {@link Violation} tagged
 * with the property it breaks, so that each property test can assert on its
 * own share.
 */
import type { LeaseEvent } from '../src';
import type { Result, UnitSpec } from '../test-support/leaseHarness';

// ---- the spec's vocabulary, restated so the model does not lean on src/ ----

export type { Result } from '../test-support/leaseHarness';
export type State = 'election' | 'leader' | 'follower';

export interface Snapshot {
  readonly state: State;
  readonly expires: number;
  readonly tick: number;
}

// ---- backoff (docs/lease.md, "Backoff") -------------------------------------

/** Where a policy's random numbers come from: one fixed value, or a cycle of values. */
export type RandomSpec =
  | { readonly kind: 'constant'; readonly value: number }
  | { readonly kind: 'cycle'; readonly values: readonly number[] };

export type BackoffSpec =
  | { readonly kind: 'constant'; readonly ms: number }
  | {
      readonly kind: 'exponential';
      readonly initial: number;
      readonly factor: number;
      readonly steps: number;
      readonly jitter: number;
      readonly random: RandomSpec;
    };

/**
 * The spec's `backoffDuration(tick)` for one sequence of random draws `r`
 * (one per step), capped by `leaseDuration` exactly as the spec words it:
 * the cap is checked after every multiplication, and the first excess
 * returns the lease duration.
 */
export function exponentialDuration(
  spec: Extract<BackoffSpec, { kind: 'exponential' }>,
  tick: number,
  leaseDuration: number,
  r: (step: number) => number,
): number {
  const { initial, factor, steps, jitter } = spec;
  if (tick > steps) return leaseDuration;
  let d = initial;
  for (let step = 0; step < tick; step++) {
    const jittered = jitter > 0 ? d + r(step) * jitter * d : d;
    d = jittered * factor;
    if (d > leaseDuration) return leaseDuration;
  }
  return Math.min(d, leaseDuration);
}

/**
 * The range `[low, high]` that `backoffDuration(tick)` may take, capped at
 * `leaseDuration`. Each step grows with its random draw, so the lowest
 * draw at every step gives the low end and the highest the high end; with a
 * constant draw both ends are the one exact value.
 */
export function backoffRange(spec: BackoffSpec, tick: number, leaseDuration: number): [number, number] {
  if (spec.kind === 'constant') {
    const ms = Math.min(spec.ms, leaseDuration);
    return [ms, ms];
  }
  const { random } = spec;
  const low = random.kind === 'constant' ? random.value : Math.min(...random.values);
  const high = random.kind === 'constant' ? random.value : Math.max(...random.values);
  return [
    exponentialDuration(spec, tick, leaseDuration, () => low),
    exponentialDuration(spec, tick, leaseDuration, () => high),
  ];
}

/**
 * The jitter bounds of the reference policy alone (no lease cap), for
 * `random()` anywhere in [0, 1): `[initial × factor^tick, initial × ((1 + jitter) × factor)^tick]`.
 */
export function jitterBounds(initial: number, factor: number, jitter: number, tick: number): [number, number] {
  const grow = jitter > 0 ? 1 + jitter : 1;
  return [initial * factor ** tick, initial * (grow * factor) ** tick];
}

// ---- units of work ----------------------------------------------------------

// A unit of work as data (its result, retries, fault, delivery), shared with
// spec/lease.reentrancy.spec.ts through the property harness.
export type { Delivery, Fault, UnitSpec } from '../test-support/leaseHarness';

/** What the spec says the lease should make of call number `call` (0-based) of a unit. */
export interface Expected {
  readonly result: Result;
  readonly retry: boolean;
  /** An `error` event comes first. */
  readonly error: boolean;
  /** Frames between `started` and `settled`. */
  readonly after: number;
  /** It outlives `workTimeout`: a `let-go` (timeout) comes first, at `after`. */
  readonly timeout: boolean;
}

/**
 * Spec, "Work": a unit that throws, rejects or returns garbage counts as
 * release with retry; so does one still running when `workTimeout` runs out
 * (issue 9), which the lease lets go of at that moment. A unit that settles
 * in the very frame its timeout runs out settles: it was scheduled first.
 */
export function expectedOf(unit: UnitSpec, call: number, workTimeout?: number): Expected | undefined {
  const settlesAfter = unit.fault === 'never' ? Infinity : typeof unit.delivery === 'number' ? unit.delivery : 0;
  if (workTimeout !== undefined && settlesAfter > workTimeout) {
    return { result: 'release', retry: true, error: true, after: workTimeout, timeout: true };
  }
  if (settlesAfter === Infinity) return undefined;
  if (unit.fault !== 'ok') return { result: 'release', retry: true, error: true, after: settlesAfter, timeout: false };
  return { result: unit.result, retry: call < unit.retries, error: false, after: settlesAfter, timeout: false };
}

// ---- bad input (api.md, "Bad input") ------------------------------------------

export type ErrorKind = 'RangeError' | 'TypeError';

const isDuration = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value >= 0;

/**
 * The errors `new WriterLease(options)` may throw for `options`, per the
 * API contract (any of them when several fields are wrong); empty when the
 * options are valid.
 */
export function optionErrors(options: Record<string, unknown>): { kind: ErrorKind; argument: string }[] {
  const errors: { kind: ErrorKind; argument: string }[] = [];
  if (!isDuration(options.leaseDuration)) errors.push({ kind: 'RangeError', argument: 'leaseDuration' });
  if (!isDuration(options.retryInterval)) errors.push({ kind: 'RangeError', argument: 'retryInterval' });
  const { workers, backoff } = options;
  if (workers !== undefined && !(typeof workers === 'number' && Number.isInteger(workers) && workers >= 1)) {
    errors.push({ kind: 'RangeError', argument: 'workers' });
  }
  if (backoff !== undefined && typeof backoff !== 'function') errors.push({ kind: 'TypeError', argument: 'backoff' });
  return errors;
}

/** True for a key the spec accepts: a non-empty string. */
export const isKey = (value: unknown): boolean => typeof value === 'string' && value.length > 0;

// ---- the model ----------------------------------------------------------------

/**
 * The properties of `properties.spec.ts`, one tag each:
 * 1 `pending` a key's work is never lost; 2 `newer` a newer submission
 * survives an older run; 3 `overlap` no key twice at once, at most
 * `workers` (one until it leads, rule 18); 4 `follower` no work before
 * `expires`; 5 `state` rule 4/5/7 transitions; 6 `backoff` durations within bounds and the cap; 7 `stop`
 * nothing runs or waits after stop; plus `trace`: every other event the
 * spec describes (due times, retries, settlements), and `order`: rule 2's
 * earliest due first.
 */
export type Invariant = 'pending' | 'newer' | 'overlap' | 'follower' | 'state' | 'backoff' | 'stop' | 'trace' | 'order';

export interface Violation {
  readonly invariant: Invariant;
  readonly at: number;
  readonly message: string;
}

export interface ModelOptions {
  readonly leaseDuration: number;
  readonly retryInterval: number;
  readonly workers: number;
  readonly backoff: BackoffSpec;
  /** Absent: no timeout. */
  readonly workTimeout?: number;
  /** Rule 16: attempts spread (absent or false: the reference rules). */
  readonly spread?: boolean;
}

/** How a submission ended (docs/lease.md, "Work"; `stopped` is not an end: the work stays pending). */
export type Ending = 'done' | 'superseded' | 'extended' | 'removed';

interface Submission {
  readonly id: number;
  readonly key: string;
  readonly unit: UnitSpec;
  calls: number;
  ending?: Ending;
}

interface Run {
  readonly id: number;
  readonly started: number;
  readonly expected: Expected | undefined;
  errored: boolean;
  /** The lease let go of it when its timeout ran out; its error and settlement follow. */
  timedOut: boolean;
}

/** A state event the model waits for, with the range `expires` may take. */
interface ExpectedState {
  readonly cause: string;
  readonly state: State;
  readonly tick: number;
  /** The range `expires` may take, or `now + backoffDuration(tick)`, read when the state event comes. */
  readonly expires: [number, number] | { readonly from: number; readonly backoff: number };
}

type CommandName = 'try' | 'extend' | 'remove' | 'expire' | 'run' | 'stop';

const EPSILON = 1e-6;
const close = (a: number, b: number) => Math.abs(a - b) <= EPSILON * Math.max(1, Math.abs(a), Math.abs(b));
const within = (value: number, [low, high]: [number, number]) =>
  value >= low - EPSILON * Math.max(1, Math.abs(low)) && value <= high + EPSILON * Math.max(1, Math.abs(high));

/**
 * The spec's lease, followed step by step: the test tells it each command
 * as it makes it (`begin` / `end`) and each unit call, and feeds it every
 * event; it checks each against the spec and keeps its own state.
 */
export class LeaseModel {
  readonly violations: Violation[] = [];
  /** Whether the election ended in leading: what `wait()` must resolve with (rule 9). */
  decision: boolean | undefined;

  state: Snapshot;
  processing = false;
  /** Key → id of its pending submission. */
  readonly pending = new Map<string, number>();
  readonly submissions = new Map<number, Submission>();
  readonly running = new Map<string, Run>();
  /** Key → the earliest time it may run (rule 1, rule 3 retry, rule 2 deferral, stop). */
  readonly due = new Map<string, number>();

  #lastId = 0;
  #now = 0;
  #command: { name: CommandName; key?: string; unit?: UnitSpec } | undefined;
  #commandSaw = { submitted: false, dropped: false, stopped: false };
  /** extend/remove of a key with pending work must drop it (rules 5, 6). */
  #dropExpected = false;
  /** Key → a newer submission that was pending when an older run of the key settled (rule 3). */
  readonly #survivors = new Map<string, number>();
  #expectedStates: ExpectedState[] = [];
  #expectedSuperseded: { id: number; by: number }[] = [];
  #expectedRetried: { id: number; due: number }[] = [];
  /** Running units a drop must let go of (issue 9: a removed or extended key's unit is not wanted). */
  #expectedLetGo: { key: string; id: number; reason: 'removed' | 'extended' }[] = [];
  /** A unit whose `started` was seen and that has not been called yet. */
  #awaitingCall: number | undefined;
  #resumedAt = -Infinity;
  /**
   * When a command last freed a worker by letting go of a unit: the lease
   * takes the next due key in a scheduled action of that frame, never inside
   * the command, so other actions of the frame may come first.
   */
  #freedAt = -Infinity;
  /** The random draws of the policy's latest call, per tick: the exact backoff the spec gives for them. */
  readonly #draws = new Map<number, readonly number[]>();

  constructor(
    readonly options: ModelOptions,
    now: number,
  ) {
    this.state = { state: 'election', expires: now, tick: 0 };
  }

  /** The id the next valid `try` gets: the test builds the unit with it. */
  get nextId(): number {
    return this.#lastId + 1;
  }

  /**
   * `backoffDuration(tick)` (docs/lease.md, "Backoff"): exact when the
   * random draws of the policy's call for `tick` were observed, else the
   * range it may take.
   */
  backoff(tick: number): [number, number] {
    const { backoff, leaseDuration } = this.options;
    const draws = this.#draws.get(tick);
    if (backoff.kind === 'exponential' && draws !== undefined) {
      let enough = true;
      const exact = exponentialDuration(backoff, tick, leaseDuration, (step) => {
        if (step >= draws.length) enough = false;
        return draws[step] ?? 0;
      });
      if (enough) return [exact, exact];
    }
    return backoffRange(backoff, tick, leaseDuration);
  }

  /** The test tells the model the random numbers each call of the policy drew. */
  observeBackoff(tick: number, draws: readonly number[]): void {
    this.#draws.set(tick, draws);
  }

  // ---- commands -------------------------------------------------------------

  /** Called right before the test calls the lease. */
  begin(name: CommandName, now: number, key?: string, unit?: UnitSpec): void {
    this.#now = now;
    this.#settledExpectations(`before ${name}()`);
    this.#checkNothingOverdue(now);
    this.#command = { name, key, unit };
    this.#commandSaw = { submitted: false, dropped: false, stopped: false };
    this.#dropExpected = (name === 'extend' || name === 'remove') && key !== undefined && this.pending.has(key);
    switch (name) {
      case 'run':
        this.processing = true;
        this.#resumedAt = now;
        return;
      case 'expire':
        // Rule 7: the lease counts as run out from now.
        if (this.state.expires > now) {
          this.#expectState('expire()', this.state.state, this.state.tick, [now, now]);
        }
        return;
      default:
        return;
    }
  }

  /**
   * Rules 16 and 17: every key due later than `at` is due at `at` (the
   * lease keeps their order among them; rule 2 only asks earliest first).
   * The test calls it for `expire({ wake: true })` without the spread.
   */
  wakeWaiting(at: number): void {
    for (const [key, due] of this.due) if (due > at) this.due.set(key, at);
  }

  /** Called right after the lease call returned; `lease` is what the public API shows. */
  end(lease: { size: number; pendingKeys(): string[]; state: { state: string; expires: number; tick: number } }): void {
    const command = this.#command;
    if (command === undefined) return;
    this.#command = undefined;
    const now = this.#now;
    this.#settledExpectations(`after ${command.name}()`);
    if (command.name === 'try' && !this.#commandSaw.submitted) {
      this.fail('trace', now, `try("${short(command.key)}") emitted no submitted event`);
    }
    if (this.#dropExpected !== this.#commandSaw.dropped) {
      this.fail(
        'pending',
        now,
        `${command.name}("${short(command.key)}") ${this.#dropExpected ? 'did not drop its pending work' : 'dropped work the model did not have'}`,
      );
    }
    if (command.name === 'stop' && !this.#commandSaw.stopped) {
      this.fail('stop', now, 'stopping emitted no stopped event');
    }
    this.compare(lease, `after ${command.name}()`);
  }

  /** Rule 8 and rule 10: the lease's pending keys and snapshot are the model's. */
  compare(
    lease: { size: number; pendingKeys(): string[]; state: { state: string; expires: number; tick: number } },
    when: string,
  ): void {
    const now = this.#now;
    const actual = lease.pendingKeys();
    const expected = [...this.pending.keys()];
    if (lease.size !== expected.length || !sameSet(actual, expected)) {
      this.fail(
        'pending',
        now,
        `${when}: lease has ${lease.size} pending [${actual.map(short).join(', ')}], the model [${expected.map(short).join(', ')}]`,
      );
    }
    for (const [key, id] of this.#survivors) {
      if (this.pending.get(key) === id && !actual.includes(key)) {
        this.fail('newer', now, `${when}: submission ${id} of "${short(key)}", newer than a run that settled, is gone`);
      }
    }
    const { state, expires, tick } = lease.state;
    if (state !== this.state.state || tick !== this.state.tick || !close(expires, this.state.expires)) {
      this.fail('state', now, `${when}: lease state ${show(lease.state)}, the model ${show(this.state)}`);
    }
  }

  /** Called by a unit of work when the lease calls it. */
  unitCalled(id: number, now: number): void {
    if (this.#command !== undefined) {
      this.fail('trace', now, `unit ${id} ran inside ${this.#command.name}() (api.md, "Time")`);
    }
    if (this.#awaitingCall !== id) {
      this.fail('trace', now, `unit ${id} was called without a started event for it`);
    }
    this.#awaitingCall = undefined;
  }

  /** End of the run: nothing overdue, nothing half-done. */
  finish(now: number): void {
    this.#now = now;
    this.#settledExpectations('at the end');
    this.#checkNothingOverdue(now);
  }

  /** The submissions that have not ended: each must be the pending one of its key (property 1). */
  checkAccounts(now: number): void {
    for (const submission of this.submissions.values()) {
      const pendingId = this.pending.get(submission.key);
      if (submission.ending === undefined && pendingId !== submission.id) {
        this.fail(
          'pending',
          now,
          `submission ${submission.id} of "${short(submission.key)}" neither ended nor is pending (pending: ${pendingId})`,
        );
      }
      if (submission.ending !== undefined && pendingId === submission.id) {
        this.fail('pending', now, `submission ${submission.id} ended (${submission.ending}) but is still pending`);
      }
    }
  }

  // ---- events ---------------------------------------------------------------

  event(event: LeaseEvent): void {
    const now = event.at;
    this.#now = now;
    if (this.#awaitingCall !== undefined && event.type !== 'error' && event.type !== 'settled') {
      this.fail('trace', now, `unit ${this.#awaitingCall} was not called after its started event`);
      this.#awaitingCall = undefined;
    }
    switch (event.type) {
      case 'submitted':
        return this.#submitted(event);
      case 'superseded':
        return this.#superseded(event);
      case 'deferred':
        return this.#deferred(event);
      case 'started':
        return this.#started(event);
      case 'error':
        return this.#error(event);
      case 'settled':
        return this.#settled(event);
      case 'retried':
        return this.#retried(event);
      case 'dropped':
        return this.#dropped(event);
      case 'let-go':
        return this.#letGo(event);
      case 'state':
        return this.#state(event);
      case 'stopped':
        return this.#stopped(event);
      case 'backoff-error':
        return this.fail('backoff', now, `backoff-error for tick ${event.tick}: ${String(event.received)}`);
    }
  }

  #submitted(event: Extract<LeaseEvent, { type: 'submitted' }>): void {
    const { key, id, due, at } = event;
    const command = this.#command;
    if (command?.name !== 'try' || command.key !== key || command.unit === undefined) {
      this.fail('trace', at, `submitted "${short(key)}" outside try("${short(key)}")`);
      return;
    }
    this.#commandSaw.submitted = true;
    if (id !== ++this.#lastId)
      this.fail('trace', at, `submission id ${id}, expected ${this.#lastId} (rule 1: increasing)`);
    this.submissions.set(id, { id, key, unit: command.unit, calls: 0 });

    // Rule 1: as follower due after max(expires - now, 2 × backoff(0)); otherwise at once. Rule 16: the
    // election's work up to 8 × backoff(0) later, a follower's up to 2 × backoff(0) later.
    let expectedDue: [number, number] = [at, at];
    const [low, high] = this.backoff(0);
    const spread = this.options.spread === true;
    if (this.state.state === 'follower') {
      const wait = this.state.expires - at;
      expectedDue = [at + Math.max(wait, 2 * low), at + Math.max(wait, 2 * high) + (spread ? 2 * high : 0)];
    } else if (this.state.state === 'election' && spread) {
      expectedDue = [at, at + 8 * high];
    }
    if (!within(due, expectedDue)) {
      this.fail(
        this.state.state === 'follower' ? 'follower' : 'trace',
        at,
        `submitted "${short(key)}" due ${due}, rule 1 says ${expectedDue[0]} (state ${show(this.state)})`,
      );
    }
    this.#setDue(key, due);

    const previous = this.pending.get(key);
    this.pending.set(key, id);
    if (previous === undefined) return;
    // The previous submission is over, even when it is running: that unit still
    // settles and its result applies (rule 3), but it no longer owns the key's work.
    this.#expectedSuperseded.push({ id: previous, by: id });
  }

  #superseded({ key, id, by, at }: Extract<LeaseEvent, { type: 'superseded' }>): void {
    const index = this.#expectedSuperseded.findIndex((expected) => expected.id === id && expected.by === by);
    if (index < 0) {
      this.fail('pending', at, `unexpected superseded ${id} by ${by} for "${short(key)}"`);
      return;
    }
    this.#expectedSuperseded.splice(index, 1);
    this.#end(id, 'superseded', at);
  }

  #deferred({ key, id, until, at }: Extract<LeaseEvent, { type: 'deferred' }>): void {
    if (!this.processing) this.fail('stop', at, `deferred "${short(key)}" while stopped`);
    if (this.pending.get(key) !== id)
      this.fail('pending', at, `deferred ${id} of "${short(key)}", pending is ${this.pending.get(key)}`);
    const due = this.due.get(key);
    if (due === undefined || due > at + EPSILON * Math.max(1, at)) {
      this.fail('trace', at, `deferred "${short(key)}" at ${at} before it was due (${due})`);
    }
    // Rule 2: follower and now < expires: put back, due at expires (rule 16: up to 2 × backoff(0) later).
    const spreadUpTo = this.options.spread === true ? 2 * this.backoff(0)[1] : 0;
    const { expires } = this.state;
    if (this.state.state !== 'follower' || !(at < expires) || !within(until, [expires, expires + spreadUpTo])) {
      this.fail('follower', at, `deferred "${short(key)}" until ${until} with state ${show(this.state)}`);
    }
    this.due.set(key, until);
  }

  #started({ key, id, at }: Extract<LeaseEvent, { type: 'started' }>): void {
    this.#settledExpectations(`before started "${short(key)}"`);
    if (this.#command !== undefined) this.fail('trace', at, `"${short(key)}" started inside ${this.#command.name}()`);
    if (!this.processing) this.fail('stop', at, `"${short(key)}" started while stopped`);
    const pendingId = this.pending.get(key);
    if (pendingId !== id) {
      this.fail(
        pendingId !== undefined && pendingId > id ? 'newer' : 'pending',
        at,
        `started ${id} of "${short(key)}", pending is ${pendingId}`,
      );
    }
    // Rule 2: never the same key twice at once, at most `workers` at once; rule 18: one until it leads.
    if (this.running.has(key)) {
      this.fail('overlap', at, `"${short(key)}" started (${id}) while ${this.running.get(key)?.id} runs`);
    }
    if (this.running.size >= this.#workersNow()) {
      this.fail(
        'overlap',
        at,
        `"${short(key)}" started with ${this.running.size} running of ${this.#workersNow()} workers as ${this.state.state}`,
      );
    }
    // Rule 2: follower and now < expires does not run.
    if (this.state.state === 'follower' && at < this.state.expires - EPSILON * Math.max(1, at)) {
      this.fail('follower', at, `"${short(key)}" started at ${at} as follower before expires ${this.state.expires}`);
    }
    const due = this.due.get(key);
    if (due === undefined || due > at + EPSILON * Math.max(1, at)) {
      this.fail('trace', at, `"${short(key)}" started at ${at}, due ${due}`);
    }
    // Rule 2: earliest due first.
    if (due !== undefined) {
      for (const [other, otherDue] of this.due) {
        if (
          other !== key &&
          !this.running.has(other) &&
          this.pending.has(other) &&
          otherDue < due - EPSILON * Math.max(1, due)
        ) {
          this.fail('order', at, `"${short(key)}" (due ${due}) started before "${short(other)}" (due ${otherDue})`);
        }
      }
    }
    this.due.delete(key);
    this.#survivors.delete(key);
    const submission = this.submissions.get(id);
    const call = submission === undefined ? 0 : submission.calls++;
    this.running.set(key, {
      id,
      started: at,
      expected: submission === undefined ? undefined : expectedOf(submission.unit, call, this.options.workTimeout),
      errored: false,
      timedOut: false,
    });
    this.#awaitingCall = id;
  }

  #error({ key, id, at }: Extract<LeaseEvent, { type: 'error' }>): void {
    const run = this.running.get(key);
    if (run?.id !== id) {
      this.fail('trace', at, `error for ${id} of "${short(key)}", which is not running`);
      return;
    }
    if (run.expected?.error !== true)
      this.fail('trace', at, `error event for ${id} of "${short(key)}", whose unit did not fail`);
    if (run.expected?.timeout === true && !run.timedOut)
      this.fail('trace', at, `error event for ${id} of "${short(key)}" before it was let go of on its timeout`);
    run.errored = true;
  }

  #settled({ key, id, result, retry, started, at }: Extract<LeaseEvent, { type: 'settled' }>): void {
    this.#settledExpectations(`before settled "${short(key)}"`);
    const run = this.running.get(key);
    if (run?.id !== id) {
      this.fail(this.processing ? 'overlap' : 'stop', at, `settled ${id} of "${short(key)}", which is not running`);
      return;
    }
    this.running.delete(key);
    const expected = run.expected;
    if (expected === undefined) {
      this.fail('trace', at, `settled ${id} of "${short(key)}", whose unit never settles`);
    } else {
      if (expected.result !== result || expected.retry !== retry) {
        this.fail(
          'trace',
          at,
          `settled ${id} of "${short(key)}" as ${result}/retry ${retry}, expected ${expected.result}/retry ${expected.retry}`,
        );
      }
      if (expected.error && !run.errored)
        this.fail('trace', at, `settled ${id} of "${short(key)}" without its error event`);
      if (started !== run.started || !close(at, run.started + expected.after)) {
        this.fail(
          'trace',
          at,
          `settled ${id} of "${short(key)}" at ${at} (started ${started}), expected ${run.started + expected.after}`,
        );
      }
    }

    // Rule 4.
    if (result === 'extend') {
      const expires = at + this.options.leaseDuration;
      this.#expectState(`settled extend (${id})`, 'leader', 0, [expires, expires]);
    } else if (result === 'release') {
      const tick = this.state.state === 'follower' ? this.state.tick + 1 : 0;
      this.#expectState(`settled release (${id})`, 'follower', tick, { from: at, backoff: tick });
    }

    // Rule 3: retry keeps the key's work (the newer submission, if one came meanwhile).
    const current = this.pending.get(key);
    if (retry && current !== undefined) {
      this.#setDue(key, at + this.options.retryInterval);
      this.#expectedRetried.push({ id: current, due: at + this.options.retryInterval });
    } else if (!retry) {
      if (current !== undefined && current !== id) this.#survivors.set(key, current);
      if (current === id) {
        this.pending.delete(key);
        this.due.delete(key);
      }
      this.#end(id, 'done', at, true);
    }
  }

  #retried({ key, id, due, at }: Extract<LeaseEvent, { type: 'retried' }>): void {
    const index = this.#expectedRetried.findIndex((expected) => expected.id === id && close(expected.due, due));
    if (index < 0) {
      this.fail('trace', at, `unexpected retried ${id} of "${short(key)}" due ${due}`);
      return;
    }
    this.#expectedRetried.splice(index, 1);
  }

  #dropped({ key, id, reason, at }: Extract<LeaseEvent, { type: 'dropped' }>): void {
    const command = this.#command;
    const wanted = reason === 'removed' ? 'remove' : 'extend';
    if (command?.name !== wanted || command.key !== key) {
      this.fail('pending', at, `dropped (${reason}) "${short(key)}" outside ${wanted}("${short(key)}")`);
    }
    if (this.pending.get(key) !== id) {
      this.fail('pending', at, `dropped ${id} of "${short(key)}", pending is ${this.pending.get(key)}`);
    }
    this.#commandSaw.dropped = true;
    this.pending.delete(key);
    this.due.delete(key);
    this.#end(id, reason, at);
    const run = this.running.get(key);
    if (run !== undefined) this.#expectedLetGo.push({ key, id: run.id, reason });
    // Rule 5: as follower, tick += 1 and expires = now + backoffDuration(tick). Rule 13: extend of a
    // running key lets go of its unit, which lost the race: from election or leader, that is a release.
    // Rule 16: with the spread, another writer seen during the election ends it, as a release.
    const lostTheElection = this.options.spread === true && this.state.state === 'election';
    if (reason === 'extended' && (this.state.state === 'follower' || run !== undefined || lostTheElection)) {
      const tick = this.state.state === 'follower' ? this.state.tick + 1 : 0;
      this.#expectState(`extend("${short(key)}")`, 'follower', tick, { from: at, backoff: tick });
    }
  }

  #letGo({ key, id, reason, started, at }: Extract<LeaseEvent, { type: 'let-go' }>): void {
    const run = this.running.get(key);
    if (run?.id !== id || started !== run.started) {
      this.fail('trace', at, `let go (${reason}) of ${id} of "${short(key)}", which is not running`);
      return;
    }
    if (reason === 'timeout') {
      if (run.expected?.timeout !== true || !close(at, run.started + run.expected.after)) {
        this.fail('trace', at, `${id} of "${short(key)}" timed out at ${at} (started ${run.started}), not expected to`);
      }
      // Still counted as running until its settlement (release, retry), which follows in this frame.
      run.timedOut = true;
      return;
    }
    this.running.delete(key);
    this.#freedAt = at;
    if (reason === 'stopped') {
      if (this.#command?.name !== 'stop') this.fail('stop', at, `let go (stopped) of "${short(key)}" outside stop`);
      // Rule 10: its work, if still the pending one, stays and is due at once.
      if (this.pending.get(key) === id) this.#setDue(key, at);
      else if (this.submissions.get(id)?.ending === undefined) {
        // Not the key's work any more: it must have ended (superseded or dropped) already.
        this.fail('pending', at, `stop let go of ${id} of "${short(key)}", which is not pending and never ended`);
      }
      return;
    }
    const index = this.#expectedLetGo.findIndex((expected) => expected.id === id && expected.reason === reason);
    if (index < 0) {
      this.fail('trace', at, `let go (${reason}) of ${id} of "${short(key)}" without ${reason} of its key`);
      return;
    }
    this.#expectedLetGo.splice(index, 1);
  }

  #state({ previous, snapshot, at }: Extract<LeaseEvent, { type: 'state' }>): void {
    const expected = this.#expectedStates.shift();
    if (expected === undefined) {
      this.fail('state', at, `unexpected state change ${show(previous)} → ${show(snapshot)}`);
    } else {
      if (snapshot.state !== expected.state || snapshot.tick !== expected.tick) {
        this.fail(
          'state',
          at,
          `${expected.cause}: state ${show(snapshot)}, expected ${expected.state} tick ${expected.tick}`,
        );
      }
      let range: [number, number];
      if (Array.isArray(expected.expires)) {
        range = expected.expires;
      } else {
        const [low, high] = this.backoff(expected.expires.backoff);
        range = [expected.expires.from + low, expected.expires.from + high];
      }
      if (!within(snapshot.expires, range)) {
        this.fail(
          expected.state === 'follower' ? 'backoff' : 'state',
          at,
          `${expected.cause}: ${show(previous)} → ${show(snapshot)}, expires should be ${
            range[0] === range[1] ? range[0] : `in [${range.join(', ')}]`
          }`,
        );
      }
    }
    if (
      previous.state !== this.state.state ||
      previous.tick !== this.state.tick ||
      !close(previous.expires, this.state.expires)
    ) {
      this.fail('state', at, `state event's previous ${show(previous)} is not the model's ${show(this.state)}`);
    }
    // The lease caps every backoff at leaseDuration.
    if (snapshot.state === 'follower' && snapshot.expires - at > this.options.leaseDuration * (1 + EPSILON)) {
      this.fail(
        'backoff',
        at,
        `follower expires ${snapshot.expires - at} after now, above leaseDuration ${this.options.leaseDuration}`,
      );
    }
    // Rule 16: a replica that wins the election with the spread wakes the keys that waited for its delay.
    if (this.options.spread === true && previous.state === 'election' && snapshot.state === 'leader') {
      this.wakeWaiting(at);
    }
    // Rule 9: the election ends with the first state other than election: a settled extend or release,
    // or (rules 13, 16) an extend that counts as a release.
    if (this.decision === undefined && snapshot.state !== 'election') this.decision = snapshot.state === 'leader';
    this.state = { state: snapshot.state, expires: snapshot.expires, tick: snapshot.tick };
  }

  #stopped({ pending, at }: Extract<LeaseEvent, { type: 'stopped' }>): void {
    if (this.#command?.name !== 'stop') this.fail('stop', at, 'stopped event outside stop');
    this.#commandSaw.stopped = true;
    this.processing = false;
    // Rule 10: every running unit was let go of (a let-go event each) before this event.
    for (const [key, run] of this.running) {
      this.fail('stop', at, `stopped while ${run.id} of "${short(key)}" runs and was not let go of`);
    }
    this.running.clear();
    if (!sameSet([...pending], [...this.pending.keys()])) {
      this.fail(
        'pending',
        at,
        `stopped lists [${pending.map(short).join(', ')}], the model [${[...this.pending.keys()].map(short).join(', ')}]`,
      );
    }
  }

  // ---- helpers --------------------------------------------------------------

  #setDue(key: string, at: number): void {
    const due = this.due.get(key);
    this.due.set(key, due === undefined ? at : Math.min(due, at));
  }

  #expectState(cause: string, state: State, tick: number, expires: ExpectedState['expires']): void {
    // A snapshot equal to the current one is no change: the lease publishes nothing for it.
    const unchanged =
      Array.isArray(expires) &&
      expires[0] === expires[1] &&
      state === this.state.state &&
      tick === this.state.tick &&
      expires[0] === this.state.expires;
    if (!unchanged) this.#expectedStates.push({ cause, state, tick, expires });
  }

  #end(id: number, ending: Ending, at: number, mayHaveEnded = false): void {
    const submission = this.submissions.get(id);
    if (submission === undefined) return;
    if (submission.ending !== undefined) {
      if (!mayHaveEnded) this.fail('pending', at, `submission ${id} ended twice: ${submission.ending}, then ${ending}`);
      return;
    }
    submission.ending = ending;
  }

  /** Expectations that must be met before anything else happens. */
  #settledExpectations(when: string): void {
    const now = this.#now;
    for (const expected of this.#expectedStates.splice(0)) {
      this.fail(
        'state',
        now,
        `${when}: no state event for ${expected.cause} (expected ${expected.state} tick ${expected.tick})`,
      );
    }
    for (const { id, by } of this.#expectedSuperseded.splice(0)) {
      this.fail('pending', now, `${when}: no superseded event for ${id} (by ${by})`);
    }
    for (const { id, due } of this.#expectedRetried.splice(0)) {
      this.fail('trace', now, `${when}: no retried event for ${id} (due ${due})`);
    }
    for (const { key, id, reason } of this.#expectedLetGo.splice(0)) {
      this.fail('trace', now, `${when}: ${reason} "${short(key)}" did not let go of its running unit ${id}`);
    }
    if (this.#awaitingCall !== undefined) {
      this.fail('trace', now, `${when}: unit ${this.#awaitingCall} was not called after its started event`);
      this.#awaitingCall = undefined;
    }
  }

  /**
   * Property 1, liveness: while the lease runs and a worker is free, no key
   * sits past its due time. Checked at the start of a frame, before the
   * lease's own actions of that frame, so "past" means strictly before now.
   */
  #checkNothingOverdue(now: number): void {
    if (!this.processing || this.#resumedAt === now || this.#freedAt === now) return;
    if (this.running.size >= this.#workersNow()) return;
    for (const key of this.pending.keys()) {
      if (this.running.has(key)) continue;
      const due = this.due.get(key);
      if (due === undefined) {
        this.fail('pending', now, `"${short(key)}" is pending, not running, and not due at all`);
      } else if (due < now - EPSILON * Math.max(1, now)) {
        this.fail(
          this.#survivors.get(key) === this.pending.get(key) ? 'newer' : 'pending',
          now,
          `"${short(key)}" was due at ${due} and has not run by ${now} with a worker free`,
        );
      }
    }
  }

  /** Rule 18: every worker while leading; one in the election and as a follower. */
  #workersNow(): number {
    return this.state.state === 'leader' ? this.options.workers : 1;
  }

  /** Records a violation (also used by the test for what only it can see). */
  fail(invariant: Invariant, at: number, message: string): void {
    this.violations.push({ invariant, at, message });
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return set.size === a.length && b.every((item) => set.has(item));
}

/** Keeps messages readable with a 10 kB key. */
function short(key: string | undefined): string {
  if (key === undefined) return 'undefined';
  return key.length > 20 ? `${key.slice(0, 8)}…(${key.length} chars)` : key;
}

function show({ state, expires, tick }: { state: string; expires: number; tick: number }): string {
  return `${state}(expires ${expires}, tick ${tick})`;
}
