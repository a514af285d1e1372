import { redactUrl, StoreUrlError } from './errors.js';
import { DEFAULT_ETCD_PORT, openEtcdStore } from './etcd.js';
import { MemoryStore } from './memory.js';
import { openPostgresStore } from './postgres.js';
import { openRedisStore } from './redis.js';
import { openRedisClusterStore } from './redisCluster.js';
import { parseRedisClusterUrl } from './redisClusterUrl.js';
import { parseSentinelUrl } from './sentinelUrl.js';
import { CLUSTER_URL_FORMS, parseClusterUrl } from './storeUrl.js';
import type { RecordStore } from './store.js';

/**
 * Options of {@link openStore}, shared by every kind of store.
 *
 * @example
 * ```ts
 * const options: OpenStoreOptions = { prefix: 'demo', connectTimeout: 2000 };
 * ```
 */
export interface OpenStoreOptions {
  /**
   * The namespace of the records: Redis keys start with `<prefix>:`, etcd
   * keys with `/<prefix>/`, and the PostgreSQL table is `<prefix>_records`.
   * Ignored by the memory store.
   * @default 'wl'
   */
  prefix?: string;
  /**
   * Milliseconds to wait for the server when opening (etcd and Redis Cluster: for every call too).
   * @default 5000
   */
  connectTimeout?: number;
}

const EXPECTED =
  'memory, redis://HOST:PORT, redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME, ' +
  'redis-cluster://HOST:PORT[,HOST:PORT...], etcd://HOST:PORT[,HOST:PORT...] or postgres://USER@HOST:PORT/DB';

/**
 * Opens the store a URL names. The client library of a server store
 * (`ioredis`, `etcd3`, `pg`) is loaded only here, when such a store is
 * opened, so importing this package never loads one.
 *
 * A cluster is named by its members, comma-separated: `etcd://H1:P1,H2:P2,H3:P3`
 * talks to every etcd member, `redis-sentinel://H1:P1,H2:P2/MASTER_NAME`
 * asks the Sentinels which Redis node is the primary of `MASTER_NAME`, and
 * follows it through failovers, and `redis-cluster://H1:P1,H2:P2` learns a
 * Redis Cluster's layout from these seed nodes and spreads the records over
 * its masters.
 *
 * @example
 * ```ts
 * const store = await openStore('redis://127.0.0.1:6379', { prefix: 'demo' });
 * await openStore('etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379'); // the whole cluster
 * await openStore('redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/main'); // the primary of "main"
 * await openStore('redis-cluster://10.0.0.1:6379,10.0.0.2:6379'); // every master of a Redis Cluster
 * await openStore('memory'); // a new MemoryStore
 * await openStore('mysql://h:3306'); // rejects with StoreUrlError: unknown scheme "mysql:"
 * await openStore('redis://127.0.0.1:1'); // rejects with StoreUnreachableError within connectTimeout
 * ```
 * @param url `memory`, `redis://HOST[:PORT]`, `redis-sentinel://HOST[:PORT][,...]/MASTER_NAME`,
 *   `redis-cluster://HOST[:PORT][,...]`, `etcd://HOST[:PORT][,...]` or `postgres://USER@HOST[:PORT]/DB`.
 * @param options Record namespace and connect timeout.
 * @returns The store, connected and listening to changes.
 * @throws StoreUrlError when the URL is malformed or its scheme unknown.
 * @throws StoreUnreachableError when the server (no member of a cluster) cannot be reached, or a Redis
 *   Cluster is down or its seeds are not cluster nodes.
 * @throws StoreClientMissingError when the client library is not installed.
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<RecordStore> {
  const { prefix = 'wl', connectTimeout = 5000 } = options;
  if (url === 'memory' || url === 'memory://') return new MemoryStore();
  const protocol = schemeOf(url);
  switch (protocol) {
    case 'redis:':
      checkHost(url);
      return openRedisStore(url, { prefix: `${prefix}:`, connectTimeout });
    case 'redis-sentinel:':
      // Parsed (and refused) before the client library is loaded.
      parseSentinelUrl(url);
      return openRedisStore(url, { prefix: `${prefix}:`, connectTimeout });
    case 'redis-cluster:':
      parseRedisClusterUrl(url);
      return openRedisClusterStore(url, { prefix: `${prefix}:`, connectTimeout });
    case 'etcd:':
      parseClusterUrl(url, DEFAULT_ETCD_PORT, CLUSTER_URL_FORMS.etcd);
      return openEtcdStore(url, { prefix, callTimeout: connectTimeout });
    case 'postgres:':
    case 'postgresql:':
      checkHost(url);
      return openPostgresStore(url, { table: `${prefix}_records`, connectTimeout });
    default:
      throw new StoreUrlError(`unknown scheme "${protocol}"`, { url: redactUrl(url), expected: EXPECTED });
  }
}

function schemeOf(url: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(url)?.[1];
  if (scheme === undefined) throw new StoreUrlError('not a URL', { url: redactUrl(url), expected: EXPECTED });
  return scheme.toLowerCase();
}

function checkHost(url: string): void {
  let hostname: string;
  try {
    hostname = new URL(url).hostname;
  } catch {
    throw new StoreUrlError('not a URL', { url: redactUrl(url), expected: EXPECTED });
  }
  if (!hostname) throw new StoreUrlError('no host', { url: redactUrl(url), expected: EXPECTED });
}
