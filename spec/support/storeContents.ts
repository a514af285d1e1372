import type { RecordStore, SpecValue, StatusValue } from '../../src';

/** What the store holds for some keys, read directly: each spec's generation, and the keys whose status lags it. */
export interface StoreContents {
  readonly specGenerations: Record<string, number>;
  /** Keys whose status is missing, or is not the status of the spec's generation and value. */
  readonly lagging: string[];
}

/**
 * Reads `keys` from `store`, as a test checks a run's end against what the
 * store then holds.
 *
 * @example
 * ```ts
 * const { specGenerations, lagging } = await readContents(store, ['key-0', 'key-1']);
 * // { specGenerations: { 'key-0': 12, 'key-1': 9 }, lagging: [] }
 * ```
 */
export async function readContents(store: RecordStore, keys: readonly string[]): Promise<StoreContents> {
  const specGenerations: Record<string, number> = {};
  const lagging: string[] = [];
  for (const key of keys) {
    const [spec, status] = await Promise.all([
      store.get<SpecValue>('spec', key),
      store.get<StatusValue>('status', key),
    ]);
    if (spec !== undefined) specGenerations[key] = spec.value.generation;
    const current =
      spec !== undefined &&
      status?.value.generation === spec.value.generation &&
      status.value.value === spec.value.value;
    if (!current) lagging.push(key);
  }
  return { specGenerations, lagging };
}
