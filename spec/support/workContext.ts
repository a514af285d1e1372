import type { WorkContext } from '../../src';

/**
 * A context for calling a unit of work by hand, as the lease would call it.
 *
 * @example
 * ```ts
 * await writer.unit('a')(workContext('a')); // WorkResult.Extend
 * ```
 */
export function workContext(key = 'key', signal: AbortSignal = new AbortController().signal, id = 1): WorkContext {
  return { key, id, signal };
}
