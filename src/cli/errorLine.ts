/**
 * An error message as one clean line for the terminal: its first line, with
 * what store clients append that says nothing to a user taken off. gRPC
 * (etcd3) ends its messages with an empty "Resolution note:", starts them with
 * a status code, and nests the cause as "Last error: Error: ...".
 *
 * @example
 * ```ts
 * errorLine(
 *   'Cannot reach the store at etcd://127.0.0.1:1: 14 UNAVAILABLE: No connection established. ' +
 *     'Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
 * );
 * // 'Cannot reach the store at etcd://127.0.0.1:1: No connection established (connect ECONNREFUSED 127.0.0.1:1)'
 * ```
 * @param message The message, as the error has it.
 * @returns One line, without trailing punctuation.
 */
export function errorLine(message: string): string {
  return (message.split('\n')[0] ?? '')
    .replace(/\s*Resolution note:\s*$/, '')
    .replace(/(^|: )\d+ [A-Z_]+: /, '$1')
    .replace(/\.? Last error: (?:[A-Za-z]*Error: )?(.+?)\.?$/, ' ($1)')
    .replace(/[\s.:;,]+$/, '');
}
