import {
  BehaviorSubject,
  EMPTY,
  Observable,
  Subject,
  Subscription,
  catchError,
  defer,
  distinctUntilChanged,
  filter,
  finalize,
  firstValueFrom,
  isObservable,
  map,
  merge,
  mergeAll,
  of,
  delay,
  race,
  switchMap,
  take,
  throwIfEmpty,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import { eachValueFrom } from 'rxjs-for-await';
import { exponentialBackoff, type BackoffPolicy } from './backoff.js';
import { LeaseDisposedError, LeaseRunningError, WorkTimeoutError } from './errors.js';
import type { LeaseEvent, LetGoReason } from './events.js';
import { atTime } from './internal/atTime.js';
import { KeyTable, type KeyEntry } from './internal/keyTable.js';
import type { Settlement } from './internal/outcome.js';
import {
  afterExpire,
  afterExtend,
  afterResult,
  deferredUntil,
  dueTimeOfNewWork,
  workersFor,
  type Spread,
} from './internal/rules.js';
import { RunningUnit, letGoError, type Submission, type UnitListener } from './internal/runningUnit.js';
import { LeaseTiming } from './internal/timing.js';
import { tryOutcomes } from './internal/tryOutcomes.js';
import {
  assertDuration,
  assertFunction,
  assertInteger,
  assertKey,
  assertScheduler,
  describeValue,
} from './internal/validate.js';
import { monotonicScheduler } from './monotonicScheduler.js';
import {
  LeaseState,
  WorkResult,
  type LeaseSnapshot,
  type TryOutcome,
  type WorkFunc,
  type WriterLeaseOptions,
} from './types.js';

/** The inputs of the lease. Calls and merged key streams become these, on one stream, in the order they came. */
type Command =
  | { readonly type: 'try'; readonly key: string; readonly id: number; readonly work: WorkFunc }
  | { readonly type: 'extend'; readonly key: string; readonly at?: number }
  | { readonly type: 'remove'; readonly key: string; readonly id?: number }
  | { readonly type: 'expire'; readonly wake: boolean };

const OWNER = 'WriterLease';

const RELEASE_AND_RETRY: Settlement = Object.freeze({ result: WorkResult.Release, retry: true });

/** What a let-go unit's abort reason says. */
const LET_GO_BECAUSE: Readonly<Record<Exclude<LetGoReason, 'timeout'>, string>> = {
  removed: 'its key was removed',
  extended: 'another writer did the work (extend)',
  stopped: 'the lease stopped',
};

/**
 * A writer lease: elects the replica that writes shared records by doing the
 * work. A unit that writes renews our lease (leader); a unit that fails, or a
 * write seen from another replica, renews someone else's (follower), and our
 * work then waits, backing off exponentially, until that lease should have
 * run out.
 *
 * How it is built: the snapshot (state, expires, tick) lives in one private
 * BehaviorSubject, which `state$`, `leader$` and `wait()` derive from. Every
 * input (`try`, `extend`, `remove`, `expire`, and the key streams merged in
 * by `extend(keys$)` / `remove(keys$)`) is a command on one merged stream,
 * applied in order by one reducer that asks the pure rules
 * (`internal/rules.ts`) what to do, with the durations of
 * `internal/timing.ts` (the guarded backoff, rule 16's delays). Keys live in
 * the key table (`internal/keyTable.ts`), units run in
 * `internal/runningUnit.ts`, and
 * `run()` turns the due time of the earliest key into one scheduler timer.
 * Every reading of the clock goes through the `scheduler` option, so the
 * whole lease runs in virtual time inside `TestScheduler.run()`.
 *
 * @example
 * ```ts
 * const lease = new WriterLease({ leaseDuration: 10_000, retryInterval: 1_000 });
 * const processing = lease.run();
 * lease.leader$.subscribe((leader) => console.log('leader:', leader));
 * // leader: false
 * lease.try('route/a', () => WorkResult.Extend); // runs in a scheduled action, not in here
 * await lease.wait();
 * // leader: true
 * processing.unsubscribe(); // stops; pending work is kept
 * ```
 */
export class WriterLease {
  readonly #retryInterval: number;
  readonly #workers: number;
  readonly #workTimeout: { readonly ms: number; readonly scheduler: SchedulerLike } | undefined;
  readonly #scheduler: SchedulerLike;
  readonly #name: string;
  /** The durations the rules read: the guarded backoff policy and rule 16's delays. */
  readonly #timing: LeaseTiming;

  /** The one place the lease's snapshot lives; `state$` is told of it when the events go out. */
  #snapshot: LeaseSnapshot;
  readonly #state: BehaviorSubject<LeaseSnapshot>;
  readonly #events = new Subject<LeaseEvent>();
  /**
   * Events not yet published, in order: every event goes out from
   * {@link WriterLease.#publish}, once the operation that made it is over
   * (see "Events in one place" in docs/architecture.md).
   */
  readonly #outbox: LeaseEvent[] = [];
  /** How many of the outbox's events are out. */
  #published = 0;
  /** Operations in progress (nested when a unit settles inside the pass that started it); 0: events go out. */
  #depth = 0;
  /** Single calls; merged with the key streams into the one input stream. */
  readonly #calls = new Subject<Command>();
  /** Key streams given to `extend(keys$)` / `remove(keys$)`, as commands. */
  readonly #streams = new Subject<Observable<Command>>();
  /** The subscription of the one input stream. */
  readonly #inputs: Subscription;
  /** The due time of the queue's head, each time it changes; `run()` turns it into one timer. */
  readonly #wakeAt = new Subject<number>();
  /** Where running units report; one object for all of them, so a synchronous unit costs no allocation. */
  readonly #unitListener: UnitListener<KeyEntry> = {
    // Inline, as #operation would be, without its closure: this is the path of every settlement.
    settled: (entry, unit, settlement) => {
      this.#depth++;
      try {
        this.#finish(entry, unit, settlement);
      } finally {
        this.#operationOver();
      }
    },
    failed: (entry, unit, error) => this.#operation(() => this.#fail(entry, unit, error)),
    timedOut: (entry, unit) => this.#operation(() => this.#timedOut(entry, unit)),
  };
  readonly #keys = new KeyTable();

  #lastId = 0;
  /** When the armed timer fires; Infinity when none is armed. */
  #timerAt = Infinity;
  #processing: Subscription | undefined;
  /** True while a pass takes due keys: a synchronous unit that settles inside it must not start another pass. */
  #inPass = false;
  /** Set by `drain()`: no unit starts any more. */
  #closing = false;
  #disposed = false;

  /** The snapshot now, then every change. */
  readonly state$: Observable<LeaseSnapshot>;
  /** Whether this replica leads: the current value first, then only changes. */
  readonly leader$: Observable<boolean>;
  /** Every event, told apart by `type` (see {@link LeaseEvent}). */
  readonly events$: Observable<LeaseEvent>;

  /**
   * @param options Durations, backoff, workers and the clock; see {@link WriterLeaseOptions}.
   * @throws RangeError when `leaseDuration`, `retryInterval` or `workTimeout` is not a finite
   *   number >= 0, or `workers` is not an integer >= 1.
   * @throws TypeError when `backoff` or `random` is not a function, `spread` is not a boolean, or
   *   `scheduler` is not a scheduler.
   */
  constructor(options: WriterLeaseOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`${OWNER}: options must be an object, received ${describeValue(options)}`);
    }
    const {
      leaseDuration,
      retryInterval,
      backoff: givenBackoff,
      workers = 1,
      workTimeout,
      spread = false,
      random = Math.random,
      scheduler = monotonicScheduler,
      name = 'writer-lease',
    } = options;
    assertDuration(OWNER, 'options.leaseDuration', leaseDuration);
    assertDuration(OWNER, 'options.retryInterval', retryInterval);
    // The reference policy caps at every step by the lease duration (docs/lease.md, "Backoff"); `null` is
    // still refused.
    const backoff = givenBackoff === undefined ? exponentialBackoff({ cap: leaseDuration }) : givenBackoff;
    assertFunction(OWNER, 'options.backoff', backoff);
    assertFirstBackoff(backoff);
    assertInteger(OWNER, 'options.workers', workers, 1);
    if (workTimeout !== undefined) assertDuration(OWNER, 'options.workTimeout', workTimeout);
    if (typeof spread !== 'boolean') {
      throw new TypeError(`${OWNER}: options.spread must be a boolean, received ${describeValue(spread)}`);
    }
    assertFunction(OWNER, 'options.random', random);
    assertScheduler(OWNER, 'options.scheduler', scheduler);
    if (typeof name !== 'string') {
      throw new TypeError(`${OWNER}: options.name must be a string, received ${describeValue(name)}`);
    }
    this.#retryInterval = retryInterval;
    this.#workers = workers;
    this.#workTimeout = workTimeout === undefined ? undefined : { ms: workTimeout, scheduler };
    this.#scheduler = scheduler;
    this.#name = name;
    this.#timing = new LeaseTiming(leaseDuration, backoff, spread, random, (tick, received) =>
      this.#emit({
        type: 'backoff-error',
        tick,
        received,
        at: scheduler.now(),
        message:
          `backoff(${tick}) ${received instanceof Error ? `threw ${received.message}` : `returned ${describeValue(received)}`}, ` +
          `expected a number >= 0: the lease waits its lease duration, ${leaseDuration} ms`,
        lease: name,
      }),
    );

    this.#snapshot = { state: LeaseState.Election, expires: scheduler.now(), tick: 0 };
    this.#state = new BehaviorSubject<LeaseSnapshot>(this.#snapshot);
    this.state$ = this.#state.asObservable();
    this.leader$ = this.state$.pipe(
      map(({ state }) => state === LeaseState.Leader),
      distinctUntilChanged(),
    );
    this.events$ = this.#events.asObservable();
    // An input only records and schedules (the rules compute, no unit runs): it cannot throw half way. Inline, as
    // #operation would be, without its closure: this is the path of every try().
    this.#inputs = merge(this.#calls, this.#streams.pipe(mergeAll())).subscribe((command) => {
      this.#depth++;
      this.#apply(command);
      this.#operationOver();
    });
  }

  /** The lease's name, as given in the options. */
  get name(): string {
    return this.#name;
  }

  /** The snapshot now. */
  get state(): LeaseSnapshot {
    return this.#snapshot;
  }

  /** How many keys have pending work (queued, waiting or running). */
  get size(): number {
    return this.#keys.pendingCount;
  }

  /** True between `run()` and the unsubscription of what it returned. */
  get running(): boolean {
    return this.#processing !== undefined;
  }

  /**
   * The keys that have pending work, in the order they were first submitted.
   *
   * @example
   * ```ts
   * lease.try('a', work);
   * lease.pendingKeys(); // ['a']
   * ```
   */
  pendingKeys(): string[] {
    return this.#keys.pendingKeys();
  }

  /**
   * The snapshots as an async iterable: the current one, then every change,
   * until the lease is disposed. Lossless: snapshots that arrive faster than
   * the loop consumes them are buffered.
   *
   * @example
   * ```ts
   * for await (const { state } of lease.states()) console.log(state);
   * // election
   * // leader
   * ```
   */
  states(): AsyncIterableIterator<LeaseSnapshot> {
    return eachValueFrom(this.state$);
  }

  /**
   * Starts processing: due keys run, up to `workers` at once while leading (one until then).
   *
   * @example
   * ```ts
   * const processing = lease.run();
   * processing.unsubscribe(); // timers stop; pending work stays for the next run()
   * ```
   * @returns The processing; unsubscribing it stops every timer and lets go of
   *   running units, whose keys stay pending and run again on the next `run()`.
   * @throws LeaseRunningError when the lease is already running.
   */
  run(): Subscription {
    this.#assertNotDisposed('run()');
    if (this.#processing !== undefined) throw new LeaseRunningError({ lease: this.#name });
    const processing = this.#wakeAt.pipe(switchMap((at) => atTime(at, this.#scheduler))).subscribe(() => {
      this.#timerAt = Infinity;
      this.#operation(() => this.#startDueWork());
    });
    processing.add(() => this.#operation(() => this.#stop()));
    this.#processing = processing;
    this.#armTimer();
    return processing;
  }

  /**
   * Submits `work` for `key`, replacing any pending work for that key. The
   * unit never runs inside this call: as leader (or during the election) the
   * key is due at once; as follower it waits until the other writer's lease
   * should have run out, and at least twice `backoff(0)`.
   *
   * @example
   * ```ts
   * lease.try('route/a', async () => ((await writeStatus('a')) ? WorkResult.Extend : WorkResult.Release));
   * ```
   * @param key The record the work writes; a non-empty string.
   * @param work The unit of work.
   * @throws TypeError when `key` is not a non-empty string or `work` is not a function.
   */
  try(key: string, work: WorkFunc): void;
  /**
   * An operator that submits one unit per source value and emits one
   * {@link TryOutcome} per value, once that submission ends (done, superseded,
   * extended, removed, or stopped). It completes when the source has completed
   * and every outcome is out, and errors when the source errors.
   * Unsubscribing removes the work it submitted that is still pending.
   *
   * @example
   * ```ts
   * routes$.pipe(lease.try((route) => route.name, (route) => () => writeStatus(route)))
   *   .subscribe(console.log);
   * // { key: 'a', value: { name: 'a' }, status: 'done', result: 'extend' }
   * ```
   * @param keyOf The key of a source value.
   * @param workOf The unit of work for a source value.
   * @returns The operator.
   */
  try<T>(keyOf: (value: T) => string, workOf: (value: T) => WorkFunc): OperatorFunction<T, TryOutcome<T>>;
  try<T>(
    keyOrKeyOf: string | ((value: T) => string),
    workOrWorkOf: WorkFunc | ((value: T) => WorkFunc),
  ): void | OperatorFunction<T, TryOutcome<T>> {
    if (typeof keyOrKeyOf === 'function') {
      assertFunction(OWNER, 'try: workOf', workOrWorkOf);
      return this.#tryEach(keyOrKeyOf, workOrWorkOf as (value: T) => WorkFunc);
    }
    this.#submit(keyOrKeyOf, workOrWorkOf as WorkFunc);
  }

  /**
   * Tells the lease another writer did the work for `key`: its pending work
   * is forgotten and, as follower, the other writer's lease counts as renewed
   * (tick += 1, `expires = now + backoff(tick)`). If the key's unit is
   * running, the lease lets go of it, and counts it as the release it lost
   * to the other writer. Nothing happens when `key` has no pending work.
   *
   * Pass `at` when the write was found later than it was made (a unit that
   * reads a status another replica wrote a while ago): the other writer's
   * lease is then renewed as of `at`, never shortened, and a write whose
   * renewal has already run out renews nothing. `at` is on this lease's
   * clock: when this replica observed something, never a time another
   * machine stamped (docs/lease.md, "Time").
   *
   * @example
   * ```ts
   * lease.extend('route/a'); // a status write by another replica, seen just now
   * lease.extend('route/a', seenAt); // found by reading; this replica saw its spec at seenAt
   * ```
   * @param key The record another writer wrote.
   * @param at When, on the lease's clock, the write can have been made at the earliest; at most now.
   * @throws TypeError when `key` is not a non-empty string.
   * @throws RangeError when `at` is given and is not a finite number.
   */
  extend(key: string, at?: number): void;
  /**
   * Merges a stream of keys into the lease's inputs: each key as
   * `extend(key)`. A key that is not a non-empty string, or an error of the
   * stream, ends that stream and is reported as an `input-error` event.
   *
   * @example
   * ```ts
   * // Keys another replica wrote, as the store's feed reports them.
   * const watching = lease.extend(otherWriters$.pipe(map((change) => change.key)));
   * watching.unsubscribe(); // stops listening; nothing else changes
   * ```
   * @param keys The keys other writers wrote.
   * @returns The stream's subscription; it ends when the stream ends or the lease is disposed.
   */
  extend(keys: Observable<string>): Subscription;
  extend(keyOrKeys: string | Observable<string>, at?: number): void | Subscription {
    if (isObservable(keyOrKeys)) return this.#mergeKeys('extend', keyOrKeys);
    assertKey(OWNER, 'extend: key', keyOrKeys);
    if (at !== undefined && (typeof at !== 'number' || !Number.isFinite(at))) {
      throw new RangeError(`${OWNER}: extend: at must be a finite number, received ${describeValue(at)}`);
    }
    this.#call({ type: 'extend', key: keyOrKeys, at });
  }

  /**
   * Forgets the pending work for `key`; the state is unchanged. If the key's
   * unit is running, the lease lets go of it.
   *
   * @example
   * ```ts
   * lease.remove('route/a'); lease.size; // 0
   * ```
   * @param key The record whose work to forget.
   * @throws TypeError when `key` is not a non-empty string.
   */
  remove(key: string): void;
  /**
   * Merges a stream of keys into the lease's inputs: each key as
   * `remove(key)`. A key that is not a non-empty string, or an error of the
   * stream, ends that stream and is reported as an `input-error` event.
   *
   * @example
   * ```ts
   * const removing = lease.remove(deletedRecords$.pipe(map((change) => change.key)));
   * ```
   * @param keys The records whose work to forget.
   * @returns The stream's subscription; it ends when the stream ends or the lease is disposed.
   */
  remove(keys: Observable<string>): Subscription;
  remove(keyOrKeys: string | Observable<string>): void | Subscription {
    if (isObservable(keyOrKeys)) return this.#mergeKeys('remove', keyOrKeys);
    assertKey(OWNER, 'remove: key', keyOrKeys);
    this.#call({ type: 'remove', key: keyOrKeys });
  }

  /**
   * Counts the lease as run out from now: a waiting follower's key runs the
   * next time it is checked instead of waiting again (rule 7).
   *
   * With `wake`, keys waiting for the lease to run out are due now instead
   * (rule 17, with rule 16's spread): what a follower does when the writer it
   * follows hands over (docs/lease.md, "Handover").
   *
   * @example
   * ```ts
   * lease.expire(); lease.state.expires === scheduler.now(); // true
   * store.handovers().subscribe((writer) => writer === followed && lease.expire({ wake: true }));
   * ```
   * @param options `wake`: make the keys that wait for the lease due now.
   */
  expire(options: { readonly wake?: boolean } = {}): void {
    this.#call({ type: 'expire', wake: options.wake === true });
  }

  /**
   * Stops gracefully: no unit starts any more, running units get up to
   * `timeoutMs` (on the lease's clock) to settle, and then the lease is
   * disposed (whatever still runs is let go of). What a leader does before it
   * hands over (docs/lease.md, "Handover"); `StatusWriter.handOver()` does
   * both.
   *
   * @example
   * ```ts
   * const pending = await lease.drain(2_000); // ['route/b']: work left pending
   * await store.handOver('replica-1');
   * ```
   * @param timeoutMs How long running units may take to settle, a finite number >= 0.
   * @returns The keys with pending work, as `dispose()` returns them.
   * @throws RangeError when `timeoutMs` is not a finite number >= 0.
   */
  drain(timeoutMs: number): Promise<string[]> {
    assertDuration(OWNER, 'drain: timeoutMs', timeoutMs);
    if (this.#disposed) return Promise.resolve(this.pendingKeys());
    this.#closing = true;
    const idle =
      this.#keys.runningCount === 0 ? of(undefined) : this.events$.pipe(filter(() => this.#keys.runningCount === 0));
    const timedOut = atTime(this.#scheduler.now() + timeoutMs, this.#scheduler);
    return new Promise((resolve) => {
      // Disposed in a scheduled action of its own, at that moment: the last unit's result applies first,
      // and in virtual time the whole drain happens in frames, not in microtasks after the test.
      race(idle, timedOut)
        .pipe(take(1), delay(0, this.#scheduler))
        .subscribe({ complete: () => resolve(this.dispose()) });
    });
  }

  /**
   * Resolves once the election ends (the first unit settles with extend or
   * release): true if this replica leads at that moment. Never resolves if no
   * unit ever settles; rejects with `LeaseDisposedError` if the lease is
   * disposed first.
   *
   * @example
   * ```ts
   * if (await lease.wait()) console.log('we write');
   * ```
   * @returns Whether this replica leads.
   */
  wait(): Promise<boolean> {
    return firstValueFrom(this.#electionEnd('wait()'));
  }

  /**
   * Like {@link wait}, but gives up after `ms` on the lease's clock.
   *
   * @example
   * ```ts
   * await lease.waitUntil(1_000); // { leader: false, ok: false } when nothing settled in time
   * ```
   * @param ms How long to wait, a finite number >= 0.
   * @returns `ok: false` when it timed out (then `leader` is false).
   * @throws RangeError when `ms` is not a finite number >= 0.
   */
  waitUntil(ms: number): Promise<{ leader: boolean; ok: boolean }> {
    assertDuration(OWNER, 'waitUntil: ms', ms);
    const timedOut = atTime(this.#scheduler.now() + ms, this.#scheduler).pipe(
      map(() => ({ leader: false, ok: false })),
    );
    const decided = this.#electionEnd('waitUntil()').pipe(map((leader) => ({ leader, ok: true })));
    return firstValueFrom(race(decided, timedOut));
  }

  /**
   * Stops processing for good, completes `state$`, `leader$` and `events$`,
   * and returns the keys whose work was left pending. Calling it again
   * returns the same keys.
   *
   * @example
   * ```ts
   * lease.dispose(); // ['route/b']
   * ```
   * @returns The keys with pending work.
   */
  dispose(): string[] {
    if (!this.#disposed) {
      this.#processing?.unsubscribe();
      this.#disposed = true;
      // Disposed by a listener: the events of the operation in progress still go out, before the end.
      this.#publish();
      // Ends the input streams merged in by extend(keys$) and remove(keys$) too.
      this.#inputs.unsubscribe();
      this.#wakeAt.complete();
      this.#state.complete();
      this.#events.complete();
    }
    return this.pendingKeys();
  }

  // ---- inputs -------------------------------------------------------------

  /** Validates and records a submission; returns its id. */
  #submit(key: string, work: WorkFunc): number {
    assertKey(OWNER, 'try: key', key);
    assertFunction(OWNER, 'try: work', work);
    const id = ++this.#lastId;
    this.#call({ type: 'try', key, id, work });
    return id;
  }

  #call(command: Command): void {
    // The call's name is built only for the error: this is the path of every try().
    if (this.#disposed) throw new LeaseDisposedError({ lease: this.#name, call: `${command.type}()` });
    this.#calls.next(command);
  }

  /**
   * Merges a stream of keys into the inputs (the ComponentStore habit: a
   * method takes a value or an Observable of values). A bad key or an error
   * of the stream ends it, as an `input-error` event: the lease goes on.
   */
  #mergeKeys(type: 'extend' | 'remove', keys: Observable<string>): Subscription {
    const call = `${type}(keys$)`;
    this.#assertNotDisposed(call);
    const handle = new Subscription();
    const commands = new Observable<Command>((subscriber) => {
      const inner = keys
        .pipe(
          map((key): Command => {
            assertKey(OWNER, `${call}: key`, key);
            return { type, key };
          }),
          catchError((error: unknown) => {
            this.#emit({ type: 'input-error', call, error, at: this.#scheduler.now(), lease: this.#name });
            return EMPTY;
          }),
          finalize(() => handle.unsubscribe()),
        )
        .subscribe(subscriber);
      handle.add(inner);
      return inner;
    });
    this.#streams.next(commands);
    return handle;
  }

  /**
   * Applies one input: asks the rules, updates the key table and the
   * snapshot. Commands only record and schedule: no unit runs in here, so a
   * unit that calls back into the lease while it runs is safe.
   */
  #apply(command: Command): void {
    const now = this.#scheduler.now();
    switch (command.type) {
      case 'try': {
        const { key, id, work } = command;
        const due = dueTimeOfNewWork(this.#snapshot, now, this.#timing, this.#currentSpread());
        const previous = this.#keys.submit(key, { id, work }, due);
        this.#emit({ type: 'submitted', key, id, due, at: now, lease: this.#name });
        // A running unit still settles and its result applies (rule 15), but its submission is over.
        if (previous !== undefined)
          this.#emit({ type: 'superseded', key, id: previous.id, by: id, at: now, lease: this.#name });
        this.#armTimer();
        return;
      }
      case 'extend': {
        const entry = this.#keys.get(command.key);
        if (entry === undefined) return;
        const letGo = entry.running !== undefined && entry.pending !== undefined;
        if (!this.#drop(entry, 'extended', now)) return;
        this.#setState(afterExtend(this.#snapshot, now, this.#timing, { at: command.at, letGo }), now);
        return;
      }
      case 'remove': {
        const entry = this.#keys.get(command.key);
        if (entry !== undefined && (command.id === undefined || entry.pending?.id === command.id)) {
          this.#drop(entry, 'removed', now);
        }
        return;
      }
      case 'expire':
        this.#setState(afterExpire(this.#snapshot, now), now);
        if (command.wake) {
          // Rule 17: keys deferred until the other lease ran out are due now, spread as new work is (rule 16).
          this.#keys.wakeWaiting(now + this.#currentSpread().followerMs);
          this.#armTimer();
        }
        return;
    }
  }

  /**
   * Rules 5, 6 and 13: forgets the pending work of an entry, and lets go of
   * its running unit: what it would write is no longer wanted. False when
   * there was no pending work.
   */
  #drop(entry: KeyEntry, reason: 'removed' | 'extended', now: number): boolean {
    const { key, running } = entry;
    const pending = this.#keys.forgetPending(entry);
    if (pending === undefined) return false;
    if (running !== undefined) {
      running.letGo(letGoError(key, LET_GO_BECAUSE[reason]));
      this.#keys.endRun(entry);
    }
    this.#emit({ type: 'dropped', key, id: pending.id, reason, at: now, lease: this.#name });
    if (running !== undefined) {
      this.#emitLetGo(running, reason, now);
      // The freed worker is taken in a scheduled action, never inside this call.
      this.#armTimer();
    }
    return true;
  }

  // ---- processing ---------------------------------------------------------

  /**
   * Runs due keys while a worker is free, earliest due first. One pass takes
   * only keys queued before it began: a key queued during the pass (a retry,
   * a unit's own `try`) waits for the next scheduled action, so that a unit
   * retrying at once can never hold the thread.
   */
  #startDueWork(): void {
    // A synchronous unit settles inside this loop and calls back in here; the
    // outer loop goes on with the freed worker, so the nested call does nothing.
    if (this.#inPass || this.#processing === undefined) return;
    this.#inPass = true;
    const queuedBefore = this.#keys.arrivals;
    // The keys this pass finishes are forgotten together at its end (one Map.clear() when none is left).
    this.#keys.deferForgetting();
    try {
      // A unit or an event handler may stop the lease in the middle of the pass.
      while (this.#processing !== undefined && this.#keys.runningCount < this.#workersNow()) {
        const now = this.#scheduler.now();
        const entry = this.#keys.takeDue(now, queuedBefore);
        if (entry === undefined) break;
        this.#process(entry, now);
      }
    } finally {
      this.#inPass = false;
      this.#keys.forgetIdle();
    }
    this.#armTimer();
  }

  /** Rule 2, for one due key. */
  #process(entry: KeyEntry, now: number): void {
    if (entry.running !== undefined) {
      this.#keys.requeueAfterRun(entry);
      return;
    }
    const submission = entry.pending;
    if (submission === undefined) {
      this.#keys.forgetIfIdle(entry);
      return;
    }
    const until = deferredUntil(this.#snapshot, now, this.#currentSpread());
    if (until !== undefined) {
      this.#keys.queue(entry, until);
      this.#emit({ type: 'deferred', key: entry.key, id: submission.id, until, at: now, lease: this.#name });
      return;
    }
    // Draining: the key stays pending, for dispose() to report.
    if (this.#closing) return;
    this.#start(entry, submission, now);
  }

  #start(entry: KeyEntry, submission: Submission, now: number): void {
    const unit = new RunningUnit(entry, entry.key, submission, now);
    this.#keys.markRunning(entry, unit);
    this.#emit({ type: 'started', key: entry.key, id: submission.id, at: now, lease: this.#name });
    // The events go out before the lease calls the unit: a listener of `started` sees it first, and may remove
    // the key (the unit then never runs).
    if (this.#published < this.#outbox.length) this.#publish();
    unit.run(this.#unitListener, this.#workTimeout);
  }

  #fail(entry: KeyEntry, unit: RunningUnit<KeyEntry>, error: unknown): void {
    this.#finish(entry, unit, RELEASE_AND_RETRY, { error, timedOut: false });
  }

  /** Rule 12. */
  #timedOut(entry: KeyEntry, unit: RunningUnit<KeyEntry>): void {
    const error = new WorkTimeoutError({ key: entry.key, id: unit.id, timeout: this.#workTimeout?.ms ?? 0 });
    unit.letGo(error);
    this.#finish(entry, unit, RELEASE_AND_RETRY, { error, timedOut: true });
  }

  /**
   * Rule 3: apply the result, then retry, forget, or leave a newer
   * submission in place.
   */
  #finish(
    entry: KeyEntry,
    unit: RunningUnit<KeyEntry>,
    { result, retry }: Settlement,
    failure?: { readonly error: unknown; readonly timedOut: boolean },
  ): void {
    unit.end();
    const { key } = entry;
    const now = this.#scheduler.now();
    const { id, submission, started } = unit;
    // A retry is taken over by a newer submission made while the unit ran.
    const retried = retry ? entry.pending : undefined;
    if (retried !== undefined) this.#keys.queue(entry, now + this.#retryInterval);
    this.#keys.endRun(entry, retried === undefined ? submission : undefined);
    if (failure?.timedOut === true) this.#emitLetGo(unit, 'timeout', now);
    if (failure !== undefined) this.#emit({ type: 'error', key, id, error: failure.error, at: now, lease: this.#name });
    this.#emit({ type: 'settled', key, id, result, retry, started, at: now, lease: this.#name });
    const before = this.#snapshot;
    const after = afterResult(before, result, now, this.#timing);
    this.#setState(after, now);
    // Rule 16: the election's delay ends with the election. Keys submitted while this winning unit was in
    // flight waited for it; a leader's work is due at once (rule 1), before any follower's.
    if (this.#timing.spread && before.state === LeaseState.Election && after.state === LeaseState.Leader) {
      this.#keys.wakeWaiting(now);
    }
    if (retried !== undefined) {
      this.#emit({ type: 'retried', key, id: retried.id, due: now + this.#retryInterval, at: now, lease: this.#name });
    }
    this.#startDueWork();
  }

  /** Rule 18: how many units may run now. */
  #workersNow(): number {
    return workersFor(this.#snapshot, this.#workers);
  }

  /** Rule 16's delays for the snapshot now. */
  #currentSpread(): Spread {
    return this.#timing.spreadFor(this.#snapshot);
  }

  /** Publishes a new snapshot; one equal to the current is no change, and `state$` emits only changes. */
  #setState(snapshot: LeaseSnapshot, now: number): void {
    const previous = this.#snapshot;
    if (previous.state === snapshot.state && previous.expires === snapshot.expires && previous.tick === snapshot.tick) {
      return;
    }
    this.#snapshot = snapshot;
    // Queued even when nobody listens to events$: publishing it tells state$.
    this.#outbox.push({ type: 'state', previous, snapshot, at: now, lease: this.#name });
    if (this.#depth === 0) this.#publish();
  }

  /** Keeps one timer, for the earliest due key, while a worker is free to take it. */
  #armTimer(): void {
    if (this.#processing === undefined || this.#keys.runningCount >= this.#workersNow()) return;
    const at = this.#keys.peekDue() ?? Infinity;
    if (at === this.#timerAt) return;
    this.#timerAt = at;
    this.#wakeAt.next(at);
  }

  /** Teardown of `run()`: no timer is left, running units are let go of and their keys stay due (rules 10, 14). */
  #stop(): void {
    this.#processing = undefined;
    this.#timerAt = Infinity;
    const now = this.#scheduler.now();
    for (const entry of this.#keys.entriesRunning()) {
      const unit = entry.running!;
      unit.letGo(letGoError(entry.key, LET_GO_BECAUSE.stopped));
      this.#keys.requeueStopped(entry, now);
      this.#emitLetGo(unit, 'stopped', now);
    }
    this.#emit({ type: 'stopped', pending: this.pendingKeys(), at: now, lease: this.#name });
  }

  // ---- helpers ------------------------------------------------------------

  /** Says the lease let go of `unit`. */
  #emitLetGo(unit: RunningUnit<KeyEntry>, reason: LetGoReason, now: number): void {
    this.#emit({
      type: 'let-go',
      key: unit.key,
      id: unit.id,
      reason,
      started: unit.started,
      at: now,
      lease: this.#name,
    });
  }

  /**
   * Queues an event; it goes out once the operation in progress is over (at
   * once outside any). Each call site builds its event whole, `lease`
   * included: copying every event to add it cost a replica about a fifth of
   * its CPU per change in a burst.
   */
  #emit(event: LeaseEvent): void {
    if (!this.#events.observed) return;
    this.#outbox.push(event);
    if (this.#depth === 0) this.#publish();
  }

  /**
   * Runs one operation of the lease (an input, a unit's settlement, a timer,
   * the stop); the events it makes go out when it and every operation
   * nested in it are over.
   */
  #operation(operation: () => void): void {
    this.#depth++;
    try {
      operation();
    } finally {
      this.#operationOver();
    }
  }

  #operationOver(): void {
    if (--this.#depth === 0 && this.#published < this.#outbox.length) this.#publish();
  }

  /**
   * Publishes the queued events in order: the one place events go out, each
   * after the key table and the snapshot are settled. A listener that calls
   * back in (a `try` on `settled`, a `remove` on `error`) runs a whole
   * operation of its own; its events join the queue and go out from this
   * same loop, after the ones before them.
   */
  #publish(): void {
    this.#depth++;
    try {
      while (this.#published < this.#outbox.length) {
        const event = this.#outbox[this.#published++];
        if (event.type === 'state') this.#state.next(event.snapshot);
        this.#events.next(event);
      }
      this.#outbox.length = 0;
      this.#published = 0;
    } finally {
      this.#depth--;
    }
  }

  /** Whether we lead, once the election has ended. */
  #electionEnd(call: string): Observable<boolean> {
    return this.state$.pipe(
      filter(({ state }) => state !== LeaseState.Election),
      map(({ state }) => state === LeaseState.Leader),
      take(1),
      throwIfEmpty(() => new LeaseDisposedError({ lease: this.#name, call })),
    );
  }

  #tryEach<T>(keyOf: (value: T) => string, workOf: (value: T) => WorkFunc): OperatorFunction<T, TryOutcome<T>> {
    const outcomes = tryOutcomes({
      events$: this.events$,
      submit: (value: T) => {
        const key = keyOf(value);
        return { key, id: this.#submit(key, workOf(value)) };
      },
      withdraw: (key, id) => {
        if (!this.#disposed) this.#call({ type: 'remove', key, id });
      },
    });
    // Subscribed after dispose(), it could neither submit nor learn an outcome: say so instead of completing.
    return (source) =>
      defer(() => {
        this.#assertNotDisposed('the try operator');
        return outcomes(source);
      });
  }

  #assertNotDisposed(call: string): void {
    if (this.#disposed) throw new LeaseDisposedError({ lease: this.#name, call });
  }
}

/**
 * Asks a backoff policy for tick 0 once, at construction: a policy that
 * returns `NaN` or `-1` would otherwise only show as events, the lease
 * silently waiting its lease duration instead.
 */
function assertFirstBackoff(backoff: BackoffPolicy): void {
  let first: unknown;
  try {
    first = backoff(0);
  } catch (error) {
    throw new RangeError(
      `${OWNER}: options.backoff(0) must return a number >= 0, but it threw ${describeValue(error)}`,
      { cause: error },
    );
  }
  if (typeof first !== 'number' || !(first >= 0)) {
    throw new RangeError(`${OWNER}: options.backoff(0) must return a number >= 0, received ${describeValue(first)}`);
  }
}
