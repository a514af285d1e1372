/**
 * Milliseconds to wait before reconnect attempt `attempt` (0 for the first)
 * to a store's server: doubling from 100 ms, capped at 2 s so that a store
 * that comes back is noticed within about two seconds.
 *
 * @example
 * ```ts
 * [0, 1, 2, 3, 4, 5].map(reconnectDelay); // [100, 200, 400, 800, 1600, 2000]
 * ```
 * @param attempt How many attempts failed in a row before this one.
 * @returns The delay in milliseconds.
 */
export function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** attempt, 2000);
}
