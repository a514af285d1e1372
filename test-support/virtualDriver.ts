import type { SchedulerLike } from 'rxjs';
import type { RecordStore, SpecValue } from '../src';

/** One spec change, at its virtual time. */
export interface VirtualUpdate {
  readonly key: string;
  readonly generation: number;
  readonly at: number;
}

/** Options of {@link VirtualDriver.burst}. */
export interface BurstOptions {
  /** Changes per second. */
  rate: number;
  /** Asked before the n-th change of the burst (from 0): false ends the burst there. */
  more: (n: number) => boolean;
  /** Runs just before the n-th change is written, at its instant. */
  before?: (n: number) => void;
}

/**
 * The driver of a macro run: spec changes at a fixed rate, in virtual time,
 * each on a key picked by a seeded random, with that key's next generation.
 * The n-th change of a burst is due exactly `n × 1000 / rate` ms after its start.
 *
 * @example
 * ```ts
 * const driver = new VirtualDriver({ store, keys, scheduler, random: seededRandom(1) });
 * driver.burst({ rate: 50, more: (n) => n < 300 });
 * await clock.runUntil(60_000, () => driver.idle);
 * ```
 */
export class VirtualDriver {
  readonly #store: RecordStore;
  readonly #keys: readonly string[];
  readonly #scheduler: SchedulerLike;
  readonly #random: () => number;
  readonly #generations = new Map<string, number>();
  readonly #listeners: ((update: VirtualUpdate) => void)[] = [];
  #bursting = false;
  #made = 0;

  constructor(options: {
    store: RecordStore;
    keys: readonly string[];
    scheduler: SchedulerLike;
    random: () => number;
  }) {
    this.#store = options.store;
    this.#keys = options.keys;
    this.#scheduler = options.scheduler;
    this.#random = options.random;
  }

  /** The latest generation written to each key changed so far. */
  get generations(): ReadonlyMap<string, number> {
    return this.#generations;
  }

  /** Spec changes made so far, every burst included. */
  get made(): number {
    return this.#made;
  }

  /** True when no burst is under way. */
  get idle(): boolean {
    return !this.#bursting;
  }

  /** Calls `listener` with every change, as it is made. */
  onUpdate(listener: (update: VirtualUpdate) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Starts a burst of changes; its first change is due at once.
   *
   * @param options The rate, when to stop, and what to do before each change.
   */
  burst({ rate, more, before }: BurstOptions): void {
    const start = this.#scheduler.now();
    const period = 1000 / rate;
    this.#bursting = true;
    const step = (n: number): void => {
      if (!more(n)) {
        this.#bursting = false;
        return;
      }
      before?.(n);
      this.#change();
      const due = start + (n + 1) * period;
      this.#scheduler.schedule(() => step(n + 1), due - this.#scheduler.now());
    };
    this.#scheduler.schedule(() => step(0), 0);
  }

  #change(): void {
    const key = this.#keys[Math.floor(this.#random() * this.#keys.length)];
    const generation = (this.#generations.get(key) ?? 0) + 1;
    this.#generations.set(key, generation);
    this.#made++;
    const update = { key, generation, at: this.#scheduler.now() };
    for (const listener of this.#listeners) listener(update);
    // The memory store sends the change to every replica before this Promise settles.
    void this.#store.put<SpecValue>('spec', key, { generation, value: `${key}@${generation}` });
  }
}
