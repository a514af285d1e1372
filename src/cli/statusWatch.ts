import { demoNow } from './demoClock.js';
import { Subject, filter, firstValueFrom, race, timer, type Subscription } from 'rxjs';
import type { RecordStore, StatusValue } from '../stores/store.js';

/** How the wait for convergence ended. */
export interface Convergence {
  readonly converged: boolean;
  /** When the last status needed was seen; when the wait gave up, if it did. */
  readonly at: number;
}

/** A change feed that drops a notification must not hang the wait: the store is re-read this often too. */
const REREAD_INTERVAL_MS = 500;

/**
 * Watches the statuses of a store, to tell when they have caught up with
 * the specs the driver wrote.
 *
 * @example
 * ```ts
 * const watch = new StatusWatch(store);
 * await driver.run();
 * await watch.convergence(driver.generations, 10_000); // { converged: true, at: 1732480002512 }
 * watch.close();
 * ```
 */
export class StatusWatch {
  readonly #store: RecordStore;
  /** The latest status generation seen per key, and when. */
  readonly #seen = new Map<string, { generation: number; version: number; at: number }>();
  /** Each key's status version once converged: any later status change is a write nobody needed. */
  #converged: Map<string, number> | undefined;
  #idleWrites = 0;
  readonly #changed = new Subject<void>();
  readonly #watch: Subscription;
  #lastReread = 0;

  /**
   * @param store The store; its change feed is watched from now on.
   */
  constructor(store: RecordStore) {
    this.#store = store;
    this.#watch = store
      .changes()
      .pipe(filter((change) => change.kind === 'status'))
      .subscribe((change) => {
        const generation = (change.value as StatusValue | undefined)?.generation;
        if (
          this.#converged !== undefined &&
          generation !== undefined &&
          change.version > (this.#converged.get(change.key) ?? -Infinity)
        ) {
          this.#idleWrites++;
        }
        if (generation === undefined) this.#seen.delete(change.key);
        else this.#seen.set(change.key, { generation, version: change.version, at: demoNow() });
        this.#changed.next();
      });
  }

  /**
   * Waits until every key's status generation equals its spec generation,
   * checking on every status change the feed shows, and confirming by
   * reading the store: the demo trusts the store, not its own feed.
   *
   * @param specs The spec generation of every key the driver changed.
   * @param timeoutMs How long to wait at most.
   * @returns Whether it converged, and when.
   */
  async convergence(specs: ReadonlyMap<string, number>, timeoutMs: number): Promise<Convergence> {
    const deadline = demoNow() + timeoutMs;
    for (;;) {
      const seenAt = this.#caughtUpAt(specs);
      if (seenAt !== undefined || this.#rereadDue()) {
        if (await this.#storeCaughtUp(specs)) return { converged: true, at: seenAt ?? demoNow() };
      }
      const left = deadline - demoNow();
      if (left <= 0) {
        // Not converged: writes from now on still happen while no spec changes.
        this.#converged = new Map([...this.#seen].map(([key, { version }]) => [key, version]));
        return { converged: false, at: demoNow() };
      }
      await firstValueFrom(race(this.#changed, timer(Math.min(left, REREAD_INTERVAL_MS))));
    }
  }

  /**
   * Status changes the store showed since convergence, while no spec
   * changed: each one a write nobody needed. Counted from the store, not from
   * the replicas' clocks, so the write that completed convergence is never
   * among them.
   */
  get idleWrites(): number {
    return this.#idleWrites;
  }

  /** Stops watching. */
  close(): void {
    this.#watch.unsubscribe();
    this.#changed.complete();
  }

  #rereadDue(): boolean {
    return demoNow() - this.#lastReread >= REREAD_INTERVAL_MS;
  }

  /** When the feed showed the last status needed; undefined while one is missing. */
  #caughtUpAt(specs: ReadonlyMap<string, number>): number | undefined {
    let at = 0;
    for (const [key, generation] of specs) {
      const seen = this.#seen.get(key);
      if (seen?.generation !== generation) return undefined;
      at = Math.max(at, seen.at);
    }
    return at;
  }

  async #storeCaughtUp(specs: ReadonlyMap<string, number>): Promise<boolean> {
    this.#lastReread = demoNow();
    // A failed read (the server restarting) only means: not known to have converged yet.
    const statuses = await Promise.all(
      [...specs.keys()].map((key) => this.#store.get<StatusValue>('status', key)),
    ).catch(() => undefined);
    if (statuses === undefined) return false;
    const caughtUp = [...specs.values()].every((generation, i) => statuses[i]?.value.generation === generation);
    if (caughtUp)
      this.#converged = new Map([...specs.keys()].map((key, i) => [key, statuses[i]?.version ?? -Infinity]));
    return caughtUp;
  }
}
