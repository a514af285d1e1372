import { Subject, takeUntil } from 'rxjs';
import type { RecordStore } from '../src';

/** One replica's view of the shared store, and the switch that kills it. */
export interface SeverableStore {
  readonly store: RecordStore;
  /** From now on no call settles and no change arrives, calls in flight included: a killed process. */
  sever(): void;
}

/**
 * Wraps the shared memory store for one replica of a macro run. No timer, no
 * latency: calls settle in microtasks, as the memory store's do, so a run
 * stays in virtual time. (The demo's `linkStore` does the same with an
 * optional latency; the bench keeps its own so that its clock never depends
 * on the demo's.)
 *
 * @example
 * ```ts
 * const link = severableStore(shared);
 * link.sever(); // link.store.get(...) never settles
 * ```
 * @param shared The store every replica shares.
 * @returns The replica's view and its switch.
 */
export function severableStore(shared: RecordStore): SeverableStore {
  const severed$ = new Subject<void>();
  let severed = false;
  const never = <R>() => new Promise<R>(() => undefined);
  const call = async <R>(body: () => Promise<R>): Promise<R> => {
    if (severed) return never();
    const result = await body();
    return severed ? never() : result;
  };
  const store: RecordStore = {
    url: shared.url,
    get: (kind, key) => call(() => shared.get(kind, key)),
    compareAndSet: (kind, key, value, expected) => call(() => shared.compareAndSet(kind, key, value, expected)),
    put: (kind, key, value) => call(() => shared.put(kind, key, value)),
    delete: (kind, key) => call(() => shared.delete(kind, key)),
    changes: () => shared.changes().pipe(takeUntil(severed$)),
    close: () => Promise.resolve(),
  };
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
