import { Observable, type SchedulerLike, type Subscription } from 'rxjs';
import type { CasOutcome, Generational, RecordChange, RecordKind, RecordStore, Versioned } from '../../src';

/**
 * Faults one replica's link to the shared store can inject. Every rate is a
 * probability in [0, 1], drawn per call (or per change) from the link's
 * seeded random; all of them apply only while the link's faults are on.
 */
export interface FaultOptions {
  /** A call rejects before it reaches the store (nothing happens there). */
  errorRate?: number;
  /** A compare-and-set that succeeded on the store rejects to its caller: the acknowledgement is lost. */
  lostAckRate?: number;
  /** A compare-and-set waits `minMs`..`maxMs` of virtual time in transit, then reaches the store. */
  slowWrites?: { rate: number; minMs: number; maxMs: number };
  /**
   * The change feed loses, repeats, and delays changes (random delays
   * reorder them); `kinds` limits the faults to specs or statuses.
   */
  watch?: { dropRate: number; duplicateRate: number; delayRate: number; maxDelayMs: number; kinds?: RecordKind[] };
}

/**
 * One compare-and-set as the store saw it: what the caller expected, the
 * version the record had at that very moment, and what came of it.
 */
export interface CasRecord {
  /** Virtual time at which it reached the store. */
  readonly at: number;
  readonly replica: string;
  readonly kind: RecordKind;
  readonly key: string;
  readonly expected: number | null;
  /** The record's version when the compare-and-set reached the store (null: absent). */
  readonly current: number | null;
  readonly ok: boolean;
  /** The value it wrote (or tried to). */
  readonly value: Generational;
  /** The record it would replace, as it was then. */
  readonly previous: Generational | undefined;
  /** False when the caller was told it failed (a lost acknowledgement). */
  readonly acknowledged: boolean;
}

/** Which call a pause follows: `call` is `get`, `compareAndSet`, `put` or `delete`. */
export type PauseWhen = (call: string, kind: RecordKind, key: string) => boolean;

/** How many faults a link injected, by kind. */
export interface FaultCounts {
  errors: number;
  lostAcks: number;
  slowWrites: number;
  /** Slow compare-and-sets that reached the store after the record had moved on: refused. */
  slowStale: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  /** Changes delivered after a change the store sent later. */
  reordered: number;
  /** Calls or changes held by a pause. */
  heldByPause: number;
}

/** Options of a {@link FaultyLink}. */
export interface FaultyLinkOptions {
  /** The store every replica shares: a `MemoryStore` (see the note on `compareAndSet`). */
  shared: RecordStore;
  /** The replica's name, recorded with each compare-and-set. */
  replica: string;
  scheduler: SchedulerLike;
  /** Seeded: the same seed injects the same faults. */
  random: () => number;
  /** Where every compare-and-set is recorded; links of one run share it. */
  log: CasRecord[];
  faults?: FaultOptions;
  /** Virtual ms each call spends in transit before it reaches the store, drawn in [minMs, maxMs]. */
  latency?: { minMs: number; maxMs: number };
}

/**
 * One replica's link to the shared memory store, in virtual time, with
 * faults to inject: errors, lost acknowledgements, slow writes, a faulty
 * change feed, and pauses (the replica hears nothing and sends nothing for a
 * while, then gets everything at once).
 *
 * Every compare-and-set is recorded with the version the record had when
 * it reached the store, so that a test can check the fencing token: no
 * accepted write was made on a stale version.
 *
 * @example
 * ```ts
 * const link = new FaultyLink({ shared, replica: 'r1', scheduler, random: seededRandom(1), log, faults: { errorRate: 0.2 } });
 * link.faultsOn = true;
 * await link.store.get('spec', 'key-0'); // rejects one time in five
 * ```
 */
export class FaultyLink {
  readonly store: RecordStore;
  readonly counts: FaultCounts = {
    errors: 0,
    lostAcks: 0,
    slowWrites: 0,
    slowStale: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    reordered: 0,
    heldByPause: 0,
  };
  /** Every pause, from when to when (`to` undefined while it lasts). */
  readonly pauses: { from: number; to?: number }[] = [];
  /** Every change the feed lost, as `kind:key:version`. */
  readonly droppedChanges = new Set<string>();
  /** Faults apply only while this is true; latency and pauses always do. */
  faultsOn = false;

  readonly #shared: RecordStore;
  readonly #replica: string;
  readonly #scheduler: SchedulerLike;
  readonly #random: () => number;
  readonly #log: CasRecord[];
  readonly #faults: FaultOptions;
  readonly #latency: { minMs: number; maxMs: number } | undefined;

  #lastFaultAt = -Infinity;
  #paused = false;
  /** What a pause holds, in arrival order: calls not sent, answers not heard, changes not seen. */
  #held: (() => void)[] = [];
  #pauseWhen: { when: PauseWhen; forMs: number; then?: () => void } | undefined;
  #pausedAt: number | undefined;

  constructor(options: FaultyLinkOptions) {
    this.#shared = options.shared;
    this.#replica = options.replica;
    this.#scheduler = options.scheduler;
    this.#random = options.random;
    this.#log = options.log;
    this.#faults = options.faults ?? {};
    this.#latency = options.latency;
    const shared = this.#shared;
    this.store = {
      url: shared.url,
      get: <T extends Generational>(kind: RecordKind, key: string) =>
        this.#call<Versioned<T> | undefined>('get', kind, key, () => shared.get<T>(kind, key)),
      compareAndSet: <T extends Generational>(kind: RecordKind, key: string, value: T, expected: number | null) =>
        this.#compareAndSet(kind, key, value, expected),
      put: (kind, key, value) => this.#call('put', kind, key, () => shared.put(kind, key, value)),
      delete: (kind, key) => this.#call('delete', kind, key, () => shared.delete(kind, key)),
      changes: () => this.#changes(),
      close: () => Promise.resolve(),
      // A handover is a message of the feed: held by a pause like the changes, not dropped or delayed.
      handOver: (writer) => shared.handOver!(writer),
      handovers: () =>
        new Observable<string>((subscriber) =>
          shared.handovers!().subscribe((writer) => this.#hear(() => subscriber.next(writer))),
        ),
    };
  }

  /** The virtual time of the last fault that took effect (-Infinity: none yet). */
  get lastFaultAt(): number {
    return this.#lastFaultAt;
  }

  /** When the current pause began; undefined while not paused. */
  get pausedAt(): number | undefined {
    return this.#pausedAt;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Pauses the link for `forMs` right after the next call matching `when`
   * reaches the store: its answer, and everything after it, waits. A replica
   * paused between reading a status and writing it is the classic stale
   * writer. `then` runs as the pause begins.
   */
  pauseAfter(when: PauseWhen, forMs: number, then?: () => void): void {
    this.#pauseWhen = { when, forMs, then };
  }

  /** Pauses the link now. */
  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#pausedAt = this.#scheduler.now();
    this.pauses.push({ from: this.#pausedAt });
    this.#noteFault();
  }

  /** Delivers what the pause held, in order: answers and changes; held calls go out now. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#pausedAt = undefined;
    this.pauses[this.pauses.length - 1].to = this.#scheduler.now();
    this.#noteFault();
    for (const release of this.#held.splice(0)) release();
  }

  // ---- calls --------------------------------------------------------------

  async #call<R>(call: string, kind: RecordKind, key: string, body: () => Promise<R>): Promise<R> {
    await this.#transit();
    if (this.#faultsOn() && this.#draw(this.#faults.errorRate)) {
      this.counts.errors++;
      this.#noteFault();
      throw new Error(`injected: ${call} ${kind} ${key} failed on the way to the store`);
    }
    const result = body();
    this.#maybePause(call, kind, key);
    const value = await result;
    await this.#whilePaused();
    return value;
  }

  /**
   * The memory store runs a call's body synchronously when it is called, so
   * a `get` called just before the compare-and-set, in the same synchronous
   * step, reads the record exactly as the compare-and-set finds it: nothing
   * can run in between.
   */
  async #compareAndSet<T extends Generational>(
    kind: RecordKind,
    key: string,
    value: T,
    expected: number | null,
  ): Promise<CasOutcome> {
    await this.#transit();
    const faulty = this.#faultsOn();
    if (faulty && this.#draw(this.#faults.errorRate)) {
      this.counts.errors++;
      this.#noteFault();
      throw new Error(`injected: compareAndSet ${kind} ${key} failed on the way to the store`);
    }
    const slow = this.#faults.slowWrites;
    let wasSlow = false;
    if (faulty && slow !== undefined && this.#draw(slow.rate)) {
      wasSlow = true;
      this.counts.slowWrites++;
      await this.#delay(slow.minMs + this.#random() * (slow.maxMs - slow.minMs));
      this.#noteFault();
    }
    const seen = this.#shared.get<Generational>(kind, key);
    const outcome = this.#shared.compareAndSet(kind, key, value, expected);
    this.#maybePause('compareAndSet', kind, key);
    const at = this.#scheduler.now();
    const [before, result] = await Promise.all([seen, outcome]);
    const lostAck = result.ok && this.#faultsOn() && this.#draw(this.#faults.lostAckRate);
    this.#log.push({
      at,
      replica: this.#replica,
      kind,
      key,
      expected,
      current: before?.version ?? null,
      ok: result.ok,
      value,
      previous: before?.value,
      acknowledged: !lostAck,
    });
    if (wasSlow && !result.ok) this.counts.slowStale++;
    await this.#whilePaused();
    if (lostAck) {
      this.counts.lostAcks++;
      this.#noteFault();
      throw new Error(`injected: compareAndSet ${kind} ${key} was applied but its acknowledgement was lost`);
    }
    return result;
  }

  /** The way to the store: latency, and a pause holds the call before it is sent. */
  async #transit(): Promise<void> {
    await this.#whilePaused();
    const latency = this.#latency;
    if (latency !== undefined && latency.maxMs > 0) {
      await this.#delay(latency.minMs + this.#random() * (latency.maxMs - latency.minMs));
      await this.#whilePaused();
    }
  }

  #maybePause(call: string, kind: RecordKind, key: string): void {
    const armed = this.#pauseWhen;
    if (armed === undefined || !armed.when(call, kind, key)) return;
    this.#pauseWhen = undefined;
    this.pause();
    this.#scheduler.schedule(() => this.resume(), armed.forMs);
    armed.then?.();
  }

  #whilePaused(): Promise<void> {
    if (!this.#paused) return Promise.resolve();
    this.counts.heldByPause++;
    return new Promise((resolve) => this.#held.push(resolve));
  }

  // ---- change feed ----------------------------------------------------------

  #changes(): Observable<RecordChange> {
    return new Observable<RecordChange>((subscriber) => {
      const timers = new Set<Subscription>();
      let sent = 0;
      let latestDelivered = -1;
      const deliver = (change: RecordChange, seq: number): void => {
        if (seq < latestDelivered) this.counts.reordered++;
        latestDelivered = Math.max(latestDelivered, seq);
        subscriber.next(change);
      };
      const later = (change: RecordChange, seq: number, ms: number): void => {
        const timer = this.#scheduler.schedule(() => {
          timers.delete(timer);
          this.#noteFault();
          this.#hear(() => deliver(change, seq));
        }, ms);
        timers.add(timer);
      };
      const watch = this.#faults.watch;
      const feed = this.#shared.changes().subscribe({
        next: (change) => {
          const seq = sent++;
          if (!this.#faultsOn() || watch === undefined || watch.kinds?.includes(change.kind) === false) {
            this.#hear(() => deliver(change, seq));
            return;
          }
          if (this.#draw(watch.dropRate)) {
            this.counts.dropped++;
            this.droppedChanges.add(`${change.kind}:${change.key}:${change.version}`);
            this.#noteFault();
            return;
          }
          const copies = this.#draw(watch.duplicateRate) ? 2 : 1;
          if (copies === 2) {
            this.counts.duplicated++;
            this.#noteFault();
          }
          for (let copy = 0; copy < copies; copy++) {
            if (this.#draw(watch.delayRate)) {
              this.counts.delayed++;
              later(change, seq, this.#random() * watch.maxDelayMs);
            } else {
              this.#hear(() => deliver(change, seq));
            }
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
      return () => {
        feed.unsubscribe();
        for (const timer of timers) timer.unsubscribe();
      };
    });
  }

  /** A change reaches the replica now, or when the pause ends. */
  #hear(deliver: () => void): void {
    if (!this.#paused) {
      deliver();
      return;
    }
    this.counts.heldByPause++;
    this.#held.push(deliver);
  }

  // ---- helpers --------------------------------------------------------------

  #faultsOn(): boolean {
    return this.faultsOn;
  }

  #draw(rate: number | undefined): boolean {
    return rate !== undefined && rate > 0 && this.#random() < rate;
  }

  #delay(ms: number): Promise<void> {
    return new Promise((resolve) => this.#scheduler.schedule(() => resolve(), ms));
  }

  #noteFault(): void {
    this.#lastFaultAt = Math.max(this.#lastFaultAt, this.#scheduler.now());
  }
}
