import { StoreClientMissingError } from './errors';

/**
 * Loads the client library of a store adapter when a store is opened, not
 * when the package is imported: `ioredis`, `etcd3` and `pg` are optional
 * peer dependencies, and a user of the memory store installs none of them.
 *
 * @example
 * ```ts
 * const { Pool } = loadClient<typeof import('pg')>('pg', 'postgres://u@h:5432/db');
 * ```
 * @param packageName The npm package to load.
 * @param url The store being opened, for the error message.
 * @returns The package's exports.
 * @throws StoreClientMissingError when the package is not installed.
 */
export function loadClient<T>(packageName: string, url: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional peer, loaded only when its store is opened
    return require(packageName) as T;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw cause;
    throw new StoreClientMissingError({ url, packageName, cause });
  }
}
