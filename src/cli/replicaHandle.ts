import type { Observable } from 'rxjs';
import type { ReplicaReport } from './replica.js';

/**
 * A replica as the demo drives it, wherever it runs: in the demo's process
 * ({@link inProcessReplica}) or as a process of its own ({@link spawnReplica}).
 *
 * @example
 * ```ts
 * handle.reports$.subscribe(count);
 * await handle.ready();
 * handle.kill(); // the leader dies, no cleanup
 * await handle.stop(); // the others stop cleanly
 * ```
 */
export interface ReplicaHandle {
  /** The name written into statuses. */
  readonly name: string;
  /** Every report of the replica; completes when it stops or dies. */
  readonly reports$: Observable<ReplicaReport>;
  /**
   * Resolves once the replica watches the store and its cache has synced
   * (its `synced` report: it works from the cache from then on); rejects
   * when it failed to start.
   */
  ready(): Promise<void>;
  /** Kills it at once, with no cleanup (a process gets SIGKILL). */
  kill(): void;
  /** Stops it cleanly; resolves once it is gone. */
  stop(): Promise<void>;
}
