import type { Observable } from 'rxjs';

/**
 * The two parts of a record: the desired state and what the replicas report.
 *
 * @example
 * ```ts
 * await store.get<SpecValue>('spec', 'route/a'); // the desired state
 * ```
 */
export type RecordKind = 'spec' | 'status';

/**
 * A value read from a store with the version it was read at. The version is
 * the fencing token: a compare-and-set against a stale version never succeeds.
 *
 * @example
 * ```ts
 * await store.get('status', 'route/a'); // { value: { generation: 3, ... }, version: 41 }
 * ```
 */
export interface Versioned<T> {
  /** The decoded JSON value. */
  readonly value: T;
  /** Increases with every write of the record (etcd: its mod revision). */
  readonly version: number;
}

/**
 * Every JSON value in a store has a numeric `generation`.
 *
 * @example
 * ```ts
 * const spec: Generational = { generation: 4 };
 * ```
 */
export interface Generational {
  /** Increases with every change of the desired state. */
  readonly generation: number;
}

/**
 * The desired state of a record, written by the driver.
 *
 * @example
 * ```ts
 * await store.put('spec', 'route/a', { generation: 4, value: 'admitted' });
 * ```
 */
export interface SpecValue extends Generational {
  /** What the record should say. */
  readonly value: string;
}

/**
 * What a replica reported for a record.
 *
 * @example
 * ```ts
 * { generation: 4, value: 'admitted', writer: 'router-7f9c', at: 1_795_554_603_686 }
 * ```
 */
export interface StatusValue extends Generational {
  /** The status computed from the spec of `generation`. */
  readonly value: string;
  /** The name of the replica instance that wrote it. */
  readonly writer: string;
  /**
   * When it was written, in ms since the epoch on the writer's wall clock:
   * for people reading the store. No replica decides anything from it: two
   * machines' clocks disagree (docs/lease.md, "Time").
   */
  readonly at: number;
}

/**
 * Options of one store call.
 *
 * @example
 * ```ts
 * await store.get('status', 'route/a', { signal: context.signal });
 * ```
 */
export interface CallOptions {
  /**
   * The call is not wanted any more once it aborts (the lease let go of the
   * unit). A store that can cancel rejects with the signal's reason; one
   * whose client cannot may finish the call, and its caller ignores it.
   */
  readonly signal?: AbortSignal;
}

/**
 * How a compare-and-set ended.
 *
 * @example
 * ```ts
 * await store.compareAndSet('status', 'route/a', status, 41); // { ok: false, reason: 'conflict' }
 * ```
 */
export type CasOutcome =
  { readonly ok: true; readonly version: number } | { readonly ok: false; readonly reason: 'conflict' };

/**
 * One change seen on the change feed. `value` is undefined when the record was deleted.
 *
 * @example
 * ```ts
 * store.changes().subscribe((c) => console.log(c.kind, c.key, c.version));
 * // status route/a 42
 * ```
 */
export interface RecordChange<T = unknown> {
  /** Which part of the record changed. */
  readonly kind: RecordKind;
  /** The record's key. */
  readonly key: string;
  /** The new value; undefined when the record was deleted. */
  readonly value: T | undefined;
  /** The version after the change (for a deletion: the version it had). */
  readonly version: number;
}

/**
 * What one version of a store covers: each part of a record (`field`), or
 * the whole record (`record`, as a Kubernetes object). See
 * {@link RecordStore.versioning}.
 *
 * @example
 * ```ts
 * new MemoryStore({ versioning: 'record' }).versioning; // 'record'
 * ```
 */
export type Versioning = 'field' | 'record';

/**
 * A store of versioned records with an atomic compare-and-set and a change feed.
 * Every adapter (memory, Redis, etcd, PostgreSQL) implements it.
 *
 * @example
 * ```ts
 * const store = await openStore('redis://127.0.0.1:6379');
 * const status = await store.get<StatusValue>('status', 'route/a');
 * await store.compareAndSet('status', 'route/a', next, status?.version ?? null); // { ok: true, version: 43 }
 * ```
 */
export interface RecordStore {
  /** Where the store lives, for messages (`memory://`, `redis://127.0.0.1:6379`...). */
  readonly url: string;
  /**
   * What one version covers. `field` (absent means the same): spec and
   * status each have their own version, so a status write is refused only
   * when the status changed. `record`: spec and status share one version, as
   * a Kubernetes object's `resourceVersion`, so a status write is also
   * refused when the spec changed; its `expected` is the record's version
   * (the latest of its parts' versions), and a status write is never refused
   * because another writer wrote, unless one did.
   * @default 'field'
   */
  readonly versioning?: Versioning;
  /**
   * True when a write the store acknowledged may still be lost: its
   * replication is asynchronous, and a failover promotes a replica that had
   * not received it (Redis behind Sentinel, Redis Cluster). A reader that
   * must count such losses (the demo's driver) reads its writes back; a
   * single server, etcd (Raft) and PostgreSQL lose none.
   * @default false
   */
  readonly losesAcknowledgedWrites?: boolean;
  /** Reads one record; undefined when it does not exist. */
  get<T extends Generational>(kind: RecordKind, key: string, options?: CallOptions): Promise<Versioned<T> | undefined>;
  /**
   * Writes `value` only if the record is still at `expected` (`null`: only if it
   * does not exist). Atomic on the server.
   */
  compareAndSet<T extends Generational>(
    kind: RecordKind,
    key: string,
    value: T,
    expected: number | null,
    options?: CallOptions,
  ): Promise<CasOutcome>;
  /**
   * Every record now, as changes (deleted ones left out), in no particular
   * order: what a replica reads once when it starts, so that it holds what
   * the feed would have told it had it been watching all along. Optional: a
   * replica without it reads each record when it first needs it.
   */
  list?(options?: CallOptions): Promise<RecordChange[]>;
  /** Writes unconditionally (the driver's spec writes). Returns the new version. */
  put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number>;
  /** Deletes a record; no error when it does not exist. */
  delete(kind: RecordKind, key: string): Promise<void>;
  /**
   * Every change from the moment of subscription. After a reconnect the feed
   * re-reads the records and emits those that may have changed meanwhile.
   */
  changes(): Observable<RecordChange>;
  /**
   * Announces to every replica watching this store that `writer` stopped
   * writing for good (a graceful stop; docs/lease.md, "Handover"). It rides
   * the store's own change channel, after every change `writer` made.
   * Optional: with a store that has none, followers wait the lease out.
   */
  handOver?(writer: string): Promise<void>;
  /**
   * The writers that handed over, from the moment of subscription, in order
   * with the changes of {@link changes} (a writer's last status writes come
   * before its handover).
   */
  handovers?(): Observable<string>;
  /** Releases every connection and timer. */
  close(): Promise<void>;
}
