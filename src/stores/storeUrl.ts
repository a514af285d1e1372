import { redactUrl, StoreUrlError } from './errors.js';

/**
 * One member of a cluster, as a store URL names it.
 *
 * @example
 * ```ts
 * parseClusterUrl('etcd://10.0.0.1:2379,10.0.0.2', 2379).hosts;
 * // [{ host: '10.0.0.1', port: 2379 }, { host: '10.0.0.2', port: 2379 }]
 * ```
 */
export interface HostPort {
  /** A name, an IPv4 address, or an IPv6 address without its brackets. */
  readonly host: string;
  /** 1 to 65535. */
  readonly port: number;
}

/**
 * A cluster URL taken apart: `scheme://[USER[:PASSWORD]@]H[:P][,H[:P]...][/PATH]`.
 *
 * @example
 * ```ts
 * parseClusterUrl('redis-sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/main', 26379);
 * // { hosts: [{ host: '127.0.0.1', port: 26379 }, { host: '127.0.0.1', port: 26380 }],
 * //   username: '', password: 'pw', path: ['main'] }
 * ```
 */
export interface ClusterUrl {
  /** Every member, in the order given; never empty. */
  readonly hosts: readonly HostPort[];
  /** Decoded; '' when absent. */
  readonly username: string;
  /** Decoded; '' when absent. */
  readonly password: string;
  /** The path's segments, decoded, empty ones left out. */
  readonly path: readonly string[];
}

/**
 * What a cluster URL of each scheme looks like, for messages.
 *
 * @example
 * ```ts
 * parseClusterUrl(url, 2379, CLUSTER_URL_FORMS.etcd); // a StoreUrlError ends "; expected etcd://HOST[:PORT][,HOST[:PORT]...]"
 * ```
 */
export const CLUSTER_URL_FORMS = {
  etcd: 'etcd://HOST[:PORT][,HOST[:PORT]...]',
  sentinel: 'redis-sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER_NAME[/DB]',
  redisCluster: 'redis-cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]',
} as const;

/**
 * Takes apart a URL that may name several hosts, which `new URL()` refuses
 * (`etcd://a:2379,b:2379` has no valid port for it). Every member must name
 * a host; a port, when given, must be an integer from 1 to 65535.
 *
 * @example
 * ```ts
 * parseClusterUrl('etcd://127.0.0.1:2379,127.0.0.1:22379', 2379).hosts.length; // 2
 * parseClusterUrl('etcd://a:70000', 2379); // throws StoreUrlError: member "a:70000": port 70000 ...
 * ```
 * @param url The URL as given.
 * @param defaultPort The port of a member that names none.
 * @param expected The accepted form, for messages.
 * @returns Its parts.
 * @throws StoreUrlError naming the URL (password masked) and what is wrong with it.
 */
export function parseClusterUrl(url: string, defaultPort: number, expected: string = url): ClusterUrl {
  const fail = (message: string): never => {
    throw new StoreUrlError(message, { url: redactUrl(url), expected });
  };
  const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)([^?#]*)(?:[?#].*)?$/i.exec(url);
  if (!match) return fail('not a URL');
  const [, authority, pathname] = match;
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? '' : authority.slice(0, at);
  const hostList = authority.slice(at + 1);
  const colon = userinfo.indexOf(':');
  const username = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'the user name', fail);
  const password = colon < 0 ? '' : decode(userinfo.slice(colon + 1), 'the password', fail);
  if (hostList === '') return fail('no host');
  const hosts = hostList.split(',').map((member) => parseMember(member, defaultPort, fail));
  const path = pathname
    .split('/')
    .filter((segment) => segment !== '')
    .map((segment) => decode(segment, `path segment "${segment}"`, fail));
  return { hosts, username, password, path };
}

function parseMember(member: string, defaultPort: number, fail: (message: string) => never): HostPort {
  if (member === '') return fail('an empty member in the host list');
  // An IPv6 address is written in brackets, since it has colons of its own.
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::(.*))?$/i.exec(member);
  if (!match) return fail(`member "${member}" is not HOST or HOST:PORT`);
  const [, ipv6, name, port] = match;
  const host = ipv6 ?? name;
  if (port === undefined) return { host, port: defaultPort };
  const number = Number(port);
  if (!/^\d+$/.test(port) || number < 1 || number > 65535) {
    return fail(`member "${member}": port must be an integer from 1 to 65535, received "${port}"`);
  }
  return { host, port: number };
}

/** `what` names the part without quoting it: a password must not end up in a message. */
function decode(text: string, what: string, fail: (message: string) => never): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return fail(`${what} is not validly percent-encoded`);
  }
}
