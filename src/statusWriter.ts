import { Subject, asyncScheduler, type Observable, type SchedulerLike, type Subscription } from 'rxjs';
import type { ContentionTracker } from './contentionTracker.js';
import { assertFunction, assertKey, describeValue } from './internal/validate.js';
import type { RecordChange, RecordStore, SpecValue, StatusValue } from './stores/store.js';
import { WorkResult, type WorkFunc, type WorkReturn } from './types.js';
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
   * The clock of the `at` field of statuses.
   * @default asyncScheduler
   */
  scheduler?: SchedulerLike;
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
  readonly #events = new Subject<StatusWriterEvent>();
  /** The latest spec generation seen per key, to tell a current status from a stale one. */
  readonly #generations = new Map<string, number>();
  /** The latest status generation seen per key, to notice a status that went back. */
  readonly #statusGenerations = new Map<string, number>();
  /** Keys whose work stood down while contended: they are submitted again when it ends. */
  readonly #stoodDown = new Set<string>();

  /** What every unit did. */
  readonly events$: Observable<StatusWriterEvent> = this.#events.asObservable();

  /**
   * @param options The store, the lease and this replica's name.
   * @throws TypeError when `store`, `lease` or `writer` is missing or of the wrong type.
   */
  constructor(options: StatusWriterOptions) {
    const { store, lease, writer, statusOf = (spec) => spec.value, contention, coordinate = true } = options;
    if (typeof store?.changes !== 'function') {
      throw new TypeError(`${OWNER}: options.store must be a RecordStore, received ${describeValue(store)}`);
    }
    if (typeof lease?.try !== 'function') {
      throw new TypeError(`${OWNER}: options.lease must be a WriterLease, received ${describeValue(lease)}`);
    }
    assertKey(OWNER, 'options.writer', writer);
    assertFunction(OWNER, 'options.statusOf', statusOf);
    this.#store = store;
    this.#lease = lease;
    this.#writer = writer;
    this.#statusOf = statusOf;
    this.#contention = contention;
    this.#coordinate = coordinate;
    this.#scheduler = options.scheduler ?? asyncScheduler;
  }

  /** This replica's name, as written into statuses. */
  get writer(): string {
    return this.#writer;
  }

  /**
   * Watches the store: spec changes become submissions, other replicas'
   * status writes extend their lease. A key this replica stood down on while
   * it was contended is submitted again once the contention ends, so that the
   * change made meanwhile is not left unwritten.
   *
   * @returns The watch; unsubscribe to stop.
   */
  run(): Subscription {
    const watch = this.#store.changes().subscribe((change) => {
      if (change.kind === 'spec') this.#specChanged(change as RecordChange<SpecValue>);
      else this.#statusChanged(change as RecordChange<StatusValue>);
    });
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
    return watch;
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
    return async () => this.#report(await this.#write(key));
  }

  #specChanged({ key, value }: RecordChange<SpecValue>): void {
    if (value === undefined) {
      this.#generations.delete(key);
      this.#contention?.clear(key);
    } else {
      this.#generations.set(key, value.generation);
    }
    this.sync(key);
  }

  #statusChanged({ key, value }: RecordChange<StatusValue>): void {
    const before = this.#statusGenerations.get(key);
    if (value === undefined) this.#statusGenerations.delete(key);
    else this.#statusGenerations.set(key, value.generation);
    if (before !== undefined && (value?.generation ?? 0) < before && this.#generations.has(key)) {
      // The store lost status writes it had acknowledged (a Redis replica promoted before it
      // received them): nobody writes the status again unless someone notices, and no spec
      // change may come to trigger it.
      this.sync(key);
      return;
    }
    if (value === undefined || value.writer === this.#writer || !this.#coordinate) return;
    const generation = this.#generations.get(key);
    if (generation === undefined || value.generation < generation) return;
    this.#lease.extend(key);
  }

  async #write(key: string): Promise<{ event: StatusWriterEvent; returned: WorkReturn }> {
    try {
      let spec = await this.#store.get<SpecValue>('spec', key);
      if (spec === undefined) return { event: { type: 'gone', key }, returned: WorkResult.Release };
      const status = await this.#store.get<StatusValue>('status', key);
      if (status !== undefined && status.value.generation > spec.value.generation) {
        // Ahead of the spec read: the spec changed since (its change is on its way), or the status
        // outlived a record deleted and created again with generations starting over. A second
        // read tells them apart; in the second case the status is rewritten for the new record.
        spec = await this.#store.get<SpecValue>('spec', key);
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
          // Found by reading, maybe long after it was written: renew the other lease as of the write.
          if (writer !== this.#writer && this.#coordinate)
            this.#lease.extend(key, Math.min(status.value.at, this.#scheduler.now()));
          return { event: { type: 'current', key, generation, writer }, returned: WorkResult.None };
        }
      }
      if (this.#contention?.isContended(key)) {
        this.#stoodDown.add(key);
        return { event: { type: 'contended', key }, returned: WorkResult.Release };
      }
      const next: StatusValue = { generation, value: ours, writer: this.#writer, at: this.#scheduler.now() };
      const written = await this.#store.compareAndSet('status', key, next, status?.version ?? null);
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
