import { redactUrl, StoreUrlError } from './errors.js';
import { CLUSTER_URL_FORMS, parseClusterUrl, type HostPort } from './storeUrl.js';

/**
 * What a `redis-cluster://` URL says: the seed nodes to learn the cluster
 * from, and how to log in to its nodes.
 *
 * @example
 * ```ts
 * parseRedisClusterUrl('redis-cluster://:pw@10.0.0.1,10.0.0.2:7001');
 * // { seeds: [{ host: '10.0.0.1', port: 6379 }, { host: '10.0.0.2', port: 7001 }], username: '', password: 'pw' }
 * ```
 */
export interface RedisClusterAddress {
  /** Nodes to ask for the cluster's layout, in order; never empty. Any node of the cluster will do. */
  readonly seeds: readonly HostPort[];
  /** For every node; '' when absent. */
  readonly username: string;
  /** For every node; '' when absent. */
  readonly password: string;
}

/**
 * Redis's own port: a seed named without a port is on it.
 *
 * @example
 * ```ts
 * parseRedisClusterUrl('redis-cluster://10.0.0.1').seeds; // [{ host: '10.0.0.1', port: 6379 }]
 * ```
 */
export const DEFAULT_REDIS_PORT = 6379;

/**
 * Reads a `redis-cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]`
 * URL. A seed without a port is on 6379. Redis Cluster has one database, so
 * the URL has no path.
 *
 * @example
 * ```ts
 * parseRedisClusterUrl('redis-cluster://127.0.0.1:7000,127.0.0.1:7001').seeds.length; // 2
 * parseRedisClusterUrl('redis-cluster://'); // throws StoreUrlError: no host
 * parseRedisClusterUrl('redis-cluster://127.0.0.1:7000/2'); // throws StoreUrlError: Redis Cluster has one database: expected no path, received /2
 * ```
 * @param url The URL as given.
 * @returns Its parts.
 * @throws StoreUrlError naming the URL (password masked) when a part is missing or malformed.
 */
export function parseRedisClusterUrl(url: string): RedisClusterAddress {
  const expected = CLUSTER_URL_FORMS.redisCluster;
  const { hosts, username, password, path } = parseClusterUrl(url, DEFAULT_REDIS_PORT, expected);
  if (path.length > 0) {
    throw new StoreUrlError(`Redis Cluster has one database: expected no path, received /${path.join('/')}`, {
      url: redactUrl(url),
      expected,
    });
  }
  return { seeds: hosts, username, password };
}
