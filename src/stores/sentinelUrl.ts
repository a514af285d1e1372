import { redactUrl, StoreUrlError } from './errors.js';
import { CLUSTER_URL_FORMS, parseClusterUrl, type HostPort } from './storeUrl.js';

/**
 * What a `redis-sentinel://` URL says: where the Sentinels are, which
 * primary to ask them for, and how to log in to the Redis nodes.
 *
 * @example
 * ```ts
 * parseSentinelUrl('redis-sentinel://:pw@10.0.0.1,10.0.0.2:26380/main/2');
 * // { sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26380 }],
 * //   name: 'main', db: 2, username: '', password: 'pw' }
 * ```
 */
export interface SentinelAddress {
  /** The Sentinels to ask, in order; never empty. */
  readonly sentinels: readonly HostPort[];
  /** The master name the Sentinels monitor (`sentinel monitor NAME ...`). */
  readonly name: string;
  /** The database number on the Redis nodes. */
  readonly db: number;
  /** For the Redis nodes (not the Sentinels); '' when absent. */
  readonly username: string;
  /** For the Redis nodes (not the Sentinels); '' when absent. */
  readonly password: string;
}

/**
 * Sentinel's own port: a Sentinel named without a port is on it.
 *
 * @example
 * ```ts
 * parseSentinelUrl('redis-sentinel://10.0.0.1/main').sentinels; // [{ host: '10.0.0.1', port: 26379 }]
 * ```
 */
export const DEFAULT_SENTINEL_PORT = 26379;

/**
 * Reads a `redis-sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER_NAME[/DB]`
 * URL. A Sentinel without a port is on 26379.
 *
 * @example
 * ```ts
 * parseSentinelUrl('redis-sentinel://127.0.0.1:26379/main').name; // 'main'
 * parseSentinelUrl('redis-sentinel://127.0.0.1:26379'); // throws StoreUrlError: no master name
 * ```
 * @param url The URL as given.
 * @returns Its parts.
 * @throws StoreUrlError naming the URL (password masked) when a part is missing or malformed.
 */
export function parseSentinelUrl(url: string): SentinelAddress {
  const expected = CLUSTER_URL_FORMS.sentinel;
  const { hosts, username, password, path } = parseClusterUrl(url, DEFAULT_SENTINEL_PORT, expected);
  const fail = (message: string): never => {
    throw new StoreUrlError(message, { url: redactUrl(url), expected });
  };
  const [name, dbText, ...rest] = path;
  if (name === undefined) return fail('no master name');
  if (rest.length > 0) return fail(`expected /MASTER_NAME or /MASTER_NAME/DB, received /${path.join('/')}`);
  const db = dbText === undefined ? 0 : Number(dbText);
  if (dbText !== undefined && !/^\d+$/.test(dbText)) {
    return fail(`the database must be an integer >= 0, received "${dbText}"`);
  }
  return { sentinels: hosts, name, db, username, password };
}
