import { packageRequire } from './packageRequire.js';

/**
 * An optional peer dependency that a feature needs is not installed. The
 * message names the package and the command that installs it.
 *
 * @example
 * ```ts
 * import { leaseMetrics, PeerDependencyMissingError } from 'rx-writer-lease/prometheus';
 * try {
 *   leaseMetrics(lease);
 * } catch (error) {
 *   if (error instanceof PeerDependencyMissingError) console.error(error.message);
 *   // leaseMetrics needs the package "prom-client": install it with `npm install prom-client`
 * }
 * ```
 */
export class PeerDependencyMissingError extends Error {
  override readonly name = 'PeerDependencyMissingError';

  /**
   * @param info The package, the feature that needs it, and the error of the failed load.
   */
  constructor(readonly info: { readonly packageName: string; readonly usedBy: string; readonly cause: unknown }) {
    super(
      `${info.usedBy} needs the package "${info.packageName}": install it with \`npm install ${info.packageName}\``,
      { cause: info.cause },
    );
  }
}

/**
 * Loads an optional peer dependency now, synchronously.
 *
 * @internal
 * @param packageName The npm package.
 * @param usedBy What needs it, for the message.
 * @returns Its exports.
 * @throws PeerDependencyMissingError when the package itself is not installed (a
 *   package it depends on that is missing is reported as Node reports it).
 */
export function requirePeer<T>(packageName: string, usedBy: string): T {
  try {
    return packageRequire(packageName) as T;
  } catch (cause) {
    const { code, message } = cause as NodeJS.ErrnoException;
    if (code === 'MODULE_NOT_FOUND' && message.includes(`'${packageName}'`)) {
      throw new PeerDependencyMissingError({ packageName, usedBy, cause });
    }
    throw cause;
  }
}
