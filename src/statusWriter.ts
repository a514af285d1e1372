import {
  BehaviorSubject,
  Subject,
  combineLatest,
  defer,
  distinctUntilChanged,
  filter,
  map,
  merge,
  of,
  share,
  type Observable,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import type { ContentionTracker } from './contentionTracker.js';
import { RecordCache, type CachedPart, type CachedRecord } from './internal/recordCache.js';
import { throwIfLetGo } from './internal/runningUnit.js';
import { assertFunction, assertKey, assertScheduler, describeValue } from './internal/validate.js';
import { monotonicScheduler } from './monotonicScheduler.js';
import { StoreValueError } from './stores/errors.js';
import type { CallOptions, RecordChange, RecordKind, RecordStore, SpecValue, StatusValue } from './stores/store.js';
import { ShardedWriterLease } from './shardedWriterLease.js';
import { LeaseState, WorkResult, type WorkFunc, type WorkReturn } from './types.js';
import type { WriterLease } from './writerLease.js';

/**
 * Options of a {@link StatusWriter}.
 *
 * @example
 * ```ts
 * new StatusWriter({ store, lease, writer: `router-${process.pid}` });
 * ```
 */
export interface StatusWriterOptions {
  /** Where specs and statuses live. */
  store: RecordStore;
  /**
   * The lease that decides whether this replica writes. A
   * {@link ShardedWriterLease} shares the keys out by shard: this writer
   * tells it who writes what (`saw`), sends its announcements through the
   * store (`store.handOver(message)`) and passes it every message of the
   * store's handover channel (`heard`). Call `writer.run()` before
   * `lease.run()`, so that the announcement of its start goes out.
   */
  lease: WriterLease | ShardedWriterLease;
  /** This replica's instance name, written into every status it writes. */
  writer: string;
  /**
   * The status value this replica reports for a spec.
   * @default (spec) => spec.value
   */
  statusOf?: (spec: SpecValue) => string;
  /**
   * Stops fighting another writer that keeps writing a different value.
   * @default none: never stand down
   */
  contention?: ContentionTracker;
  /**
   * `false` runs the same work without coordination, for comparison: every
   * unit reports `none` to the lease, which therefore never follows and never
   * defers, and writes of other replicas are not used to extend their lease.
   * Compare-and-set still keeps the data correct.
   * @default true
   */
  coordinate?: boolean;
  /**
   * The clock of every decision: when this replica saw a spec generation,
   * as of which moment another writer's lease is renewed. Pass the lease's.
   * @default monotonicScheduler
   */
  scheduler?: SchedulerLike;
  /**
   * The time written into a status's `at`, for people reading the store.
   * No replica reads it back to decide anything.
   * @default Date.now (ms since the epoch, this machine's wall clock)
   */
  wallClock?: () => number;
}

/**
 * What one unit of the status writer did.
 *
 * @example
 * ```ts
 * writer.events$.pipe(filter((e) => e.type === 'conflict')).subscribe((e) => console.log(e.key, e.generation));
 * // route/a 4
 * ```
 */
export type StatusWriterEvent =
  | { readonly type: 'written'; readonly key: string; readonly generation: number }
  | {
      readonly type: 'conflict';
      readonly key: string;
      readonly generation: number;
      /**
       * The other writer whose status made the store refuse ours; undefined
       * when none did (the spec moved, on a store with one version per
       * record): then the lease is not told of a release.
       */
      readonly writer: string | undefined;
    }
  | { readonly type: 'current'; readonly key: string; readonly generation: number; readonly writer: string }
  | { readonly type: 'gone'; readonly key: string }
  | { readonly type: 'contended'; readonly key: string }
  | { readonly type: 'error'; readonly key: string; readonly error: unknown };

/**
 * A handover heard on the store: `writer` stopped writing. `followed`: it was
 * the writer this replica followed, so its lease counted as run out at once.
 *
 * @example
 * ```ts
 * writer.handovers$.subscribe(({ writer, followed }) => console.log(writer, followed));
 * // replica-1 true
 * ```
 */
export interface HandoverHeard {
  readonly writer: string;
  readonly followed: boolean;
}

/**
 * The last status this replica wrote: which record, which generation, and
 * when (the `at` written into the status, on the writer's wall clock).
 *
 * @example
 * ```ts
 * writer.lastWritten; // { key: 'route/a', generation: 4, at: 1_795_554_603_686 }
 * ```
 */
export interface LastWritten {
  readonly key: string;
  readonly generation: number;
  /** Milliseconds since the epoch, as written into the status's `at`. */
  readonly at: number;
}

const OWNER = 'StatusWriter';

/**
 * The StatusWriter whose `run()` watches each lease now: two on one lease
 * would submit every key twice and disagree on whom the lease follows.
 */
const runningOn = new WeakMap<WriterLease | ShardedWriterLease, StatusWriter>();

/**
 * Keeps the statuses of a store's records up to date, one write per spec
 * change across all replicas: each replica runs one, with its own lease.
 *
 * For every spec change it submits `lease.try(key, unit)`; the unit reads
 * spec and status and decides, as the table of the scenario says:
 *
 * | the store says | result |
 * | --- | --- |
 * | status is current, written by another replica | `extend(key)`, none |
 * | status is current otherwise | none |
 * | compare-and-set succeeded | extend |
 * | version conflict | release, retry |
 * | record gone | release |
 * | contended (another writer keeps writing another value) | release |
 * | any other error | release, retry |
 *
 * It also watches statuses: another replica's write of the current
 * generation of a key extends that replica's lease here.
 *
 * @example
 * ```ts
 * const lease = new WriterLease({ leaseDuration: 2_000, retryInterval: 200 });
 * const writer = new StatusWriter({ store, lease, writer: 'replica-1' });
 * const stop = [lease.run(), writer.run()];
 * writer.events$.subscribe((e) => console.log(e.type, e.key));
 * // written route/a
 * ```
 */
export class StatusWriter {
  readonly #store: RecordStore;
  readonly #lease: WriterLease | ShardedWriterLease;
  readonly #writer: string;
  readonly #statusOf: (spec: SpecValue) => string;
  readonly #contention: ContentionTracker | undefined;
  readonly #coordinate: boolean;
  readonly #scheduler: SchedulerLike;
  readonly #wallClock: () => number;
  readonly #events = new Subject<StatusWriterEvent>();
  /** What the store's feed said of every record: units work from it, and read only to recover. */
  readonly #cache = new RecordCache();
  /** When this replica first saw each key's latest spec generation, on its own clock. */
  readonly #seen = new Map<string, { readonly generation: number; readonly at: number }>();
  /** Keys whose work stood down while contended: they are submitted again when it ends. */
  readonly #stoodDown = new Set<string>();
  /** The other writer whose write renewed our lease last: the one this replica follows. */
  readonly #following = new BehaviorSubject<string | undefined>(undefined);
  /** Writers that handed over: their old writes renew nothing, until one is heard writing again. */
  readonly #departed = new Set<string>();
  readonly #handovers = new Subject<HandoverHeard>();
  readonly #synced = new BehaviorSubject(false);
  /** The subscription of `run()`, ended by `handOver()`. */
  #watch: Subscription | undefined;
  /** When the store last answered (a call that succeeded, a change on its feed), on `#scheduler`. */
  #storeAnsweredAt: number | undefined;
  #lastWritten: LastWritten | undefined;

  /** What every unit did. */
  readonly events$: Observable<StatusWriterEvent> = this.#events.asObservable();
  /** Every handover heard on the store, and whether this replica acted on it. */
  readonly handovers$: Observable<HandoverHeard> = this.#handovers.asObservable();
  /**
   * Whether the cache has synced, as client-go's `HasSynced` tells an
   * informer's: false until `run()` has listed the store and taken in every
   * record (units before then read what the cache cannot answer), then true.
   * True at once when the store cannot list, and when the list fails (the
   * cache then fills record by record). Wait for it before counting on this
   * replica's pace: the router starts its work once its caches synced.
   *
   * @example
   * ```ts
   * writer.run();
   * await firstValueFrom(writer.synced$.pipe(filter(Boolean)));
   * ```
   */
  readonly synced$: Observable<boolean> = this.#synced.pipe(distinctUntilChanged());
  /**
   * The writer this replica believes leads, as client-go's `OnNewLeader`
   * tells it: its own name while its lease leads, the writer it follows
   * (the one whose write renewed its lease last) while it follows, and
   * `undefined` during an election or while it follows no writer it knows
   * (the one it followed handed over). The current value first, then only
   * changes.
   *
   * It is what this replica believes, not a fact: a leader cut off from the
   * store believes it still leads (its lease has no clock of its own to
   * lose it by); `serveHealth`'s `/readyz` tells that case apart.
   *
   * With a {@link ShardedWriterLease} of one shard, the same. With more,
   * no one writer leads: it is this replica's name while it leads at least
   * one shard (`lease.leading$` says which), else the writer whose write
   * renewed a shard's lease here last, else `undefined`.
   *
   * @example
   * ```ts
   * writer.believedLeader$.subscribe((leader) => console.log('leader:', leader ?? 'none'));
   * // leader: none
   * // leader: replica-2
   * ```
   */
  readonly believedLeader$: Observable<string | undefined> = defer(() =>
    combineLatest([leaseStates(this.#lease), this.#following]),
  ).pipe(
    map(([state, following]) => this.#leaderOf(state, following)),
    distinctUntilChanged(),
  );

  /**
   * @param options The store, the lease and this replica's name.
   * @throws TypeError when `store`, `lease` or `writer` is missing or of the wrong type.
   */
  constructor(options: StatusWriterOptions) {
    const {
      store,
      lease,
      writer,
      statusOf = (spec) => spec.value,
      contention,
      coordinate = true,
      scheduler = monotonicScheduler,
      wallClock = Date.now,
    } = options;
    if (typeof store?.changes !== 'function') {
      throw new TypeError(`${OWNER}: options.store must be a RecordStore, received ${describeValue(store)}`);
    }
    if (typeof lease?.try !== 'function') {
      throw new TypeError(
        `${OWNER}: options.lease must be a WriterLease or a ShardedWriterLease, received ${describeValue(lease)}`,
      );
    }
    assertKey(OWNER, 'options.writer', writer);
    assertFunction(OWNER, 'options.statusOf', statusOf);
    assertScheduler(OWNER, 'options.scheduler', scheduler);
    assertFunction(OWNER, 'options.wallClock', wallClock);
    this.#store = store;
    this.#lease = lease;
    this.#writer = writer;
    this.#statusOf = statusOf;
    this.#contention = contention;
    this.#coordinate = coordinate;
    this.#scheduler = scheduler;
    this.#wallClock = wallClock;
  }

  /** This replica's name, as written into statuses. */
  get writer(): string {
    return this.#writer;
  }

  /** The writer this replica believes leads now: see {@link StatusWriter.believedLeader$}. */
  get believedLeader(): string | undefined {
    return this.#leaderOf(this.#lease.state.state, this.#following.value);
  }

  /** True between `run()` and the end of its watch: the store's feed is subscribed. */
  get watching(): boolean {
    return this.#watch !== undefined && !this.#watch.closed;
  }

  /**
   * Milliseconds since the store last answered, on the writer's scheduler:
   * a call that succeeded (a read, a compare-and-set, refused or not, the
   * list) or a change on its feed; `Infinity` before it ever did. A follower
   * makes no calls while the leader writes: the feed is how it hears the
   * store. Read by `serveHealth`'s `/readyz`.
   *
   * @example
   * ```ts
   * writer.storeSilentFor; // 12
   * ```
   */
  get storeSilentFor(): number {
    const at = this.#storeAnsweredAt;
    return at === undefined ? Infinity : Math.max(0, this.#scheduler.now() - at);
  }

  /** The last status this replica wrote; undefined before its first write. */
  get lastWritten(): LastWritten | undefined {
    return this.#lastWritten;
  }

  /**
   * How many records this replica holds in its cache of the store (about
   * 260 bytes each beside the values themselves: docs/architecture.md,
   * "The informer").
   */
  get cached(): number {
    return this.#cache.size;
  }

  /**
   * Watches the store: spec changes become submissions, other replicas'
   * status writes extend their lease (merged into the lease's inputs), and a
   * handover from the writer this replica follows wakes its keys (rule 17).
   * Every change also goes into this replica's cache of the store, which
   * its units work from; with a store that can `list`, the cache is filled
   * at once and records whose status is behind their spec are submitted.
   * A key this replica stood down on while it was contended is submitted
   * again once the contention ends, so that the change made meanwhile is not
   * left unwritten; a status the store lost (it went back) is written again.
   *
   * @returns The watch; unsubscribe to stop.
   * @throws Error when this writer already runs, or another StatusWriter runs on its lease.
   */
  run(): Subscription {
    this.#assertCanRun();
    const changes$ = this.#store.changes().pipe(share());
    // Every change updates the cache first: whatever reacts to it below sees it there.
    const watch = changes$.subscribe((change) => {
      this.#answered();
      this.#observe(change);
    });
    const lease = this.#lease;
    runningOn.set(lease, this);
    watch.add(() => {
      if (runningOn.get(lease) === this) runningOn.delete(lease);
    });
    const statuses$ = changes$.pipe(filter((change): change is RecordChange<StatusValue> => change.kind === 'status'));
    // Writes of the current generation by other replicas, merged into the lease's inputs as extend(key).
    const othersWrites$ = statuses$.pipe(
      filter((change) => this.#othersCurrentWrite(change)),
      map(({ key }) => key),
    );
    watch.add(lease instanceof ShardedWriterLease ? lease.extend(othersWrites$) : lease.extend(othersWrites$));
    watch.add(
      changes$
        .pipe(filter((change): change is RecordChange<SpecValue> => change.kind === 'spec'))
        .subscribe(({ key }) => this.sync(key)),
    );
    const contention = this.#contention;
    if (contention !== undefined) {
      watch.add(
        contention.contended$.subscribe(() => {
          for (const key of this.#stoodDown) {
            if (contention.isContended(key)) continue;
            this.#stoodDown.delete(key);
            this.sync(key);
          }
        }),
      );
    }
    const handOver = this.#store.handOver?.bind(this.#store);
    if (lease instanceof ShardedWriterLease && this.#coordinate && handOver !== undefined) {
      // A lost announcement is no harm: the others learn of this replica when they see it write.
      watch.add(lease.announcements$.subscribe((message) => void handOver(message).catch(() => undefined)));
    }
    const handovers$ = this.#coordinate ? this.#store.handovers?.() : undefined;
    if (handovers$ !== undefined) {
      watch.add(
        handovers$.subscribe((writer) => {
          this.#answered();
          this.#handedOver(writer);
        }),
      );
    }
    this.#watch = watch;
    void this.#list(watch);
    return watch;
  }

  /**
   * Stops gracefully and hands over (docs/lease.md, "Handover"): stops
   * watching the store, lets the units in flight settle (at most
   * `timeoutMs`, then the lease lets go of them), disposes the lease, and
   * announces through the store that this writer stopped, so that the
   * replicas following it write at once instead of waiting its lease out.
   * With a store that cannot announce (no `handOver`), they wait it out.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', async () => {
   *   const pending = await writer.handOver();
   *   process.exit(0);
   * });
   * ```
   * @param options `timeoutMs`: how long units in flight may take to settle.
   * @returns The keys whose work was left pending.
   * @default options.timeoutMs 5000
   */
  async handOver({ timeoutMs = 5_000 }: { readonly timeoutMs?: number } = {}): Promise<string[]> {
    this.#watch?.unsubscribe();
    const pending = await this.#lease.drain(timeoutMs);
    await this.#store.handOver?.(this.#writer);
    this.#handovers.complete();
    return pending;
  }

  /**
   * Submits the work for `key` (for example for records that existed before
   * `run()` on a store that cannot list them).
   *
   * @param key The record.
   */
  sync(key: string): void {
    this.#lease.try(key, this.unit(key));
  }

  /**
   * The unit of work for `key`: write the status with compare-and-set when
   * it is not current, from what the cache holds (reading the store only
   * when the cache cannot answer).
   *
   * @param key The record.
   * @returns A unit for `lease.try`.
   */
  unit(key: string): WorkFunc {
    const submittedAt = this.#scheduler.now();
    // The context goes to the store as is: its signal is made only if the store reads it.
    return async (context) => this.#report(await this.#write(key, context, submittedAt));
  }

  // ---- the feed -----------------------------------------------------------

  /**
   * Takes one change of the feed into the cache. A status of the spec's
   * generation, ours or another writer's, is told to the contention tracker
   * once per version observed (as the router's informer does), never per
   * read: a change away from the value last seen or written is a fight.
   */
  #observe(change: RecordChange): void {
    const before = this.#cache.apply(change);
    if (before === null) return;
    const { kind, key, value } = change;
    if (kind === 'spec') {
      const generation = isSpecValue(value) ? value.generation : undefined;
      if (generation === undefined) {
        this.#seen.delete(key);
        if (value === undefined) this.#contention?.clear(key);
      } else if (this.#seen.get(key)?.generation !== generation) {
        this.#seen.set(key, { generation, at: this.#scheduler.now() });
      }
      return;
    }
    if (this.#statusWentBack(key, before, change)) this.sync(key);
    if (!isStatusValue(value)) return;
    this.#saw(value.writer, key);
    const spec = this.#cache.peek(key)?.spec?.value;
    if (isSpecValue(spec) && value.generation === spec.generation) {
      this.#contention?.changed(key, value.value, this.#statusOf(spec));
    }
  }

  /**
   * A message of the store's handover channel: a writer that handed over.
   * Only the one this replica follows matters: its lease counts as run out
   * and the keys waiting for it are due now (rule 17). A handover from
   * another writer, a repeated one, or a late one (this replica follows
   * someone else by then) changes nothing. A sharded lease hears every
   * message (announcements too) and wakes only the shards that writer held.
   */
  #handedOver(message: string): void {
    const lease = this.#lease;
    const sharded = lease instanceof ShardedWriterLease;
    if (sharded && message.length > 0) lease.heard(message);
    if (message === this.#writer || (sharded && message.startsWith('{'))) return;
    const writer = message;
    this.#departed.add(writer);
    const followed = writer === this.#following.value && lease.state.state === LeaseState.Follower;
    if (followed) {
      this.#follow(undefined);
      if (!sharded) lease.expire({ wake: true });
    }
    this.#handovers.next({ writer, followed });
  }

  /**
   * Another replica's write of the generation this replica knows, heard as
   * it happened: that writer's lease is renewed from now, on our clock.
   */
  /** The writer this replica follows now; told to `believedLeader$` only when it changes (a follower sees every write). */
  #follow(writer: string | undefined): void {
    if (this.#following.value !== writer) this.#following.next(writer);
  }

  #othersCurrentWrite({ key, value }: RecordChange<StatusValue>): boolean {
    if (!isStatusValue(value) || value.writer === this.#writer || !this.#coordinate) return false;
    // Heard writing after its handover (the feed keeps their order): it is back.
    this.#departed.delete(value.writer);
    const seen = this.#seen.get(key);
    if (seen === undefined || value.generation < seen.generation) return false;
    this.#follow(value.writer);
    return true;
  }

  /**
   * True when the status went back a generation, or disappeared, while its
   * spec stands: the store lost status writes it had acknowledged (a Redis
   * replica promoted before it received them). Nobody writes it again unless
   * someone notices, and no spec change may come to trigger it.
   */
  #statusWentBack(key: string, before: CachedPart | undefined, { value }: RecordChange): boolean {
    if (!isStatusValue(before?.value) || !this.#seen.has(key)) return false;
    return (isStatusValue(value) ? value.generation : 0) < before.value.generation;
  }

  /**
   * On start, with a store that can list: fills the cache with every record,
   * and submits those whose status is behind their spec (they changed while
   * no replica watched). A list that fails leaves the cache to fill record
   * by record, each read when first needed.
   */
  async #list(watch: Subscription): Promise<void> {
    let records: RecordChange[];
    try {
      const list = await this.#store.list?.();
      if (list === undefined) return this.#synced.next(true);
      this.#answered();
      if (watch.closed) return;
      records = list;
    } catch {
      return this.#synced.next(true);
    }
    for (const change of records) this.#observe(change);
    this.#cache.markListed();
    for (const change of records) {
      if (change.kind !== 'spec' || !isSpecValue(change.value)) continue;
      const status = this.#cache.peek(change.key)?.status?.value;
      if (!isStatusValue(status) || status.generation < change.value.generation) this.sync(change.key);
    }
    this.#synced.next(true);
  }

  // ---- a unit -------------------------------------------------------------

  /**
   * As of when, on this replica's clock, to renew the lease of another writer
   * whose write of `generation` this unit found in the cache or by reading.
   * The write reflects a spec generation this replica saw at `seen.at`, so it
   * was made then or later, give or take the feed's delay: renewing as of
   * then holds this replica past the other writer's real lease by that delay
   * at most. A generation never seen on the feed is of unknown age: it renews
   * as of when the unit was submitted, so that old writes found one after
   * another hold this replica back for one lease at most, not one per write.
   * The status's own `at` (another machine's wall clock) is never read.
   */
  #observedAt(key: string, generation: number, submittedAt: number): number {
    const seen = this.#seen.get(key);
    const at = seen?.generation === generation ? seen.at : submittedAt;
    return Math.min(at, this.#scheduler.now());
  }

  /**
   * One unit: decide from the cache (reading only when it cannot answer) and
   * write. A refused write means the cache was wrong: the record is read
   * again and the decision made once more on what the store holds (the
   * status may be current by now, or the write may go through on the
   * version read). A second refusal is a race lost: see {@link #refused}.
   */
  async #write(key: string, call: CallOptions, submittedAt: number): Promise<Outcome> {
    try {
      let record = this.#cache.held(key) ?? (await this.#read(key, call));
      for (let attempt = 1; ; attempt++) {
        const step = await this.#attempt(key, record, call, submittedAt);
        if (!('refused' in step)) return step;
        this.#cache.doubt(key);
        record = await this.#read(key, call);
        const outcome = this.#refused(key, step.refused, record.status, submittedAt);
        if (attempt === 2 || outcome.returned === WorkResult.None) return outcome;
        this.#events.next(outcome.event);
      }
    } catch (error) {
      return { event: { type: 'error', key, error }, returned: { result: WorkResult.Release, retry: true } };
    }
  }

  /** Decides from `record` and writes when the status is not current; `refused` when the store said no. */
  async #attempt(
    key: string,
    record: CachedRecord,
    call: CallOptions,
    submittedAt: number,
  ): Promise<Outcome | { readonly refused: RefusedWrite }> {
    if (isStatusValue(record.status?.value) && isSpecValue(record.spec?.value)) {
      if (record.status.value.generation > record.spec.value.generation) {
        // Ahead of the spec held: the spec changed since (its change is on its way), or the status
        // outlived a record deleted and created again with generations starting over. A read tells
        // them apart; in the second case the status is rewritten for the new record.
        record = await this.#read(key, call);
      }
    }
    const spec = record.spec;
    if (spec === undefined) return { event: { type: 'gone', key }, returned: WorkResult.Release };
    if (!isSpecValue(spec.value)) {
      // Nothing to write from until the spec changes: its change submits the key again.
      const error = new StoreValueError({ url: this.#store.url, record: `spec ${key}`, received: spec.value });
      return { event: { type: 'error', key, error }, returned: WorkResult.None };
    }
    const { generation } = spec.value;
    const ours = this.#statusOf(spec.value);
    const status = this.#statusIn(key, record);
    if (this.#isCurrent(key, status, generation, ours, submittedAt)) {
      return { event: { type: 'current', key, generation, writer: status!.writer }, returned: WorkResult.None };
    }
    if (this.#contention?.isContended(key)) {
      this.#stoodDown.add(key);
      return { event: { type: 'contended', key }, returned: WorkResult.Release };
    }
    // A unit the lease let go of (timed out, removed, stopped) must not write.
    throwIfLetGo(call);
    const next: StatusValue = { generation, value: ours, writer: this.#writer, at: this.#wallClock() };
    const statusChangesBefore = this.#cache.statusChangesOf(key);
    // Taken now: the feed updates the cached record while the write is on its way.
    const before = record.status;
    const written = await this.#store.compareAndSet('status', key, next, this.#versionToWrite(record), call);
    this.#answered();
    if (!written.ok) return { refused: { generation, ours, before } };
    this.#lastWritten = { key, generation, at: next.at };
    // Held as written, so that the next unit (a spec change may have come meanwhile) writes on this version.
    this.#cache.applyWritten(key, { value: next, version: written.version }, statusChangesBefore);
    this.#contention?.written(key, ours);
    return { event: { type: 'written', key, generation }, returned: WorkResult.Extend };
  }

  /**
   * What a refused write means, from the status read after it (`now`):
   * another writer's status that was not there before is a conflict with
   * that writer (release: it leads), unless it says what we would have
   * written (its lease is renewed, the work is done: none). Anything else
   * (the spec moved, on a store with one version per record; a status
   * deleted) is no writer's doing: retry without release, as the router does
   * for a conflict that no other writer caused.
   */
  #refused(
    key: string,
    { generation, ours, before }: RefusedWrite,
    after: CachedPart | undefined,
    submittedAt: number,
  ): Outcome {
    const now = isStatusValue(after?.value) ? after.value : undefined;
    const changed =
      this.#store.versioning === 'record'
        ? !sameStatus(now, before?.value) // the record's version moves with the spec too
        : after?.version !== before?.version;
    const writer = now !== undefined && now.writer !== this.#writer && changed ? now.writer : undefined;
    const event: StatusWriterEvent = { type: 'conflict', key, generation, writer };
    if (this.#isCurrent(key, now, generation, ours, submittedAt)) return { event, returned: WorkResult.None };
    return { event, returned: { result: writer === undefined ? WorkResult.None : WorkResult.Release, retry: true } };
  }

  /**
   * Whether `status` already says what we would write for `generation`.
   * Written by another writer, found in the cache or by reading, maybe long
   * after it was written: that writer's lease is renewed (as of when this
   * replica saw the generation), which also lets go of the unit asking (its
   * key's work is done by another writer), so what that unit returns is not
   * applied. A writer that handed over renews nothing: its lease ended when
   * it said so.
   */
  #isCurrent(
    key: string,
    status: StatusValue | undefined,
    generation: number,
    ours: string,
    submittedAt: number,
  ): boolean {
    if (status === undefined || status.generation !== generation || status.value !== ours) return false;
    const { writer } = status;
    if (writer !== this.#writer && this.#coordinate && !this.#departed.has(writer)) {
      this.#follow(writer);
      this.#saw(writer, key);
      this.#lease.extend(key, this.#observedAt(key, generation, submittedAt));
    }
    return true;
  }

  /**
   * The record's status, or undefined when it has none or one that cannot be
   * decoded: that one is treated as no status and overwritten on its
   * version, after an `error` event saying what was found.
   */
  #statusIn(key: string, record: CachedRecord): StatusValue | undefined {
    const status = record.status;
    if (status === undefined || isStatusValue(status.value)) return status?.value as StatusValue | undefined;
    const error = new StoreValueError({
      url: this.#store.url,
      record: `status ${key}`,
      received: status.value,
      version: status.version,
    });
    this.#events.next({ type: 'error', key, error });
    return undefined;
  }

  /** The version a status write must find: the status's own, or the record's when one version covers both. */
  #versionToWrite({ spec, status }: CachedRecord): number | null {
    if (this.#store.versioning === 'record') return Math.max(spec?.version ?? 0, status?.version ?? 0) || null;
    return status?.version ?? null;
  }

  /**
   * Reads both parts of a record from the store (recovery) into the cache.
   * A part that cannot be decoded is kept with its version, as found.
   */
  async #read(key: string, call: CallOptions): Promise<CachedRecord> {
    const changesBefore = this.#cache.changesOf(key);
    const [spec, status] = await Promise.all([this.#readPart('spec', key, call), this.#readPart('status', key, call)]);
    return this.#cache.applyRead(key, { spec, status }, changesBefore);
  }

  async #readPart(kind: RecordKind, key: string, call: CallOptions): Promise<CachedPart | undefined> {
    try {
      const part = await this.#store.get(kind, key, call);
      this.#answered();
      return part;
    } catch (error) {
      const version = error instanceof StoreValueError ? error.info.version : undefined;
      if (version === undefined) throw error;
      this.#answered(); // it answered, with a value that cannot be decoded
      return { value: (error as StoreValueError).info.received, version };
    }
  }

  /** Tells a sharded lease that `writer`, another replica, wrote `key`: who it is, and which shard it holds. */
  #saw(writer: string, key: string): void {
    const lease = this.#lease;
    if (!(lease instanceof ShardedWriterLease) || !this.#coordinate || writer === this.#writer) return;
    if (writer.length > 0) lease.saw(writer, key);
  }

  #answered(): void {
    this.#storeAnsweredAt = this.#scheduler.now();
  }

  /** Who leads, as this replica sees it, from its lease's state and the writer it follows. */
  #leaderOf(state: LeaseState, following: string | undefined): string | undefined {
    if (state === LeaseState.Leader) return this.#writer;
    return state === LeaseState.Follower ? following : undefined;
  }

  /** One watch per writer and per lease (bad input fails fast, changing nothing). */
  #assertCanRun(): void {
    if (this.watching) {
      throw new Error(
        `${OWNER}: run() called on "${this.#writer}" while it already runs; expected one run() at a time ` +
          '(unsubscribe the first to run again), received a second call',
      );
    }
    const other = runningOn.get(this.#lease);
    if (other !== undefined && other !== this && other.watching) {
      throw new Error(
        `${OWNER}: options.lease "${this.#lease.name}" is already run by StatusWriter "${other.writer}"; ` +
          `expected one StatusWriter per lease, received a second ("${this.#writer}")`,
      );
    }
  }

  #report({ event, returned }: Outcome): WorkReturn {
    this.#events.next(event);
    if (this.#coordinate) return returned;
    // Uncoordinated: the same work, but the lease never learns who writes.
    const retry = typeof returned === 'object' && returned.retry === true;
    return { result: WorkResult.None, retry };
  }
}

/** A write the store refused, with what the unit knew when it wrote. */
interface RefusedWrite {
  readonly generation: number;
  readonly ours: string;
  /** The status part the write was to replace. */
  readonly before: CachedPart | undefined;
}

/** What one unit did, and what it tells the lease. */
interface Outcome {
  readonly event: StatusWriterEvent;
  readonly returned: WorkReturn;
}

/** The lease's state, the current one first, then each change. */
function leaseStates(lease: WriterLease | ShardedWriterLease): Observable<LeaseState> {
  if (!(lease instanceof ShardedWriterLease)) return lease.state$.pipe(map(({ state }) => state));
  // No state$ of its own: every shard's state change is an event, and the state is computed when read.
  const changed$ = lease.events$.pipe(filter((event) => event.type === 'state'));
  return merge(of(undefined), changed$).pipe(
    map(() => lease.state.state),
    distinctUntilChanged(),
  );
}

function isSpecValue(value: unknown): value is SpecValue {
  const spec = value as Partial<SpecValue> | null | undefined;
  return typeof spec === 'object' && spec !== null && isGeneration(spec.generation) && typeof spec.value === 'string';
}

function isStatusValue(value: unknown): value is StatusValue {
  const status = value as Partial<StatusValue> | null | undefined;
  return (
    typeof status === 'object' &&
    status !== null &&
    isGeneration(status.generation) &&
    typeof status.value === 'string' &&
    typeof status.writer === 'string'
  );
}

function isGeneration(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function sameStatus(a: StatusValue | undefined, b: unknown): boolean {
  if (a === undefined || !isStatusValue(b)) return false;
  return a.generation === b.generation && a.writer === b.writer && a.value === b.value && a.at === b.at;
}
