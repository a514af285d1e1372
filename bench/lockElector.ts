import type { SchedulerLike, Subscription } from 'rxjs';
import type { RecordStore, StatusValue, Versioned } from '../src';

/**
 * The lock record, kept as a `status` record of the store so that its
 * writes are counted with every other write. Its `generation` is the
 * number of leader transitions (the store wants a numeric generation).
 */
export interface LockRecord {
  readonly generation: number;
  readonly holder: string;
  readonly acquireTime: number;
  readonly renewTime: number;
  readonly leaseDurationMs: number;
}

/**
 * Options of a {@link LockElector}. The defaults are client-go's
 * (`k8s.io/client-go/tools/leaderelection`) as Kubernetes controllers use them.
 */
export interface LockElectorOptions {
  /** Where the lock record lives. */
  store: RecordStore;
  /** The key of the lock record (kind `status`). */
  lockKey: string;
  /** This candidate's identity, written as the holder. */
  identity: string;
  /** The clock of every wait and of the record's times. */
  scheduler: SchedulerLike;
  /** Picks the jitter of the acquire loop: seed it to repeat a run. */
  random: () => number;
  /**
   * Milliseconds a non-leader waits, after it last saw the record change,
   * before it may take the lock.
   * @default 15_000
   */
  leaseDuration?: number;
  /**
   * Milliseconds the leader keeps retrying a failed renewal before it gives up leading.
   * @default 10_000
   */
  renewDeadline?: number;
  /**
   * Milliseconds between two renewals of the leader, and between two acquire attempts.
   * @default 2_000
   */
  retryPeriod?: number;
  /**
   * The acquire loop waits `retryPeriod × (1 + random() × acquireJitter)`
   * between attempts (client-go's `JitterFactor`); renewals are not jittered.
   * @default 1.2
   */
  acquireJitter?: number;
  /** Called once the lock is ours. */
  onStartedLeading: () => void;
  /** Called when a renewal failed for `renewDeadline`. */
  onStoppedLeading: () => void;
}

type Phase = 'acquiring' | 'leading' | 'stopped';

/**
 * A client-go style leader election on one lock record, the alternative the
 * writer lease is measured against: the leader renews the record every
 * `retryPeriod` whether or not there is work; candidates read it every
 * `retryPeriod` (jittered) and take it once it has not changed for
 * `leaseDuration`. Every write is a compare-and-set on the version read.
 *
 * It follows `tryAcquireOrRenew` of client-go: the leader's fast path writes
 * with the version it wrote last, without reading; a candidate counts the
 * lease from when *it observed* the record change, not from the record's
 * `renewTime`, so clocks need not agree.
 *
 * @example
 * ```ts
 * const elector = new LockElector({ store, lockKey: 'lock', identity: 'r1', scheduler, random,
 *   onStartedLeading: () => console.log('leading'), onStoppedLeading: () => console.log('lost') });
 * elector.run();
 * // leading
 * ```
 */
export class LockElector {
  readonly #store: RecordStore;
  readonly #lockKey: string;
  readonly #identity: string;
  readonly #scheduler: SchedulerLike;
  readonly #random: () => number;
  readonly #leaseDuration: number;
  readonly #renewDeadline: number;
  readonly #retryPeriod: number;
  readonly #acquireJitter: number;
  readonly #onStartedLeading: () => void;
  readonly #onStoppedLeading: () => void;

  #phase: Phase = 'stopped';
  /** The record as last read or written, its version, and when we saw it change. */
  #observed: { record: LockRecord; version: number; at: number } | undefined;
  /** When the current run of failed renewals began. */
  #renewFailingSince: number | undefined;
  /** The one timer: the next attempt. */
  #nextAttempt: Subscription | undefined;

  constructor(options: LockElectorOptions) {
    const {
      store,
      lockKey,
      identity,
      scheduler,
      random,
      leaseDuration = 15_000,
      renewDeadline = 10_000,
      retryPeriod = 2_000,
      acquireJitter = 1.2,
      onStartedLeading,
      onStoppedLeading,
    } = options;
    this.#store = store;
    this.#lockKey = lockKey;
    this.#identity = identity;
    this.#scheduler = scheduler;
    this.#random = random;
    this.#leaseDuration = leaseDuration;
    this.#renewDeadline = renewDeadline;
    this.#retryPeriod = retryPeriod;
    this.#acquireJitter = acquireJitter;
    this.#onStartedLeading = onStartedLeading;
    this.#onStoppedLeading = onStoppedLeading;
  }

  /** True while this candidate holds the lock. */
  get leading(): boolean {
    return this.#phase === 'leading';
  }

  /** Starts the acquire loop; its first attempt is at once. */
  run(): void {
    this.#phase = 'acquiring';
    this.#attemptIn(0);
  }

  /** Stops every timer and ignores every answer in flight, with no release of the lock: a killed process. */
  halt(): void {
    this.#phase = 'stopped';
    this.#nextAttempt?.unsubscribe();
    this.#nextAttempt = undefined;
  }

  /**
   * Stops gracefully and gives the lock up, as client-go's `ReleaseOnCancel`
   * does when the leader's context is cancelled: every timer stops, and a
   * leader writes the record with no holder (compare-and-set on the version
   * it wrote last), so that a candidate takes it at its next poll instead of
   * waiting `leaseDuration` out. Not leading, or the record moved on since
   * (someone else holds it), it only stops.
   *
   * @example
   * ```ts
   * await elector.release(); // true: the record now has no holder
   * ```
   * @returns True when the lock was given up.
   */
  async release(): Promise<boolean> {
    const wasLeading = this.leading;
    this.halt();
    const observed = this.#observed;
    if (!wasLeading || observed === undefined || observed.record.holder !== this.#identity) return false;
    const now = this.#scheduler.now();
    // client-go's release record: no holder, a 1 s lease, the transitions count kept.
    const released: LockRecord = {
      generation: observed.record.generation,
      holder: '',
      acquireTime: now,
      renewTime: now,
      leaseDurationMs: 1_000,
    };
    return this.#write(released, observed.version);
  }

  #attemptIn(ms: number): void {
    this.#nextAttempt = this.#scheduler.schedule(() => {
      this.#nextAttempt = undefined;
      void this.#attempt();
    }, ms);
  }

  async #attempt(): Promise<void> {
    const phase = this.#phase;
    const ok = await this.#tryAcquireOrRenew();
    if (this.#phase !== phase) return;
    const now = this.#scheduler.now();
    if (phase === 'acquiring') {
      if (!ok) {
        this.#attemptIn(Math.round(this.#retryPeriod * (1 + this.#random() * this.#acquireJitter)));
        return;
      }
      this.#phase = 'leading';
      this.#renewFailingSince = undefined;
      this.#onStartedLeading();
      // client-go's renew loop starts with an attempt at once.
      if (this.#phase === 'leading') this.#attemptIn(0);
      return;
    }
    if (ok) {
      this.#renewFailingSince = undefined;
    } else {
      this.#renewFailingSince ??= now;
      if (now - this.#renewFailingSince >= this.#renewDeadline) {
        this.#phase = 'stopped';
        this.#onStoppedLeading();
        return;
      }
    }
    this.#attemptIn(this.#retryPeriod);
  }

  /** client-go's `tryAcquireOrRenew`, on the store's compare-and-set. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = this.#scheduler.now();
    const ours = (record: LockRecord) => record.holder === this.#identity;
    const valid = () => this.#observed !== undefined && this.#observed.at + this.#leaseDuration > now;

    // 1. Fast path: the leader writes on the version it wrote last, without reading.
    const observed = this.#observed;
    if (observed !== undefined && ours(observed.record) && valid()) {
      const record = { ...observed.record, renewTime: now };
      if (await this.#write(record, observed.version)) return true;
    }

    // 2. Read the record, or create it.
    let current: Versioned<LockRecord> | undefined;
    try {
      current = await this.#store.get<LockRecord & StatusValue>('status', this.#lockKey);
    } catch {
      return false;
    }
    const fresh: LockRecord = {
      generation: 0,
      holder: this.#identity,
      acquireTime: now,
      renewTime: now,
      leaseDurationMs: this.#leaseDuration,
    };
    if (current === undefined) return this.#write(fresh, null);

    // 3. Someone else holds it and we saw it change less than a lease ago.
    if (this.#observed?.version !== current.version) {
      this.#observed = { record: current.value, version: current.version, at: now };
    }
    if (current.value.holder !== '' && valid() && !ours(current.value)) return false;

    // 4. Renew ours, or take it over.
    const record: LockRecord = ours(current.value)
      ? { ...fresh, acquireTime: current.value.acquireTime, generation: current.value.generation }
      : { ...fresh, generation: current.value.generation + 1 };
    return this.#write(record, current.version);
  }

  async #write(record: LockRecord, expected: number | null): Promise<boolean> {
    try {
      const written = await this.#store.compareAndSet('status', this.#lockKey, record, expected);
      if (!written.ok) return false;
      this.#observed = { record, version: written.version, at: this.#scheduler.now() };
      return true;
    } catch {
      return false;
    }
  }
}
