import type { RecordChange, RecordKind } from '../stores/store.js';

/**
 * One part of a record as last seen: its value as the store holds it
 * (unchecked: another tool may have written anything there) and its version.
 */
export interface CachedPart {
  readonly value: unknown;
  readonly version: number;
}

/** What a replica knows of one record. */
export interface CachedRecord {
  spec: CachedPart | undefined;
  status: CachedPart | undefined;
  /**
   * True while the feed keeps both parts up to date since they were last
   * listed or read; false until the first read of a record the cache was
   * not told all of, and after a refused write (the cache was wrong).
   */
  fresh: boolean;
  /**
   * Changes applied to each part: a read that overlaps a change of a part
   * keeps what the feed said of that part, and takes the other from the
   * read; our own write is held unless a status change came while it was
   * on its way. Two numbers, not an object of them: 30 bytes a record less.
   */
  specChanges: number;
  statusChanges: number;
}

/** A count for each part of a record. */
export type PartCounts = Record<RecordKind, number>;

/**
 * What the store's feed said of each record (specs and statuses, with their
 * versions): the informer's cache. A replica works from it and reads the
 * store only to recover (docs/architecture.md, "The informer"): on start
 * (`list`), for a record it does not hold, after a refused write, and after
 * the feed reconnects (the feed then re-reads and replays what changed).
 *
 * Versions only grow, so a change older than the one held is a late or
 * repeated delivery and is ignored. A record with neither part is forgotten.
 */
export class RecordCache {
  readonly #records = new Map<string, CachedRecord>();
  /** After a complete list, a record the cache does not hold does not exist. */
  #listed = false;

  /** How many records the cache holds. */
  get size(): number {
    return this.#records.size;
  }

  /** The record of `key` when the cache can answer for it without a read. */
  held(key: string): CachedRecord | undefined {
    const record = this.#records.get(key);
    if (record === undefined) return this.#listed ? absent() : undefined;
    return record.fresh ? record : undefined;
  }

  /** The record of `key` as last seen, fresh or not. */
  peek(key: string): CachedRecord | undefined {
    return this.#records.get(key);
  }

  /** How many changes of each part of `key` were applied so far (see {@link applyRead}). */
  changesOf(key: string): PartCounts {
    const record = this.#records.get(key);
    return { spec: record?.specChanges ?? 0, status: record?.statusChanges ?? 0 };
  }

  /** How many changes of the status of `key` were applied so far (see {@link applyWritten}): no object made. */
  statusChangesOf(key: string): number {
    return this.#records.get(key)?.statusChanges ?? 0;
  }

  /**
   * Holds our own acknowledged status write, issued when `statusChangesBefore`
   * status changes of the key had been applied, unless the feed changed the
   * status since (our write's echo, a later write, a deletion: each at least
   * as new). A spec change meanwhile does not stop it: the next unit must
   * write on this version, not on the one before ours. (A record that had
   * no status and was deleted whole meanwhile is held with ours alone: its
   * next unit finds no spec, and says it is gone.)
   */
  applyWritten(key: string, status: CachedPart, statusChangesBefore: number): void {
    if (this.statusChangesOf(key) === statusChangesBefore) this.apply({ kind: 'status', key, ...status });
  }

  /**
   * Applies a change of the feed (or of a list, or our own acknowledged
   * write). Returns the part it replaced, or `null` when the change was
   * older than what the cache holds and nothing changed.
   */
  apply({ kind, key, value, version }: RecordChange): CachedPart | undefined | null {
    let record = this.#records.get(key);
    const before = record?.[kind];
    // A deletion carries the version the record had, so it may equal the last one seen.
    if (before !== undefined && (value === undefined ? version < before.version : version <= before.version)) {
      return null;
    }
    if (record === undefined) {
      if (value === undefined) return undefined;
      // Told by the feed of one part: the other is known only once listed.
      record = newRecord(this.#listed);
      this.#records.set(key, record);
    }
    record[kind] = value === undefined ? undefined : { value, version };
    if (kind === 'spec') record.specChanges++;
    else record.statusChanges++;
    if (record.spec === undefined && record.status === undefined) this.#records.delete(key);
    return before;
  }

  /**
   * Applies what a read of both parts found, issued when `changesBefore`
   * changes of each part had been applied. A part the feed changed
   * meanwhile keeps the feed's value, which is at least as new; the other
   * part is the read's. The record is fresh after it.
   *
   * Each part on its own: with one count for the record, a spec change seen
   * during the read kept the read's status out too, and a record the feed
   * had told only its spec was left fresh with no status: a newcomer that
   * read such records before its list came wrote them as new, and was
   * refused (1 to 3 conflicts in most join runs on Redis).
   */
  applyRead(key: string, parts: Record<RecordKind, CachedPart | undefined>, changesBefore: PartCounts): CachedRecord {
    let record = this.#records.get(key);
    if (record === undefined) {
      record = newRecord(true, changesBefore);
      this.#records.set(key, record);
    }
    if (record.specChanges === changesBefore.spec) record.spec = parts.spec;
    if (record.statusChanges === changesBefore.status) record.status = parts.status;
    record.fresh = true;
    if (record.spec === undefined && record.status === undefined) this.#records.delete(key);
    return record;
  }

  /** The cache was wrong about `key` (a write was refused): its next unit reads the store. */
  doubt(key: string): void {
    const record = this.#records.get(key);
    if (record !== undefined) record.fresh = false;
    else if (this.#listed) {
      this.#records.set(key, newRecord(false));
    }
  }

  /**
   * Says that every record of a complete list of the store, taken after the
   * feed was subscribed, has been applied: what the feed said since is at
   * least as new. From now on a record the cache does not hold does not exist.
   */
  markListed(): void {
    for (const record of this.#records.values()) record.fresh = true;
    this.#listed = true;
  }
}

/** A record with neither part yet, its change counts as given. */
function newRecord(fresh: boolean, changes: PartCounts = { spec: 0, status: 0 }): CachedRecord {
  return { spec: undefined, status: undefined, fresh, specChanges: changes.spec, statusChanges: changes.status };
}

function absent(): CachedRecord {
  return newRecord(true);
}
