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
  /**
   * When the driver made it (`demoNow`: the machine's monotonic clock, ms):
   * its write leaves then, or once the key's previous write is acknowledged.
   */
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
   * Every key changes once, at once (a restart, a config push), as fast as
   * the writes in flight allow; `updates` and `rate` are ignored.
   * @default false
   */
  burst?: boolean;
  /**
   * With `burst`: how many times every key changes once, at once. Between
   * two bursts the driver waits for `betweenBursts`.
   * @default 1
   */
  bursts?: number;
  /**
   * Called after each burst but the last, once its writes are acknowledged:
   * the next burst starts when it resolves (the demo waits there for the
   * statuses to be current, so that each burst lands on a fleet at rest).
   * @default none: the next burst starts at once
   */
  betweenBursts?: () => Promise<void>;
  /**
   * Reads each spec back before changing it again, to count writes the store
   * acknowledged and lost (a failover of a replicated store). A single
   * server loses none, and the read would double the driver's commands.
   * @default true
   */
  checkLost?: boolean;
}

/** How many writes the driver has in flight at most (a burst's, or a steady run's behind a slow store). */
const MAX_IN_FLIGHT = 500;

/**
 * The user's source of truth in the demo: it changes specs at a steady rate,
 * each time on a random key, with the next generation of that key.
 *
 * The n-th change is due `n / rate` seconds after the start. A change is
 * written as soon as it is made, without waiting for the writes before it
 * to be acknowledged (at most {@link MAX_IN_FLIGHT} in flight), except the
 * key's own: a key's changes reach the store one after the other, in order.
 * So the rate does not depend on the store's round trip, the changes due at
 * the same moment leave together (one batch, where the store batches), and
 * a driver that falls behind (a slow store, a full window) catches up
 * without sleeping: the rate holds on average and the count is exact. A
 * store call that fails is tried again (a store failing over), and a change
 * the store acknowledged and then lost is counted in `lostWrites`.
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
  readonly #bursts: number;
  readonly #betweenBursts: (() => Promise<void>) | undefined;
  readonly #checkLost: boolean;
  readonly #generations = new Map<string, number>();
  /** Per key, the highest generation already counted as lost: a loss is counted once. */
  readonly #countedLost = new Map<string, number>();
  readonly #made = new Subject<SpecUpdate>();
  /** Per key, its last write not yet acknowledged: the key's next write waits for it. */
  readonly #writing = new Map<string, Promise<void>>();
  #inFlight = 0;
  /**
   * {@link MAX_IN_FLIGHT}; 1 with `checkLost`: on a replicated store (a failover run) the driver waits
   * for each write's answer before the next change, as it always did there. With 500 in flight, Redis
   * Cluster's failover test saw no status go back at the promotion in 3 runs of 3 (the statuses written
   * during the cut, lost with the master): what it is there to show was never exercised.
   */
  readonly #maxInFlight: number;
  /** Resolves a make() waiting for room among the writes in flight. */
  #roomMade: (() => void) | undefined;
  /** The first write that failed for good: run() rejects with it, once the others are over. */
  #failure: { error: unknown } | undefined;
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
    const { store, keys, updates, rate, random, burst = false, bursts = 1, betweenBursts, checkLost = true } = options;
    this.#burst = burst;
    this.#bursts = bursts;
    this.#betweenBursts = betweenBursts;
    this.#checkLost = checkLost;
    this.#maxInFlight = checkLost ? 1 : MAX_IN_FLIGHT;
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
   * @returns Resolves once every change is written (or `stop()` was called
   *   and the writes in flight are over).
   * @throws The error of a store call still failing after 30 s of retries.
   */
  async run(): Promise<void> {
    if (this.#burst) {
      for (let burst = 0; burst < this.#bursts && this.#going; burst++) {
        if (burst > 0) {
          await Promise.all(this.#writing.values());
          if (!this.#going) break;
          await this.#betweenBursts?.();
        }
        for (const key of this.#keys) {
          if (!this.#going) break;
          await this.#make(key);
        }
      }
    } else {
      const start = demoNow();
      const period = 1000 / this.#rate;
      for (let n = 0; n < this.#updates && this.#going; n++) {
        await this.#sleepUntil(start + n * period);
        if (this.#stopped) break;
        await this.#make(this.#keys[Math.floor(this.#random() * this.#keys.length)]);
      }
    }
    await Promise.all(this.#writing.values());
    if (this.#failure !== undefined) throw this.#failure.error;
    // A single server loses no acknowledged write: nothing to read back.
    for (const key of this.#checkLost ? [...this.#generations.keys()] : []) {
      const stored = await this.#countLost(key);
      // The statuses can only catch up with what the store holds.
      if (stored < (this.#generations.get(key) ?? 0)) this.#generations.set(key, stored);
    }
    this.#made.complete();
  }

  /** Neither stopped nor failed: the run makes more changes. */
  get #going(): boolean {
    return !this.#stopped && this.#failure === undefined;
  }

  /** Makes no more changes; `run()` resolves once the writes in flight are over. */
  stop(): void {
    this.#stopped = true;
    if (this.#sleep !== undefined) {
      clearTimeout(this.#sleep.timer);
      this.#sleep.wake();
    }
  }

  /**
   * Makes the next change of `key` now (its generation, its value, the
   * `updates$` event) and writes it once the key's previous write is
   * acknowledged. Waits only while {@link MAX_IN_FLIGHT} writes are in flight.
   */
  async #make(key: string): Promise<void> {
    while (this.#inFlight >= this.#maxInFlight) await new Promise<void>((resolve) => (this.#roomMade = resolve));
    // Generations keep counting past a lost one: a generation is never reused for another value.
    const generation = (this.#generations.get(key) ?? 0) + 1;
    const value = `${key}@${generation}-${Math.floor(this.#random() * 36 ** 4).toString(36)}`;
    this.#generations.set(key, generation);
    this.#done++;
    this.#made.next({ key, generation, at: demoNow() });
    this.#inFlight++;
    const write = (this.#writing.get(key) ?? Promise.resolve())
      .then(() => this.#write(key, generation, value))
      .catch((error: unknown) => {
        this.#failure ??= { error };
      })
      .finally(() => {
        this.#inFlight--;
        if (this.#writing.get(key) === write) this.#writing.delete(key);
        const roomMade = this.#roomMade;
        this.#roomMade = undefined;
        roomMade?.();
      });
    this.#writing.set(key, write);
  }

  async #write(key: string, generation: number, value: string): Promise<void> {
    if (this.#checkLost && generation > 1) await this.#countLost(key, generation - 1);
    await this.#untilAcknowledged(() => this.#store.put<SpecValue>('spec', key, { generation, value }));
  }

  /**
   * Reads the spec of `key` and counts the acknowledged generations above
   * it, up to `written`, as lost. The driver is the only writer of specs and
   * writes a key's changes one at a time, so nothing it wrote of that key
   * can be in flight during the read.
   *
   * @param key The record.
   * @param written The last generation of `key` written and acknowledged.
   * @returns The generation the store holds (0: none).
   */
  async #countLost(key: string, written = this.#generations.get(key) ?? 0): Promise<number> {
    const stored =
      (await this.#untilAcknowledged(() => this.#store.get<SpecValue>('spec', key)))?.value.generation ?? 0;
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

  /**
   * Waits until `due`; when it has passed (the driver is late), until the
   * next turn all the same: each change of a steady run is made in a turn of
   * its own, as separate changes come, so that the store sends its write
   * alone rather than in one batch with the next ones (on etcd a plain
   * `Put`, which the bench counts as the driver's).
   */
  #sleepUntil(due: number): Promise<void> {
    const ms = due - demoNow();
    if (ms <= 0) return new Promise<void>((resolve) => setImmediate(resolve));
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        this.#sleep = undefined;
        resolve();
      };
      this.#sleep = { timer: setTimeout(wake, ms), wake };
    });
  }
}
