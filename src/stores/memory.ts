import { Subject, filter, map, type Observable } from 'rxjs';
import { StoreClosedError } from './errors.js';
import { decodeRecord, encodeRecord, recordId } from './recordLayout.js';
import type {
  CallOptions,
  CasOutcome,
  Generational,
  RecordChange,
  RecordKind,
  RecordStore,
  Versioned,
  Versioning,
} from './store.js';

/**
 * Options of a {@link MemoryStore}.
 *
 * @example
 * ```ts
 * new MemoryStore({ versioning: 'record' }); // a store that versions like Kubernetes objects
 * ```
 */
export interface MemoryStoreOptions {
  /**
   * `field`: spec and status each have their own version. `record`: one
   * version per record, bumped by a write of either part, as a Kubernetes
   * object's `resourceVersion`: a status write against it is refused when
   * the spec changed since (see {@link RecordStore.versioning}).
   * @default 'field'
   */
  versioning?: Versioning;
}

/** One part of a record, as the store keeps it: JSON text, so that no caller can change it after writing. */
interface StoredRecord {
  readonly kind: RecordKind;
  readonly key: string;
  readonly text: string;
  readonly version: number;
}

/** One item of the memory store's feed: a change, or a handover. */
type FeedItem = RecordChange | { readonly handover: string };

/**
 * A {@link RecordStore} in the memory of one process, for replicas that run
 * in the same process and for tests.
 *
 * Every method settles without a timer, so the store runs unchanged under a
 * `TestScheduler`. Versions come from one counter for the whole store, like
 * etcd's revision: a record deleted and created again never reuses a version,
 * so a compare-and-set against a version read before the deletion fails.
 * Values are kept as JSON text, so that a caller mutating an object after
 * writing it changes nothing, as with a real store.
 *
 * @example
 * ```ts
 * const store = new MemoryStore();
 * store.changes().subscribe((c) => console.log(c.kind, c.key, c.version));
 * const version = await store.put('spec', 'a', { generation: 1, value: 'x' }); // logs 'spec a 1'
 * await store.compareAndSet('spec', 'a', { generation: 2, value: 'y' }, version); // { ok: true, version: 2 }
 * await store.compareAndSet('spec', 'a', { generation: 3, value: 'z' }, version); // { ok: false, reason: 'conflict' }
 * ```
 */
export class MemoryStore implements RecordStore {
  /** Always `memory://`. */
  readonly url = 'memory://';
  /** What one version covers; see {@link MemoryStoreOptions.versioning}. */
  readonly versioning: Versioning;
  readonly #records = new Map<string, StoredRecord>();
  /** With `record` versioning: each record's version, the latest of its parts'. */
  readonly #recordVersions = new Map<string, number>();
  /** Changes and handovers, on one feed so that every subscriber sees them in the order they were made. */
  readonly #feed = new Subject<FeedItem>();
  /** What waits while a subscriber's reaction to an earlier item is still on the stack. */
  readonly #unsent: FeedItem[] = [];
  #sending = false;
  #revision = 0;
  #closed = false;

  /**
   * @param options How versions are kept; see {@link MemoryStoreOptions}.
   * @throws TypeError when `versioning` is neither `field` nor `record`.
   */
  constructor(options: MemoryStoreOptions = {}) {
    const { versioning = 'field' } = options;
    if (versioning !== 'field' && versioning !== 'record') {
      throw new TypeError(
        `MemoryStore: options.versioning must be 'field' or 'record', received ${JSON.stringify(versioning)}`,
      );
    }
    this.versioning = versioning;
  }

  /**
   * Reads one record.
   *
   * @example
   * ```ts
   * await store.get('status', 'a'); // undefined, or { value: { generation: 1, ... }, version: 3 }
   * ```
   * @param kind `spec` or `status`.
   * @param key The record's key.
   * @param options `signal`: an aborted signal rejects the call with its reason and reads nothing.
   * @returns The value and its version; undefined when the record does not exist.
   */
  get<T extends Generational>(kind: RecordKind, key: string, options?: CallOptions): Promise<Versioned<T> | undefined> {
    return this.#run('get', options, () => {
      const id = recordId({ kind, key });
      const record = this.#records.get(id);
      return record && { value: decodeRecord<T>(record.text, this.url, id), version: this.#versionOf(key, record) };
    });
  }

  /**
   * Writes `value` only if the record is at version `expected` (`null`: only
   * if it does not exist).
   *
   * @example
   * ```ts
   * await store.compareAndSet('status', 'a', status, null); // { ok: true, version: 4 } when 'a' had no status
   * ```
   * @param kind `spec` or `status`.
   * @param key The record's key.
   * @param value The new value; its `generation` must be a number.
   * @param expected The version read before, or `null` for a record that must not exist yet.
   * @param options `signal`: an aborted signal rejects the call with its reason and writes nothing.
   * @returns `{ ok: true, version }` with the new version, or `{ ok: false, reason: 'conflict' }`.
   */
  compareAndSet<T extends Generational>(
    kind: RecordKind,
    key: string,
    value: T,
    expected: number | null,
    options?: CallOptions,
  ): Promise<CasOutcome> {
    return this.#run('compareAndSet', options, () => {
      const current =
        this.versioning === 'record'
          ? (this.#recordVersions.get(key) ?? null)
          : (this.#records.get(recordId({ kind, key }))?.version ?? null);
      if (current !== expected) return { ok: false, reason: 'conflict' };
      return { ok: true, version: this.#write(kind, key, value) };
    });
  }

  /**
   * Every record now, as changes.
   *
   * @example
   * ```ts
   * await store.list(); // [{ kind: 'spec', key: 'a', value: { generation: 1, value: 'x' }, version: 1 }]
   * ```
   * @param options `signal`: an aborted signal rejects the call with its reason and reads nothing.
   * @returns One change per existing record part.
   */
  list(options?: CallOptions): Promise<RecordChange[]> {
    return this.#run('list', options, () =>
      [...this.#records].map(([id, { kind, key, text, version }]) => ({
        kind,
        key,
        value: decodeRecord(text, this.url, id),
        version: this.#versionOf(key, { version }),
      })),
    );
  }

  /**
   * Writes unconditionally.
   *
   * @example
   * ```ts
   * await store.put('spec', 'a', { generation: 5, value: 'x' }); // 6: the new version
   * ```
   * @param kind `spec` or `status`.
   * @param key The record's key.
   * @param value The new value; its `generation` must be a number.
   * @returns The new version.
   */
  put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number> {
    return this.#run('put', undefined, () => this.#write(kind, key, value));
  }

  /**
   * Deletes a record; nothing happens when it does not exist. The change
   * emitted carries the version the record had.
   *
   * @example
   * ```ts
   * await store.delete('status', 'a');
   * ```
   * @param kind `spec` or `status`.
   * @param key The record's key.
   * @returns Resolves once deleted.
   */
  delete(kind: RecordKind, key: string): Promise<void> {
    return this.#run('delete', undefined, () => {
      const record = this.#records.get(recordId({ kind, key }));
      if (!record) return;
      const version = this.#versionOf(key, record);
      this.#records.delete(recordId({ kind, key }));
      const other: RecordKind = kind === 'spec' ? 'status' : 'spec';
      if (!this.#records.has(recordId({ kind: other, key }))) this.#recordVersions.delete(key);
      this.#send({ kind, key, value: undefined, version });
    });
  }

  /**
   * Every change from the moment of subscription, emitted before the
   * Promise of the write that made it resolves.
   *
   * @example
   * ```ts
   * store.changes().pipe(filter((c) => c.kind === 'spec')).subscribe(onSpec);
   * ```
   * @returns A hot Observable that completes on `close()`.
   */
  changes(): Observable<RecordChange> {
    return this.#feed.pipe(filter((item): item is RecordChange => !('handover' in item)));
  }

  /**
   * Announces that `writer` stopped writing (a graceful stop), after every
   * change made so far.
   *
   * @example
   * ```ts
   * store.handovers().subscribe((writer) => console.log('handed over:', writer));
   * await store.handOver('replica-1'); // logs 'handed over: replica-1'
   * ```
   * @param writer The writer that stopped.
   * @returns Resolves once announced.
   */
  handOver(writer: string): Promise<void> {
    return this.#run('handOver', undefined, () => this.#send({ handover: writer }));
  }

  /**
   * The writers that handed over, from now on, in order with {@link changes}.
   *
   * @example
   * ```ts
   * store.handovers().subscribe((writer) => lease.expire({ wake: true }));
   * ```
   * @returns A hot Observable that completes on `close()`.
   */
  handovers(): Observable<string> {
    return this.#feed.pipe(
      filter((item): item is { readonly handover: string } => 'handover' in item),
      map(({ handover }) => handover),
    );
  }

  /**
   * Completes the change feed; every later call rejects with {@link StoreClosedError}.
   *
   * @example
   * ```ts
   * await store.close();
   * ```
   * @returns Resolves at once: the store holds no connection or timer.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#feed.complete();
    return Promise.resolve();
  }

  #write(kind: RecordKind, key: string, value: Generational): number {
    const text = encodeRecord(value, this.url, recordId({ kind, key }));
    const version = ++this.#revision;
    this.#records.set(recordId({ kind, key }), { kind, key, text, version });
    if (this.versioning === 'record') this.#recordVersions.set(key, version);
    this.#send({ kind, key, value: JSON.parse(text), version });
    return version;
  }

  /**
   * A subscriber may write from inside its handler; sending that change at
   * once would show it to the other subscribers before the change that
   * caused it. Queued, every subscriber sees the changes in write order.
   */
  /** The version a reader sees: the part's own, or with `record` versioning the record's. */
  #versionOf(key: string, record: { readonly version: number }): number {
    return this.#recordVersions.get(key) ?? record.version;
  }

  #send(item: FeedItem): void {
    this.#unsent.push(item);
    if (this.#sending) return;
    this.#sending = true;
    try {
      for (let next = this.#unsent.shift(); next; next = this.#unsent.shift()) this.#feed.next(next);
    } finally {
      this.#sending = false;
    }
  }

  /** Whatever `body` throws becomes the rejection, as with a real store. */
  #run<R>(call: string, options: CallOptions | undefined, body: () => R): Promise<R> {
    return new Promise<R>((resolve) => {
      if (this.#closed) throw new StoreClosedError({ url: this.url, call });
      options?.signal?.throwIfAborted();
      resolve(body());
    });
  }
}
