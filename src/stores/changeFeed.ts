import { Subject, type Observable } from 'rxjs';
import { reconnectDelay } from './reconnectDelay.js';
import { recordId } from './recordLayout.js';
import type { RecordChange, RecordKind } from './store.js';

/**
 * The change feed of a store that talks to a server: a hot stream of the
 * changes the server notifies, kept complete across reconnects by re-reading
 * every record and emitting what differs from what the feed last saw.
 *
 * Adapters call {@link ChangeFeed.push} for each notification and
 * {@link ChangeFeed.resync} when their notification channel reconnects.
 * A deletion found by a re-read carries the last version the feed saw.
 *
 * @example
 * ```ts
 * const feed = new ChangeFeed(() => readEveryRecord());
 * await feed.reread(); // learn the versions present before anyone subscribes
 * watcher.on('put', (kv) => feed.push(toChange(kv)));
 * watcher.on('connected', () => feed.resync());
 * feed.changes$.subscribe(console.log);
 * ```
 */
export class ChangeFeed {
  readonly #readAll: () => Promise<RecordChange[]>;
  readonly #changes = new Subject<RecordChange>();
  /** The last version seen of every existing record, by {@link recordId}. */
  readonly #seen = new Map<string, Seen>();
  /**
   * Records pushed while a re-read runs. The re-read may have read them
   * before the push, so its value must not overwrite or delete them.
   */
  #pushedDuringReread: Set<string> | undefined;
  /** Re-reads run one at a time, each after the previous one. */
  #rereads: Promise<void> = Promise.resolve();
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryAttempt = 0;
  #closed = false;

  /** Every change, hot: a subscriber sees the changes pushed after it subscribed. */
  readonly changes$: Observable<RecordChange> = this.#changes.asObservable();

  /**
   * @param readAll Reads every record of the store (an adapter's range or scan).
   */
  constructor(readAll: () => Promise<RecordChange[]>) {
    this.#readAll = readAll;
  }

  /**
   * Emits a change the server notified, unless the feed already emitted the
   * same or a later version of that record (a watch that resumes from a
   * revision may replay what a re-read already emitted).
   *
   * @example
   * ```ts
   * feed.push({ kind: 'spec', key: 'a', value: { generation: 1 }, version: 7 });
   * ```
   * @param change The notified change.
   */
  push(change: RecordChange): void {
    if (this.#closed) return;
    const id = recordId(change);
    const seen = this.#seen.get(id);
    // A deletion carries the version the record had, so it may equal the last one seen.
    const stale = seen && (change.value === undefined ? seen.version > change.version : seen.version >= change.version);
    if (stale) return;
    this.#pushedDuringReread?.add(id);
    if (change.value === undefined) this.#seen.delete(id);
    else this.#seen.set(id, { kind: change.kind, key: change.key, version: change.version });
    this.#changes.next(change);
  }

  /**
   * Emits the deletion of a record that the server notified without the
   * version the record had (an etcd watch without previous values): it
   * carries the last version the feed saw. Nothing is emitted for a record
   * the feed does not hold: gone already (a re-read saw it go), or never a
   * record (another tool's value).
   *
   * @example
   * ```ts
   * feed.pushDeletion('spec', 'a'); // { kind: 'spec', key: 'a', value: undefined, version: 7 } after the push above
   * ```
   * @param kind The record's kind.
   * @param key The record's key.
   */
  pushDeletion(kind: RecordKind, key: string): void {
    const seen = this.#seen.get(recordId({ kind, key }));
    if (seen !== undefined) this.push({ kind, key, value: undefined, version: seen.version });
  }

  /**
   * Re-reads every record once, after any re-read in progress, and emits the
   * records whose version differs from the last one seen and a deletion for
   * each record seen before and now gone.
   *
   * @example
   * ```ts
   * await feed.reread(); // at open: the feed has no subscriber yet, so it only learns versions
   * ```
   * @returns Resolves when the re-read is done; rejects when reading failed.
   */
  reread(): Promise<void> {
    const next = this.#rereads.then(() => this.#rereadOnce());
    this.#rereads = next.catch(() => undefined);
    return next;
  }

  /**
   * Re-reads after a reconnect, retrying with {@link reconnectDelay} until
   * a re-read succeeds or the feed is closed. A failure has nowhere better to
   * go: the feed must not error, since its subscribers outlive outages.
   *
   * @example
   * ```ts
   * subscriber.on('ready', () => feed.resync());
   * ```
   */
  resync(): void {
    if (this.#closed) return;
    this.#cancelRetry();
    this.reread().then(
      () => (this.#retryAttempt = 0),
      () => this.#scheduleRetry(),
    );
  }

  /**
   * Completes the feed and cancels any pending retry.
   *
   * @example
   * ```ts
   * feed.close(); // subscribers of changes$ complete
   * ```
   */
  close(): void {
    this.#closed = true;
    this.#cancelRetry();
    this.#changes.complete();
  }

  async #rereadOnce(): Promise<void> {
    if (this.#closed) return;
    const pushed = new Set<string>();
    this.#pushedDuringReread = pushed;
    try {
      const records = await this.#readAll();
      if (this.#closed) return;
      const present = new Set<string>();
      for (const record of records) {
        const id = recordId(record);
        present.add(id);
        if (pushed.has(id) || this.#seen.get(id)?.version === record.version) continue;
        this.#seen.set(id, { kind: record.kind, key: record.key, version: record.version });
        this.#changes.next(record);
      }
      for (const [id, { kind, key, version }] of [...this.#seen]) {
        if (present.has(id) || pushed.has(id)) continue;
        this.#seen.delete(id);
        this.#changes.next({ kind, key, value: undefined, version });
      }
    } finally {
      if (this.#pushedDuringReread === pushed) this.#pushedDuringReread = undefined;
    }
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.resync();
    }, reconnectDelay(this.#retryAttempt++));
  }

  #cancelRetry(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}

interface Seen {
  readonly kind: RecordKind;
  readonly key: string;
  readonly version: number;
}
