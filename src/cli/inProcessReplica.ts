import { first, firstValueFrom } from 'rxjs';
import type { RecordStore } from '../stores/store.js';
import type { Strategy } from './args.js';
import { Replica } from './replica.js';
import type { ReplicaHandle } from './replicaHandle.js';
import { linkStore } from './storeLink.js';

/**
 * Options of {@link inProcessReplica}.
 *
 * @example
 * ```ts
 * inProcessReplica({ store, name: 'r1', leaseDuration: 1000, retryInterval: 100, strategy: 'writer-lease', latency: 1 });
 * ```
 */
export interface InProcessReplicaOptions {
  /** The store every in-process replica shares. */
  store: RecordStore;
  name: string;
  leaseDuration: number;
  retryInterval: number;
  strategy: Strategy;
  spread: boolean;
  /** Milliseconds added to every store call (see {@link linkStore}). */
  latency: number;
  /** Shards the keys hash to. @default 1 */
  shards?: number;
  /** Store calls a second this replica may make; undefined: unlimited. */
  clientQps?: number;
}

/**
 * A replica in this process, on its own link to the shared store. It starts
 * on `ready()`, so that whoever subscribes to `reports$` before sees every report.
 * `kill()` severs the link and halts the replica: its calls in flight never
 * land and it reports nothing more, as with a killed process.
 *
 * @example
 * ```ts
 * const handle = inProcessReplica({ store: new MemoryStore(), name: 'r1', ...durations, strategy: 'writer-lease', latency: 1 });
 * await handle.ready();
 * ```
 * @param options The shared store, the replica's name and settings.
 * @returns The started replica.
 */
export function inProcessReplica(options: InProcessReplicaOptions): ReplicaHandle {
  const { store, latency, ...config } = options;
  const link = linkStore(store, { latency });
  const replica = new Replica({ ...config, store: link.store });
  /** Set on the first `ready()`, which starts the replica. */
  let synced: Promise<void> | undefined;
  return {
    name: replica.name,
    reports$: replica.reports$,
    ready() {
      if (synced === undefined) {
        synced = firstValueFrom(replica.reports$.pipe(first((report) => report.type === 'synced'))).then(
          () => undefined,
        );
        replica.start();
      }
      return synced;
    },
    kill() {
      link.sever();
      replica.halt();
    },
    stop: () => replica.stop(),
  };
}
