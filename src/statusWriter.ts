import { Subject, filter, map, share, type Observable, type SchedulerLike, type Subscription } from 'rxjs';
import type { ContentionTracker } from './contentionTracker.js';
import { assertFunction, assertKey, assertScheduler, describeValue } from './internal/validate.js';
import { monotonicScheduler } from './monotonicScheduler.js';
import type { RecordChange, RecordStore, SpecValue, StatusValue } from './stores/store.js';
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
  /** The lease that decides whether this replica writes. */
  lease: WriterLease;
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
  | { readonly type: 'conflict'; readonly key: string; readonly generation: number }
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

const OWNER = 'StatusWriter';

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
  readonly #lease: WriterLease;
  readonly #writer: string;
  readonly #statusOf: (spec: SpecValue) => string;
  readonly #contention: ContentionTracker | undefined;
  readonly #coordinate: boolean;
  readonly #scheduler: SchedulerLike;
  readonly #wallClock: () => number;
  readonly #events = new Subject<StatusWriterEvent>();
  /**
   * The latest spec generation seen per key, to tell a current status from a
   * stale one, and when this replica first saw it, on its own clock.
   */
  readonly #seen = new Map<string, { readonly generation: number; readonly at: number }>();
  /** The latest status generation seen per key, to notice a status that went back. */
  readonly #statusGenerations = new Map<string, { readonly generation: number; readonly version: number }>();
  /** Keys whose work stood down while contended: they are submitted again when it ends. */
  readonly #stoodDown = new Set<string>();
  /** The other writer whose write renewed our lease last: the one this replica follows. */
  #following: string | undefined;
  /** Writers that handed over: their old writes renew nothing, until one is heard writing again. */
  readonly #departed = new Set<string>();
  readonly #handovers = new Subject<HandoverHeard>();
  /** The subscription of `run()`, ended by `handOver()`. */
  #watch: Subscription | undefined;

  /** What every unit did. */
  readonly events$: Observable<StatusWriterEvent> = this.#events.asObservable();
  /** Every handover heard on the store, and whether this replica acted on it. */
  readonly handovers$: Observable<HandoverHeard> = this.#handovers.asObservable();

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
      throw new TypeError(`${OWNER}: options.lease must be a WriterLease, received ${describeValue(lease)}`);
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

  /**
   * Watches the store: spec changes become submissions, other replicas'
   * status writes extend their lease (merged into the lease's inputs), and a
   * handover from the writer this replica follows wakes its keys (rule 17).
   * A key this replica stood down on while it was contended is submitted
   * again once the contention ends, so that the change made meanwhile is not
   * left unwritten; a status the store lost (it went back) is written again.
   *
   * @returns The watch; unsubscribe to stop.
   */
  run(): Subscription {
    const changes$ = this.#store.changes().pipe(share());
    const statuses$ = changes$.pipe(filter((change): change is RecordChange<StatusValue> => change.kind === 'status'));
    // Writes of the current generation by other replicas, merged into the lease's inputs as extend(key).
    const watch = this.#lease.extend(
      statuses$.pipe(
        filter((change) => this.#othersCurrentWrite(change)),
        map(({ key }) => key),
      ),
    );
    watch.add(
      statuses$.subscribe((change) => {
        if (this.#statusWentBack(change)) this.sync(change.key);
      }),
    );
    watch.add(
      changes$
        .pipe(filter((change): change is RecordChange<SpecValue> => change.kind === 'spec'))
        .subscribe((change) => this.#specChanged(change)),
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
    const handovers$ = this.#coordinate ? this.#store.handovers?.() : undefined;
    if (handovers$ !== undefined) watch.add(handovers$.subscribe((writer) => this.#handedOver(writer)));
    this.#watch = watch;
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
   * A writer handed over. Only the one this replica follows matters: its
   * lease counts as run out and the keys waiting for it are due now (rule
   * 17). A handover from another writer, a repeated one, or a late one (this
   * replica follows someone else by then) changes nothing.
   */
  #handedOver(writer: string): void {
    if (writer === this.#writer) return;
    this.#departed.add(writer);
    const followed = writer === this.#following && this.#lease.state.state === LeaseState.Follower;
    if (followed) {
      this.#following = undefined;
      this.#lease.expire({ wake: true });
    }
    this.#handovers.next({ writer, followed });
  }

  /**
   * Submits the work for `key` (for example for records that existed before
   * `run()`).
   *
   * @param key The record.
   */
  sync(key: string): void {
    this.#lease.try(key, this.unit(key));
  }

  /**
   * The unit of work for `key`: read spec and status, and write the status
   * with compare-and-set when it is not current.
   *
   * @param key The record.
   * @returns A unit for `lease.try`.
   */
  unit(key: string): WorkFunc {
    const submittedAt = this.#scheduler.now();
    return async ({ signal }) => this.#report(await this.#write(key, signal, submittedAt));
  }

  #specChanged({ key, value }: RecordChange<SpecValue>): void {
    if (value === undefined) {
      this.#seen.delete(key);
      this.#contention?.clear(key);
    } else if (this.#seen.get(key)?.generation !== value.generation) {
      this.#seen.set(key, { generation: value.generation, at: this.#scheduler.now() });
    }
    this.sync(key);
  }

  /**
   * Another replica's write of the generation this replica knows, heard as
   * it happened: that writer's lease is renewed from now, on our clock.
   */
  #othersCurrentWrite({ key, value }: RecordChange<StatusValue>): boolean {
    if (value === undefined || value.writer === this.#writer || !this.#coordinate) return false;
    // Heard writing after its handover (the feed keeps their order): it is back.
    this.#departed.delete(value.writer);
    const seen = this.#seen.get(key);
    if (seen === undefined || value.generation < seen.generation) return false;
    this.#following = value.writer;
    return true;
  }

  /**
   * Records a status change; true when the status went back a generation, or
   * disappeared, while its spec stands: the store lost status writes it had
   * acknowledged (a Redis replica promoted before it received them). Nobody
   * writes it again unless someone notices, and no spec change may come to
   * trigger it.
   */
  #statusWentBack({ key, value, version }: RecordChange<StatusValue>): boolean {
    const before = this.#statusGenerations.get(key);
    // Versions only grow (a deletion carries the version it had): an older one is a late or repeated
    // delivery of the feed, not the store going back.
    if (before !== undefined && (value === undefined ? version < before.version : version <= before.version)) {
      return false;
    }
    if (value === undefined) this.#statusGenerations.delete(key);
    else this.#statusGenerations.set(key, { generation: value.generation, version });
    return before !== undefined && (value?.generation ?? 0) < before.generation && this.#seen.has(key);
  }

  /**
   * As of when, on this replica's clock, to renew the lease of another writer
   * whose write of `generation` this unit found by reading. The write
   * reflects a spec generation this replica saw at `seen.at`, so it was made
   * then or later, give or take the feed's delay: renewing as of then holds
   * this replica past the other writer's real lease by that delay at most. A
   * generation never seen on the feed is of unknown age: it renews as of when
   * the unit was submitted, so that old writes found one after another hold
   * this replica back for one lease at most, not one per write. The status's
   * own `at` (another machine's wall clock) is never read.
   */
  #observedAt(key: string, generation: number, submittedAt: number): number {
    const seen = this.#seen.get(key);
    const at = seen?.generation === generation ? seen.at : submittedAt;
    return Math.min(at, this.#scheduler.now());
  }

  async #write(
    key: string,
    signal: AbortSignal,
    submittedAt: number,
  ): Promise<{ event: StatusWriterEvent; returned: WorkReturn }> {
    const call = { signal };
    try {
      let spec = await this.#store.get<SpecValue>('spec', key, call);
      if (spec === undefined) return { event: { type: 'gone', key }, returned: WorkResult.Release };
      const status = await this.#store.get<StatusValue>('status', key, call);
      if (status !== undefined && status.value.generation > spec.value.generation) {
        // Ahead of the spec read: the spec changed since (its change is on its way), or the status
        // outlived a record deleted and created again with generations starting over. A second
        // read tells them apart; in the second case the status is rewritten for the new record.
        spec = await this.#store.get<SpecValue>('spec', key, call);
        if (spec === undefined) return { event: { type: 'gone', key }, returned: WorkResult.Release };
      }
      const { generation } = spec.value;
      const ours = this.#statusOf(spec.value);
      if (status !== undefined && status.value.generation >= generation) {
        const { writer, value } = status.value;
        // Only a different value for the same generation is a fight; a newer one is progress.
        if (writer !== this.#writer && value !== ours && status.value.generation === generation) {
          this.#contention?.changed(key, value, ours);
        }
        if (value === ours && status.value.generation === generation) {
          // Found by reading, maybe long after it was written. This extend also lets go of this very
          // unit (its key's work is done by another writer), so what it returns is not applied.
          // A writer that handed over renews nothing: its lease ended when it said so.
          if (writer !== this.#writer && this.#coordinate && !this.#departed.has(writer)) {
            this.#following = writer;
            this.#lease.extend(key, this.#observedAt(key, generation, submittedAt));
          }
          return { event: { type: 'current', key, generation, writer }, returned: WorkResult.None };
        }
      }
      if (this.#contention?.isContended(key)) {
        this.#stoodDown.add(key);
        return { event: { type: 'contended', key }, returned: WorkResult.Release };
      }
      // A unit the lease let go of (timed out, removed, stopped) must not write.
      signal.throwIfAborted();
      const next: StatusValue = { generation, value: ours, writer: this.#writer, at: this.#wallClock() };
      const written = await this.#store.compareAndSet('status', key, next, status?.version ?? null, call);
      if (written.ok) return { event: { type: 'written', key, generation }, returned: WorkResult.Extend };
      return { event: { type: 'conflict', key, generation }, returned: { result: WorkResult.Release, retry: true } };
    } catch (error) {
      return { event: { type: 'error', key, error }, returned: { result: WorkResult.Release, retry: true } };
    }
  }

  #report({ event, returned }: { event: StatusWriterEvent; returned: WorkReturn }): WorkReturn {
    this.#events.next(event);
    if (this.#coordinate) return returned;
    // Uncoordinated: the same work, but the lease never learns who writes.
    const retry = typeof returned === 'object' && returned.retry === true;
    return { result: WorkResult.None, retry };
  }
}
