import { BehaviorSubject, type Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { atTime } from './internal/atTime.js';
import { assertDuration, assertInteger, assertKey, assertScheduler, describeValue } from './internal/validate.js';
import { monotonicScheduler } from './monotonicScheduler.js';

/**
 * Options of a {@link ContentionTracker}.
 *
 * @example
 * ```ts
 * new ContentionTracker({ window: 30_000, threshold: 3, maxContentions: 5 });
 * ```
 */
export interface ContentionTrackerOptions {
  /**
   * Milliseconds in which changes are counted, and how long a contention
   * lasts. `0` turns the tracker off: no two changes are ever within it.
   * @default 60_000
   */
  window?: number;
  /**
   * How many changes by another writer to a value other than ours, within one
   * window, make a key contended. Three lets one or two stray writes pass (a
   * replica one generation behind, a rolling update) while a real fight, where
   * every write of ours is undone, is caught in its third round.
   * @default 3
   */
  threshold?: number;
  /**
   * How many keys may be contended at once. One more, and every key counts as
   * contended for one window: that many fights at once point to a second
   * writer fleet with another configuration, not to a few unlucky keys.
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
 * every key counts as contended because too many are.
 *
 * @example
 * ```ts
 * tracker.contended; // { keys: Set { 'route/a' }, all: false }
 * ```
 */
export interface ContentionSnapshot {
  /** Keys whose own changes made them contended, until their window passes. */
  readonly keys: ReadonlySet<string>;
  /** More than `maxContentions` keys became contended within one window: every key counts as contended. */
  readonly all: boolean;
}

/** A key's record: its counted changes within the window, and when its contention ends. */
interface KeyState {
  /** Times of the counted changes still within the window, oldest first; fewer than `threshold`. */
  changes: number[];
  /** When the key stops being contended; undefined while it is not. */
  contendedUntil: number | undefined;
}

const OWNER = 'ContentionTracker';
const NOTHING_CONTENDED: ContentionSnapshot = Object.freeze({ keys: new Set<string>(), all: false });

/**
 * Tells when another writer keeps changing a record to a value other than
 * ours, so that we stop fighting it: a contended key's work returns
 * `release` with no retry until the window passes.
 *
 * Changes are counted per key in a sliding window; `threshold` of them make
 * the key contended for one window. More than `maxContentions` contended keys
 * at once make every key contended for one window. Every record expires with
 * its window, and one scheduler timer, for the earliest expiry, serves all keys.
 *
 * @example
 * ```ts
 * const tracker = new ContentionTracker({ window: 60_000, threshold: 3 });
 * tracker.contended$.subscribe(({ keys }) => console.log([...keys]));
 * // []
 * for (const value of ['b1', 'b2', 'b3']) tracker.changed('route/a', value, 'a1');
 * // ['route/a']
 * tracker.isContended('route/a'); // true, for the next 60 s
 * ```
 */
export class ContentionTracker {
  readonly #window: number;
  readonly #threshold: number;
  readonly #maxContentions: number;
  readonly #scheduler: SchedulerLike;

  readonly #keys = new Map<string, KeyState>();
  readonly #contendedKeys = new Set<string>();
  /** When every key stops counting as contended; undefined while the cap is not exceeded. */
  #allUntil: number | undefined;
  /** Expiry times with their key, oldest first (see {@link ExpiryQueue}). */
  readonly #expiries = new ExpiryQueue();
  /** The one timer, for the head of `#expiries`. */
  #expiryTimer: Subscription | undefined;

  /** The published snapshot: `contended$` and `contended` read it, `#publish` alone writes it. */
  readonly #state = new BehaviorSubject<ContentionSnapshot>(NOTHING_CONTENDED);
  #stale = false;
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
   * @param options Window, threshold, cap and the clock; see {@link ContentionTrackerOptions}.
   * @throws RangeError when `window` is not a finite number >= 0, `threshold` not an
   *   integer >= 1, or `maxContentions` not an integer >= 0.
   * @throws TypeError when `options` is not an object or `scheduler` is not a scheduler.
   */
  constructor(options: ContentionTrackerOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`${OWNER}: options must be an object, received ${describeValue(options)}`);
    }
    const { window = 60_000, threshold = 3, maxContentions = 5, scheduler = monotonicScheduler } = options;
    assertDuration(OWNER, 'options.window', window);
    assertInteger(OWNER, 'options.threshold', threshold, 1);
    assertInteger(OWNER, 'options.maxContentions', maxContentions, 0);
    assertScheduler(OWNER, 'options.scheduler', scheduler);
    this.#window = window;
    this.#threshold = threshold;
    this.#maxContentions = maxContentions;
    this.#scheduler = scheduler;
  }

  /**
   * The snapshot now. Reading it applies any expiry already due, so it never
   * lags the clock.
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
   * How many keys the tracker holds a record for (changes in the window or a
   * contention). It falls back to 0 once every window has passed.
   *
   * @example
   * ```ts
   * tracker.changed('route/a', 'b1', 'a1');
   * tracker.size; // 1, and 0 again one window later
   * ```
   */
  get size(): number {
    this.#settle();
    return this.#keys.size;
  }

  /**
   * Records that another writer changed `key` to `value` while we want
   * `ours`. A change to our value is agreement and is not counted; nor is any
   * change while the key (or every key) is contended, because we are not
   * writing then, so it is not a fight. Call it once per change you observe.
   *
   * @example
   * ```ts
   * tracker.changed('route/a', 'b1', 'a1'); // counted: 1 of 3
   * tracker.changed('route/a', 'a1', 'a1'); // same as ours: not counted
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
    if (this.#disposed || this.#window === 0 || value === ours) return;
    this.#settle();
    if (this.#allUntil === undefined && !this.#contendedKeys.has(key)) this.#count(key, this.#scheduler.now());
    this.#publish();
    this.#armExpiryTimer();
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
    return this.#allUntil !== undefined || this.#contendedKeys.has(key);
  }

  /**
   * Forgets `key`: its counted changes and its contention. Use it when the
   * fight is known to be over (the record was deleted, the other writer was
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
    this.#keys.delete(key);
    if (this.#contendedKeys.delete(key)) this.#stale = true;
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
    this.#cancelExpiryTimer();
    this.#keys.clear();
    this.#contendedKeys.clear();
    this.#expiries.clear();
    this.#allUntil = undefined;
    this.#state.complete();
  }

  // ---- state --------------------------------------------------------------

  /**
   * Applies every expiry the clock has reached. Each call runs it first, so
   * answers, snapshot and size agree with the clock even when the timer due
   * this very moment has not fired yet.
   */
  #settle(): void {
    this.#expireDue(this.#scheduler.now());
    this.#publish();
  }

  /** Counts one change of `key` at `now`; the key's stale changes are already gone. */
  #count(key: string, now: number): void {
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { changes: [], contendedUntil: undefined };
      this.#keys.set(key, state);
    }
    const expires = now + this.#window;
    this.#expiries.push(expires, key);
    state.changes.push(now);
    if (state.changes.length < this.#threshold) return;

    // The changes that made the contention are spent: when it ends, the count starts again.
    state.changes = [];
    state.contendedUntil = expires;
    this.#contendedKeys.add(key);
    if (this.#contendedKeys.size > this.#maxContentions) this.#allUntil = expires;
    this.#stale = true;
  }

  /** Drops every change, contention and cap whose window has passed at `now`. */
  #expireDue(now: number): void {
    for (let key = this.#expiries.takeDue(now); key !== undefined; key = this.#expiries.takeDue(now)) {
      this.#expireKey(key, now);
    }
    // The cap ends with the change that raised it, whose expiry was just taken.
    if (this.#allUntil !== undefined && this.#allUntil <= now) {
      this.#allUntil = undefined;
      this.#stale = true;
    }
  }

  #expireKey(key: string, now: number): void {
    const state = this.#keys.get(key);
    if (state === undefined) return;
    const { changes } = state;
    while (changes.length > 0 && changes[0] + this.#window <= now) changes.shift();
    if (state.contendedUntil !== undefined && state.contendedUntil <= now) {
      state.contendedUntil = undefined;
      this.#contendedKeys.delete(key);
      this.#stale = true;
    }
    if (changes.length === 0 && state.contendedUntil === undefined) this.#keys.delete(key);
  }

  /** Emits a new snapshot when the contended keys or the cap changed. */
  #publish(): void {
    // A subscriber may call changed() or clear() from inside next(): the loop
    // below sends that snapshot once this one has reached every subscriber, so
    // all of them see the snapshots in the same order.
    if (this.#emitting) return;
    this.#emitting = true;
    try {
      while (this.#stale && !this.#disposed) {
        this.#stale = false;
        this.#state.next(Object.freeze({ keys: new Set(this.#contendedKeys), all: this.#allUntil !== undefined }));
      }
    } finally {
      this.#emitting = false;
    }
  }

  // ---- timer --------------------------------------------------------------

  /** Keeps one timer, for the earliest expiry, while there is one. */
  #armExpiryTimer(): void {
    if (this.#expiryTimer !== undefined || this.#disposed) return;
    const at = this.#expiries.peekTime();
    if (at === undefined) return;
    this.#expiryTimer = atTime(at, this.#scheduler).subscribe(() => {
      this.#expiryTimer = undefined;
      this.#settle();
      this.#armExpiryTimer();
    });
  }

  #cancelExpiryTimer(): void {
    this.#expiryTimer?.unsubscribe();
    this.#expiryTimer = undefined;
  }
}

/**
 * Expiry times with their key, oldest first. Every time pushed is
 * `now + window`, and the clock only moves forward, so times arrive in order
 * and a FIFO is the min-heap here: O(1) both ways. It holds one entry per
 * counted change in the window, so its size is bounded by the rate of
 * changes; an entry whose key was cleared since finds nothing to expire.
 * A wall clock that steps back (NTP correcting the system clock) can hold an entry
 * behind an older, later one: it then expires late by at most the step.
 */
class ExpiryQueue {
  #times: number[] = [];
  #keys: string[] = [];
  #head = 0;

  push(at: number, key: string): void {
    this.#times.push(at);
    this.#keys.push(key);
  }

  peekTime(): number | undefined {
    return this.#head < this.#times.length ? this.#times[this.#head] : undefined;
  }

  /** Takes the oldest key out if it expires at or before `now`. */
  takeDue(now: number): string | undefined {
    if (this.#head >= this.#times.length || this.#times[this.#head] > now) return undefined;
    const key = this.#keys[this.#head++];
    if (this.#head === this.#times.length) {
      this.clear();
    } else if (this.#head > 1024 && this.#head * 2 > this.#times.length) {
      // Drop the consumed front once it is most of the arrays, so memory follows the live entries.
      this.#times = this.#times.slice(this.#head);
      this.#keys = this.#keys.slice(this.#head);
      this.#head = 0;
    }
    return key;
  }

  clear(): void {
    this.#times = [];
    this.#keys = [];
    this.#head = 0;
  }
}

function assertString(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new TypeError(`${OWNER}: ${name} must be a string, received ${describeValue(value)}`);
  }
}
