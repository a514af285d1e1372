/**
 * A pseudo-random generator in [0, 1) from a 32-bit seed (mulberry32): the
 * same seed gives the same sequence, so a demo run can be repeated exactly.
 *
 * @example
 * ```ts
 * const random = seededRandom(1);
 * random(); // 0.6270739405881613, on every run
 * ```
 * @param seed Any integer; only its low 32 bits count.
 * @returns The generator.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
