import { demoNow } from './demoClock.js';
import { Subject, type Observable } from 'rxjs';
import type { RecordStore, SpecValue } from '../stores/store.js';

/** One spec change the driver made. */
export interface SpecUpdate {
  readonly key: string;
  readonly generation: number;
  /** When the driver made it (wall clock, ms since the epoch), just before the write. */
  readonly at: number;
}

/**
 * Options of a {@link Driver}.
 *
 * @example
 * ```ts
 * new Driver({ store, keys: ['key-0', 'key-1'], updates: 100, rate: 50, random: seededRandom(1) });
 * ```
 */
export interface DriverOptions {
  /** Where the specs live. */
  store: RecordStore;
  /** The records it changes, picked at random. */
  keys: readonly string[];
  /** How many changes it makes. */
  updates: number;
  /** Changes per second. */
  rate: number;
  /** Picks keys and values: seed it to repeat a run. */
  random: () => number;
}

/**
 * The user's source of truth in the demo: it changes specs at a steady rate,
 * each time on a random key, with the next generation of that key.
 *
 * The n-th change is due `n / rate` seconds after the start; a driver that
 * falls behind (a slow store) catches up without sleeping, so the rate holds
 * on average and the count is exact.
 *
 * @example
 * ```ts
 * const driver = new Driver({ store, keys, updates: 100, rate: 50, random: seededRandom(1) });
 * driver.updates$.subscribe(({ key, generation }) => console.log(key, generation));
 * await driver.run(); // about 2 s
 * // key-6 1
 * // key-0 1
 * // key-6 2 ...
 * ```
 */
export class Driver {
  readonly #store: RecordStore;
  readonly #keys: readonly string[];
  readonly #updates: number;
  readonly #rate: number;
  readonly #random: () => number;
  readonly #generations = new Map<string, number>();
  readonly #made = new Subject<SpecUpdate>();
  #done = 0;
  #stopped = false;
  #sleep: { timer: ReturnType<typeof setTimeout>; wake: () => void } | undefined;

  /** Every change, as it is made. */
  readonly updates$: Observable<SpecUpdate> = this.#made.asObservable();

  /**
   * @param options The store, the keys, how many changes and how fast.
   */
  constructor(options: DriverOptions) {
    const { store, keys, updates, rate, random } = options;
    this.#store = store;
    this.#keys = keys;
    this.#updates = updates;
    this.#rate = rate;
    this.#random = random;
  }

  /** Changes made so far. */
  get done(): number {
    return this.#done;
  }

  /** The latest generation written to each key that was changed. */
  get generations(): ReadonlyMap<string, number> {
    return this.#generations;
  }

  /**
   * Makes the changes, paced at the rate.
   *
   * @returns Resolves once the last change is written (or `stop()` was called).
   */
  async run(): Promise<void> {
    const start = demoNow();
    const period = 1000 / this.#rate;
    for (let n = 0; n < this.#updates && !this.#stopped; n++) {
      await this.#sleepUntil(start + n * period);
      if (this.#stopped) break;
      await this.#change();
    }
    this.#made.complete();
  }

  /** Makes no more changes; `run()` resolves after the write in progress. */
  stop(): void {
    this.#stopped = true;
    if (this.#sleep !== undefined) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.wake();
    }
  }

  async #change(): Promise<void> {
    const key = this.#keys[Math.floor(this.#random() * this.#keys.length)];
    const generation = (this.#generations.get(key) ?? 0) + 1;
    const value = `${key}@${generation}-${Math.floor(this.#random() * 36 ** 4).toString(36)}`;
    this.#generations.set(key, generation);
    this.#done++;
    this.#made.next({ key, generation, at: demoNow() });
    await this.#store.put<SpecValue>('spec', key, { generation, value });
  }

  #sleepUntil(due: number): Promise<void> {
    const ms = due - demoNow();
    if (ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        this.#sleep = undefined;
        resolve();
      };
      this.#sleep = { timer: setTimeout(wake, ms), wake };
    });
  }
}
