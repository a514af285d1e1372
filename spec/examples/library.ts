import type { OpenStoreOptions, RecordStore } from '../../src';
import { openStore as openStoreAt } from '../../src/stores/openStore';

// 'rx-writer-lease' as the guides' examples import it: the sources, except
// that openStore opens a memory store whatever the URL. The examples show the
// API with addresses of the reader's servers (redis://10.0.0.5:6379...);
// spec/stores.spec.ts covers the adapters on real servers.
export * from '../../src';

/**
 * {@link openStoreAt | openStore}, on memory.
 *
 * @param _url Any store URL.
 * @param options As openStore's.
 * @returns A memory store.
 */
export function openStore(_url: string, options?: OpenStoreOptions): Promise<RecordStore> {
  return openStoreAt('memory', options);
}
