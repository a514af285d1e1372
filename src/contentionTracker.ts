import { BehaviorSubject, type Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { atTime } from './internal/atTime.js';
import { DueQueue, NOT_QUEUED, type QueueSlot } from './internal/dueQueue.js';
import { assertDuration, assertInteger, assertKey, assertScheduler, describeValue } from './internal/validate.js';
import { monotonicScheduler } from './monotonicScheduler.js';

/**
 * Options of a {@link ContentionTracker}.
 *
 * @example
 * ```ts
 * new ContentionTracker({ window: 60_000, maxContentions: 5 }); // the router's rule
 * new ContentionTracker({ rule: 'window', window: 30_000, threshold: 3 });
 * ```
 */
export interface ContentionTrackerOptions {
  /**
   * What makes a key contended.
   *
   * - `'router'`: the OpenShift router's rule. A key seen for the first time
   *   is a candidate; the first change away from the value last seen or
   *   written makes it contended for one `window`. `written()` sets it back
   *   to candidate. A flush every two windows forgets what has expired and
   *   recounts the contentions for the cap.
   * - `'window'`: `threshold` changes by other writers to a value other than
   *   ours within a sliding `window` make the key contended for one window;
   *   our own writes reset nothing.
   * @default 'router'
   */
  rule?: 'router' | 'window';
  /**
   * How long a contention lasts, in milliseconds. Under the router rule, the
   * flush also runs every two windows, and forgets a candidate three windows
   * after it was first seen; under the window rule, it is also the span in
   * which changes are counted. `0` turns the tracker off.
   * @default 60_000
   */
  window?: number;
  /**
   * Window rule only: how many changes by another writer to a value other
   * than ours, within one window, make a key contended. Three lets one or
   * two stray writes pass (a replica one generation behind, a rolling
   * update) while a real fight, where every write of ours is undone, is
   * caught in its third round. The router rule ignores it.
   * @default 3
   */
  threshold?: number;
  /**
   * The cap. One more contention than this, and every key counts as
   * contended: that many fights at once point to a second writer fleet with
   * another configuration, not to a few unlucky keys.
   *
   * Under the router rule, contentions are counted as they happen (a key
   * becoming contended, or a contended key changed again) and recounted by
   * each flush as the keys still contended; while over the cap, changes are
   * not tracked, and every key is contended until a flush counts no more
   * than this. Under the window rule, it is the number of keys contended at
   * once, and the cap lasts one window.
   * @default 5
   */
  maxContentions?: number;
  /**
   * The clock: every timer and every reading of the time goes through it.
   * Pass a `TestScheduler` (inside `run()`) to drive the tracker in virtual time.
   * @default monotonicScheduler
   */
  scheduler?: SchedulerLike;
}

/**
 * What the tracker says now: the keys contended on their own, and whether
 * every key counts as contended because of the cap.
 *
 * @example
 * ```ts
 * tracker.contended; // { keys: Set { 'route/a' }, all: false }
 * ```
 */
export interface ContentionSnapshot {
  /** Keys contended on their own, until their window passes (or, under the router rule, our write). */
  readonly keys: ReadonlySet<string>;
  /** The cap is exceeded: every key counts as contended. */
  readonly all: boolean;
}

const OWNER = 'ContentionTracker';
const NOTHING_CONTENDED: ContentionSnapshot = Object.freeze({ keys: new Set<string>(), all: false });
const RULES: readonly string[] = ['router', 'window'];

/**
 * Tells when another writer keeps changing a record to a value other than
 * ours, so that we stop fighting it: a contended key's work returns
 * `release` with no retry until the contention ends.
 *
 * By default it follows the OpenShift router's rule (`rule: 'router'`): a
 * key is a candidate when first seen; the first change away from the value
 * last seen or written makes it contended for one window; each of our own
 * successful writes (`written`) sets it back to candidate. A flush every two
 * windows forgets expired records and recounts contentions; more than
 * `maxContentions` of them contend every key until a flush counts fewer.
 * `rule: 'window'` counts changes in a sliding window against a `threshold`
 * instead. One scheduler timer, for the earliest deadline, serves all keys.
 *
 * @example
 * ```ts
 * const tracker = new ContentionTracker({ window: 60_000 });
 * tracker.contended$.subscribe(({ keys }) => console.log([...keys]));
 * // []
 * tracker.changed('route/a', 'b1', 'a1'); // first seen: candidate
 * tracker.written('route/a', 'a1');       // we wrote a1
 * tracker.changed('route/a', 'b1', 'a1'); // undone: contended
 * // ['route/a']
 * tracker.isContended('route/a'); // true, for the next 60 s
 * ```
 */
export class ContentionTracker {
  readonly #window: number;
  readonly #scheduler: SchedulerLike;
  /** The records, and what makes a key contended; the class around it holds the clock, the timer and the snapshot. */
  readonly #rule: Rule;

  /** The one timer, for the rule's earliest deadline. */
  #timer: Subscription | undefined;
  #timerAt = Infinity;

  /** The published snapshot: `contended$` and `contended` read it, `#publish` alone writes it. */
  readonly #state = new BehaviorSubject<ContentionSnapshot>(NOTHING_CONTENDED);
  /** The rule's `version` that the published snapshot shows. */
  #publishedVersion = 0;
  #emitting = false;
  #disposed = false;

  /**
   * The snapshot now, then every change; completes on `dispose()`.
   *
   * @example
   * ```ts
   * tracker.contended$.subscribe(({ keys, all }) => console.log([...keys], all));
   * // [] false
   * ```
   */
  readonly contended$: Observable<ContentionSnapshot> = this.#state.asObservable();

  /**
   * @param options Rule, window, threshold, cap and the clock; see {@link ContentionTrackerOptions}.
   * @throws RangeError when `rule` is neither `'router'` nor `'window'`, `window` is not a
   *   finite number >= 0, `threshold` not an integer >= 1, or `maxContentions` not an integer >= 0.
   * @throws TypeError when `options` is not an object or `scheduler` is not a scheduler.
   */
  constructor(options: ContentionTrackerOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`${OWNER}: options must be an object, received ${describeValue(options)}`);
    }
    const {
      rule = 'router',
      window = 60_000,
      threshold = 3,
      maxContentions = 5,
      scheduler = monotonicScheduler,
    } = options;
    if (!RULES.includes(rule)) {
      throw new RangeError(`${OWNER}: options.rule must be 'router' or 'window', received ${describeValue(rule)}`);
    }
    assertDuration(OWNER, 'options.window', window);
    assertInteger(OWNER, 'options.threshold', threshold, 1);
    assertInteger(OWNER, 'options.maxContentions', maxContentions, 0);
    assertScheduler(OWNER, 'options.scheduler', scheduler);
    this.#window = window;
    this.#scheduler = scheduler;
    this.#rule =
      rule === 'router'
        ? new RouterRule(window, maxContentions, scheduler.now())
        : new WindowRule(window, threshold, maxContentions);
  }

  /**
   * The snapshot now. Reading it applies any deadline already due, so it
   * never lags the clock.
   *
   * @example
   * ```ts
   * tracker.contended; // { keys: Set {}, all: false }
   * ```
   */
  get contended(): ContentionSnapshot {
    if (this.#disposed) return NOTHING_CONTENDED;
    this.#settle();
    return this.#state.value;
  }

  /**
   * How many keys the tracker holds a record for. Under the router rule a
   * record stays until a flush drops it (a contention, at the first flush
   * after its window; a candidate, three windows after it was first seen);
   * under the window rule, until its last change and its contention are out
   * of the window.
   *
   * @example
   * ```ts
   * tracker.changed('route/a', 'b1', 'a1');
   * tracker.size; // 1, and 0 again once the record expires
   * ```
   */
  get size(): number {
    this.#settle();
    return this.#rule.size;
  }

  /**
   * Records that another writer changed `key` to `value` while we want
   * `ours`. Call it once per change you observe, not for your own writes
   * (call `written` for those).
   *
   * Router rule: a key seen for the first time becomes a candidate; a value
   * other than the one last seen or written makes a candidate contended (a
   * contended key's further changes count toward the cap only). A change to
   * `ours` confirms our value as our own write would: it is `written(key, ours)`.
   * Window rule: a change to `ours` is agreement and is not counted; nor is
   * any change while the key (or every key) is contended.
   *
   * @example
   * ```ts
   * tracker.changed('route/a', 'b1', 'a1'); // router: candidate, last seen b1
   * tracker.changed('route/a', 'b1', 'a1'); // the same value again: nothing
   * ```
   * @param key The record.
   * @param value The value the other writer wrote.
   * @param ours The value we want the record to hold.
   * @throws TypeError when `key` is not a non-empty string, or `value` or `ours` not a string.
   */
  changed(key: string, value: string, ours: string): void {
    assertKey(OWNER, 'changed: key', key);
    assertString('changed: value', value);
    assertString('changed: ours', ours);
    if (this.#disposed || this.#window === 0) return;
    this.#rule.changed(key, value, ours, this.#settle());
    this.#publish();
    this.#armTimer();
  }

  /**
   * Our own write of `value` to `key` succeeded: the router's `Clear`. A
   * tracked key goes back to candidate with `value` as the value last
   * written, so the next change away from it by another writer makes it
   * contended; a contention ends at once. A key the tracker holds no record
   * of stays untracked. The window rule ignores it: our writes reset nothing.
   *
   * @example
   * ```ts
   * const ok = await store.compareAndSet('status', key, next, version);
   * if (ok.ok) tracker.written(key, next.value);
   * ```
   * @param key The record.
   * @param value The value we wrote.
   * @throws TypeError when `key` is not a non-empty string, or `value` not a string.
   */
  written(key: string, value: string): void {
    assertKey(OWNER, 'written: key', key);
    assertString('written: value', value);
    if (this.#disposed || this.#window === 0) return;
    this.#settle();
    this.#rule.written(key, value);
    this.#publish();
    this.#armTimer();
  }

  /**
   * Whether work for `key` should stand down now: the key is contended, or
   * every key is. A contention is over the moment its window passes, even if
   * the timer that says so has not fired yet.
   *
   * @example
   * ```ts
   * tracker.isContended('route/a'); // false
   * ```
   * @param key The record.
   * @returns True while `key` (or every key) is contended.
   * @throws TypeError when `key` is not a non-empty string.
   */
  isContended(key: string): boolean {
    assertKey(OWNER, 'isContended: key', key);
    if (this.#disposed) return false;
    this.#settle();
    return this.#rule.isContended(key);
  }

  /**
   * Forgets `key`: its record and its contention. Use it when the fight is
   * known to be over (the record was deleted, the other writer was
   * reconfigured). It does not lift the cap: while every key is contended,
   * `key` still is.
   *
   * @example
   * ```ts
   * tracker.clear('route/a');
   * tracker.isContended('route/a'); // false
   * ```
   * @param key The record.
   * @throws TypeError when `key` is not a non-empty string.
   */
  clear(key: string): void {
    assertKey(OWNER, 'clear: key', key);
    if (this.#disposed) return;
    this.#settle();
    this.#rule.clear(key);
    this.#publish();
  }

  /**
   * Stops the timer, forgets every record and completes `contended$`. Later
   * calls are ignored and `isContended` answers false: a store watch may still
   * deliver a change while the program shuts down, and that must not throw.
   *
   * @example
   * ```ts
   * tracker.dispose();
   * tracker.isContended('route/a'); // false
   * ```
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#cancelTimer();
    this.#rule.reset();
    this.#state.complete();
  }

  // ---- machinery ----------------------------------------------------------

  /**
   * Applies every deadline the clock has reached, and returns the reading.
   * Each call runs it first, so answers, snapshot and size agree with the
   * clock even when the timer due this very moment has not fired yet.
   */
  #settle(): number {
    const now = this.#scheduler.now();
    if (this.#disposed) return now;
    this.#rule.expire(now);
    this.#publish();
    return now;
  }

  /** Emits a new snapshot when the contended keys or the cap changed. */
  #publish(): void {
    // A subscriber may call changed() or written() from inside next(): the loop
    // below sends that snapshot once this one has reached every subscriber, so
    // all of them see the snapshots in the same order.
    if (this.#emitting) return;
    this.#emitting = true;
    try {
      while (this.#rule.version !== this.#publishedVersion && !this.#disposed) {
        this.#publishedVersion = this.#rule.version;
        this.#state.next(Object.freeze({ keys: new Set(this.#rule.contendedKeys), all: this.#rule.all }));
      }
    } finally {
      this.#emitting = false;
    }
  }

  /** Keeps one timer, for the rule's earliest deadline, while there is one. */
  #armTimer(): void {
    if (this.#disposed) return;
    const at = this.#rule.nextDeadline();
    if (at === undefined) {
      this.#cancelTimer();
      return;
    }
    // A timer set earlier than needed only wakes the tracker to set the next one.
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#cancelTimer();
    this.#timerAt = at;
    this.#timer = atTime(at, this.#scheduler).subscribe(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#settle();
      this.#armTimer();
    });
  }

  #cancelTimer(): void {
    this.#timer?.unsubscribe();
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}

/**
 * A rule's records and decisions. Every method that depends on the time
 * takes the clock's reading, so the rule holds no clock and no timer.
 */
interface Rule {
  /** Grows whenever `contendedKeys` or `all` change: the tracker publishes when it moved. */
  readonly version: number;
  readonly contendedKeys: ReadonlySet<string>;
  readonly all: boolean;
  /** Keys with a record. */
  readonly size: number;
  isContended(key: string): boolean;
  changed(key: string, value: string, ours: string, now: number): void;
  written(key: string, value: string): void;
  clear(key: string): void;
  /** Applies, in time order, every deadline at or before `now`. */
  expire(now: number): void;
  /** The earliest deadline still to come; undefined when nothing waits for the clock. */
  nextDeadline(): number | undefined;
  /** Forgets everything. */
  reset(): void;
}

/** A key under the router rule. */
interface RouterRecord extends QueueSlot {
  readonly key: string;
  /** Contended, or a candidate. Stays true after the window passes, until our write or the flush. */
  contended: boolean;
  /** When the key was first seen, or last became contended: its contention and its record age from here. */
  since: number;
  /** The value last seen or written. */
  last: string;
}

/**
 * The OpenShift router's rule (its `SimpleContentionTracker`), with the
 * router's flush on a cadence of two windows counted from `createdAt`.
 */
class RouterRule implements Rule {
  version = 0;
  readonly contendedKeys = new Set<string>();
  readonly #window: number;
  readonly #maxContentions: number;
  readonly #records = new Map<string, RouterRecord>();
  /** Records in their contention, by its end (`since + window`): all pushed in time order, so the FIFO lane. */
  readonly #ends = new DueQueue<RouterRecord>();
  /** Contentions since the last flush, or still in their window then. */
  #contentions = 0;
  /** The last flush (a tick of the cadence, which starts at `createdAt`). */
  #flushedAt: number;

  constructor(window: number, maxContentions: number, createdAt: number) {
    this.#window = window;
    this.#maxContentions = maxContentions;
    this.#flushedAt = createdAt;
  }

  get all(): boolean {
    return this.#contentions > this.#maxContentions;
  }

  get size(): number {
    return this.#records.size;
  }

  isContended(key: string): boolean {
    return this.all || this.contendedKeys.has(key);
  }

  changed(key: string, value: string, ours: string, now: number): void {
    // Our value, written by us or another writer: that confirms it as our own write does. Seen
    // first, it makes the key a candidate holding it, as the router's informer does with our writes.
    if (value === ours && this.#records.has(key)) {
      this.written(key, value);
      return;
    }
    // Over the cap the router stops tracking changes until a flush.
    if (this.all) return;
    const record = this.#records.get(key);
    if (record === undefined) {
      this.#records.set(key, { key, contended: false, since: now, last: value, at: 0, seq: 0, index: NOT_QUEUED });
      return;
    }
    if (record.last === value) return;
    if (!record.contended) {
      record.contended = true;
      record.since = now;
      record.last = value;
      this.#ends.add(record, now + this.#window);
      this.contendedKeys.add(key);
      this.version++;
    }
    // A contended key changed again counts too, but neither extends its contention nor moves its value.
    this.#setContentions(this.#contentions + 1);
  }

  written(key: string, value: string): void {
    const record = this.#records.get(key);
    if (record === undefined) return;
    record.last = value;
    if (!record.contended) return;
    record.contended = false;
    this.#ends.delete(record);
    if (this.contendedKeys.delete(key)) this.version++;
  }

  clear(key: string): void {
    const record = this.#records.get(key);
    if (record !== undefined) this.#forget(record);
  }

  expire(now: number): void {
    if (this.#window === 0) return;
    const cadence = 2 * this.#window;
    for (;;) {
      if (this.#records.size === 0 && this.#contentions === 0) {
        // Nothing for a flush to do: step to the last tick at once, however long the tracker was idle.
        this.#flushedAt += Math.max(0, Math.floor((now - this.#flushedAt) / cadence)) * cadence;
        return;
      }
      const end = this.#ends.peekTime();
      const tick = this.#flushedAt + cadence;
      if (end !== undefined && end <= now && end <= tick) {
        const ended = this.#ends.takeDue(end) as RouterRecord;
        this.contendedKeys.delete(ended.key);
        this.version++;
      } else if (tick <= now) {
        this.#flush(tick);
      } else {
        return;
      }
    }
  }

  nextDeadline(): number | undefined {
    const end = this.#ends.peekTime();
    if (this.#records.size === 0 && this.#contentions === 0) return end;
    const tick = this.#flushedAt + 2 * this.#window;
    return end === undefined ? tick : Math.min(end, tick);
  }

  reset(): void {
    for (const record of this.#records.values()) this.#forget(record);
    this.#contentions = 0;
  }

  /**
   * The router's flush at `tick`: drops contentions whose window has passed
   * and candidates first seen three windows ago, and recounts the
   * contentions as the keys still contended.
   */
  #flush(tick: number): void {
    let contentions = 0;
    for (const record of this.#records.values()) {
      if (record.contended) {
        if (record.since + this.#window <= tick) this.#forget(record);
        else contentions++;
      } else if (record.since + 3 * this.#window <= tick) {
        this.#forget(record);
      }
    }
    this.#flushedAt = tick;
    this.#setContentions(contentions);
  }

  #setContentions(contentions: number): void {
    const wasAll = this.all;
    this.#contentions = contentions;
    if (this.all !== wasAll) this.version++;
  }

  #forget(record: RouterRecord): void {
    this.#records.delete(record.key);
    this.#ends.delete(record);
    if (this.contendedKeys.delete(record.key)) this.version++;
  }
}

/** A key under the window rule. */
interface WindowRecord extends QueueSlot {
  readonly key: string;
  /** Times of the counted changes still within the window, oldest first; fewer than `threshold`. */
  changes: number[];
  /** When the key stops being contended; undefined while it is not. */
  contendedUntil: number | undefined;
}

/** Changes of other writers counted in a sliding window against a threshold. */
class WindowRule implements Rule {
  version = 0;
  readonly contendedKeys = new Set<string>();
  readonly #window: number;
  readonly #threshold: number;
  readonly #maxContentions: number;
  readonly #records = new Map<string, WindowRecord>();
  /** Records by their next expiry: their oldest counted change leaving the window, or their contention ending. */
  readonly #expiries = new DueQueue<WindowRecord>();
  /** When every key stops counting as contended; undefined while the cap is not exceeded. */
  #allUntil: number | undefined;

  constructor(window: number, threshold: number, maxContentions: number) {
    this.#window = window;
    this.#threshold = threshold;
    this.#maxContentions = maxContentions;
  }

  get all(): boolean {
    return this.#allUntil !== undefined;
  }

  get size(): number {
    return this.#records.size;
  }

  isContended(key: string): boolean {
    return this.all || this.contendedKeys.has(key);
  }

  changed(key: string, value: string, ours: string, now: number): void {
    // While contended we are not writing, so their changes are not a fight.
    if (value === ours || this.all || this.contendedKeys.has(key)) return;
    let record = this.#records.get(key);
    if (record === undefined) {
      record = { key, changes: [], contendedUntil: undefined, at: 0, seq: 0, index: NOT_QUEUED };
      this.#records.set(key, record);
    }
    record.changes.push(now);
    if (record.changes.length >= this.#threshold) {
      // The changes that made the contention are spent: when it ends, the count starts again.
      record.changes = [];
      record.contendedUntil = now + this.#window;
      this.contendedKeys.add(key);
      if (this.contendedKeys.size > this.#maxContentions) this.#allUntil = record.contendedUntil;
      this.version++;
    }
    // Already queued for an earlier expiry, the record keeps it, and is queued again from there.
    this.#expiries.add(record, this.#nextExpiry(record) as number);
  }

  written(): void {
    // Our own writes reset nothing under this rule.
  }

  clear(key: string): void {
    const record = this.#records.get(key);
    if (record === undefined) return;
    this.#records.delete(key);
    this.#expiries.delete(record);
    if (this.contendedKeys.delete(key)) this.version++;
  }

  expire(now: number): void {
    for (let record = this.#expiries.takeDue(now); record !== undefined; record = this.#expiries.takeDue(now)) {
      this.#expireRecord(record, now);
    }
    // The cap ends with the contention that raised it.
    if (this.#allUntil !== undefined && this.#allUntil <= now) {
      this.#allUntil = undefined;
      this.version++;
    }
  }

  nextDeadline(): number | undefined {
    const head = this.#expiries.peekTime();
    if (this.#allUntil === undefined) return head;
    return head === undefined ? this.#allUntil : Math.min(head, this.#allUntil);
  }

  reset(): void {
    for (const key of [...this.#records.keys()]) this.clear(key);
    this.#allUntil = undefined;
  }

  #expireRecord(record: WindowRecord, now: number): void {
    const { changes } = record;
    while (changes.length > 0 && changes[0] + this.#window <= now) changes.shift();
    if (record.contendedUntil !== undefined && record.contendedUntil <= now) {
      record.contendedUntil = undefined;
      this.contendedKeys.delete(record.key);
      this.version++;
    }
    const next = this.#nextExpiry(record);
    if (next === undefined) this.#records.delete(record.key);
    else this.#expiries.add(record, next);
  }

  #nextExpiry({ changes, contendedUntil }: WindowRecord): number | undefined {
    const oldest = changes.length > 0 ? changes[0] + this.#window : undefined;
    if (contendedUntil === undefined) return oldest;
    return oldest === undefined ? contendedUntil : Math.min(oldest, contendedUntil);
  }
}

function assertString(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new TypeError(`${OWNER}: ${name} must be a string, received ${describeValue(value)}`);
  }
}
