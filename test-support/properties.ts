import fc from 'fast-check';

/**
 * What the fast-check properties of the tests share: more runs in CI than
 * locally, the replay of a failure that fast-check printed, weighted choices.
 */

/** Runs of each property: 1000 with `CI` set, 200 otherwise. */
export const PROPERTY_RUNS = process.env.CI ? 1000 : 200;

/**
 * Replays a failure: `FC_SEED=<seed> FC_PATH=<path> npx jest <file> -t '<name>'`,
 * with the seed and path fast-check printed. Empty when `FC_SEED` is not set.
 */
export const PROPERTY_REPLAY: { seed?: number; path?: string } =
  process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH };

/**
 * One of `options`, each drawn in proportion to its weight.
 *
 * @example
 * ```ts
 * weighted([3, fc.constant(0)], [1, fc.integer({ min: 1, max: 2 })]); // 0 three times in four
 * ```
 */
export function weighted<T>(...options: [number, fc.Arbitrary<T>][]): fc.Arbitrary<T> {
  return fc.oneof(...options.map(([weight, arbitrary]) => ({ weight, arbitrary })));
}
