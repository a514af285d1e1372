import type { Observable } from 'rxjs';

/** The two parts of a record: the desired state and what the replicas report. */
export type RecordKind = 'spec' | 'status';

/**
 * A value read from a store with the version it was read at. The version is
 * the fencing token: a compare-and-set against a stale version never succeeds.
 */
export interface Versioned<T> {
  readonly value: T;
  /** Increases with every write of the record (etcd: its mod revision). */
  readonly version: number;
}

/** Every JSON value in a store has a numeric `generation`. */
export interface Generational {
  readonly generation: number;
}

/** The desired state of a record, written by the driver. */
export interface SpecValue extends Generational {
  readonly value: string;
}

/** What a replica reported for a record. */
export interface StatusValue extends Generational {
  readonly value: string;
  /** The name of the replica instance that wrote it. */
  readonly writer: string;
  /** When it was written, in ms since the epoch (the writer's clock). */
  readonly at: number;
}

/** How a compare-and-set ended. */
export type CasOutcome =
  | { readonly ok: true; readonly version: number }
  | { readonly ok: false; readonly reason: 'conflict' };

/** One change seen on the change feed. `value` is undefined when the record was deleted. */
export interface RecordChange<T = unknown> {
  readonly kind: RecordKind;
  readonly key: string;
  readonly value: T | undefined;
  readonly version: number;
}

/**
 * A store of versioned records with an atomic compare-and-set and a change feed.
 * Every adapter (memory, Redis, etcd, PostgreSQL) implements it.
 */
export interface RecordStore {
  /** Where the store lives, for messages (`memory://`, `redis://127.0.0.1:6379`...). */
  readonly url: string;
  /** Reads one record; undefined when it does not exist. */
  get<T extends Generational>(kind: RecordKind, key: string): Promise<Versioned<T> | undefined>;
  /**
   * Writes `value` only if the record is still at `expected` (`null`: only if it
   * does not exist). Atomic on the server.
   */
  compareAndSet<T extends Generational>(
    kind: RecordKind,
    key: string,
    value: T,
    expected: number | null,
  ): Promise<CasOutcome>;
  /** Writes unconditionally (the driver's spec writes). Returns the new version. */
  put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number>;
  /** Deletes a record; no error when it does not exist. */
  delete(kind: RecordKind, key: string): Promise<void>;
  /**
   * Every change from the moment of subscription. After a reconnect the feed
   * re-reads the records and emits those that may have changed meanwhile.
   */
  changes(): Observable<RecordChange>;
  /** Releases every connection and timer. */
  close(): Promise<void>;
}
