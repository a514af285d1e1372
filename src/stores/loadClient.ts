import { StoreClientMissingError } from './errors.js';

/**
 * Loads the client library of a store adapter when a store is opened, not
 * when the package is imported: `ioredis`, `etcd3` and `pg` are optional
 * peer dependencies, and a user of the memory store installs none of them.
 * A dynamic `import()` works from both builds (CommonJS and ES modules).
 *
 * @example
 * ```ts
 * const { Pool } = await loadClient<typeof import('pg')>('pg', 'postgres://u@h:5432/db');
 * ```
 * @param packageName The npm package to load.
 * @param url The store being opened, for the error message.
 * @returns The package's exports.
 * @throws StoreClientMissingError when the package is not installed.
 */
export async function loadClient<T>(packageName: string, url: string): Promise<T> {
  let loaded: { default?: unknown };
  try {
    loaded = (await import(packageName)) as { default?: unknown };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') throw cause;
    throw new StoreClientMissingError({ url, packageName, cause });
  }
  // The clients are CommonJS: from either build their exports object is `default`
  // (an ES module sees only the names Node could detect beside it).
  return (loaded.default ?? loaded) as T;
}
