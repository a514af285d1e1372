import type { Client, Pool, QueryResultRow } from 'pg';
import type { Observable } from 'rxjs';
import { describeValue } from '../internal/validate.js';
import { ChangeFeed } from './changeFeed.js';
import { redactUrl, StoreClosedError } from './errors.js';
import { decodeHandover, encodeHandover, handoverFailed, HandoverFeed } from './handoverFeed.js';
import { loadClient } from './loadClient.js';
import { reachWithin } from './reachWithin.js';
import { reconnectDelay } from './reconnectDelay.js';
import { decodeRecord, encodeRecord, recordId } from './recordLayout.js';
import type { CasOutcome, Generational, RecordChange, RecordKind, RecordStore, Versioned } from './store.js';
import { TurnBatches } from './turnBatches.js';

/**
 * Options of {@link openPostgresStore}.
 *
 * @example
 * ```ts
 * const options: PostgresStoreOptions = { table: 'demo_records', connectTimeout: 2000 };
 * ```
 */
export interface PostgresStoreOptions {
  /**
   * The table of the records, created when missing together with the
   * sequence `<table>_version` and two trigger functions with their
   * triggers: `<table>_version_bump` gives an `UPDATE` that left the version
   * alone a new one, `<table>_notify` notifies every change on the channel
   * `<table>_changes`; handovers go on `<table>_handovers`.
   * A lowercase SQL identifier.
   * @default 'wl_records'
   */
  table?: string;
  /**
   * Milliseconds to wait for a connection (for the listening connection:
   * until it `LISTEN`s).
   * @default 5000
   */
  connectTimeout?: number;
  /**
   * Milliseconds between two checks that the listening connection still
   * answers: a `SELECT 1` on it, which must answer before the next check is
   * due. A connection that went silent without being closed (a NAT or a
   * firewall that forgot it, a stuck proxy) delivers no notification and
   * reports no error: the check finds it within twice this, and the feed
   * drops it, connects again and re-reads the table. Keep it under half the
   * lease duration.
   * @default 1000
   */
  listenCheckInterval?: number;
  /**
   * The server the listening connection connects to, when it is not `url`'s:
   * `LISTEN` needs a session of its own, which a pooler in transaction mode
   * (PgBouncer's `pool_mode = transaction`) does not keep, so name the
   * server itself here.
   * @default url
   */
  listenUrl?: string;
}

/**
 * Opens a {@link RecordStore} on a PostgreSQL server with `pg` (an optional
 * peer dependency, loaded now), creating its table if missing.
 *
 * Compare-and-set is `UPDATE ... WHERE version = $expected` (`INSERT ... ON
 * CONFLICT DO NOTHING` for a record that must not exist); the compare-and-sets
 * made in one turn of the event loop go out as one statement (up to 256),
 * each still applied or refused on its own. Versions come from one
 * sequence, so a version is never reused, even after a deletion. A trigger
 * notifies every change, whoever made it (another trigger gives a plain SQL
 * `UPDATE` of a value a new version); the feed LISTENs on a connection of
 * its own and, when that connection is lost or stops
 * answering (checked every `listenCheckInterval`), connects again and
 * re-reads the table, since notifications sent meanwhile are lost.
 * A handover is a NOTIFY on `<table>_handovers`, which the same connection
 * LISTENs on: PostgreSQL delivers notifications in commit order, so a
 * writer's changes come before its handover.
 *
 * @example
 * ```ts
 * const store = await openPostgresStore('postgres://app@127.0.0.1:5432/app');
 * await store.get('spec', 'a'); // { value: { generation: 3, value: 'x' }, version: 17 }
 * await store.close();
 * ```
 * @param url `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
 * @param options Table name, connect timeout, and the listening connection's check and server.
 * @returns The store, connected and listening.
 * @throws RangeError when `table` is not a lowercase SQL identifier, `listenCheckInterval`
 *   not a positive number or `listenUrl` not a `postgres://` URL.
 * @throws StoreUnreachableError when the server cannot be reached or refuses us.
 * @throws StoreClientMissingError when `pg` is not installed.
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<RecordStore> {
  const { table = 'wl_records', connectTimeout = 5000, listenCheckInterval = 1000, listenUrl = url } = options;
  if (!/^[a-z_][a-z0-9_]{0,47}$/.test(table)) {
    throw new RangeError(
      'openPostgresStore: options.table must be a lowercase SQL identifier of at most 48 characters, ' +
        `received ${JSON.stringify(table)}`,
    );
  }
  if (typeof listenCheckInterval !== 'number' || !Number.isFinite(listenCheckInterval) || listenCheckInterval <= 0) {
    throw new RangeError(
      'openPostgresStore: options.listenCheckInterval must be a finite number of milliseconds > 0, ' +
        `received ${describeValue(listenCheckInterval)}`,
    );
  }
  if (typeof listenUrl !== 'string' || !/^postgres(ql)?:\/\//.test(listenUrl)) {
    throw new RangeError(
      'openPostgresStore: options.listenUrl must be a postgres:// or postgresql:// URL, ' +
        `received ${describeValue(typeof listenUrl === 'string' ? redactUrl(listenUrl) : listenUrl)}`,
    );
  }
  const pg = await loadClient<typeof import('pg')>('pg', url);
  const config = { connectionTimeoutMillis: connectTimeout, keepAlive: true };
  const store = new PostgresStore({
    url,
    table,
    pool: new pg.Pool({ ...config, connectionString: url, max: 4 }),
    newListener: () => new pg.Client({ ...config, connectionString: listenUrl }),
    connectTimeout,
    listenCheckInterval,
  });
  await store.open(connectTimeout);
  return store;
}

/**
 * The schema, run at every open under an advisory lock so that replicas
 * starting together do not race to create it.
 */
function schemaSql(table: string): string {
  return `
CREATE SEQUENCE IF NOT EXISTS ${table}_version;
CREATE TABLE IF NOT EXISTS ${table} (
  kind text NOT NULL CHECK (kind IN ('spec', 'status')),
  key text NOT NULL,
  value jsonb NOT NULL,
  version bigint NOT NULL DEFAULT nextval('${table}_version'),
  PRIMARY KEY (kind, key)
);
-- An UPDATE by another tool that changes a value and leaves the version alone gets a new
-- version: otherwise the feed would drop its notification (a version it already saw) and a
-- compare-and-set against the old version would overwrite the change.
CREATE OR REPLACE FUNCTION ${table}_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.version = OLD.version AND NEW.value IS DISTINCT FROM OLD.value THEN
    NEW.version := nextval('${table}_version');
  END IF;
  RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION ${table}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed ${table};
  payload text;
BEGIN
  IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
  payload := json_build_object('kind', changed.kind, 'key', changed.key, 'version', changed.version,
    'deleted', TG_OP = 'DELETE', 'value', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE changed.value END)::text;
  -- NOTIFY refuses payloads of 8000 bytes or more: listeners read such a value from the table.
  IF octet_length(payload) >= 8000 THEN
    payload := json_build_object('kind', changed.kind, 'key', changed.key, 'version', changed.version,
      'deleted', false, 'large', true)::text;
  END IF;
  PERFORM pg_notify('${table}_changes', payload);
  RETURN NULL;
END $$;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '${table}_version_bump' AND tgrelid = '${table}'::regclass) THEN
    CREATE TRIGGER ${table}_version_bump BEFORE UPDATE ON ${table}
      FOR EACH ROW EXECUTE FUNCTION ${table}_version_bump();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '${table}_notify' AND tgrelid = '${table}'::regclass) THEN
    CREATE TRIGGER ${table}_notify AFTER INSERT OR UPDATE OR DELETE ON ${table}
      FOR EACH ROW EXECUTE FUNCTION ${table}_notify();
  END IF;
END $$;`;
}

/** One record to write, its value encoded. */
interface RecordWrite {
  readonly kind: RecordKind;
  readonly key: string;
  readonly json: string;
}

/** One compare-and-set: `expected` null for a record that must be absent. */
interface CasWrite extends RecordWrite {
  readonly expected: number | null;
}

/**
 * How the writes of one turn share statements: at most 256 in one (its rows
 * are locked until it commits, and its notifications go out together at the
 * commit), and never one record twice (an `UPDATE ... FROM` that joins a row
 * twice updates it once, with either; an `INSERT ... ON CONFLICT DO UPDATE`
 * refuses to).
 */
const BATCHES = { maxBatch: 256, idOf: ({ kind, key }: RecordWrite) => recordId({ kind, key }) };

/** A put: EXCLUDED.version is the proposed row's default, a fresh number from the sequence. */
const UPSERT = 'ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version';

/**
 * The writes of a batch sorted by record, each with its place in the
 * batch: statements of two replicas that write the same records then lock
 * their rows in one order, and do not deadlock each other.
 */
function inRecordOrder<W extends RecordWrite>(writes: readonly W[]): { readonly i: number; readonly write: W }[] {
  const ids = writes.map(({ kind, key }) => recordId({ kind, key }));
  return writes
    .map((write, i) => ({ i, write }))
    .sort((a, b) => (ids[a.i] < ids[b.i] ? -1 : ids[a.i] > ids[b.i] ? 1 : 0));
}

/** An error the server answered with (SQLSTATE and severity): its statement was rolled back. */
function isServerError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && typeof severity === 'string';
}

/** What the trigger sends. */
interface Notification {
  readonly kind: RecordKind;
  readonly key: string;
  readonly version: number;
  readonly deleted: boolean;
  readonly value?: Generational | null;
  readonly large?: boolean;
}

interface PostgresStoreParts {
  readonly url: string;
  readonly table: string;
  readonly pool: Pool;
  /** A client for the listening connection, not connected yet. */
  readonly newListener: () => Client;
  readonly connectTimeout: number;
  readonly listenCheckInterval: number;
}

class PostgresStore implements RecordStore {
  readonly url: string;
  readonly #table: string;
  readonly #handoverChannel: string;
  readonly #pool: Pool;
  readonly #newListener: () => Client;
  readonly #connectTimeout: number;
  readonly #listenCheckInterval: number;
  readonly #handovers = new HandoverFeed();
  /** Compare-and-sets made in one turn, one statement for each batch (see {@link PostgresStore.#compareAndSetAll}). */
  readonly #writes = new TurnBatches<CasWrite, number | undefined>({
    ...BATCHES,
    send: (writes) => this.#compareAndSetAll(writes),
    sendOne: (write) => this.#compareAndSetOne(write),
  });
  /** Puts made in one turn, one statement for each batch (see {@link PostgresStore.#putAll}). */
  readonly #puts = new TurnBatches<RecordWrite, number>({
    ...BATCHES,
    send: (writes) => this.#putAll(writes),
    sendOne: (write) => this.#putOne(write),
  });
  readonly #feed = new ChangeFeed(() => this.#handovers.reading(this.#readAll()));
  #listener: Client | undefined;
  #relistenTimer: ReturnType<typeof setTimeout> | undefined;
  /** The next check of the listening connection, or the deadline of the one in flight. */
  #checkTimer: ReturnType<typeof setTimeout> | undefined;
  /** Notifications are handled in order, even those that must read a large value first. */
  #notified: Promise<void> = Promise.resolve();
  #closed = false;

  constructor({ url, table, pool, newListener, connectTimeout, listenCheckInterval }: PostgresStoreParts) {
    this.url = redactUrl(url);
    this.#table = table;
    this.#handoverChannel = `${table}_handovers`;
    this.#pool = pool;
    this.#newListener = newListener;
    this.#connectTimeout = connectTimeout;
    this.#listenCheckInterval = listenCheckInterval;
    // An idle pooled connection that the server drops emits 'error'; the pool
    // discards it and connects again on the next query, so there is nothing to do.
    this.#pool.on('error', () => undefined);
  }

  async open(timeoutMs: number): Promise<void> {
    await reachWithin(
      this.url,
      timeoutMs,
      async () => {
        await this.#createSchema();
        await this.#listen();
        await this.#feed.reread();
      },
      () => this.close(),
    );
  }

  list(): Promise<RecordChange[]> {
    this.#assertOpen('list');
    return this.#readAll();
  }

  async get<T extends Generational>(kind: RecordKind, key: string): Promise<Versioned<T> | undefined> {
    this.#assertOpen('get');
    const { rows } = await this.#pool.query<{ value: unknown; version: string }>(
      `SELECT value, version FROM ${this.#table} WHERE kind = $1 AND key = $2`,
      [kind, key],
    );
    const [row] = rows;
    if (!row) return undefined;
    const version = Number(row.version);
    return { value: decodeRecord<T>(row.value, this.url, recordId({ kind, key }), version), version };
  }

  async compareAndSet<T extends Generational>(
    kind: RecordKind,
    key: string,
    value: T,
    expected: number | null,
  ): Promise<CasOutcome> {
    this.#assertOpen('compareAndSet');
    const json = encodeRecord(value, this.url, recordId({ kind, key }));
    const version = await this.#writes.add({ kind, key, json, expected });
    return version === undefined ? { ok: false, reason: 'conflict' } : { ok: true, version };
  }

  async put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number> {
    this.#assertOpen('put');
    return this.#puts.add({ kind, key, json: encodeRecord(value, this.url, recordId({ kind, key })) });
  }

  async delete(kind: RecordKind, key: string): Promise<void> {
    this.#assertOpen('delete');
    await this.#pool.query(`DELETE FROM ${this.#table} WHERE kind = $1 AND key = $2`, [kind, key]);
  }

  changes(): Observable<RecordChange> {
    return this.#feed.changes$;
  }

  /**
   * Announces that `writer` stopped writing for good: a NOTIFY on
   * `<table>_handovers`, committed after every write made before.
   *
   * @example
   * ```ts
   * await store.handOver('replica-1'); // every store on this table emits 'replica-1' on handovers()
   * ```
   * @param writer The writer that stopped.
   * @returns Resolves once the notification is committed.
   * @throws StoreClosedError after `close()`.
   * @throws Error naming the store and the writer when PostgreSQL cannot be reached.
   */
  async handOver(writer: string): Promise<void> {
    this.#assertOpen('handOver');
    try {
      await this.#pool.query('SELECT pg_notify($1, $2)', [this.#handoverChannel, encodeHandover(writer)]);
    } catch (error) {
      throw handoverFailed(this.url, writer, error);
    }
  }

  /**
   * The writers that handed over, from now on, in order with {@link changes}.
   *
   * @example
   * ```ts
   * store.handovers().subscribe((writer) => console.log('handed over:', writer));
   * ```
   * @returns A hot Observable that completes on `close()`.
   */
  handovers(): Observable<string> {
    return this.#handovers.handovers$;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#feed.close();
    this.#handovers.close();
    clearTimeout(this.#relistenTimer);
    clearTimeout(this.#checkTimer);
    const listener = this.#listener;
    this.#listener = undefined;
    // A connection gone silent since its last check would wait for ever for the server's
    // side of end()'s goodbye.
    const ended =
      listener && within(this.#connectTimeout, listener.end()).catch(() => listener.connection.stream.destroy());
    await Promise.all([ended, this.#pool.end().catch(() => undefined)]);
  }

  async #createSchema(): Promise<void> {
    const client = await this.#pool.connect();
    // Checked out, the client has none of the pool's listeners: a connection lost now would be an uncaught
    // 'error' (the query in flight rejects all the same).
    const lost = (): void => undefined;
    client.on('error', lost);
    let failed = false;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [this.#table]);
      await client.query(schemaSql(this.#table));
      await client.query('COMMIT');
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      client.off('error', lost);
      // A connection left inside a failed transaction must not go back to the pool.
      client.release(failed);
    }
  }

  /**
   * Connects the feed's own connection and LISTENs, within `connectTimeout`;
   * a connection lost or gone silent is replaced by {@link #relisten}.
   */
  async #listen(): Promise<void> {
    const client = this.#newListener();
    client.on('error', () => this.#dropListener(client));
    client.on('end', () => this.#dropListener(client));
    client.on('notification', ({ channel, payload }) => {
      if (!payload) return;
      if (channel === this.#handoverChannel) this.#onHandover(payload);
      else this.#onNotification(payload);
    });
    try {
      await within(
        this.#connectTimeout,
        (async () => {
          await client.connect();
          await client.query(`LISTEN ${this.#table}_changes; LISTEN ${this.#handoverChannel}`);
        })(),
      );
    } catch (error) {
      client.connection.stream.destroy();
      throw error;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#listener = client;
    this.#scheduleCheck(client);
  }

  /**
   * The listening connection only receives: a connection that went silent
   * without being closed would go unnoticed, and every notification with it.
   * So it must answer a `SELECT 1` before the next check is due.
   */
  #scheduleCheck(client: Client): void {
    this.#checkTimer = setTimeout(() => {
      within(this.#listenCheckInterval, client.query('SELECT 1')).then(
        () => {
          if (this.#listener === client) this.#scheduleCheck(client);
        },
        () => this.#dropListener(client),
      );
    }, this.#listenCheckInterval);
  }

  /** Replaces the listening connection, unless `client` was replaced already. */
  #dropListener(client: Client): void {
    if (this.#listener !== client) return;
    this.#listener = undefined;
    clearTimeout(this.#checkTimer);
    // A silent connection would never answer end()'s goodbye: close the socket itself.
    client.connection.stream.destroy();
    this.#relisten(0);
  }

  #relisten(attempt: number): void {
    if (this.#closed) return;
    this.#relistenTimer = setTimeout(() => void this.#listenAgain(attempt), reconnectDelay(attempt));
  }

  async #listenAgain(attempt: number): Promise<void> {
    try {
      await this.#listen();
    } catch {
      this.#relisten(attempt + 1);
      return;
    }
    this.#feed.resync();
  }

  #onNotification(payload: string): void {
    let notification: Notification;
    try {
      notification = JSON.parse(payload) as Notification;
    } catch {
      // Someone else's NOTIFY on our channel.
      return;
    }
    this.#notified = this.#notified.then(() => this.#handle(notification)).catch(() => undefined);
  }

  /** After the notifications before it, some of which may still be reading a large value. */
  #onHandover(payload: string): void {
    const writer = decodeHandover(payload);
    if (writer === undefined) return;
    this.#notified = this.#notified.then(() => this.#handovers.push(writer));
  }

  async #handle({ kind, key, version, deleted, value, large }: Notification): Promise<void> {
    if (deleted) return this.#feed.push({ kind, key, value: undefined, version });
    if (!large) return this.#feed.push({ kind, key, value: value ?? undefined, version });
    const current = await this.get(kind, key);
    // Gone already: its deletion is the next notification for it.
    if (current) this.#feed.push({ kind, key, ...current });
  }

  async #readAll(): Promise<RecordChange[]> {
    const { rows } = await this.#pool.query<{ kind: RecordKind; key: string; value: unknown; version: string }>(
      `SELECT kind, key, value, version FROM ${this.#table}`,
    );
    return rows.flatMap(({ kind, key, value, version }) => {
      try {
        return [{ kind, key, value: decodeRecord(value, this.url, recordId({ kind, key })), version: Number(version) }];
      } catch {
        // Another tool wrote something that is not a record: nothing to report.
        return [];
      }
    });
  }

  /**
   * Compare-and-sets `writes` (no record twice) in one statement, each on
   * its own: `UPDATE ... FROM` the batch for the records expected at a
   * version, `INSERT ... ON CONFLICT DO NOTHING` for those expected absent,
   * in the order of their records (see {@link inRecordOrder}).
   *
   * @returns The version each write made (undefined where it was refused), or undefined when the server
   *   refused the statement ({@link PostgresStore.#batchRows}).
   */
  async #compareAndSetAll(writes: readonly CasWrite[]): Promise<(number | undefined)[] | undefined> {
    const batch = inRecordOrder(writes);
    const rows = await this.#batchRows<{ i: number; version: string }>(
      `WITH batch AS (
         SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[])
           AS batch (i, kind, key, value, expected)
       ), updated AS (
         UPDATE ${this.#table} AS r SET value = batch.value, version = nextval('${this.#table}_version')
         FROM batch WHERE batch.expected IS NOT NULL
           AND r.kind = batch.kind AND r.key = batch.key AND r.version = batch.expected
         RETURNING batch.i, r.version
       ), inserted AS (
         INSERT INTO ${this.#table} (kind, key, value)
         SELECT kind, key, value FROM batch WHERE expected IS NULL
         ON CONFLICT (kind, key) DO NOTHING RETURNING kind, key, version
       )
       SELECT i, version FROM updated
       UNION ALL
       SELECT batch.i, inserted.version FROM inserted
         JOIN batch ON batch.expected IS NULL AND batch.kind = inserted.kind AND batch.key = inserted.key`,
      [
        batch.map(({ i }) => i),
        batch.map(({ write }) => write.kind),
        batch.map(({ write }) => write.key),
        batch.map(({ write }) => write.json),
        batch.map(({ write }) => write.expected),
      ],
    );
    if (rows === undefined) return undefined;
    const versions = new Array<number | undefined>(writes.length).fill(undefined);
    for (const { i, version } of rows) versions[i] = Number(version);
    return versions;
  }

  /** One compare-and-set in the plain statement of its kind: its version, undefined when refused. */
  #compareAndSetOne({ kind, key, json, expected }: CasWrite): Promise<number | undefined> {
    return expected === null
      ? this.#returningVersion(
          `INSERT INTO ${this.#table} (kind, key, value) VALUES ($1, $2, $3::jsonb)
           ON CONFLICT (kind, key) DO NOTHING RETURNING version`,
          [kind, key, json],
        )
      : this.#returningVersion(
          `UPDATE ${this.#table} SET value = $3::jsonb, version = nextval('${this.#table}_version')
           WHERE kind = $1 AND key = $2 AND version = $4 RETURNING version`,
          [kind, key, json, expected],
        );
  }

  /**
   * Puts `writes` (no record twice) in one statement: an `INSERT ... ON
   * CONFLICT DO UPDATE` of the batch, `unnest`ed, in the order of their
   * records.
   *
   * @returns The version of each write, or undefined when the server refused the statement.
   */
  async #putAll(writes: readonly RecordWrite[]): Promise<number[] | undefined> {
    const batch = inRecordOrder(writes);
    const rows = await this.#batchRows<{ kind: RecordKind; key: string; version: string }>(
      `INSERT INTO ${this.#table} (kind, key, value)
       SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[]) ${UPSERT} RETURNING kind, key, version`,
      [batch.map(({ write }) => write.kind), batch.map(({ write }) => write.key), batch.map(({ write }) => write.json)],
    );
    if (rows === undefined) return undefined;
    const versions = new Map(rows.map(({ kind, key, version }) => [recordId({ kind, key }), Number(version)]));
    return writes.map(({ kind, key }) => versions.get(recordId({ kind, key }))!);
  }

  /** One put in the plain statement: its version. */
  async #putOne({ kind, key, json }: RecordWrite): Promise<number> {
    const version = await this.#returningVersion(
      `INSERT INTO ${this.#table} (kind, key, value) VALUES ($1, $2, $3::jsonb) ${UPSERT} RETURNING version`,
      [kind, key, json],
    );
    return version!;
  }

  /**
   * The rows of a batch's statement, or undefined when the server refused
   * it, which so wrote nothing: its writes then go one by one, each
   * answered alone. A deadlock with another batch (PostgreSQL aborts one
   * of the two after `deadlock_timeout`) or one write's value that the
   * server refuses then fails no other write. An error that is not the
   * server's answer (the connection lost: the statement may or may not
   * have been applied) fails the batch.
   */
  async #batchRows<Row extends QueryResultRow>(sql: string, params: unknown[]): Promise<Row[] | undefined> {
    try {
      return (await this.#pool.query<Row>(sql, params)).rows;
    } catch (error) {
      if (isServerError(error)) return undefined;
      throw error;
    }
  }

  async #returningVersion(sql: string, params: unknown[]): Promise<number | undefined> {
    const { rows } = await this.#pool.query<{ version: string }>(sql, params);
    return rows[0] && Number(rows[0].version);
  }

  #assertOpen(call: string): void {
    if (this.#closed) throw new StoreClosedError({ url: this.url, call });
  }
}

/**
 * Settles as `work` does, or rejects once `ms` have passed: a silent
 * connection answers neither yes nor no.
 */
async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
