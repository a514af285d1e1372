import type { SpecValue, StatusValue } from '../../src/stores/store';

/** A spec of `generation`, its value `v<generation>` unless given. */
export const spec = (generation: number, value = `v${generation}`): SpecValue => ({ generation, value });

/** A status of `generation` written by `writer`, its value `v<generation>` unless given; `at` 0. */
export const status = (generation: number, writer: string, value = `v${generation}`): StatusValue => ({
  generation,
  value,
  writer,
  at: 0,
});
