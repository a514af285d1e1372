import { randomUUID } from 'node:crypto';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import type { Observable } from 'rxjs';
import { ChangeFeed } from './changeFeed.js';
import { clusterLayout, type Bucket, type ClusterLayout } from './clusterBuckets.js';
import { redactUrl, StoreClosedError } from './errors.js';
import { handoverFailed, HandoverFeed } from './handoverFeed.js';
import { HASH_SLOTS } from './hashSlot.js';
import { loadClient } from './loadClient.js';
import { reachWithin } from './reachWithin.js';
import { reconnectDelay } from './reconnectDelay.js';
import { parseRedisClusterUrl, type RedisClusterAddress } from './redisClusterUrl.js';
import {
  ABSENT,
  ANY,
  decodeChanges,
  defineRecordCommands,
  readVersioned,
  WriteBatches,
  type RecordCommands,
} from './redisRecords.js';
import { decodeRecord, encodeRecord, recordId } from './recordLayout.js';
import { ShardedSubscriber } from './shardedSubscriber.js';
import type { CasOutcome, Generational, RecordChange, RecordKind, RecordStore, Versioned } from './store.js';

/**
 * Options of {@link openRedisClusterStore}.
 *
 * @example
 * ```ts
 * const options: RedisClusterStoreOptions = { prefix: 'demo:', connectTimeout: 2000 };
 * ```
 */
export interface RedisClusterStoreOptions {
  /**
   * What every key starts with; a hash tag follows it: records are
   * `<prefix>{<tag>}:spec:<key>` and `<prefix>{<tag>}:status:<key>`, and
   * each of the 1024 buckets also has `<prefix>{<tag>}:versions`,
   * `:revision` and the sharded channel `:changes`. It must
   * contain no `{` or `}`.
   * @default 'wl:'
   */
  prefix?: string;
  /**
   * Milliseconds to wait for the cluster when the store is opened, and for
   * the answer to each call once it is open.
   * @default 5000
   */
  connectTimeout?: number;
}

/**
 * Opens a {@link RecordStore} on Redis Cluster (or a service that speaks its
 * protocol, such as AWS MemoryDB) with `ioredis` (an optional peer
 * dependency, loaded now), given some of its nodes as seeds.
 *
 * A record's key hashes to one of 1024 buckets, and each bucket's names
 * carry one hash tag inside the prefix, so a record's spec, status and
 * version, and its bucket's version counter and channel, are all in one
 * hash slot: every write is one Lua script on one master, as on a single
 * Redis, and `SPUBLISH`es the change on the bucket's sharded channel. The
 * buckets' slots are spread evenly over the slot space, so the records
 * spread over the masters as the slots do. The change feed subscribes to
 * every bucket's channel on the master that serves it (one connection per
 * master) and re-reads every record whenever a master's subscriptions are
 * made again. Through a master's failover, each bucket counts its versions
 * in a new epoch under the promoted replica, as behind Sentinel, so the
 * fence holds; writes the promoted replica never received are lost, and
 * the feed shows those records going back.
 *
 * @example
 * ```ts
 * const store = await openRedisClusterStore('redis-cluster://127.0.0.1:7000,127.0.0.1:7001');
 * await store.put('spec', 'a', { generation: 1, value: 'x' }); // 1
 * await store.close();
 * ```
 * @param url `redis-cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]` (seeds on 6379 by default).
 * @param options Key prefix and timeout.
 * @returns The store, connected and listening to changes.
 * @throws StoreUrlError when the URL is malformed.
 * @throws RangeError when the prefix contains `{` or `}`.
 * @throws StoreUnreachableError when no seed answers, a seed is not a cluster node, or the cluster is down
 *   (`cluster_state:fail`, or a bucket's slot served by no master) within `connectTimeout`.
 * @throws StoreClientMissingError when `ioredis` is not installed.
 */
export async function openRedisClusterStore(url: string, options: RedisClusterStoreOptions = {}): Promise<RecordStore> {
  const { prefix = 'wl:', connectTimeout = 5000 } = options;
  // Bad input is refused before the client library is loaded.
  const address = parseRedisClusterUrl(url);
  if (/[{}]/.test(prefix)) {
    throw new RangeError(
      `openRedisClusterStore: options.prefix: expected no "{" or "}" (a hash tag follows the prefix), ` +
        `received ${JSON.stringify(prefix)}`,
    );
  }
  const ioredis = await loadClient<typeof import('ioredis')>('ioredis', url);
  const store = new RedisClusterStore(url, prefix, address, ioredis, connectTimeout);
  await store.open();
  return store;
}

/**
 * How often a missing subscription is mended: a connection made again, the
 * slot table asked again. Cheap, and it joins a promoted replica about as
 * soon as the cluster names it (a failover takes 2-3 s with a node timeout
 * of 1 s); after 5 s of it, ten times less often.
 */
const HEAL_INTERVAL_MS = 100;
const HEAL_PATIENCE = 50;
/** The slot table is read again this often even when nothing fails, to follow slots that moved. */
const SLOTS_REFRESH_MS = 5000;
const SCAN_BATCH = 500;
/** Handovers whose parts have not all arrived (a part lost with a connection) are forgotten past this many. */
const PENDING_HANDOVERS = 64;

type ClusterCommands = Cluster & RecordCommands;

/** One part of a handover: a writer publishes one on a channel of each master. */
interface HandoverPart {
  readonly writer: string;
  readonly handover: string;
  readonly parts: number;
}

class RedisClusterStore implements RecordStore {
  readonly url: string;
  /** A master's promoted replica may lack the last writes the master acknowledged. */
  readonly losesAcknowledgedWrites = true;
  readonly #address: RedisClusterAddress;
  readonly #ioredis: typeof import('ioredis');
  readonly #timeout: number;
  readonly #layout: ClusterLayout;
  readonly #cluster: ClusterCommands;
  /** The writes of one turn, one script call per bucket (its keys share a hash slot). */
  readonly #batches: WriteBatches;
  readonly #subscriber: ShardedSubscriber;
  readonly #handovers = new HandoverFeed();
  readonly #feed = new ChangeFeed(() => this.#handovers.reading(this.#readAll()));
  /** Per handover id, the channels its parts arrived on. */
  readonly #parts = new Map<string, Set<string>>();
  #lastError: unknown;
  /** Reads the slot table again every {@link SLOTS_REFRESH_MS}, from open() to close(). */
  #slotsTimer: ReturnType<typeof setInterval> | undefined;
  /** The connection asking a seed whether the cluster is up: a seed that never answers holds it past open()'s deadline. */
  #probe: Redis | undefined;
  #opened = false;
  #closed = false;

  constructor(
    url: string,
    prefix: string,
    address: RedisClusterAddress,
    ioredis: typeof import('ioredis'),
    timeout: number,
  ) {
    this.url = redactUrl(url);
    this.#address = address;
    this.#ioredis = ioredis;
    this.#timeout = timeout;
    this.#layout = clusterLayout(prefix);
    const cluster = new ioredis.Cluster(
      address.seeds.map(({ host, port }) => ({ host, port })),
      {
        lazyConnect: true,
        // At open a cluster that cannot be reached must fail fast; once open, outages are waited out until close().
        clusterRetryStrategy: (attempt) => (this.#opened && !this.#closed ? reconnectDelay(attempt - 1) : null),
        // The store reads the slot table again itself (#slotsTimer): ioredis's own timer can outlive
        // disconnect() (a read in flight when it is called arms it again), and keep the process alive.
        slotsRefreshInterval: 0,
        // A node that stops answering must not hold a call forever: each call has a deadline anyway.
        redisOptions: { ...this.#nodeOptions(), commandTimeout: timeout },
      },
    );
    this.#cluster = defineRecordCommands(cluster, 'cluster');
    this.#batches = new WriteBatches(this.#cluster);
    // Errors reach callers through rejected commands; without listeners ioredis would print every one.
    this.#cluster.on('error', (error: unknown) => (this.#lastError = error));
    this.#cluster.on('node error', (error: unknown) => (this.#lastError = error));
    this.#subscriber = new ShardedSubscriber({
      channels: this.#layout.buckets.map(({ channel, slot }) => ({ channel, slot })),
      slots: () => this.#cluster.slots,
      refreshSlots: () => void this.#refreshSlots(),
      connect: ({ host, port }) =>
        new ioredis.Redis({ ...this.#nodeOptions(), host, port, lazyConnect: true, retryStrategy: () => null }),
      onMessage: (channel, message) => this.#onMessage(channel, message),
      // Messages published while a master's subscriptions were missing are lost: read everything again.
      onSubscribed: () => (this.#opened ? this.#feed.resync() : undefined),
      onError: (error) => (this.#lastError = error),
      healInterval: HEAL_INTERVAL_MS,
      healPatience: HEAL_PATIENCE,
      subscribeTimeout: timeout,
    });
    this.#cluster.on('refresh', () => this.#subscriber.update());
  }

  async open(): Promise<void> {
    await reachWithin(
      this.url,
      this.#timeout,
      () => this.#connect(),
      () => this.close(),
    );
    this.#opened = true;
  }

  async #connect(): Promise<void> {
    await this.#checkSeeds();
    // Given up on meanwhile (open()'s deadline passed, and close() ran): connecting now would start a client,
    // and its slot-table timer, that nobody closes.
    if (this.#closed) return;
    try {
      await this.#cluster.connect();
    } catch (error) {
      throw this.#lastError ?? error;
    }
    this.#subscriber.update();
    const uncovered = this.#subscriber.uncovered;
    if (uncovered.length > 0) {
      throw new Error(
        `the cluster is down: ${uncovered.length} of the store's ${this.#layout.buckets.length} hash slots ` +
          `have no master (slot ${uncovered[0]} first)`,
      );
    }
    await this.#subscriber.whenComplete();
    await this.#feed.reread();
    if (!this.#closed) this.#slotsTimer ??= setInterval(() => void this.#refreshSlots(), SLOTS_REFRESH_MS);
  }

  /**
   * Asks the seeds, in order, until one answers `CLUSTER INFO`, so that a
   * seed that is not a cluster node, or a cluster that is down, is reported
   * as such rather than as a connection that gave up.
   */
  async #checkSeeds(): Promise<void> {
    const failures: string[] = [];
    for (const { host, port } of this.#address.seeds) {
      const node = `${host}:${port}`;
      const probe = (this.#probe = new this.#ioredis.Redis({
        ...this.#nodeOptions(),
        host,
        port,
        lazyConnect: true,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
      }));
      let connectError: unknown;
      probe.on('error', (error: unknown) => (connectError ??= error));
      try {
        try {
          await probe.connect();
        } catch (error) {
          failures.push(`${node}: ${messageOf(connectError ?? error)}`);
          continue;
        }
        let info: string;
        try {
          info = (await probe.call('CLUSTER', 'INFO')) as string;
        } catch (error) {
          const notClustered = /cluster support disabled/i.test(messageOf(error));
          throw new Error(`${node}${notClustered ? ' is not a Redis Cluster node' : ''}: ${messageOf(error)}`, {
            cause: error,
          });
        }
        const state = /cluster_state:(\w+)/.exec(info)?.[1];
        if (state !== 'ok') {
          const served = /cluster_slots_ok:(\d+)/.exec(info)?.[1] ?? '?';
          throw new Error(
            `the cluster is down: ${node} says cluster_state:${state ?? '?'}, ${served} of ${HASH_SLOTS} slots served`,
          );
        }
        return;
      } finally {
        if (probe.status !== 'end') probe.disconnect();
      }
    }
    throw new Error(`no seed answered (${failures.join('; ')})`);
  }

  async get<T extends Generational>(kind: RecordKind, key: string): Promise<Versioned<T> | undefined> {
    this.#assertOpen('get');
    const bucket = this.#layout.of(key);
    const name = bucket.records.keyOf(kind, key);
    const [{ json, version }] = await this.#within(
      'get',
      readVersioned(this.#cluster, bucket.versionsKey, [{ name, field: recordId({ kind, key }) }]),
    );
    if (json === undefined) return undefined;
    return { value: decodeRecord<T>(json, this.url, name, version), version };
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
   * Announces that `writer` stopped writing for good: one part on a channel
   * of each master, after every change this store made there before, and
   * every store on this cluster emits it once it has every part.
   *
   * @example
   * ```ts
   * await store.handOver('replica-1'); // every store on this cluster emits 'replica-1' on handovers()
   * ```
   * @param writer The writer that stopped.
   * @returns Resolves once every master has published its part.
   * @throws StoreClosedError after `close()`.
   * @throws Error naming the store and the writer when a master cannot be reached.
   */
  async handOver(writer: string): Promise<void> {
    this.#assertOpen('handOver');
    try {
      const channels = this.#channelPerMaster();
      const part: HandoverPart = { writer, handover: randomUUID(), parts: channels.length };
      const message = JSON.stringify(part);
      await this.#within('handOver', Promise.all(channels.map((channel) => this.#cluster.spublish(channel, message))));
    } catch (error) {
      throw handoverFailed(this.url, writer, error);
    }
  }

  /**
   * The writers that handed over, from now on, each once all its parts
   * arrived: after the changes its writer made before, on every master.
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
    this.#feed.close();
    this.#handovers.close();
    this.#subscriber.close();
    clearInterval(this.#slotsTimer);
    if (this.#probe !== undefined && this.#probe.status !== 'end') this.#probe.disconnect();
    if (this.#cluster.status !== 'end') this.#cluster.disconnect();
    return Promise.resolve();
  }

  /** What every connection to a node is given. */
  #nodeOptions(): RedisOptions {
    const { username, password } = this.#address;
    return {
      username: username || undefined,
      password: password || undefined,
      connectTimeout: this.#timeout,
    };
  }

  #write(
    call: string,
    kind: RecordKind,
    key: string,
    value: Generational | undefined,
    expected: string,
  ): Promise<number> {
    this.#assertOpen(call);
    const bucket = this.#layout.of(key);
    const name = bucket.records.keyOf(kind, key);
    const json = value === undefined ? '' : encodeRecord(value, this.url, name);
    return this.#within(
      call,
      this.#batches.write(bucket, { name, field: recordId({ kind, key }), kind, key, expected, json }),
    );
  }

  /**
   * Every record, read master by master: `SCAN` for the names on each,
   * then the read script per bucket. A master that cannot be reached fails
   * the whole read (its records are not gone), and the feed tries again.
   */
  async #readAll(): Promise<RecordChange[]> {
    const nodes = new Map(
      this.#cluster.nodes('all').map((node) => [`${node.options.host}:${node.options.port}`, node]),
    );
    // Every master's connection first: a read started before another master is found missing would be
    // left with nobody waiting for it, and its failure (the store closed meanwhile) would go unhandled.
    const masters = [...this.#bucketsByMaster()].map(([master, buckets]) => {
      const node = nodes.get(master);
      if (node === undefined) throw new Error(`no connection to the master ${master}`);
      return { node, buckets: new Set(buckets) };
    });
    const read = await Promise.all(masters.map(({ node, buckets }) => this.#readMaster(node, buckets)));
    return read.flat();
  }

  async #readMaster(node: Redis, buckets: ReadonlySet<Bucket>): Promise<RecordChange[]> {
    const changes: RecordChange[] = [];
    let cursor = '0';
    do {
      const [next, names] = await node.scan(cursor, 'MATCH', this.#layout.scanPattern, 'COUNT', SCAN_BATCH);
      cursor = next;
      const byBucket = new Map<Bucket, { kind: RecordKind; key: string }[]>();
      for (const name of names) {
        const parsed = this.#layout.parse(name);
        // A bucket the slot table gives to another master is read there.
        if (parsed === undefined || !buckets.has(parsed.bucket)) continue;
        const records = byBucket.get(parsed.bucket) ?? [];
        records.push({ kind: parsed.kind, key: parsed.key });
        byBucket.set(parsed.bucket, records);
      }
      await Promise.all(
        [...byBucket].map(async ([bucket, records]) => {
          const named = records.map((record) => ({ ...record, name: bucket.records.keyOf(record.kind, record.key) }));
          const values = await this.#within(
            're-read',
            readVersioned(
              this.#cluster,
              bucket.versionsKey,
              named.map((record) => ({ name: record.name, field: recordId(record) })),
            ),
          );
          named.forEach(({ kind, key, name }, i) => {
            const { json, version } = values[i];
            if (json === undefined) return;
            try {
              changes.push({ kind, key, value: decodeRecord(json, this.url, name), version });
            } catch {
              // Another tool wrote something that is not a record: one bad value must not hide the others.
            }
          });
        }),
      );
    } while (cursor !== '0');
    return changes;
  }

  /**
   * Asks a master the client is connected to for the slot table, and has
   * the client read it again only when it differs from the client's: each
   * of ioredis's reads opens a connection of its own, which a mending every
   * 100 ms through a long outage need not pay for.
   */
  async #refreshSlots(): Promise<void> {
    const node = this.#cluster.nodes('master').find(({ status }) => status === 'ready');
    try {
      if (node === undefined) throw new Error('no master connected');
      const ranges = await node.cluster('SLOTS');
      const known = this.#cluster.slots;
      const differs = this.#layout.buckets.some(({ slot }) => {
        const [host, port] = ranges.find(([start, end]) => start <= slot && slot <= end)?.[2] ?? [];
        const master = port === undefined ? undefined : `${host || node.options.host}:${port}`;
        return master !== known[slot]?.[0];
      });
      if (!differs) return;
    } catch {
      // Let the client find a node that answers.
    }
    if (!this.#closed) this.#cluster.refreshSlotsCache();
  }

  /** The store's buckets by the master that serves each, as the slot table says; throws when one has none. */
  #bucketsByMaster(): Map<string, Bucket[]> {
    const slots = this.#cluster.slots;
    const byMaster = new Map<string, Bucket[]>();
    for (const bucket of this.#layout.buckets) {
      const master = slots[bucket.slot]?.[0];
      if (master === undefined) throw new Error(`the cluster is down: no master serves slot ${bucket.slot}`);
      const buckets = byMaster.get(master) ?? [];
      buckets.push(bucket);
      byMaster.set(master, buckets);
    }
    return byMaster;
  }

  /** One bucket's channel on each master: a handover's part there comes after the changes published there. */
  #channelPerMaster(): string[] {
    return [...this.#bucketsByMaster().values()].map(([first]) => first.channel);
  }

  #onMessage(channel: string, message: string): void {
    const part = decodeHandoverPart(message);
    if (part !== undefined) return this.#onHandoverPart(channel, part);
    // None: another publisher on our channel, not a change of ours.
    for (const change of decodeChanges(message)) this.#feed.push(change);
  }

  /**
   * A handover is emitted once its parts arrived on as many channels as it
   * has parts: each part arrives after the changes its writer published on
   * that master before it, so the handover comes after all of them.
   */
  #onHandoverPart(channel: string, { writer, handover, parts }: HandoverPart): void {
    const channels = this.#parts.get(handover) ?? new Set<string>();
    channels.add(channel);
    if (channels.size < parts) {
      this.#parts.set(handover, channels);
      if (this.#parts.size > PENDING_HANDOVERS) this.#parts.delete(this.#parts.keys().next().value!);
      return;
    }
    this.#parts.delete(handover);
    this.#handovers.push(writer);
  }

  /** Rejects with an error naming the store and the call when `work` takes longer than the timeout. */
  async #within<T>(call: string, work: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Store ${this.url}: ${call} got no answer within ${this.#timeout} ms`)),
        this.#timeout,
      );
    });
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  #assertOpen(call: string): void {
    if (this.#closed) throw new StoreClosedError({ url: this.url, call });
  }
}

function decodeHandoverPart(text: string): HandoverPart | undefined {
  try {
    const { writer, handover, parts } = JSON.parse(text) as Partial<Record<keyof HandoverPart, unknown>>;
    if (typeof writer !== 'string' || typeof handover !== 'string') return undefined;
    if (typeof parts !== 'number' || !Number.isInteger(parts) || parts < 1) return undefined;
    return { writer, handover, parts };
  } catch {
    return undefined;
  }
}

/** The first line of an error's message; errors of another realm (a test's VM context) too. */
function messageOf(error: unknown): string {
  const { errors, message, name } = (error ?? {}) as { errors?: unknown; message?: unknown; name?: unknown };
  if (Array.isArray(errors) && errors.length > 0) return errors.map(messageOf).join('; ');
  if (typeof message === 'string') return (message || String(name)).split('\n')[0];
  return String(error);
}
