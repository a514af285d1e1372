import {
  BehaviorSubject,
  Observable,
  Subject,
  defer,
  distinctUntilChanged,
  filter,
  firstValueFrom,
  map,
  race,
  switchMap,
  take,
  throwIfEmpty,
  type OperatorFunction,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import { eachValueFrom } from 'rxjs-for-await';
import { exponentialBackoff, type BackoffPolicy } from './backoff.js';
import { LeaseDisposedError, LeaseRunningError, WorkReturnError, WorkTimeoutError } from './errors.js';
import type { LeaseEvent, LetGoReason } from './events.js';
import { atTime } from './internal/atTime.js';
import { DueQueue, NOT_QUEUED, type QueueSlot } from './internal/dueQueue.js';
import { toSettlement, type Settlement } from './internal/outcome.js';
import { RunningUnit, letGoError, type Submission, type UnitListener } from './internal/runningUnit.js';
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

/** The inputs of the lease, merged into one stream in the order they were made. */
type Command =
  | { readonly type: 'try'; readonly key: string; readonly id: number; readonly work: WorkFunc }
  | { readonly type: 'extend'; readonly key: string; readonly at: number | undefined }
  | { readonly type: 'remove'; readonly key: string; readonly id?: number }
  | { readonly type: 'expire' };

/**
 * Everything the lease holds for one key, and its place in the due queue.
 * It lives while the key has pending work, is queued, or runs.
 */
interface KeyEntry extends QueueSlot {
  readonly key: string;
  /** The latest submission not yet finished: what runs when the key comes due. */
  pending: Submission | undefined;
  /** The unit running for the key, if any: the pending submission, or one it replaced. */
  running: RunningUnit<KeyEntry> | undefined;
  /**
   * When the key came due while its unit ran. It is queued again at that
   * time once the unit settles, so it keeps its place among the keys that
   * came due after it.
   */
  dueWhileRunning: number | undefined;
}

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
 * All state lives in one snapshot (`state$`); every input (`try`, `extend`,
 * `remove`, `expire`) is a command on one stream; the due keys sit in a
 * min-heap with one scheduler timer for the earliest. Every reading of the
 * clock goes through the `scheduler` option, so the whole lease runs in
 * virtual time inside `TestScheduler.run()`.
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
  readonly #leaseDuration: number;
  readonly #retryInterval: number;
  readonly #backoff: BackoffPolicy;
  readonly #workers: number;
  readonly #workTimeout: { readonly ms: number; readonly scheduler: SchedulerLike } | undefined;
  readonly #scheduler: SchedulerLike;
  readonly #name: string;

  /** The one place the lease's state lives. */
  readonly #state: BehaviorSubject<LeaseSnapshot>;
  readonly #events = new Subject<LeaseEvent>();
  readonly #commands = new Subject<Command>();
  /** The due time of the queue's head, each time it changes; `run()` turns it into one timer. */
  readonly #wakeAt = new Subject<number>();
  /** Where running units report; one object for all of them, so a synchronous unit costs no allocation. */
  readonly #units: UnitListener<KeyEntry> = {
    settled: (entry, unit, value) => this.#settle(entry, unit, value),
    failed: (entry, unit, error) => this.#fail(entry, unit, error),
    timedOut: (entry, unit) => this.#timedOut(entry, unit),
  };

  readonly #keys = new Map<string, KeyEntry>();
  readonly #due = new DueQueue<KeyEntry>();
  /** Kept alongside `#keys` so that `size` and the worker limit are O(1). */
  #pendingCount = 0;
  #runningCount = 0;

  #lastId = 0;
  #timerAt = Infinity;
  #processing: Subscription | undefined;
  #draining = false;
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
   * @throws TypeError when `backoff` is not a function or `scheduler` is not a scheduler.
   */
  constructor(options: WriterLeaseOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`${OWNER}: options must be an object, received ${describeValue(options)}`);
    }
    const {
      leaseDuration,
      retryInterval,
      backoff = exponentialBackoff(),
      workers = 1,
      workTimeout,
      scheduler = monotonicScheduler,
      name = 'writer-lease',
    } = options;
    assertDuration(OWNER, 'options.leaseDuration', leaseDuration);
    assertDuration(OWNER, 'options.retryInterval', retryInterval);
    assertFunction(OWNER, 'options.backoff', backoff);
    assertInteger(OWNER, 'options.workers', workers, 1);
    if (workTimeout !== undefined) assertDuration(OWNER, 'options.workTimeout', workTimeout);
    assertScheduler(OWNER, 'options.scheduler', scheduler);
    if (typeof name !== 'string') {
      throw new TypeError(`${OWNER}: options.name must be a string, received ${describeValue(name)}`);
    }
    this.#leaseDuration = leaseDuration;
    this.#retryInterval = retryInterval;
    this.#backoff = backoff;
    this.#workers = workers;
    this.#workTimeout = workTimeout === undefined ? undefined : { ms: workTimeout, scheduler };
    this.#scheduler = scheduler;
    this.#name = name;

    this.#state = new BehaviorSubject<LeaseSnapshot>({
      state: LeaseState.Election,
      expires: scheduler.now(),
      tick: 0,
    });
    this.state$ = this.#state.asObservable();
    this.leader$ = this.state$.pipe(
      map(({ state }) => state === LeaseState.Leader),
      distinctUntilChanged(),
    );
    this.events$ = this.#events.asObservable();
    this.#commands.subscribe((command) => this.#apply(command));
  }

  /** The lease's name, as given in the options. */
  get name(): string {
    return this.#name;
  }

  /** The snapshot now. */
  get state(): LeaseSnapshot {
    return this.#state.value;
  }

  /** How many keys have pending work (queued, waiting or running). */
  get size(): number {
    return this.#pendingCount;
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
    const keys: string[] = [];
    for (const { key, pending } of this.#keys.values()) if (pending !== undefined) keys.push(key);
    return keys;
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
   * Starts processing: due keys run, up to `workers` at once.
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
      this.#startDueWork();
    });
    processing.add(() => this.#stop());
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
   * (tick += 1, `expires = now + backoff(tick)`). Nothing happens when `key`
   * has no pending work.
   *
   * Pass `at` when the write was found later than it was made (a unit that
   * reads a status another replica wrote a while ago): the other writer's
   * lease is then renewed as of `at`, never shortened, and a write whose
   * renewal has already run out renews nothing. Without it, the lease of a
   * writer that has since died would be held for a whole backoff from now.
   *
   * @example
   * ```ts
   * store.statusChanges$.pipe(filter((s) => s.writer !== me)).subscribe((s) => lease.extend(s.key));
   * lease.extend('route/a', status.at); // a write seen only now, made at status.at
   * ```
   * @param key The record another writer wrote.
   * @param at When the other writer wrote it, on the lease's clock; at most now.
   * @throws TypeError when `key` is not a non-empty string.
   * @throws RangeError when `at` is given and is not a finite number.
   */
  extend(key: string, at?: number): void {
    assertKey(OWNER, 'extend: key', key);
    if (at !== undefined && (typeof at !== 'number' || !Number.isFinite(at))) {
      throw new RangeError(`${OWNER}: extend: at must be a finite number, received ${describeValue(at)}`);
    }
    this.#command({ type: 'extend', key, at });
  }

  /**
   * Forgets the pending work for `key`; the state is unchanged.
   *
   * @example
   * ```ts
   * lease.remove('route/a'); lease.size; // 0
   * ```
   * @param key The record whose work to forget.
   */
  remove(key: string): void {
    assertKey(OWNER, 'remove: key', key);
    this.#command({ type: 'remove', key });
  }

  /**
   * Counts the lease as run out from now: a waiting follower's key runs the
   * next time it is checked instead of waiting again.
   *
   * @example
   * ```ts
   * lease.expire(); lease.state.expires === scheduler.now(); // true
   * ```
   */
  expire(): void {
    this.#command({ type: 'expire' });
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
      this.#commands.complete();
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
    this.#command({ type: 'try', key, id, work });
    return id;
  }

  #command(command: Command): void {
    this.#assertNotDisposed(`${command.type}()`);
    this.#commands.next(command);
  }

  /**
   * Applies one input. Commands only record and schedule: no unit runs in
   * here, so a unit that calls back into the lease while it runs is safe.
   */
  #apply(command: Command): void {
    const now = this.#scheduler.now();
    switch (command.type) {
      case 'try': {
        const { key, id, work } = command;
        const entry = this.#entry(key);
        const previous = entry.pending;
        entry.pending = { id, work };
        if (previous === undefined) this.#pendingCount++;
        const due = this.#dueTimeOfNewWork(now);
        this.#due.add(entry, due);
        this.#emit({ type: 'submitted', key, id, due, at: now });
        // A running unit still settles and its result applies, but its submission is over.
        if (previous !== undefined) this.#emit({ type: 'superseded', key, id: previous.id, by: id, at: now });
        this.#armTimer();
        return;
      }
      case 'extend': {
        const entry = this.#keys.get(command.key);
        const running = entry?.running !== undefined;
        if (entry === undefined || !this.#drop(entry, 'extended', now)) return;
        const { state, tick, expires } = this.#state.value;
        if (state !== LeaseState.Follower) {
          // Its unit, let go of, lost the race to the other writer: that is the release it would have
          // reported (a conflict, or the status found current). Ignoring it would leave a replica that
          // loses every race leading, and competing, for good.
          if (running) this.#applyResult(WorkResult.Release, now);
          return;
        }
        const { at = now } = command;
        if (at >= now) {
          this.#setState(this.#follower(tick + 1, now), now);
          return;
        }
        // A write found late renews the other lease as of when it was made.
        const renewed = this.#follower(tick + 1, at);
        if (renewed.expires > now) this.#setState({ ...renewed, expires: Math.max(renewed.expires, expires) }, now);
        return;
      }
      case 'remove': {
        const entry = this.#keys.get(command.key);
        if (entry !== undefined && (command.id === undefined || entry.pending?.id === command.id)) {
          this.#drop(entry, 'removed', now);
        }
        return;
      }
      case 'expire': {
        const snapshot = this.#state.value;
        if (snapshot.expires > now) this.#setState({ ...snapshot, expires: now }, now);
        return;
      }
    }
  }

  /** Rule 1: a follower gives the nominal leader the first chance. */
  #dueTimeOfNewWork(now: number): number {
    const { state, expires } = this.#state.value;
    if (state !== LeaseState.Follower) return now;
    return now + Math.max(expires - now, 2 * this.#backoffDuration(0));
  }

  /** The entry of `key`, made on first use. */
  #entry(key: string): KeyEntry {
    let entry = this.#keys.get(key);
    if (entry === undefined) {
      entry = {
        key,
        pending: undefined,
        running: undefined,
        dueWhileRunning: undefined,
        at: 0,
        seq: 0,
        index: NOT_QUEUED,
      };
      this.#keys.set(key, entry);
    }
    return entry;
  }

  /** Deletes an entry that holds nothing any more. */
  #forgetIfEmpty(entry: KeyEntry): void {
    if (entry.pending === undefined && entry.running === undefined && !this.#due.has(entry)) {
      this.#keys.delete(entry.key);
    }
  }

  /**
   * Forgets the pending work of an entry, and lets go of its running unit:
   * whatever it would write is no longer wanted. False when there was no
   * pending work.
   */
  #drop(entry: KeyEntry, reason: 'removed' | 'extended', now: number): boolean {
    const { pending, running } = entry;
    if (pending === undefined) return false;
    entry.pending = undefined;
    entry.dueWhileRunning = undefined;
    this.#pendingCount--;
    this.#due.delete(entry);
    this.#emit({ type: 'dropped', key: entry.key, id: pending.id, reason, at: now });
    if (running !== undefined) {
      this.#letGo(entry, running, reason, now);
      // The freed worker is taken in a scheduled action, never inside this call.
      this.#armTimer();
    }
    this.#forgetIfEmpty(entry);
    return true;
  }

  /** Aborts a running unit and frees its worker; nothing it returns later is applied. */
  #letGo(entry: KeyEntry, unit: RunningUnit<KeyEntry>, reason: Exclude<LetGoReason, 'timeout'>, now: number): void {
    unit.letGo(letGoError(entry.key, LET_GO_BECAUSE[reason]));
    entry.running = undefined;
    this.#runningCount--;
    this.#emit({ type: 'let-go', key: entry.key, id: unit.id, reason, started: unit.started, at: now });
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
    if (this.#draining || this.#processing === undefined) return;
    this.#draining = true;
    const queuedBefore = this.#due.arrivals;
    try {
      // A unit or an event handler may stop the lease in the middle of the pass.
      while (this.#processing !== undefined && this.#runningCount < this.#workers) {
        const now = this.#scheduler.now();
        const entry = this.#due.takeDue(now, queuedBefore);
        if (entry === undefined) break;
        this.#process(entry, now);
      }
    } finally {
      this.#draining = false;
    }
    this.#armTimer();
  }

  /** Rule 2, for one due key. */
  #process(entry: KeyEntry, now: number): void {
    if (entry.running !== undefined) {
      entry.dueWhileRunning ??= entry.at;
      return;
    }
    const submission = entry.pending;
    if (submission === undefined) {
      this.#forgetIfEmpty(entry);
      return;
    }
    const { state, expires } = this.#state.value;
    if (state === LeaseState.Follower && now < expires) {
      this.#due.add(entry, expires);
      this.#emit({ type: 'deferred', key: entry.key, id: submission.id, until: expires, at: now });
      return;
    }
    this.#start(entry, submission, now);
  }

  #start(entry: KeyEntry, submission: Submission, now: number): void {
    const unit = new RunningUnit(entry, entry.key, submission, now);
    entry.running = unit;
    this.#runningCount++;
    this.#emit({ type: 'started', key: entry.key, id: submission.id, at: now });
    unit.run(this.#units, this.#workTimeout);
  }

  #settle(entry: KeyEntry, unit: RunningUnit<KeyEntry>, value: unknown): void {
    if (unit.over) return;
    const settlement = toSettlement(value);
    if (settlement !== undefined) {
      this.#finish(entry, unit, settlement);
      return;
    }
    const { key } = entry;
    const error = new WorkReturnError(
      `unit of work for "${key}" returned ${describeValue(value)}; expected a WorkResult or { result, retry }`,
      { key, received: value },
    );
    this.#fail(entry, unit, error);
  }

  #fail(entry: KeyEntry, unit: RunningUnit<KeyEntry>, error: unknown): void {
    if (unit.over) return;
    this.#emit({ type: 'error', key: entry.key, id: unit.id, error, at: this.#scheduler.now() });
    this.#finish(entry, unit, RELEASE_AND_RETRY);
  }

  #timedOut(entry: KeyEntry, unit: RunningUnit<KeyEntry>): void {
    if (unit.over) return;
    const error = new WorkTimeoutError({ key: entry.key, id: unit.id, timeout: this.#workTimeout?.ms ?? 0 });
    unit.letGo(error);
    const now = this.#scheduler.now();
    this.#emit({ type: 'let-go', key: entry.key, id: unit.id, reason: 'timeout', started: unit.started, at: now });
    this.#emit({ type: 'error', key: entry.key, id: unit.id, error, at: now });
    this.#finish(entry, unit, RELEASE_AND_RETRY);
  }

  /** Rule 3: apply the result, then retry, forget, or leave a newer submission in place. */
  #finish(entry: KeyEntry, unit: RunningUnit<KeyEntry>, { result, retry }: Settlement): void {
    unit.end();
    entry.running = undefined;
    this.#runningCount--;
    const { key } = entry;
    const now = this.#scheduler.now();
    const { submission, started } = unit;
    this.#emit({ type: 'settled', key, id: submission.id, result, retry, started, at: now });
    this.#applyResult(result, now);

    const current = entry.pending;
    if (retry && current !== undefined) {
      const due = now + this.#retryInterval;
      this.#due.add(entry, due);
      this.#emit({ type: 'retried', key, id: current.id, due, at: now });
    } else if (current === submission) {
      entry.pending = undefined;
      this.#pendingCount--;
    }
    if (entry.dueWhileRunning !== undefined) {
      if (entry.pending !== undefined) this.#due.add(entry, entry.dueWhileRunning);
      entry.dueWhileRunning = undefined;
    }
    this.#forgetIfEmpty(entry);
    this.#startDueWork();
  }

  /** Rule 4. */
  #applyResult(result: WorkResult, now: number): void {
    if (result === WorkResult.Extend) {
      this.#setState({ state: LeaseState.Leader, expires: now + this.#leaseDuration, tick: 0 }, now);
    } else if (result === WorkResult.Release) {
      const { state, tick } = this.#state.value;
      this.#setState(this.#follower(state === LeaseState.Follower ? tick + 1 : 0, now), now);
    }
  }

  #follower(tick: number, now: number): LeaseSnapshot {
    return { state: LeaseState.Follower, expires: now + this.#backoffDuration(tick), tick };
  }

  /** The policy's value, capped at the lease duration. */
  #backoffDuration(tick: number): number {
    let value: unknown;
    try {
      value = this.#backoff(tick);
    } catch (error) {
      value = error;
    }
    if (typeof value === 'number' && value >= 0) return Math.min(value, this.#leaseDuration);
    this.#emit({ type: 'backoff-error', tick, received: value, at: this.#scheduler.now() });
    return this.#leaseDuration;
  }

  /** Publishes a new snapshot; one equal to the current is no change, and `state$` emits only changes. */
  #setState(snapshot: LeaseSnapshot, now: number): void {
    const previous = this.#state.value;
    if (previous.state === snapshot.state && previous.expires === snapshot.expires && previous.tick === snapshot.tick) {
      return;
    }
    this.#state.next(snapshot);
    this.#emit({ type: 'state', previous, snapshot, at: now });
  }

  /** Keeps one timer, for the earliest due key, while a worker is free to take it. */
  #armTimer(): void {
    if (this.#processing === undefined || this.#runningCount >= this.#workers) return;
    const at = this.#due.peekTime() ?? Infinity;
    if (at === this.#timerAt) return;
    this.#timerAt = at;
    this.#wakeAt.next(at);
  }

  /** Teardown of `run()`: no timer is left, running units are let go and their keys stay due. */
  #stop(): void {
    this.#processing = undefined;
    this.#timerAt = Infinity;
    const now = this.#scheduler.now();
    for (const entry of this.#keys.values()) {
      const { running } = entry;
      if (running === undefined) continue;
      this.#letGo(entry, running, 'stopped', now);
      // The unit's work must run again; a newer submission keeps its own due time.
      if (entry.pending === running.submission) this.#due.add(entry, now);
      else if (entry.dueWhileRunning !== undefined) this.#due.add(entry, entry.dueWhileRunning);
      entry.dueWhileRunning = undefined;
      this.#forgetIfEmpty(entry);
    }
    this.#emit({ type: 'stopped', pending: this.pendingKeys(), at: now });
  }

  // ---- helpers ------------------------------------------------------------

  #emit(event: DistributiveOmit<LeaseEvent, 'lease'>): void {
    if (this.#events.observed) this.#events.next({ ...event, lease: this.#name });
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
        if (!this.#disposed) this.#command({ type: 'remove', key, id });
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

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
