import { demoNow } from './demoClock.js';
import { Subject, firstValueFrom, map, race, timer, type Subscription } from 'rxjs';
import type { RecordStore, StatusValue } from '../stores/store.js';

/** How the wait for convergence ended. */
export interface Convergence {
  readonly converged: boolean;
  /** When the last status needed was seen; when the wait gave up, if it did. */
  readonly at: number;
}

/** A change feed that drops a notification must not hang the wait: the store is re-read this often too. */
const REREAD_INTERVAL_MS = 500;

/** Above this many keys, the store is listed rather than read key by key. */
const LIST_FROM_KEYS = 100;

/**
 * Watches the statuses of a store, to tell when they have caught up with
 * the specs the driver wrote.
 *
 * @example
 * ```ts
 * const watch = new StatusWatch(store);
 * await driver.run();
 * await watch.convergence(driver.generations, 10_000); // { converged: true, at: 52934002512 }
 * watch.close();
 * ```
 */
export class StatusWatch {
  readonly #store: RecordStore;
  /** The latest status generation seen per key, its version, and when. */
  readonly #seen = new Map<string, { generation: number; version: number; at: number }>();
  /** Each key's status version once converged: any later status change is a write nobody needed. */
  #converged: Map<string, number> | undefined;
  #idleWrites = 0;
  /** While {@link convergence} waits: the generations it waits for, and the keys whose status is behind. */
  #waiting:
    | { readonly specs: ReadonlyMap<string, number>; readonly behind: Set<string>; at: number; changedAt: number }
    | undefined;
  /** Emits when no key is behind any more. */
  readonly #caughtUp = new Subject<void>();
  readonly #watch: Subscription;

  /**
   * @param store The store; its change feed is watched from now on.
   */
  constructor(store: RecordStore) {
    this.#store = store;
    this.#watch = store.changes().subscribe((change) => {
      // A spec changed after convergence (the next burst): the writes from now on are work, not idle.
      if (change.kind === 'spec') {
        this.#converged = undefined;
        return;
      }
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
      this.#mark(change.key, generation);
    });
  }

  /**
   * Waits until every key's status generation equals its spec generation,
   * as the feed shows them, and confirms it by reading the store: the demo
   * trusts the store, not its own feed. In case the feed dropped a message,
   * the keys still behind are read from the store when the feed has shown
   * no status for {@link REREAD_INTERVAL_MS}.
   *
   * Each status change costs a constant time, whatever the number of keys:
   * a burst of 10,000 changes is watched without slowing the replicas that
   * share the machine.
   *
   * @param specs The spec generation of every key the driver changed.
   * @param timeoutMs How long to wait at most.
   * @returns Whether it converged, and when the last status needed was seen.
   */
  async convergence(specs: ReadonlyMap<string, number>, timeoutMs: number): Promise<Convergence> {
    const deadline = demoNow() + timeoutMs;
    const behind = new Set<string>();
    let at = 0;
    for (const [key, generation] of specs) {
      const seen = this.#seen.get(key);
      if (seen?.generation === generation) at = Math.max(at, seen.at);
      else behind.add(key);
    }
    const waiting = { specs, behind, at, changedAt: demoNow() };
    this.#waiting = waiting;
    try {
      for (;;) {
        if (behind.size === 0) {
          const late = await this.#storeBehind([...specs.keys()]);
          if (late === undefined) {
            // No key is behind: a read that failed (the server restarting) is tried again.
          } else if (late.length === 0) {
            return { converged: true, at: waiting.at };
          } else {
            for (const key of late) behind.add(key);
          }
        }
        const left = deadline - demoNow();
        if (left <= 0) {
          // Not converged: writes from now on still happen while no spec changes.
          this.#converged = new Map([...this.#seen].map(([key, { version }]) => [key, version]));
          return { converged: false, at: demoNow() };
        }
        const rereadDue = await firstValueFrom(
          race(this.#caughtUp.pipe(map(() => false)), timer(Math.min(left, REREAD_INTERVAL_MS)).pipe(map(() => true))),
        );
        // While statuses keep coming, the feed is alive: reading thousands of keys would only slow the replicas.
        if (rereadDue && behind.size > 0 && demoNow() - waiting.changedAt >= REREAD_INTERVAL_MS) {
          const keys = [...behind];
          const late = await this.#storeBehind(keys);
          // Caught up in the store, though the feed did not show it: caught up by now at the latest.
          if (late !== undefined) {
            const stillLate = new Set(late);
            for (const key of keys) if (!stillLate.has(key) && behind.delete(key)) waiting.at = demoNow();
          }
        }
      }
    } finally {
      this.#waiting = undefined;
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
    this.#caughtUp.complete();
  }

  /** A status of `key` seen on the feed: is it the one {@link convergence} waits for? */
  #mark(key: string, generation: number | undefined): void {
    const waiting = this.#waiting;
    const wanted = waiting?.specs.get(key);
    if (waiting === undefined || wanted === undefined) return;
    waiting.changedAt = demoNow();
    if (generation !== wanted) {
      waiting.behind.add(key);
    } else if (waiting.behind.delete(key)) {
      waiting.at = demoNow();
      if (waiting.behind.size === 0) this.#caughtUp.next();
    }
  }

  /**
   * Reads the statuses of `keys` from the store.
   *
   * @returns The keys whose status is not the generation waited for; when
   *   every one is, the status versions are kept to count idle writes by.
   *   Undefined when the read failed (the server restarting): not known yet.
   */
  async #storeBehind(keys: readonly string[]): Promise<string[] | undefined> {
    const specs = this.#waiting?.specs;
    if (specs === undefined) return undefined;
    const statuses = await this.#readStatuses(keys).catch(() => undefined);
    if (statuses === undefined) return undefined;
    const late = keys.filter(
      (key) => (statuses.get(key)?.value as StatusValue | undefined)?.generation !== specs.get(key),
    );
    if (late.length === 0 && keys.length === specs.size) {
      this.#converged = new Map(keys.map((key) => [key, statuses.get(key)?.version ?? -Infinity]));
    }
    return late;
  }

  /**
   * The statuses of `keys` in the store: one `list()` when the store has it
   * and most of its records are wanted (it reads them in batches), else a
   * read per key.
   */
  async #readStatuses(keys: readonly string[]): Promise<Map<string, { value: unknown; version: number }>> {
    if (this.#store.list !== undefined && keys.length > LIST_FROM_KEYS) {
      const wanted = new Set(keys);
      const records = await this.#store.list();
      return new Map(
        records
          .filter(({ kind, key }) => kind === 'status' && wanted.has(key))
          .map(({ key, value, version }) => [key, { value, version }]),
      );
    }
    const read = await Promise.all(keys.map((key) => this.#store.get<StatusValue>('status', key)));
    return new Map(keys.flatMap((key, i) => (read[i] === undefined ? [] : [[key, read[i]] as const])));
  }
}
