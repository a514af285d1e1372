/**
 * A duration as the CLI shows it, in the live view and in the final table
 * alike: seconds with two decimals.
 *
 * @example
 * ```ts
 * formatDuration(1986); // '1.99 s'
 * ```
 * @param ms Milliseconds.
 * @returns The text.
 */
export function formatDuration(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
