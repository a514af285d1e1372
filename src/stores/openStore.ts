import { redactUrl, StoreUrlError } from './errors.js';
import { openEtcdStore } from './etcd.js';
import { MemoryStore } from './memory.js';
import { openPostgresStore } from './postgres.js';
import { openRedisStore } from './redis.js';
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
   * Milliseconds to wait for the server when opening (etcd: for every call).
   * @default 5000
   */
  connectTimeout?: number;
}

const EXPECTED = 'memory, redis://HOST:PORT, etcd://HOST:PORT or postgres://USER@HOST:PORT/DB';

/**
 * Opens the store a URL names. The client library of a server store
 * (`ioredis`, `etcd3`, `pg`) is loaded only here, when such a store is
 * opened, so importing this package never loads one.
 *
 * @example
 * ```ts
 * const store = await openStore('redis://127.0.0.1:6379', { prefix: 'demo' });
 * await openStore('memory'); // a new MemoryStore
 * await openStore('mysql://h:3306'); // rejects with StoreUrlError: unknown scheme "mysql:"
 * await openStore('redis://127.0.0.1:1'); // rejects with StoreUnreachableError within connectTimeout
 * ```
 * @param url `memory`, `redis://HOST[:PORT]`, `etcd://HOST[:PORT]` or `postgres://USER@HOST[:PORT]/DB`.
 * @param options Record namespace and connect timeout.
 * @returns The store, connected and listening to changes.
 * @throws StoreUrlError when the URL is malformed or its scheme unknown.
 * @throws StoreUnreachableError when the server cannot be reached.
 * @throws StoreClientMissingError when the client library is not installed.
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<RecordStore> {
  const { prefix = 'wl', connectTimeout = 5000 } = options;
  if (url === 'memory' || url === 'memory://') return new MemoryStore();
  const { protocol, hostname } = parseUrl(url);
  if (!['redis:', 'etcd:', 'postgres:', 'postgresql:'].includes(protocol)) {
    throw new StoreUrlError(`unknown scheme "${protocol}"`, { url: redactUrl(url), expected: EXPECTED });
  }
  if (!hostname) throw new StoreUrlError('no host', { url: redactUrl(url), expected: EXPECTED });
  switch (protocol) {
    case 'redis:':
      return openRedisStore(url, { prefix: `${prefix}:`, connectTimeout });
    case 'etcd:':
      return openEtcdStore(url, { prefix, callTimeout: connectTimeout });
    default:
      return openPostgresStore(url, { table: `${prefix}_records`, connectTimeout });
  }
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new StoreUrlError('not a URL', { url: redactUrl(url), expected: EXPECTED });
  }
}
