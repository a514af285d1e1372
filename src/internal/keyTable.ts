import { DueQueue, NOT_QUEUED, type QueueSlot } from './dueQueue.js';
import type { RunningUnit, Submission } from './runningUnit.js';

/**
 * Everything the lease holds for one key, and its place in the due queue.
 * It lives while the key has pending work, is queued, or runs, and until
 * the end of the pass in which it went idle ({@link KeyTable.deferForgetting}).
 */
export interface KeyEntry extends QueueSlot {
  readonly key: string;
  /** The latest submission not yet finished: what runs when the key comes due. */
  pending: Submission | undefined;
  /** The unit running for the key, if any: the pending submission, or one it replaced. */
  running: RunningUnit<KeyEntry> | undefined;
  /**
   * When the key came due while its unit ran. It is queued again at that
   * time once the unit ends, so it keeps its place among the keys that came
   * due after it.
   */
  dueWhileRunning: number | undefined;
}

/**
 * The lease's keys: one entry per key that has pending work, is queued or
 * runs (or went idle in a pass not yet ended: `get()` may return such an
 * entry, with nothing pending or running); the due queue over them; and the
 * counts that make `size` and the worker limit O(1). It keeps the bookkeeping consistent; when a key
 * is due, what a result does and whether a unit runs are the lease's (and its rules') to decide,
 * but for one: {@link KeyTable.requeueStopped} makes a stopped unit's own submission due at once
 * (rule 10).
 */
export class KeyTable {
  readonly #entries = new Map<string, KeyEntry>();
  readonly #due = new DueQueue<KeyEntry>();
  #pendingCount = 0;
  #runningCount = 0;
  /**
   * Entries that went idle (nothing pending, running or queued) while
   * forgetting is deferred ({@link deferForgetting}); undefined otherwise.
   * An entry that got work again and went idle again is here twice: the
   * second delete finds nothing.
   */
  #idle: KeyEntry[] | undefined;

  /** Keys with pending work. */
  get pendingCount(): number {
    return this.#pendingCount;
  }

  /** Units running. */
  get runningCount(): number {
    return this.#runningCount;
  }

  /** The due time of the earliest queued key; undefined when none is queued. */
  peekDue(): number | undefined {
    return this.#due.peekTime();
  }

  /** How many times a key was queued so far, for {@link takeDue}'s `queuedBefore`. */
  get arrivals(): number {
    return this.#due.arrivals;
  }

  /** The earliest key due by `now` that was queued before arrival number `queuedBefore`, taken off the queue. */
  takeDue(now: number, queuedBefore: number): KeyEntry | undefined {
    return this.#due.takeDue(now, queuedBefore);
  }

  /** Entries held, idle ones not yet forgotten included (for tests). */
  get entryCount(): number {
    return this.#entries.size;
  }

  /**
   * From now until {@link forgetIdle}, entries that go idle stay in the
   * table, to be forgotten together. A pass over many due keys forgets them
   * at its end: when no key holds anything any more, that is one
   * `Map.clear()` instead of a `Map.delete()` per key (the delete dominated
   * the cost of a synchronous unit). The table never holds more entries
   * than it did when the deferral began plus the keys submitted meanwhile.
   */
  deferForgetting(): void {
    this.#idle ??= [];
  }

  /** Forgets the entries that went idle since {@link deferForgetting}, and deletes from now on. */
  forgetIdle(): void {
    const idle = this.#idle;
    this.#idle = undefined;
    if (idle === undefined || idle.length === 0) return;
    if (this.#pendingCount === 0 && this.#runningCount === 0 && this.#due.size === 0) this.#entries.clear();
    else for (const entry of idle) this.#forgetIfIdle(entry);
  }

  get(key: string): KeyEntry | undefined {
    return this.#entries.get(key);
  }

  /** The keys with pending work, in the order they were first submitted. */
  pendingKeys(): string[] {
    const keys: string[] = [];
    for (const { key, pending } of this.#entries.values()) if (pending !== undefined) keys.push(key);
    return keys;
  }

  /** Makes `submission` the pending work of `key` and queues the key at `due`; returns what it replaced. */
  submit(key: string, submission: Submission, due: number): Submission | undefined {
    const entry = this.#entry(key);
    const previous = entry.pending;
    entry.pending = submission;
    if (previous === undefined) this.#pendingCount++;
    this.#due.add(entry, due);
    return previous;
  }

  /** Queues the key at `at`, or keeps its earlier due time. */
  queue(entry: KeyEntry, at: number): void {
    this.#due.add(entry, at);
  }

  /** Forgets the pending work of `entry` (it leaves the queue); returns it. */
  forgetPending(entry: KeyEntry): Submission | undefined {
    const { pending } = entry;
    if (pending === undefined) return undefined;
    entry.pending = undefined;
    entry.dueWhileRunning = undefined;
    this.#pendingCount--;
    this.#due.delete(entry);
    this.#forgetIfIdle(entry);
    return pending;
  }

  /** `unit` runs for the key. */
  markRunning(entry: KeyEntry, unit: RunningUnit<KeyEntry>): void {
    entry.running = unit;
    this.#runningCount++;
  }

  /**
   * The key's unit is over (settled or let go of). With `finished`, the
   * submission it ran is finished: forgotten unless a newer one replaced it
   * meanwhile (rule 3). A key that came due while the unit ran is queued
   * again at that time.
   */
  endRun(entry: KeyEntry, finished?: Submission): void {
    entry.running = undefined;
    this.#runningCount--;
    if (finished !== undefined && entry.pending === finished) {
      entry.pending = undefined;
      this.#pendingCount--;
    }
    if (entry.dueWhileRunning !== undefined) {
      if (entry.pending !== undefined) this.#due.add(entry, entry.dueWhileRunning);
      entry.dueWhileRunning = undefined;
    }
    this.#forgetIfIdle(entry);
  }

  /** Rule 17: every queued key due later than `at` is due at `at`, keeping its order among them. */
  wakeWaiting(at: number): void {
    const waiting = [...this.#entries.values()].filter((entry) => this.#due.has(entry) && entry.at > at);
    waiting.sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const entry of waiting) this.#due.add(entry, at);
  }

  /** A due key whose unit still runs: it is queued again when the unit ends. */
  requeueAfterRun(entry: KeyEntry): void {
    entry.dueWhileRunning ??= entry.at;
  }

  /** A due key with nothing to run: its entry goes unless it holds something. */
  forgetIfIdle(entry: KeyEntry): void {
    this.#forgetIfIdle(entry);
  }

  /** The entries whose unit runs now, as a list: stopping them changes the table. */
  entriesRunning(): KeyEntry[] {
    return [...this.#entries.values()].filter((entry) => entry.running !== undefined);
  }

  /**
   * The lease stopped and let go of the key's unit (rule 10). Its work runs
   * again at once on the next `run()` when it was the pending submission; a
   * newer submission keeps its own due time (a follower's minimum wait).
   */
  requeueStopped(entry: KeyEntry, now: number): void {
    if (entry.running !== undefined && entry.pending === entry.running.submission) {
      entry.dueWhileRunning = undefined;
      this.#due.add(entry, now);
    }
    this.endRun(entry);
  }

  /** The entry of `key`, made on first use. */
  #entry(key: string): KeyEntry {
    let entry = this.#entries.get(key);
    if (entry !== undefined && isIdle(entry)) {
      // Idle, not yet forgotten: it takes the place a new entry would, the last in submission order.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    } else if (entry === undefined) {
      entry = {
        key,
        pending: undefined,
        running: undefined,
        dueWhileRunning: undefined,
        at: 0,
        seq: 0,
        index: NOT_QUEUED,
      };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** An entry that went idle is forgotten: now, or with the others when forgetting is deferred. */
  #forgetIfIdle(entry: KeyEntry): void {
    if (!isIdle(entry)) return;
    if (this.#idle !== undefined) this.#idle.push(entry);
    else this.#entries.delete(entry.key);
  }
}

/** Holds nothing: no pending work, no running unit, not queued. */
function isIdle(entry: KeyEntry): boolean {
  return entry.pending === undefined && entry.running === undefined && entry.index === NOT_QUEUED;
}
