import { demoNow } from './demoClock.js';
import { Subject, type Observable } from 'rxjs';
import type { RecordStore, SpecValue } from '../stores/store.js';

/** How long the driver keeps trying a store call that fails, and how often. */
const STORE_DEADLINE_MS = 30_000;
const STORE_RETRY_MS = 100;

/** One spec change the driver made. */
export interface SpecUpdate {
  readonly key: string;
  readonly generation: number;
  /** When the driver made it (`demoNow`: the machine's monotonic clock, ms), just before the write. */
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
  /**
   * Every key changes once, at once, each write issued without waiting for
   * the others (a restart, a config push); `updates` and `rate` are ignored.
   * @default false
   */
  burst?: boolean;
  /**
   * Reads each spec back before changing it again, to count writes the store
   * acknowledged and lost (a failover of a replicated store). A single
   * server loses none, and the read would double the driver's commands.
   * @default true
   */
  checkLost?: boolean;
}

/** How many of a burst's writes are in flight at once. */
const BURST_IN_FLIGHT = 500;

/**
 * The user's source of truth in the demo: it changes specs at a steady rate,
 * each time on a random key, with the next generation of that key.
 *
 * The n-th change is due `n / rate` seconds after the start; a driver that
 * falls behind (a slow store) catches up without sleeping, so the rate holds
 * on average and the count is exact. A store call that fails is tried again
 * (a store failing over), and a change the store acknowledged and then lost
 * is counted in `lostWrites`.
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
  readonly #burst: boolean;
  readonly #checkLost: boolean;
  readonly #generations = new Map<string, number>();
  /** Per key, the highest generation already counted as lost: a loss is counted once. */
  readonly #countedLost = new Map<string, number>();
  readonly #made = new Subject<SpecUpdate>();
  #done = 0;
  #lostWrites = 0;
  #stopped = false;
  #sleep: { timer: ReturnType<typeof setTimeout>; wake: () => void } | undefined;

  /** Every change, as it is made. */
  readonly updates$: Observable<SpecUpdate> = this.#made.asObservable();

  /**
   * @param options The store, the keys, how many changes and how fast.
   */
  constructor(options: DriverOptions) {
    const { store, keys, updates, rate, random, burst = false, checkLost = true } = options;
    this.#burst = burst;
    this.#checkLost = checkLost;
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

  /**
   * The generation of each key that was changed: the latest written, or,
   * once `run()` has resolved, the one the store holds when it lost the
   * latest (the statuses converge against the store).
   */
  get generations(): ReadonlyMap<string, number> {
    return this.#generations;
  }

  /**
   * Spec changes the store acknowledged and then lost (a Redis failover:
   * the promoted replica had not received them). Checked before each change
   * of a key, and for every key once the last change is made.
   */
  get lostWrites(): number {
    return this.#lostWrites;
  }

  /**
   * Makes the changes, paced at the rate.
   *
   * @returns Resolves once the last change is written (or `stop()` was called).
   */
  async run(): Promise<void> {
    if (this.#burst) {
      const keys = this.#keys;
      let next = 0;
      const writeNext = async (): Promise<void> => {
        while (next < keys.length && !this.#stopped) await this.#change(keys[next++]);
      };
      await Promise.all(Array.from({ length: Math.min(BURST_IN_FLIGHT, keys.length) }, writeNext));
    } else {
      const start = demoNow();
      const period = 1000 / this.#rate;
      for (let n = 0; n < this.#updates && !this.#stopped; n++) {
        await this.#sleepUntil(start + n * period);
        if (this.#stopped) break;
        await this.#change(this.#keys[Math.floor(this.#random() * this.#keys.length)]);
      }
    }
    // A single server loses no acknowledged write: nothing to read back.
    for (const key of this.#checkLost ? [...this.#generations.keys()] : []) {
      const stored = await this.#countLost(key);
      // The statuses can only catch up with what the store holds.
      if (stored < (this.#generations.get(key) ?? 0)) this.#generations.set(key, stored);
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

  async #change(key: string): Promise<void> {
    if (this.#checkLost && this.#generations.has(key)) await this.#countLost(key);
    // Generations keep counting past a lost one: a generation is never reused for another value.
    const generation = (this.#generations.get(key) ?? 0) + 1;
    const value = `${key}@${generation}-${Math.floor(this.#random() * 36 ** 4).toString(36)}`;
    this.#generations.set(key, generation);
    this.#done++;
    this.#made.next({ key, generation, at: demoNow() });
    await this.#untilAcknowledged(() => this.#store.put<SpecValue>('spec', key, { generation, value }));
  }

  /**
   * Reads the spec of `key` and counts the acknowledged generations above
   * it as lost. The driver is the only writer of specs and writes one change
   * at a time, so nothing it wrote can be in flight during the read.
   *
   * @returns The generation the store holds (0: none).
   */
  async #countLost(key: string): Promise<number> {
    const stored =
      (await this.#untilAcknowledged(() => this.#store.get<SpecValue>('spec', key)))?.value.generation ?? 0;
    const written = this.#generations.get(key) ?? 0;
    const counted = this.#countedLost.get(key) ?? 0;
    if (stored < written) {
      this.#lostWrites += written - Math.max(stored, counted);
      this.#countedLost.set(key, written);
    }
    return stored;
  }

  /**
   * A store failing over (etcd electing a leader, Sentinel promoting a
   * replica) refuses calls for a few seconds: the driver tries again rather
   * than end the run, and gives up after {@link STORE_DEADLINE_MS}.
   */
  async #untilAcknowledged<R>(call: () => Promise<R>): Promise<R> {
    const deadline = demoNow() + STORE_DEADLINE_MS;
    for (;;) {
      try {
        return await call();
      } catch (error) {
        if (demoNow() > deadline || this.#stopped) throw error;
        await new Promise((resolve) => setTimeout(resolve, STORE_RETRY_MS));
      }
    }
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
