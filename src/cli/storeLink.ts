import { Subject, takeUntil, type Observable, type SchedulerLike } from 'rxjs';
import type {
  CallOptions,
  CasOutcome,
  Generational,
  RecordChange,
  RecordKind,
  RecordStore,
  Versioned,
} from '../stores/store.js';

/**
 * One in-process replica's connection to a shared store: it delays every
 * call, standing for the network round trip a real store has, and it can be
 * severed, standing for a process that dies.
 *
 * @example
 * ```ts
 * const link = linkStore(shared, { latency: 1 });
 * await link.store.get('spec', 'key-0'); // answered about 1 ms later
 * link.sever(); // every later call, and every call in flight, never settles
 * ```
 */
export interface StoreLink {
  /** The store as the replica sees it. Closing it leaves the shared store open. */
  readonly store: RecordStore;
  /** Cuts the link at once: calls never settle, the change feed goes silent. */
  sever(): void;
}

/** Options of {@link linkStore}. */
export interface StoreLinkOptions {
  /**
   * Milliseconds before each call reaches the store. The memory store
   * answers within a microtask, so without it a replica's whole unit of work
   * runs before another replica's starts, and replicas never race as they do
   * on a real store.
   * @default 0
   */
  latency?: number;
  /**
   * The clock of the latency: a virtual one (a `TestScheduler`, a test's
   * virtual clock) makes the delays virtual too.
   * @default timers of this process (`setTimeout`)
   */
  scheduler?: SchedulerLike;
}

/**
 * Links a replica to a shared store (see {@link StoreLink}).
 *
 * @example
 * ```ts
 * const links = names.map(() => linkStore(new MemoryStore(), { latency: 1 }));
 * ```
 * @param shared The store every replica shares.
 * @param options The simulated latency.
 * @returns The link.
 */
export function linkStore(shared: RecordStore, options: StoreLinkOptions = {}): StoreLink {
  const { latency = 0, scheduler } = options;
  const delay = (ms: number): Promise<void> =>
    new Promise((resolve) => (scheduler === undefined ? setTimeout(resolve, ms) : scheduler.schedule(resolve, ms)));
  const severed$ = new Subject<void>();
  let severed = false;

  /** A dead process never hears back: neither before the call reaches the store nor after. */
  const call = async <R>(body: () => Promise<R>): Promise<R> => {
    if (latency > 0) await delay(latency);
    if (severed) return never();
    const result = await body();
    return severed ? never() : result;
  };

  const store: RecordStore = {
    url: shared.url,
    versioning: shared.versioning,
    get: <T extends Generational>(
      kind: RecordKind,
      key: string,
      options?: CallOptions,
    ): Promise<Versioned<T> | undefined> => call(() => shared.get<T>(kind, key, options)),
    compareAndSet: <T extends Generational>(
      kind: RecordKind,
      key: string,
      value: T,
      expected: number | null,
      options?: CallOptions,
    ): Promise<CasOutcome> => call(() => shared.compareAndSet(kind, key, value, expected, options)),
    put: <T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number> =>
      call(() => shared.put(kind, key, value)),
    delete: (kind: RecordKind, key: string): Promise<void> => call(() => shared.delete(kind, key)),
    changes: (): Observable<RecordChange> => shared.changes().pipe(takeUntil(severed$)),
    close: () => Promise.resolve(),
  };
  if (shared.list !== undefined) store.list = (options) => call(() => shared.list!(options));
  if (shared.handOver !== undefined && shared.handovers !== undefined) {
    store.handOver = (writer) => call(() => shared.handOver!(writer));
    store.handovers = () => shared.handovers!().pipe(takeUntil(severed$));
  }

  return {
    store,
    sever() {
      if (severed) return;
      severed = true;
      severed$.next();
      severed$.complete();
    },
  };
}

function never<R>(): Promise<R> {
  return new Promise<R>(() => undefined);
}
