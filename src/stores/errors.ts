/**
 * A store URL that cannot be parsed, or whose scheme no adapter serves.
 * Thrown before any connection is attempted.
 *
 * @example
 * ```ts
 * await openStore('mysql://db:3306').catch((e: StoreUrlError) => e.message);
 * // 'Store URL "mysql://db:3306": unknown scheme "mysql:"; expected memory, redis://HOST:PORT, ...'
 * ```
 */
export class StoreUrlError extends Error {
  override readonly name = 'StoreUrlError';

  constructor(
    message: string,
    readonly info: { readonly url: string; readonly expected: string },
  ) {
    super(`Store URL "${info.url}": ${message}; expected ${info.expected}`);
  }
}

/**
 * The store's server could not be reached (refused, timed out, or refused
 * our credentials) when the store was opened.
 *
 * @example
 * ```ts
 * await openStore('redis://127.0.0.1:1').catch((e: StoreUnreachableError) => e.info.url);
 * // 'redis://127.0.0.1:1'
 * ```
 */
export class StoreUnreachableError extends Error {
  override readonly name = 'StoreUnreachableError';

  constructor(readonly info: { readonly url: string; readonly cause: unknown }) {
    super(`Cannot reach the store at ${info.url}: ${describeCause(info.cause)}`, { cause: info.cause });
  }
}

/**
 * The client library an adapter needs is not installed. The adapters load
 * `ioredis`, `etcd3` and `pg` only when a store of theirs is opened, so they
 * are optional peer dependencies.
 *
 * @example
 * ```ts
 * await openStore('etcd://127.0.0.1:2379').catch((e: StoreClientMissingError) => e.info.packageName);
 * // 'etcd3' (when it is not installed)
 * ```
 */
export class StoreClientMissingError extends Error {
  override readonly name = 'StoreClientMissingError';

  constructor(readonly info: { readonly url: string; readonly packageName: string; readonly cause: unknown }) {
    super(
      `The store at ${info.url} needs the package "${info.packageName}": ` +
        `install it with \`npm install ${info.packageName}\` (${describeCause(info.cause)})`,
      { cause: info.cause },
    );
  }
}

/**
 * A record holds something that is not a JSON object with a numeric
 * `generation` (written by another tool), or a value handed to a store has
 * no numeric `generation`.
 *
 * @example
 * ```ts
 * await store.put('spec', 'a', { value: 'x' } as never).catch((e: StoreValueError) => e.info.received);
 * // { value: 'x' }
 * ```
 */
export class StoreValueError extends TypeError {
  override readonly name = 'StoreValueError';

  /**
   * @param info The store, the record, what it held, and its version when
   *   the store read one (a writer overwrites such a status on that version).
   */
  constructor(
    readonly info: {
      readonly url: string;
      readonly record: string;
      readonly received: unknown;
      readonly version?: number;
    },
  ) {
    super(
      `Store ${info.url}, record ${info.record}: expected a JSON object with a numeric ` +
        `"generation", received ${preview(info.received)}`,
    );
  }
}

/**
 * A method was called on a store after `close()`.
 *
 * @example
 * ```ts
 * await store.close();
 * await store.get('spec', 'a'); // rejects with StoreClosedError
 * ```
 */
export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';

  constructor(readonly info: { readonly url: string; readonly call: string }) {
    super(`Store ${info.url}: ${info.call} was called after close()`);
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    // Node reports a refused dual-stack connect as an AggregateError with an empty message.
    return cause.errors.map(describeCause).join('; ');
  }
  // The first line only: a module-not-found message goes on with a require stack.
  if (cause instanceof Error) return (cause.message || cause.name).split('\n')[0];
  return String(cause);
}

function preview(received: unknown): string {
  const text = typeof received === 'string' ? received : (JSON.stringify(received) ?? String(received));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The URL as a store shows it in `url` and in messages: with the password
 * replaced by `***`, since messages end up in logs.
 *
 * @example
 * ```ts
 * redactUrl('postgres://app:secret@db:5432/app'); // 'postgres://app:***@db:5432/app'
 * redactUrl('redis://127.0.0.1:6379'); // 'redis://127.0.0.1:6379'
 * ```
 * @param url A store URL.
 * @returns The same URL without its password.
 */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@');
}
