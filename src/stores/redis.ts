import type { Redis, RedisOptions } from 'ioredis';
import type { Observable } from 'rxjs';
import { ChangeFeed } from './changeFeed.js';
import { redactUrl, StoreClosedError } from './errors.js';
import { decodeHandover, encodeHandover, handoverFailed, HandoverFeed } from './handoverFeed.js';
import { loadClient } from './loadClient.js';
import { reachWithin } from './reachWithin.js';
import { reconnectDelay } from './reconnectDelay.js';
import {
  ABSENT,
  ANY,
  decodeChanges,
  defineRecordCommands,
  escapeGlob,
  readVersioned,
  WriteBatches,
  type RecordCommands,
  type WriteTarget,
} from './redisRecords.js';
import { parseSentinelUrl, type SentinelAddress } from './sentinelUrl.js';
import { decodeRecord, encodeRecord, recordId, recordLayout, type RecordLayout } from './recordLayout.js';
import type { CasOutcome, Generational, RecordChange, RecordKind, RecordStore, Versioned } from './store.js';

export { openRedisClusterStore, type RedisClusterStoreOptions } from './redisCluster.js';

/**
 * Options of {@link openRedisStore}.
 *
 * @example
 * ```ts
 * const options: RedisStoreOptions = { prefix: 'demo:', connectTimeout: 2000 };
 * ```
 */
export interface RedisStoreOptions {
  /**
   * What every key starts with: records are `<prefix>spec:<key>` and
   * `<prefix>status:<key>`, and the store also uses `<prefix>versions`,
   * `<prefix>revision`, `<prefix>replid` and the channels `<prefix>changes`
   * and `<prefix>handovers`.
   * @default 'wl:'
   */
  prefix?: string;
  /**
   * Milliseconds to wait for the server when the store is opened.
   * @default 5000
   */
  connectTimeout?: number;
}

/**
 * Opens a {@link RecordStore} on a Redis server with `ioredis` (an optional
 * peer dependency, loaded now), or on the primary that Redis Sentinel names.
 *
 * Each record is a string key holding its JSON. Versions live in the hash
 * `<prefix>versions` (field `<kind>:<key>`) and come from the counter
 * `<prefix>revision`, so a version is never reused, even after a deletion.
 * Every write is a Lua script that checks the version, writes, and publishes
 * the change on `<prefix>changes`, all atomically on the server. The change
 * feed subscribes on a second connection; after a reconnect it subscribes
 * again and re-reads every record (SCAN), since messages published while it
 * was away are lost. A handover is published on `<prefix>handovers`, which
 * the same connection subscribes to: Redis delivers one connection's
 * messages in publication order, so a writer's changes come before its
 * handover.
 *
 * Behind Sentinel (`redis-sentinel://H:P[,H:P...]/MASTER_NAME`) the store
 * follows the primary through failovers: both connections move to the
 * promoted replica and the feed re-reads every record there. Redis
 * replicates asynchronously, so writes the old primary acknowledged may be
 * missing on the new one: the feed then shows those records going back to
 * what the new primary holds. The fence still holds: the counter
 * `<prefix>revision` moves to a new epoch (a multiple of 2^32) at the first
 * write under a new replication ID (`<prefix>replid`), so no version that
 * the old primary issued is issued again, and a compare-and-set against a
 * version read there is refused.
 *
 * @example
 * ```ts
 * const store = await openRedisStore('redis://127.0.0.1:6379');
 * await store.put('spec', 'a', { generation: 1, value: 'x' }); // 1
 * await store.close();
 * ```
 * @param url `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` or
 *   `redis-sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER_NAME[/DB]`
 *   (Sentinels on 26379 by default; the password is the Redis nodes', not the Sentinels').
 * @param options Key prefix and connect timeout.
 * @returns The store, connected and listening to changes.
 * @throws StoreUnreachableError when the server (no Sentinel, or no primary) cannot be reached within `connectTimeout`.
 * @throws StoreUrlError when a `redis-sentinel://` URL is malformed.
 * @throws StoreClientMissingError when `ioredis` is not installed.
 */
export async function openRedisStore(url: string, options: RedisStoreOptions = {}): Promise<RecordStore> {
  const { prefix = 'wl:', connectTimeout = 5000 } = options;
  // A bad URL is refused before the client library is loaded.
  const sentinel = /^redis-sentinel:/i.test(url) ? parseSentinelUrl(url) : undefined;
  const { Redis } = await loadClient<typeof import('ioredis')>('ioredis', url);
  const connect =
    sentinel === undefined
      ? (redisOptions: RedisOptions) => new Redis(url, { ...redisOptions, connectTimeout })
      : (redisOptions: RedisOptions) =>
          new Redis({
            ...redisOptions,
            ...sentinelOptions(sentinel),
            connectTimeout,
            retryStrategy: (attempt) => fasterAfterFailover(redisOptions.retryStrategy?.(attempt)),
          });
  const store = new RedisStore(url, prefix, connect, sentinel !== undefined);
  await store.open(connectTimeout);
  return store;
}

/** How long at most between two reconnects behind Sentinel: see {@link fasterAfterFailover}. */
const SENTINEL_RECONNECT_CAP_MS = 250;

/**
 * Behind Sentinel a reconnect is cheap (a question to a Sentinel, then a
 * connect on the primary it names) and the new primary is named within
 * seconds of the old one's death: reconnecting every 250 ms at most joins it
 * about as soon as it is promoted, where the doubling delays up to 2 s of a
 * single server would leave the store idle up to 2 s more.
 */
function fasterAfterFailover(delay: number | void | null | undefined): number | null {
  return typeof delay === 'number' ? Math.min(delay, SENTINEL_RECONNECT_CAP_MS) : null;
}

/**
 * ioredis asks the Sentinels for the primary at every (re)connect, checks
 * that the node it reaches is a primary, and with `failoverDetector` drops
 * the connection as soon as a Sentinel announces a new primary, instead of
 * waiting for the old one to time out.
 */
function sentinelOptions({ sentinels, name, db, username, password }: SentinelAddress): RedisOptions {
  return {
    sentinels: sentinels.map(({ host, port }) => ({ host, port })),
    name,
    db,
    username: username || undefined,
    password: password || undefined,
    role: 'master',
    failoverDetector: true,
    // A primary that came back as a replica refuses writes until the failover detector moves us on.
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
  };
}

const SCAN_BATCH = 500;

/** The connection of {@link RedisStore} that runs commands, with its scripts defined. */
type ScriptedRedis = Redis & RecordCommands;

class RedisStore implements RecordStore {
  readonly url: string;
  readonly #layout: RecordLayout;
  readonly #versionsKey: string;
  readonly #revisionKey: string;
  readonly #replicationKey: string;
  readonly #channel: string;
  readonly #handoverChannel: string;
  readonly #commands: ScriptedRedis;
  readonly #target: WriteTarget;
  readonly #batches: WriteBatches;
  readonly #subscriber: Redis;
  readonly #handovers = new HandoverFeed();
  readonly #feed = new ChangeFeed(() => this.#handovers.reading(this.#readAll()));
  #lastError: unknown;
  #reviveTimer: ReturnType<typeof setTimeout> | undefined;
  #opened = false;
  #closed = false;

  /** Behind Sentinel: a promoted replica may lack the last writes the old primary acknowledged. */
  readonly losesAcknowledgedWrites: boolean;

  constructor(url: string, prefix: string, connect: (options: RedisOptions) => Redis, replicated: boolean) {
    this.losesAcknowledgedWrites = replicated;
    this.url = redactUrl(url);
    this.#layout = recordLayout(prefix, ':');
    this.#versionsKey = `${prefix}versions`;
    this.#revisionKey = `${prefix}revision`;
    this.#replicationKey = `${prefix}replid`;
    this.#channel = `${prefix}changes`;
    this.#handoverChannel = `${prefix}handovers`;
    const options: RedisOptions = {
      lazyConnect: true,
      // At open a down server must fail fast with a clear error; once open,
      // outages are waited out until close().
      retryStrategy: (attempt) => (this.#opened && !this.#closed ? reconnectDelay(attempt - 1) : null),
      // Behind Sentinel: when no Sentinel answers. Ignored for a plain redis:// URL.
      sentinelRetryStrategy: (attempt) => (this.#opened && !this.#closed ? reconnectDelay(attempt - 1) : null),
      // A command waits through a few reconnects (about 3 s), then fails so that its caller can retry.
      maxRetriesPerRequest: 5,
      // The feed subscribes again itself, so that it knows when to re-read.
      autoResubscribe: false,
    };
    // Commands issued in the same tick (a replica's units run concurrently) leave in one socket write.
    this.#commands = defineRecordCommands(connect({ ...options, enableAutoPipelining: true }), 'redis');
    // The writes of one turn (a replica's units run concurrently) go in one script call.
    this.#batches = new WriteBatches(this.#commands);
    this.#target = {
      versionsKey: this.#versionsKey,
      revisionKey: this.#revisionKey,
      replicationKey: this.#replicationKey,
      channel: this.#channel,
    };
    this.#subscriber = connect(options);
    // Errors reach callers through rejected commands and reconnects are
    // automatic; without a listener ioredis would print every one.
    for (const connection of [this.#commands, this.#subscriber]) {
      connection.on('error', (error: unknown) => (this.#lastError = error));
      connection.on('end', () => this.#revive());
    }
  }

  async open(connectTimeout: number): Promise<void> {
    await reachWithin(
      this.url,
      connectTimeout,
      () => this.#connect(),
      () => this.close(),
    );
    this.#opened = true;
    // 'ready' fired once during connect(); from now on it means "reconnected".
    this.#subscriber.on('ready', () => void this.#resubscribe());
  }

  async #connect(): Promise<void> {
    try {
      await Promise.all([this.#commands.connect(), this.#subscriber.connect()]);
    } catch (error) {
      // The error event says why ("ECONNREFUSED"); connect() only says "Connection is closed".
      throw this.#lastError ?? error;
    }
    this.#subscriber.on('message', (channel: string, message: string) => this.#onMessage(channel, message));
    await this.#subscriber.subscribe(this.#channel, this.#handoverChannel);
    await this.#feed.reread();
  }

  async get<T extends Generational>(kind: RecordKind, key: string): Promise<Versioned<T> | undefined> {
    this.#assertOpen('get');
    const [{ json, version }] = await this.#read([{ kind, key }]);
    if (json === undefined) return undefined;
    return { value: decodeRecord<T>(json, this.url, this.#layout.keyOf(kind, key), version), version };
  }

  list(): Promise<RecordChange[]> {
    this.#assertOpen('list');
    return this.#readAll();
  }

  async compareAndSet<T extends Generational>(
    kind: RecordKind,
    key: string,
    value: T,
    expected: number | null,
  ): Promise<CasOutcome> {
    const version = await this.#write('compareAndSet', kind, key, value, expected === null ? ABSENT : String(expected));
    return version < 0 ? { ok: false, reason: 'conflict' } : { ok: true, version };
  }

  async put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number> {
    return this.#write('put', kind, key, value, ANY);
  }

  async delete(kind: RecordKind, key: string): Promise<void> {
    await this.#write('delete', kind, key, undefined, ANY);
  }

  changes(): Observable<RecordChange> {
    return this.#feed.changes$;
  }

  /**
   * Announces that `writer` stopped writing for good, on `<prefix>handovers`,
   * after every change this store's connection published before.
   *
   * @example
   * ```ts
   * await store.handOver('replica-1'); // every store on this Redis emits 'replica-1' on handovers()
   * ```
   * @param writer The writer that stopped.
   * @returns Resolves once Redis has published it.
   * @throws StoreClosedError after `close()`.
   * @throws Error naming the store and the writer when Redis cannot be reached.
   */
  async handOver(writer: string): Promise<void> {
    this.#assertOpen('handOver');
    try {
      await this.#commands.publish(this.#handoverChannel, encodeHandover(writer));
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

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reviveTimer);
    this.#feed.close();
    this.#handovers.close();
    for (const connection of [this.#commands, this.#subscriber]) {
      // ioredis arms a 2 s timer to end an already ended connection again,
      // which would keep the process alive after a failed open.
      if (connection.status !== 'end') connection.disconnect();
    }
    return Promise.resolve();
  }

  #write(
    call: string,
    kind: RecordKind,
    key: string,
    value: Generational | undefined,
    expected: string,
  ): Promise<number> {
    this.#assertOpen(call);
    const name = this.#layout.keyOf(kind, key);
    const json = value === undefined ? '' : encodeRecord(value, this.url, name);
    return this.#batches.write(this.#target, { name, field: recordId({ kind, key }), kind, key, expected, json });
  }

  /** Each record's JSON (undefined when missing) and version, read atomically. */
  #read(records: readonly { kind: RecordKind; key: string }[]): Promise<{ json?: string; version: number }[]> {
    return readVersioned(
      this.#commands,
      this.#versionsKey,
      records.map((record) => ({ name: this.#layout.keyOf(record.kind, record.key), field: recordId(record) })),
    );
  }

  async #readAll(): Promise<RecordChange[]> {
    const changes: RecordChange[] = [];
    const match = `${escapeGlob(this.#layout.root)}*`;
    let cursor = '0';
    do {
      const [next, names] = await this.#commands.scan(cursor, 'MATCH', match, 'COUNT', SCAN_BATCH);
      cursor = next;
      const records = names.flatMap((name) => this.#layout.parse(name) ?? []);
      if (records.length === 0) continue;
      const read = await this.#read(records);
      records.forEach((record, i) => {
        const { json, version } = read[i];
        if (json === undefined) return;
        try {
          const value = decodeRecord(json, this.url, this.#layout.keyOf(record.kind, record.key));
          changes.push({ ...record, value, version });
        } catch {
          // Another tool wrote something that is not a record: one bad value must not hide the others.
        }
      });
    } while (cursor !== '0');
    return changes;
  }

  #onMessage(channel: string, message: string): void {
    if (channel === this.#handoverChannel) return this.#handovers.push(decodeHandover(message));
    // None: another publisher on our channel, not a change of ours.
    for (const change of decodeChanges(message)) this.#feed.push(change);
  }

  async #resubscribe(): Promise<void> {
    try {
      await this.#subscriber.subscribe(this.#channel, this.#handoverChannel);
    } catch {
      // The connection dropped again; its next 'ready' subscribes again.
      return;
    }
    this.#feed.resync();
  }

  /**
   * ioredis gives a connection up for good ('end') when a Sentinel announces
   * the new primary while the connection is asking another Sentinel where
   * the primary is: its failover detector cancels that connect, and nothing
   * retries it. An open store never gives up before close(): it connects again.
   */
  #revive(): void {
    if (!this.#opened || this.#closed || this.#reviveTimer !== undefined) return;
    this.#reviveTimer = setTimeout(() => {
      this.#reviveTimer = undefined;
      if (this.#closed) return;
      for (const connection of [this.#commands, this.#subscriber]) {
        // A failed connect ends in 'end' again, which arms this timer again.
        if (connection.status === 'end') connection.connect().catch(() => undefined);
      }
    }, reconnectDelay(0));
  }

  #assertOpen(call: string): void {
    if (this.#closed) throw new StoreClosedError({ url: this.url, call });
  }
}
