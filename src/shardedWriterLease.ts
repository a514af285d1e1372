import {
  BehaviorSubject,
  Subject,
  Subscription,
  combineLatest,
  concatMap,
  filter,
  firstValueFrom,
  isObservable,
  map,
  merge,
  of,
  race,
  take,
  throwIfEmpty,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import { LeaseDisposedError, LeaseRunningError } from './errors.js';
import type { LeaseEvent } from './events.js';
import { atTime } from './internal/atTime.js';
import { assignShards, preferenceOrder } from './internal/rendezvous.js';
import { shardOf } from './internal/shardOf.js';
import { WorkInFlight } from './internal/workInFlight.js';
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
  type WorkFunc,
  type WorkReturn,
  type WriterLeaseOptions,
} from './types.js';
import { WriterLease } from './writerLease.js';

/**
 * Options of a {@link ShardedWriterLease}: those of a {@link WriterLease}
 * (each shard's lease gets them), this replica's name, and the shards.
 *
 * @example
 * ```ts
 * new ShardedWriterLease({ name: 'replica-1', shards: 30, leaseDuration: 10_000, retryInterval: 1_000 });
 * ```
 */
export interface ShardedWriterLeaseOptions extends Omit<WriterLeaseOptions, 'name'> {
  /**
   * This replica's name as the others know it: the `writer` of its
   * statuses, and what it announces. Each shard's lease is named
   * `${name}/${shard}` in events and errors.
   */
  name: string;
  /**
   * How many shards the keys hash to. `1`: one lease for every key, as a
   * {@link WriterLease}.
   * @default 1
   */
  shards?: number;
  /**
   * Milliseconds a replica waits per rank before it writes a shard it is not
   * the preferred writer of (docs/lease.md, "Shards"). Longer than the
   * store's feed delay plus `2 × backoff(0)`, so that the replica whose turn
   * comes first is seen writing before the next one's turn. A turn also
   * waits until the store has answered the work this replica started before
   * the turn came: a store slow to answer is slow to show the other's write.
   * @default 250
   */
  rankStep?: number;
  /**
   * Rule 16's random delays, for each shard's lease. With `rankStep > 0`
   * the order of turns keeps the replicas apart and the spread is not
   * applied: a random delay of up to a quarter lease would overturn the
   * order (the preferred writer drawing 200 ms, the next one 0 + one step).
   * With `rankStep: 0`, nobody waits a turn, and the spread is what it is
   * for a {@link WriterLease}.
   * @default false
   */
  spread?: boolean;
  /**
   * Replicas known from the start (a static list, say); more are learned
   * from announcements and status writes.
   * @default [] (this replica only)
   */
  members?: Iterable<string>;
}

/**
 * Where this replica stands across its shards, computed when read.
 *
 * @example
 * ```ts
 * lease.state; // { state: 'leader', leading: Set { 2, 7 }, shards: [{ state: 'follower', ... }, ...], members: ['a', 'b'] }
 * ```
 */
export interface ShardedLeaseSnapshot {
  /**
   * `leader` while this replica leads at least one shard; `election` while
   * every shard is in its election; `follower` otherwise.
   */
  readonly state: LeaseState;
  /** The shards this replica leads. */
  readonly leading: ReadonlySet<number>;
  /** Each shard's lease snapshot, by shard. */
  readonly shards: readonly LeaseSnapshot[];
  /** The replicas this replica knows of, itself included, sorted. */
  readonly members: readonly string[];
}

const OWNER = 'ShardedWriterLease';

/**
 * Rank steps of 250 ms: above the feed delay of every store here plus `2 × backoff(0)` of the default policy
 * (60 ms at most), and above the lag of a replica busy with a burst's feed on a loaded machine. 100 ms lost
 * 3 of 8 bursts on Redis to a replica 300 ms late to send its first write (docs/lease.md, "Shards").
 */
const DEFAULT_RANK_STEP = 250;

/** What a unit returns, without calling its work, on a shard another writer took while it waited: a race lost. */
const LOST_TO_TAKER: WorkReturn = { result: WorkResult.Release, retry: true };

/** What replicas say to each other on the store's handover channel; a plain name is a writer that stopped. */
type Announcement =
  | { readonly join: string }
  | { readonly here: string }
  | { readonly yield: string; readonly shards: readonly number[] };

/**
 * A writer lease per shard: keys hash to `shards` shards, each with its own
 * {@link WriterLease}, so that each shard has its own writer and the
 * replicas share the writing. No lock object, no coordinator: each replica
 * computes, from the names it knows, which replica each shard prefers
 * (rendezvous hashing with bounded loads), and defers by its rank.
 *
 * - **Deference.** A unit on a shard this replica does not lead waits
 *   `rank × rankStep` before it writes, its rank being its place in the
 *   shard's order (the preferred writer first, then by rendezvous score). The
 *   preferred writer writes at once; the others see its write
 *   (`extend(key)`), which lets go of their waiting unit: a lost race, a
 *   release, and they follow, by the rules of the lease (rule 13). In a
 *   failover (the follower's lease ran out) the rank is taken without the
 *   writer that ran out, so the next by rank writes at once; but a key
 *   changed less than a step ago is left a step to a holder heard within
 *   the last lease, whose own write of it is on its way.
 * - **Membership.** Names come from `saw(writer, key)` (other writers'
 *   statuses), `joined` / `left`, or the store's handover channel
 *   (`heard(message)`; what to send is on `announcements$`).
 * - **Handover.** When the view changes, a shard this replica leads but
 *   another replica now prefers is yielded: its next unit waits one rank
 *   more than its turn, and `announcements$` says so; the replica that
 *   prefers the shard, hearing it, wakes it (`left(name, shards)`) and
 *   writes first. Once that write is seen, the yielder's waiting units
 *   write nothing: each is a race lost, and the shard's lease follows.
 * - **Offer back.** A shard won from a preferred writer that was slow (a
 *   burst, a busy machine) is yielded the same way at the next unit there,
 *   once the preferred writer is heard from after the win (a replica that
 *   sees another write a shard it prefers says it is here, once per lease),
 *   at most once per lease: the shares even out without a coordinator. A
 *   writer whose lease ran out (a failover) is offered nothing while silent.
 *
 * With `shards: 1` and no other member known, it is a {@link WriterLease}.
 *
 * @example
 * ```ts
 * const lease = new ShardedWriterLease({ name: 'replica-1', shards: 30, leaseDuration: 10_000, retryInterval: 1_000 });
 * lease.announcements$.subscribe((message) => void store.handOver(message));
 * store.handovers().subscribe((message) => lease.heard(message));
 * const processing = lease.run(); // announces this replica
 * lease.leading$.subscribe((shards) => console.log('leading', [...shards]));
 * // leading []
 * lease.try('route/a', () => WorkResult.Extend);
 * // leading [17]
 * ```
 */
export class ShardedWriterLease {
  readonly #name: string;
  readonly #rankStep: number;
  readonly #scheduler: SchedulerLike;
  /** One lease per shard: the state of each shard lives in its lease, and nowhere else. */
  readonly #leases: readonly WriterLease[];

  /** The view: every replica known, this one included. */
  readonly #members = new Set<string>();
  #sortedMembers: readonly string[] = [];
  /** The preferred writer of each shard, for the view. */
  #preferred: readonly string[] = [];
  /** Each shard's order of turns for the view, made when first needed. */
  readonly #orders: (readonly string[] | undefined)[];
  /** The writer last seen writing each shard (this replica while it leads it); undefined when unknown or gone. */
  readonly #holders: (string | undefined)[];
  /** Shards led here that another replica prefers since the view changed: their next unit waits a turn more. */
  readonly #yielding: boolean[];
  /** When, on the lease's clock, each other replica was last heard from (a write seen, an announcement). */
  readonly #heardAt = new Map<string, number>();
  /** When this replica last yielded each shard (a view change, or an offer back to its preferred writer). */
  readonly #offeredAt: number[];
  /** When this replica last said it is here because another writer wrote a shard it prefers. */
  #claimedAt = -Infinity;
  /** When this replica's lease of each shard last became leader. */
  readonly #ledSince: number[];
  readonly #leaseDuration: number;
  /**
   * Shards another replica yielded to this one, woken: their units wait one step more than their turn, so
   * that the yielder's units already under way land (and are seen) first, until this replica leads them.
   */
  readonly #yieldedHere: boolean[];
  /**
   * Shards whose holder yielded them to another replica than this one, not seen written since: this
   * replica's units there wait until every turn the yield gives has passed (the taker's, then the
   * yielder's own), so as not to take the shard from a newcomer slow to write its first key.
   */
  readonly #yieldedElsewhere: boolean[];
  /** The work this replica started and that has not settled: a turn at another's shard waits for it. */
  readonly #inFlight: WorkInFlight;

  readonly #leading = new BehaviorSubject<ReadonlySet<number>>(new Set());
  readonly #announcements = new Subject<string>();
  /** Events of this class's own: errors of the key streams it routes. */
  readonly #ownEvents = new Subject<LeaseEvent>();
  /** The shards' `leader$` and the key streams: ended by `dispose()`. */
  readonly #watch = new Subscription();
  #processing: Subscription | undefined;
  #disposed = false;

  /** The shards this replica leads: the current set first, then each change. */
  readonly leading$: Observable<ReadonlySet<number>>;
  /** Every event of every shard's lease (their `lease` is `${name}/${shard}`), and `input-error`s of key streams. */
  readonly events$: Observable<LeaseEvent>;
  /**
   * What to send on the store's handover channel (`store.handOver(message)`),
   * for the other replicas' `heard(message)`: this replica's start (on
   * `run()`), its answer to another's start, and the shards it yields.
   */
  readonly announcements$: Observable<string>;

  /**
   * @param options This replica's name, the shards, and the options of each shard's lease.
   * @throws TypeError when `name` is not a non-empty string, `members` is not an iterable of
   *   them, or `scheduler` is not a scheduler (and as {@link WriterLease} for its own options).
   * @throws RangeError when `shards` is not an integer >= 1, or `rankStep`, `leaseDuration` or
   *   `retryInterval` is not a finite number >= 0.
   */
  constructor(options: ShardedWriterLeaseOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`${OWNER}: options must be an object, received ${describeValue(options)}`);
    }
    const {
      name,
      shards = 1,
      rankStep = DEFAULT_RANK_STEP,
      members = [],
      spread = false,
      scheduler = monotonicScheduler,
      ...leaseOptions
    } = options;
    assertKey(OWNER, 'options.name', name);
    assertInteger(OWNER, 'options.shards', shards, 1);
    assertDuration(OWNER, 'options.rankStep', rankStep);
    assertDuration(OWNER, 'options.leaseDuration', leaseOptions.leaseDuration);
    assertDuration(OWNER, 'options.retryInterval', leaseOptions.retryInterval);
    assertScheduler(OWNER, 'options.scheduler', scheduler);
    const known = memberList(members);
    this.#name = name;
    this.#rankStep = rankStep;
    this.#scheduler = scheduler;
    this.#leases = Array.from(
      { length: shards },
      // The order of turns keeps the replicas apart; rule 16's random delays would overturn it.
      (_, shard) =>
        new WriterLease({ ...leaseOptions, spread: rankStep === 0 && spread, scheduler, name: `${name}/${shard}` }),
    );
    this.#orders = new Array<undefined>(shards).fill(undefined);
    this.#holders = new Array<undefined>(shards).fill(undefined);
    this.#yielding = new Array<boolean>(shards).fill(false);
    this.#inFlight = new WorkInFlight(scheduler);
    this.#offeredAt = new Array<number>(shards).fill(-Infinity);
    this.#ledSince = new Array<number>(shards).fill(-Infinity);
    this.#yieldedHere = new Array<boolean>(shards).fill(false);
    this.#yieldedElsewhere = new Array<boolean>(shards).fill(false);
    this.#leaseDuration = leaseOptions.leaseDuration;
    for (const member of [name, ...known]) this.#members.add(member);
    this.#viewChanged(undefined);

    this.leading$ = this.#leading.asObservable();
    this.events$ = merge(this.#ownEvents, ...this.#leases.map((lease) => lease.events$));
    this.announcements$ = this.#announcements.asObservable();
    this.#leases.forEach((lease, shard) =>
      this.#watch.add(lease.leader$.subscribe((leads) => this.#leadershipChanged(shard, leads))),
    );
  }

  /** This replica's name, as given in the options. */
  get name(): string {
    return this.#name;
  }

  /**
   * Each shard's lease, by shard: to report them (`leaseMetrics(lease)` for
   * each, as `serveHealth` does) or to look at one. Work goes through this
   * object, which routes each key to its shard: a `try` made on a shard's
   * lease directly would bypass the routing.
   *
   * @example
   * ```ts
   * sharded.leases.map((lease) => lease.state.state); // ['leader', 'follower', ...]
   * ```
   */
  get leases(): readonly WriterLease[] {
    return this.#leases;
  }

  /** How many shards the keys hash to. */
  get shards(): number {
    return this.#leases.length;
  }

  /** How many keys have pending work, in every shard. */
  get size(): number {
    let size = 0;
    for (const lease of this.#leases) size += lease.size;
    return size;
  }

  /** True between `run()` and the unsubscription of what it returned. */
  get running(): boolean {
    return this.#processing !== undefined;
  }

  /** The replicas this replica knows of, itself included, sorted. */
  get members(): readonly string[] {
    return this.#sortedMembers;
  }

  /** Where this replica stands: see {@link ShardedLeaseSnapshot}. Computed when read, in O(shards). */
  get state(): ShardedLeaseSnapshot {
    const shards = this.#leases.map((lease) => lease.state);
    const leading = this.#leading.value;
    const state =
      leading.size > 0
        ? LeaseState.Leader
        : shards.every(({ state }) => state === LeaseState.Election)
          ? LeaseState.Election
          : LeaseState.Follower;
    return { state, leading, shards, members: this.#sortedMembers };
  }

  /**
   * The shard of `key`: FNV-1a of its UTF-8 bytes, mixed, modulo `shards`
   * (`src/internal/shardOf.ts`). The same on every replica and every run.
   *
   * @example
   * ```ts
   * lease.shardOf('route/a'); // 17, always, with 30 shards
   * ```
   * @param key A non-empty string.
   * @returns The shard, from 0 to `shards - 1`.
   * @throws TypeError when `key` is not a non-empty string.
   */
  shardOf(key: string): number {
    assertKey(OWNER, 'shardOf: key', key);
    return shardOf(key, this.#leases.length);
  }

  /**
   * The preferred writer of `shard` in this replica's view.
   *
   * @example
   * ```ts
   * lease.preferredWriter(lease.shardOf('route/a')); // 'replica-2'
   * ```
   * @param shard The shard, from 0 to `shards - 1`.
   * @returns A member's name.
   * @throws RangeError when `shard` is not one of the shards.
   */
  preferredWriter(shard: number): string {
    this.#assertShard('preferredWriter: shard', shard);
    return this.#preferred[shard];
  }

  /**
   * The keys that have pending work: by shard, then in the order they were first submitted.
   *
   * @example
   * ```ts
   * lease.try('a', work);
   * lease.pendingKeys(); // ['a']
   * ```
   */
  pendingKeys(): string[] {
    return this.#leases.flatMap((lease) => lease.pendingKeys());
  }

  /**
   * Starts processing every shard, and announces this replica on
   * `announcements$` (subscribe to it first).
   *
   * @example
   * ```ts
   * const processing = lease.run();
   * processing.unsubscribe(); // every shard stops; pending work stays for the next run()
   * ```
   * @returns The processing; unsubscribing it stops every shard's lease as `WriterLease.run()` does.
   * @throws LeaseRunningError when the lease is already running.
   */
  run(): Subscription {
    this.#assertNotDisposed('run()');
    if (this.#processing !== undefined) throw new LeaseRunningError({ lease: this.#name });
    const processing = new Subscription();
    for (const lease of this.#leases) processing.add(lease.run());
    processing.add(() => {
      this.#processing = undefined;
    });
    this.#processing = processing;
    this.#announce({ join: this.#name });
    return processing;
  }

  /**
   * Submits `work` for `key` to the lease of its shard, as
   * `WriterLease.try(key, work)` does, with the deference of this class: on a
   * shard this replica does not lead, the unit, once due, waits its turn
   * (`rank × rankStep`) before `work` is called; a write of the key by
   * another replica seen meanwhile lets go of it (rule 13).
   *
   * @example
   * ```ts
   * lease.try('route/a', async () => ((await writeStatus('a')) ? WorkResult.Extend : WorkResult.Release));
   * ```
   * @param key The record the work writes; a non-empty string.
   * @param work The unit of work.
   * @throws TypeError when `key` is not a non-empty string or `work` is not a function.
   * @throws LeaseDisposedError after `dispose()`.
   */
  try(key: string, work: WorkFunc): void {
    assertKey(OWNER, 'try: key', key);
    assertFunction(OWNER, 'try: work', work);
    this.#assertNotDisposed('try()');
    const shard = shardOf(key, this.#leases.length);
    this.#leases[shard].try(key, this.#inTurn(shard, work));
  }

  /**
   * Tells the lease of `key`'s shard that another writer did the work for
   * `key`, as `WriterLease.extend(key, at)` does. Call {@link saw} too, so
   * that this replica knows who writes that shard.
   *
   * @example
   * ```ts
   * lease.extend('route/a'); // a status write by another replica, seen just now
   * lease.extend('route/a', seenAt); // found by reading
   * ```
   * @param key The record another writer wrote.
   * @param at When, on the lease's clock, the write can have been made at the earliest.
   * @throws TypeError when `key` is not a non-empty string.
   * @throws RangeError when `at` is given and is not a finite number.
   */
  extend(key: string, at?: number): void;
  /**
   * Merges a stream of keys into the leases' inputs: each key as
   * `extend(key)`, to its shard. A key that is not a non-empty string, or
   * an error of the stream, ends that stream and is reported as an
   * `input-error` event.
   *
   * @example
   * ```ts
   * const watching = lease.extend(otherWriters$.pipe(map((change) => change.key)));
   * ```
   * @param keys The keys other writers wrote.
   * @returns The stream's subscription; it ends when the stream ends or the lease is disposed.
   */
  extend(keys: Observable<string>): Subscription;
  extend(keyOrKeys: string | Observable<string>, at?: number): void | Subscription {
    if (isObservable(keyOrKeys)) return this.#routeKeys('extend', keyOrKeys);
    assertKey(OWNER, 'extend: key', keyOrKeys);
    this.#assertNotDisposed('extend()');
    this.#leases[shardOf(keyOrKeys, this.#leases.length)].extend(keyOrKeys, at);
  }

  /**
   * Forgets the pending work for `key`, as `WriterLease.remove(key)` does.
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
   * Merges a stream of keys into the leases' inputs: each key as
   * `remove(key)`, to its shard; a bad key or an error ends the stream, as
   * an `input-error` event.
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
    if (isObservable(keyOrKeys)) return this.#routeKeys('remove', keyOrKeys);
    assertKey(OWNER, 'remove: key', keyOrKeys);
    this.#assertNotDisposed('remove()');
    this.#leases[shardOf(keyOrKeys, this.#leases.length)].remove(keyOrKeys);
  }

  /**
   * Counts the lease of one shard, or of every shard, as run out from now
   * (rule 7); with `wake`, the keys waiting for it are due now (rule 17).
   * To act on another writer's handover, call {@link left} instead: it
   * wakes only the shards that writer held.
   *
   * @example
   * ```ts
   * lease.expire({ shard: 4, wake: true }); // shard 4 only
   * lease.expire(); // every shard
   * ```
   * @param options `wake`: make the waiting keys due now; `shard`: that shard only.
   * @throws RangeError when `shard` is given and is not one of the shards.
   */
  expire(options: { readonly wake?: boolean; readonly shard?: number } = {}): void {
    const { wake = false, shard } = options;
    if (shard !== undefined) this.#assertShard('expire: options.shard', shard);
    this.#assertNotDisposed('expire()');
    const leases = shard === undefined ? this.#leases : [this.#leases[shard]];
    for (const lease of leases) lease.expire({ wake });
  }

  /**
   * Resolves once the election of every shard has ended (each shard's
   * first unit settled with extend or release): true if this replica then
   * leads at least one shard. With `key`, only that key's shard counts, and
   * true means it leads that shard. Rejects with `LeaseDisposedError` if the
   * lease is disposed first. With `shards: 1`, `WriterLease.wait()`.
   *
   * @example
   * ```ts
   * if (await lease.wait('route/a')) console.log('we write route/a');
   * ```
   * @param key A key whose shard to wait for.
   * @returns Whether this replica leads (a shard, or `key`'s shard).
   */
  wait(key?: string): Promise<boolean> {
    return firstValueFrom(this.#electionsEnd('wait()', key));
  }

  /**
   * Like {@link wait}, but gives up after `ms` on the lease's clock.
   *
   * @example
   * ```ts
   * await lease.waitUntil(1_000); // { leader: false, ok: false } when some shard is still in its election
   * ```
   * @param ms How long to wait, a finite number >= 0.
   * @param key A key whose shard to wait for.
   * @returns `ok: false` when it timed out (then `leader` is false).
   * @throws RangeError when `ms` is not a finite number >= 0.
   */
  waitUntil(ms: number, key?: string): Promise<{ leader: boolean; ok: boolean }> {
    assertDuration(OWNER, 'waitUntil: ms', ms);
    const timedOut = atTime(this.#scheduler.now() + ms, this.#scheduler).pipe(
      map(() => ({ leader: false, ok: false })),
    );
    const decided = this.#electionsEnd('waitUntil()', key).pipe(map((leader) => ({ leader, ok: true })));
    return firstValueFrom(race(decided, timedOut));
  }

  /**
   * Stops gracefully: every shard drains as `WriterLease.drain(timeoutMs)`
   * does, then the lease is disposed. Then announce the stop on the store
   * (`store.handOver(name)`): the others call `left(name)` and wake the
   * shards this replica held, which go to the next by rank at once.
   *
   * @example
   * ```ts
   * const pending = await lease.drain(2_000);
   * await store.handOver(lease.name);
   * ```
   * @param timeoutMs How long running units may take to settle, a finite number >= 0.
   * @returns The keys with pending work, as `dispose()` returns them.
   * @throws RangeError when `timeoutMs` is not a finite number >= 0.
   */
  drain(timeoutMs: number): Promise<string[]> {
    assertDuration(OWNER, 'drain: timeoutMs', timeoutMs);
    if (this.#disposed) return Promise.resolve(this.pendingKeys());
    return Promise.all(this.#leases.map((lease) => lease.drain(timeoutMs))).then(() => this.dispose());
  }

  /**
   * Stops for good, completes `leading$`, `events$` and `announcements$`,
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
      this.#disposed = true;
      this.#processing?.unsubscribe();
      for (const lease of this.#leases) lease.dispose();
      this.#watch.unsubscribe();
      this.#leading.complete();
      this.#announcements.complete();
      this.#ownEvents.complete();
    }
    return this.pendingKeys();
  }

  // ---- membership ---------------------------------------------------------

  /**
   * Another replica, `writer`, was seen writing (a status of `key`, on the
   * store's feed or found by reading): it joins the view if it was not in
   * it, and it holds `key`'s shard. This replica's own name changes nothing.
   *
   * @example
   * ```ts
   * store.changes().pipe(filter((c) => c.kind === 'status')).subscribe(({ key, value }) => lease.saw(value.writer, key));
   * ```
   * @param writer The other replica's name.
   * @param key The record it wrote.
   * @throws TypeError when `writer`, or `key` when given, is not a non-empty string.
   */
  saw(writer: string, key?: string): void {
    assertKey(OWNER, 'saw: writer', writer);
    if (key !== undefined) assertKey(OWNER, 'saw: key', key);
    if (writer === this.#name || this.#disposed) return;
    this.#heardAt.set(writer, this.#scheduler.now());
    if (key !== undefined) {
      const shard = shardOf(key, this.#leases.length);
      this.#holders[shard] = writer;
      this.#yieldedElsewhere[shard] = false;
      if (this.#yielding[shard]) this.#showLeading(shard);
      if (this.#preferred[shard] === this.#name) this.#claim();
    }
    if (this.#members.has(writer)) return;
    this.#members.add(writer);
    this.#viewChanged(undefined);
  }

  /**
   * `writer` announced that it started: it joins the view (again, if it was
   * known: a restart), this replica answers on `announcements$` so that the
   * newcomer knows of it, and the shards this replica leads that the
   * newcomer now prefers are yielded.
   *
   * @example
   * ```ts
   * lease.joined('replica-4'); // announcements$: {"here":"replica-1"}, then {"yield":"replica-1","shards":[3,9]}
   * ```
   * @param writer The replica that started.
   * @throws TypeError when `writer` is not a non-empty string.
   */
  joined(writer: string): void {
    assertKey(OWNER, 'joined: writer', writer);
    if (writer === this.#name || this.#disposed) return;
    this.#heardAt.set(writer, this.#scheduler.now());
    this.#members.add(writer);
    this.#announce({ here: this.#name });
    this.#viewChanged(writer);
  }

  /**
   * `writer` stopped writing: for good (it handed over; it leaves the view,
   * and the shards it held are woken), or, with `shards`, only those (it
   * yielded them; those this replica prefers are woken, and the others go on
   * following the yielder, which keeps a shard nobody takes). Waking a shard
   * this replica follows makes its waiting keys due now (rule 17); they run
   * in turn, by rank, so the preferred writer among the others writes first.
   *
   * @example
   * ```ts
   * lease.left('replica-2'); // a graceful stop
   * lease.left('replica-2', [3, 9]); // it yielded shards 3 and 9
   * ```
   * @param writer The replica that stopped writing.
   * @param shards The shards it yielded; all of its shards when absent.
   * @throws TypeError when `writer` is not a non-empty string or `shards` is not an array.
   * @throws RangeError when an element of `shards` is not one of the shards.
   */
  left(writer: string, shards?: readonly number[]): void {
    assertKey(OWNER, 'left: writer', writer);
    if (shards !== undefined) {
      if (!Array.isArray(shards)) {
        throw new TypeError(`${OWNER}: left: shards must be an array of shards, received ${describeValue(shards)}`);
      }
      shards.forEach((shard, i) => this.#assertShard(`left: shards[${i}]`, shard));
    }
    if (writer === this.#name || this.#disposed) return;
    if (shards === undefined && this.#members.delete(writer)) this.#viewChanged(undefined);
    const named = shards === undefined ? undefined : new Set(shards);
    this.#leases.forEach((lease, shard) => {
      const holder = this.#holders[shard];
      // A yield names its shards (one whose writer this replica did not know may well be one of them), and is
      // for the replica that prefers them: the others keep following the yielder, so as not to race for it.
      const preferred = this.#preferred[shard];
      const yielded = named !== undefined && named.has(shard) && (holder ?? writer) === writer;
      // Yielded to a third replica: this one waits its turn there after the taker's and the yielder's.
      if (yielded && preferred !== this.#name && preferred !== writer) this.#yieldedElsewhere[shard] = true;
      const wakes = named === undefined ? holder === writer : yielded && preferred === this.#name;
      if (!wakes) return;
      // A stop: the shard is nobody's. A yield: still the yielder's until this replica writes, a step later.
      this.#holders[shard] = named === undefined ? undefined : writer;
      this.#yieldedHere[shard] = named !== undefined;
      if (lease.state.state === LeaseState.Follower) lease.expire({ wake: true });
    });
  }

  /**
   * Takes a message of the store's handover channel: another replica's
   * announcement (start, answer, yield), or a plain name, which is a writer
   * that stopped (what `StatusWriter.handOver()` sends). This replica's own
   * messages change nothing.
   *
   * @example
   * ```ts
   * store.handovers().subscribe((message) => lease.heard(message));
   * ```
   * @param message What `store.handovers()` emitted.
   * @throws TypeError when `message` is not a non-empty string.
   */
  heard(message: string): void {
    assertKey(OWNER, 'heard: message', message);
    const announcement = readAnnouncement(message);
    if (announcement === undefined) this.left(message);
    else if ('join' in announcement) this.joined(announcement.join);
    else if ('here' in announcement) this.saw(announcement.here);
    else
      this.left(
        announcement.yield,
        announcement.shards.filter((shard) => shard < this.#leases.length),
      );
  }

  // ---- deference ----------------------------------------------------------

  /**
   * The unit as this class runs it: `work` at once when it is this
   * replica's turn, else after `turn × rankStep`, on the lease's clock. A
   * unit let go of while it waits never calls `work` (the timer goes with
   * it). Synchronous work at turn 0 stays synchronous (house rule 5).
   */
  #inTurn(shard: number, work: WorkFunc): WorkFunc {
    const submittedAt = this.#scheduler.now();
    return (context) => {
      const turn = this.#turn(shard);
      if (this.#rankStep === 0) return this.#inFlight.track(work(context));
      if (turn === 0) {
        const at = this.#aliveHolderGrace(shard, submittedAt);
        if (at <= this.#scheduler.now()) return this.#inFlight.track(work(context));
        return atTime(at, this.#scheduler).pipe(concatMap(() => this.#tracked(work, context)));
      }
      const yielded = this.#yielding[shard];
      // The preferred writer waits only as a courtesy (to a holder that yields, to a yielder's units under way),
      // on the clock; the others wait, too, until the store has answered what they asked before their turn
      // came: by then it has had the time to show the write of the replica whose turn came first, if made.
      const ahead = this.#preferred[shard] !== this.#name;
      return atTime(this.#scheduler.now() + turn * this.#rankStep, this.#scheduler).pipe(
        concatMap(() => (ahead ? this.#inFlight.answered$ : of(undefined))),
        concatMap(() => {
          // Another writer took the yielded shard while this unit waited: writing now would race it. The unit
          // lost, as a write refused would have: the lease follows, and the key waits to be written or let go.
          if (yielded && this.#handedOver(shard)) return of(LOST_TO_TAKER);
          // Nobody took the yielded shard within its turn: this replica keeps it, and writes at once from now on.
          if (yielded && this.#yielding[shard]) {
            this.#yielding[shard] = false;
            this.#holders[shard] = this.#name;
            this.#showLeading(shard);
          }
          return this.#tracked(work, context);
        }),
      );
    };
  }

  /** Calls `work`, counted in flight until it settles, as an Observable of what it returns. */
  #tracked(work: WorkFunc, context: Parameters<WorkFunc>[0]): Observable<WorkReturn> {
    const returned = this.#inFlight.track(work(context));
    return isObservable(returned) ? returned : of(returned);
  }

  /**
   * Until when a unit of `shard` that this replica follows, submitted at
   * `submittedAt`, leaves the key to the shard's holder: a step after its
   * submission while the holder is alive (heard within the last lease). The
   * holder writes a key at once when it changes, and its write shows here
   * within a step, which lets go of the waiting unit; a follower whose short
   * backoff (early in a lease) ends just after a change would otherwise race
   * the holder for it. A holder silent for a lease (a failover) is waited
   * for no longer.
   */
  #aliveHolderGrace(shard: number, submittedAt: number): number {
    const holder = this.#holders[shard];
    if (holder === undefined || holder === this.#name) return -Infinity;
    if (this.#leases[shard].state.state !== LeaseState.Follower) return -Infinity;
    const heardAt = this.#heardAt.get(holder) ?? -Infinity;
    return Math.min(submittedAt + this.#rankStep, heardAt + this.#leaseDuration);
  }

  /**
   * How many steps a unit of `shard` waits, read as it starts:
   * - leading: none; a shard being yielded, its rank plus one, so that the
   *   preferred writer, at most one step late, comes first;
   * - following (the other writer's lease ran out, or it was woken): its
   *   rank among the others than the writer it followed; one more when that
   *   writer yielded the shard to this replica; when it yielded it to
   *   another, the number of replicas plus one: after the taker's turn and
   *   the yielder's own;
   * - in the election: its rank, plus one when another writer is known to
   *   hold the shard (a newcomer gives the holder a step to yield first).
   */
  #turn(shard: number): number {
    const { state } = this.#leases[shard].state;
    const order = this.#order(shard);
    if (state === LeaseState.Leader) {
      if (!this.#yielding[shard]) this.#offerBack(shard);
      return this.#yielding[shard] ? 1 + order.indexOf(this.#name) : 0;
    }
    const holder = this.#holders[shard];
    const other = holder !== undefined && holder !== this.#name ? holder : undefined;
    if (other === undefined) return order.indexOf(this.#name);
    const step = this.#yieldedHere[shard] ? 1 : 0;
    if (state === LeaseState.Follower) {
      // Yielded to another: after the taker's turn and the yielder's own (at most 1 + its rank).
      if (this.#yieldedElsewhere[shard]) return order.length + 1;
      return order.filter((member) => member !== other).indexOf(this.#name) + step;
    }
    return order.indexOf(this.#name) + 1;
  }

  /**
   * A shard this replica leads but another replica prefers, won in a race
   * (that replica was slow to write, or not known yet), is offered back to
   * it: yielded as a view change yields, so that the preferred writer,
   * woken by the announcement, writes first. Only to a writer heard from
   * since this replica took the shard (alive: not one whose lease ran out,
   * which is how a failover takes a shard), and at most once per lease per
   * shard: a writer that does not take the offer is not asked at every unit.
   */
  #offerBack(shard: number): void {
    const preferred = this.#preferred[shard];
    const now = this.#scheduler.now();
    if (preferred === this.#name || now - this.#offeredAt[shard] < this.#leaseDuration) return;
    if ((this.#heardAt.get(preferred) ?? -Infinity) <= this.#ledSince[shard]) return;
    this.#yield([shard]);
  }

  /**
   * Another writer writes a shard this replica prefers: it lost the race
   * there (it was slow, or not known yet), and, following, never writes it
   * again, so nobody hears from it to offer the shard back. It says it is
   * here, at most once per lease, while it runs: that is what the holder
   * waits for ({@link #offerBack}). Nothing is sent while the shares are even.
   */
  #claim(): void {
    const now = this.#scheduler.now();
    if (this.#processing === undefined || now - this.#claimedAt < this.#leaseDuration) return;
    this.#claimedAt = now;
    this.#announce({ here: this.#name });
  }

  /**
   * Yields `shards`, led here, to the replicas that prefer them: their next
   * units wait a turn more at once; the yield is announced once the work
   * this replica has on its way has been answered, so that the taker's
   * first write cannot meet one of ours still in flight (a conflict at a
   * join, now and then, when announced at once).
   */
  #yield(shards: readonly number[]): void {
    const now = this.#scheduler.now();
    for (const shard of shards) {
      this.#yielding[shard] = true;
      this.#offeredAt[shard] = now;
    }
    this.#inFlight.answered$.subscribe(() => this.#announce({ yield: this.#name, shards }));
  }

  #order(shard: number): readonly string[] {
    return (this.#orders[shard] ??= preferenceOrder(shard, this.#sortedMembers, this.#preferred[shard]));
  }

  /**
   * The view changed (a name came or went, or `joiner` started again):
   * every shard's preferred writer is computed again, and the shards this
   * replica leads whose preferred writer changed, or is the joiner, are
   * yielded and announced.
   */
  #viewChanged(joiner: string | undefined): void {
    const before = this.#preferred;
    this.#sortedMembers = [...this.#members].sort();
    this.#preferred = assignShards(this.#leases.length, this.#sortedMembers);
    this.#orders.fill(undefined);
    const yielded: number[] = [];
    this.#leases.forEach((lease, shard) => {
      const preferred = this.#preferred[shard];
      if (preferred === this.#name || lease.state.state !== LeaseState.Leader) return;
      if (preferred !== before[shard] || preferred === joiner) yielded.push(shard);
    });
    if (yielded.length > 0) this.#yield(yielded);
  }

  #leadershipChanged(shard: number, leads: boolean): void {
    this.#yieldedHere[shard] = false;
    this.#yieldedElsewhere[shard] = false;
    if (leads) {
      this.#holders[shard] = this.#name;
      this.#ledSince[shard] = this.#scheduler.now();
    } else this.#yielding[shard] = false;
    this.#showLeading(shard);
  }

  /**
   * `leading$` counts a shard while its lease leads it, unless this replica
   * yielded it and has since seen another writer write it: the shard is
   * handed over, although the lease, with no unit there to lose a race,
   * has not noticed yet (a leader's state changes only when its own work
   * fails, rule 5).
   */
  #showLeading(shard: number): void {
    const leads = this.#leases[shard].state.state === LeaseState.Leader && !this.#handedOver(shard);
    const leading = this.#leading.value;
    if (leading.has(shard) === leads) return;
    const next = new Set(leading);
    if (leads) next.add(shard);
    else next.delete(shard);
    this.#leading.next(next);
  }

  /** A shard this replica yielded, and has since seen another writer write: it is theirs now. */
  #handedOver(shard: number): boolean {
    return this.#yielding[shard] && this.#holders[shard] !== this.#name;
  }

  // ---- helpers ------------------------------------------------------------

  #announce(announcement: Announcement): void {
    if (!this.#disposed) this.#announcements.next(JSON.stringify(announcement));
  }

  /**
   * Routes a key stream to the shards' leases, one subscription for all of
   * them. A bad key or an error ends it as an `input-error` event, as
   * `WriterLease` does with its own key streams.
   */
  #routeKeys(type: 'extend' | 'remove', keys: Observable<string>): Subscription {
    const call = `${type}(keys$)`;
    this.#assertNotDisposed(call);
    const handle = new Subscription();
    const fail = (error: unknown) => {
      handle.unsubscribe();
      this.#ownEvents.next({ type: 'input-error', call, error, at: this.#scheduler.now(), lease: this.#name });
    };
    handle.add(
      keys.subscribe({
        next: (key) => {
          if (handle.closed) return;
          try {
            assertKey(OWNER, `${call}: key`, key);
          } catch (error) {
            fail(error);
            return;
          }
          this.#leases[shardOf(key, this.#leases.length)][type](key);
        },
        error: fail,
      }),
    );
    this.#watch.add(handle);
    handle.add(() => this.#watch.remove(handle));
    return handle;
  }

  /** Whether this replica leads, once the election of every shard (or of `key`'s) has ended. */
  #electionsEnd(call: string, key: string | undefined): Observable<boolean> {
    const leases = key === undefined ? this.#leases : [this.#leases[this.shardOf(key)]];
    return combineLatest(leases.map((lease) => lease.state$)).pipe(
      filter((snapshots) => snapshots.every(({ state }) => state !== LeaseState.Election)),
      map((snapshots) => snapshots.some(({ state }) => state === LeaseState.Leader)),
      take(1),
      throwIfEmpty(() => new LeaseDisposedError({ lease: this.#name, call })),
    );
  }

  #assertShard(name: string, shard: unknown): asserts shard is number {
    if (typeof shard !== 'number' || !Number.isInteger(shard) || shard < 0 || shard >= this.#leases.length) {
      throw new RangeError(
        `${OWNER}: ${name} must be an integer from 0 to ${this.#leases.length - 1}, received ${describeValue(shard)}`,
      );
    }
  }

  #assertNotDisposed(call: string): void {
    if (this.#disposed) throw new LeaseDisposedError({ lease: this.#name, call });
  }
}

/** The names of `options.members`, checked. */
function memberList(members: unknown): string[] {
  if (typeof (members as Iterable<unknown> | null | undefined)?.[Symbol.iterator] !== 'function') {
    throw new TypeError(`${OWNER}: options.members must be an iterable of names, received ${describeValue(members)}`);
  }
  const names = [...(members as Iterable<unknown>)];
  names.forEach((member, i) => assertKey(OWNER, `options.members[${i}]`, member));
  return names as string[];
}

/** An announcement of another replica, or undefined for anything else (a plain name: a writer that stopped). */
function readAnnouncement(message: string): Announcement | undefined {
  if (!message.startsWith('{')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return undefined;
  }
  const { join, here, yield: yielded, shards } = (parsed ?? {}) as Record<string, unknown>;
  if (isName(join)) return { join };
  if (isName(here)) return { here };
  if (isName(yielded) && Array.isArray(shards) && shards.every((s) => Number.isInteger(s) && (s as number) >= 0)) {
    return { yield: yielded, shards: shards as number[] };
  }
  return undefined;
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}
