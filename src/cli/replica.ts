import { demoNow } from './demoClock.js';
import {
  Subject,
  distinctUntilChanged,
  filter,
  first,
  firstValueFrom,
  map,
  merge,
  of,
  race,
  timer,
  type Observable,
  type Subscription,
} from 'rxjs';
import { ContentionTracker } from '../contentionTracker.js';
import { serveHealth, type HealthServer } from '../health.js';
import { ShardedWriterLease } from '../shardedWriterLease.js';
import { StatusWriter, type StatusWriterEvent } from '../statusWriter.js';
import type { RecordStore } from '../stores/store.js';
import type { LeaseState } from '../types.js';
import { WriterLease } from '../writerLease.js';
import type { ListenAddress, Strategy } from './args.js';
import { TokenBucket, throttledStore } from './tokenBucket.js';

/**
 * What a replica tells the demo, one JSON object per line on the stdout of a
 * replica process. Every report names the replica and carries `at`, in ms
 * on the machine's monotonic clock (`demoNow`): comparable between the
 * processes of one machine, not between machines.
 *
 * @example
 * ```json
 * {"type":"ready","replica":"r1","pid":4242,"at":52934000000}
 * {"type":"synced","replica":"r1","at":52934000004}
 * {"type":"state","replica":"r1","state":"leader","at":52934000012}
 * {"type":"written","replica":"r1","key":"key-3","generation":7,"at":52934000013}
 * {"type":"stopped","replica":"r1","writes":98,"conflicts":2,"at":52934003000}
 * ```
 */
export type ReplicaReport =
  /** The replica watches the store: spec changes from now on reach it. */
  | { readonly type: 'ready'; readonly replica: string; readonly pid: number; readonly at: number }
  /**
   * Its cache of the store is filled (the store listed, or it cannot list):
   * its units work from the cache from now on (`StatusWriter.synced$`).
   */
  | { readonly type: 'synced'; readonly replica: string; readonly at: number }
  /**
   * Its lease's state changed (election, leader, follower). Sharded: leader
   * while it leads a shard, and `leading`, the shards it leads, sorted; sent
   * again whenever they change.
   */
  | {
      readonly type: 'state';
      readonly replica: string;
      readonly state: LeaseState;
      readonly leading?: readonly number[];
      readonly at: number;
    }
  /** A compare-and-set of a status succeeded. */
  | {
      readonly type: 'written';
      readonly replica: string;
      readonly key: string;
      readonly generation: number;
      readonly at: number;
    }
  /** A compare-and-set of a status was refused on its version. */
  | {
      readonly type: 'conflict';
      readonly replica: string;
      readonly key: string;
      readonly generation: number;
      readonly at: number;
    }
  /** The contention tracker made the replica stand down on a key. */
  | { readonly type: 'contended'; readonly replica: string; readonly key: string; readonly at: number }
  /** A store call failed; the unit is retried. */
  | {
      readonly type: 'error';
      readonly replica: string;
      readonly key: string;
      readonly message: string;
      readonly at: number;
    }
  /** Stopped cleanly, with its totals; the last report. */
  | {
      readonly type: 'stopped';
      readonly replica: string;
      readonly writes: number;
      readonly conflicts: number;
      /** Why the store could not announce the handover, when it could not: the others wait this lease out. */
      readonly handOverFailed?: string;
      readonly at: number;
    };

/**
 * Options of a {@link Replica}.
 *
 * @example
 * ```ts
 * new Replica({ store, name: 'r1', leaseDuration: 1000, retryInterval: 100, strategy: 'writer-lease' });
 * ```
 */
export interface ReplicaConfig {
  /** Where specs and statuses live. */
  store: RecordStore;
  /** Written into every status this replica writes. */
  name: string;
  /** Milliseconds a leader's write holds the lease. */
  leaseDuration: number;
  /** Milliseconds before a refused write is tried again. */
  retryInterval: number;
  /** `uncoordinated` runs the same work with no lease, for comparison. */
  strategy: Strategy;
  /** Rule 16's spread (docs/lease.md, "No herd"); uncoordinated replicas never spread. */
  spread: boolean;
  /**
   * Shards the keys hash to: more than 1 makes the lease a
   * {@link ShardedWriterLease} with the same options, each shard's lease
   * as the one lease would be.
   * @default 1
   */
  shards?: number;
  /** Store calls a second (a token bucket, burst the same); undefined: unlimited. */
  clientQps?: number;
}

/** Keys a replica processes at once. */
const REPLICA_WORKERS = 64;

/** How long a clean stop waits for a unit in flight to hear back from the store. */
const DRAIN_TIMEOUT_MS = 5_000;

/**
 * One replica of the scenario: a writer lease, a contention tracker and a
 * status writer on a store, reporting what it does on `reports$`.
 *
 * @example
 * ```ts
 * const replica = new Replica({ store, name: 'r1', leaseDuration: 1000, retryInterval: 100, strategy: 'writer-lease' });
 * replica.reports$.subscribe((report) => console.log(JSON.stringify(report)));
 * replica.start();
 * // {"type":"ready","replica":"r1","pid":4242,"at":52934000000}
 * // {"type":"state","replica":"r1","state":"election","at":52934000000}
 * // {"type":"synced","replica":"r1","at":52934000004}
 * await replica.stop();
 * // {"type":"stopped","replica":"r1","writes":0,"conflicts":0,"at":52934000100}
 * ```
 */
export class Replica {
  readonly #name: string;
  readonly #store: RecordStore;
  readonly #leaseDuration: number;
  readonly #lease: WriterLease | ShardedWriterLease;
  readonly #bucket: TokenBucket | undefined;
  readonly #tracker: ContentionTracker;
  readonly #writer: StatusWriter;
  readonly #reports = new Subject<ReplicaReport>();
  /** The store watch, ended first on stop: a change must not reach a disposed lease. */
  #watch: Subscription | undefined;
  readonly #running: Subscription[] = [];
  /** Units started and not yet heard back from: a clean stop waits for them. */
  #inFlight = 0;
  readonly #settled = new Subject<void>();
  #writes = 0;
  #conflicts = 0;
  #over = false;
  #stopping: Promise<void> | undefined;

  /** Every report, in order; completes after `stopped`, or silently on `halt()`. */
  readonly reports$: Observable<ReplicaReport> = this.#reports.asObservable();

  /**
   * @param config The store, the name, the lease's durations and the strategy.
   */
  constructor(config: ReplicaConfig) {
    const { name, leaseDuration, retryInterval, strategy, spread, shards = 1, clientQps } = config;
    this.#name = name;
    this.#bucket = clientQps === undefined ? undefined : new TokenBucket({ rate: clientQps });
    const store = this.#bucket === undefined ? config.store : throttledStore(config.store, this.#bucket);
    this.#store = store;
    this.#leaseDuration = leaseDuration;
    const leaseOptions = {
      leaseDuration,
      retryInterval,
      name,
      // workTimeout = one lease: a store call that has not answered by then (a half-open socket) is let
      // go of and retried, instead of holding the replica's only worker for good; and a write that
      // lands later than a whole lease after it started could not count as renewing ours anyway.
      workTimeout: leaseDuration,
      // Units of different keys overlap their round trips (a client pipelines concurrent calls on one
      // connection): one at a time, a burst of 10,000 changes would take 10,000 round trips in a row.
      // Shared out among the shards: the replica's calls in flight stay as many, however many shards
      // (64 per shard of 30 would queue 1,920 units behind a rate limit, each timing out after a lease).
      workers: Math.ceil(REPLICA_WORKERS / shards),
      // Uncoordinated replicas never leave the election: its spread would only delay them.
      spread: spread && strategy === 'writer-lease',
    };
    this.#lease = shards === 1 ? new WriterLease(leaseOptions) : new ShardedWriterLease({ ...leaseOptions, shards });
    this.#tracker = new ContentionTracker();
    this.#writer = new StatusWriter({
      store,
      lease: this.#lease,
      writer: name,
      contention: this.#tracker,
      coordinate: strategy === 'writer-lease',
    });
  }

  /** The name written into statuses. */
  get name(): string {
    return this.#name;
  }

  /**
   * Starts watching the store and processing; reports `ready`, then the
   * lease's state.
   */
  start(): void {
    const lease = this.#lease;
    const unitStarted$ = lease.events$.pipe(filter((event) => event.type === 'started'));
    this.#running.push(
      unitStarted$.subscribe(() => this.#inFlight++),
      this.#writer.events$.subscribe((event) => {
        this.#inFlight--;
        this.#settled.next();
        this.#report(event);
      }),
    );
    if (lease instanceof ShardedWriterLease) {
      // The writer first: it sends the lease's announcements, and run() announces this replica.
      this.#watch = this.#writer.run();
      this.#running.push(lease.run());
    } else {
      this.#running.push(lease.run());
      this.#watch = this.#writer.run();
    }
    this.#send({ type: 'ready', replica: this.#name, pid: process.pid, at: demoNow() });
    this.#running.push(
      this.#writer.synced$
        .pipe(first(Boolean))
        .subscribe(() => this.#send({ type: 'synced', replica: this.#name, at: demoNow() })),
    );
    this.#running.push(
      statesOf(lease).subscribe((state) => this.#send({ type: 'state', replica: this.#name, ...state, at: demoNow() })),
    );
  }

  /**
   * Serves /healthz, /readyz, /metrics and /status on `listen` (see
   * `serveHealth`): readiness bounded by this replica's lease, liveness by
   * its work timeout (one lease), and an idle replica's store probed.
   *
   * @param listen The host and port.
   * @returns The server, once it listens; close it after `stop()`.
   */
  serveHealth(listen: ListenAddress): Promise<HealthServer> {
    return serveHealth({
      lease: this.#lease,
      writer: this.#writer,
      store: this.#store,
      leaseDuration: this.#leaseDuration,
      workTimeout: this.#leaseDuration,
      listen,
    });
  }

  /**
   * Stops cleanly and hands over: no new unit starts, the units in flight
   * finish (at most 5 s), the store tells the other replicas that this
   * writer stopped, then `stopped` reports the totals and `reports$`
   * completes.
   *
   * @returns Resolves once stopped.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stopCleanly();
    return this.#stopping;
  }

  /**
   * Stops at once with no cleanup and no more reports, as a killed process
   * would: pair it with a severed store link, so that calls in flight never
   * land either.
   */
  halt(): void {
    if (this.#over) return;
    this.#over = true;
    this.#end();
    this.#reports.complete();
  }

  async #stopCleanly(): Promise<void> {
    if (this.#over) return;
    // Units in flight settle (at most DRAIN_TIMEOUT_MS), then the store tells the other replicas that
    // this writer stopped: the ones that follow it write at once instead of waiting its lease out.
    // A store that cannot announce it (unreachable) must not stop the stop: the others wait the lease out.
    let handOverFailed: string | undefined;
    await this.#writer.handOver({ timeoutMs: DRAIN_TIMEOUT_MS }).catch((error: unknown) => {
      handOverFailed = describeError(error);
    });
    // A unit the lease let go of at the timeout may still have a store call on its way: its write counts.
    if (this.#inFlight > 0) {
      await firstValueFrom(race(this.#settled.pipe(filter(() => this.#inFlight <= 0)), timer(DRAIN_TIMEOUT_MS)));
    }
    this.#end();
    this.#send({
      type: 'stopped',
      replica: this.#name,
      writes: this.#writes,
      conflicts: this.#conflicts,
      ...(handOverFailed === undefined ? {} : { handOverFailed }),
      at: demoNow(),
    });
    this.#over = true;
    this.#reports.complete();
  }

  #end(): void {
    this.#watch?.unsubscribe();
    for (const subscription of this.#running.splice(0)) subscription.unsubscribe();
    this.#lease.dispose();
    this.#tracker.dispose();
    this.#bucket?.close();
  }

  #report(event: StatusWriterEvent): void {
    const at = demoNow();
    const replica = this.#name;
    switch (event.type) {
      case 'written':
        this.#writes++;
        this.#send({ type: 'written', replica, key: event.key, generation: event.generation, at });
        return;
      case 'conflict':
        this.#conflicts++;
        this.#send({ type: 'conflict', replica, key: event.key, generation: event.generation, at });
        return;
      case 'contended':
        this.#send({ type: 'contended', replica, key: event.key, at });
        return;
      case 'error':
        this.#send({ type: 'error', replica, key: event.key, message: describeError(event.error), at });
        return;
      default:
        // 'current' and 'gone' change nothing in the store: nothing to count.
        return;
    }
  }

  #send(report: ReplicaReport): void {
    if (!this.#over) this.#reports.next(report);
  }
}

/**
 * The lease's state, the current one first, then each change; a sharded
 * lease's with the shards it leads, computed when read on each shard's
 * change of state.
 */
function statesOf(
  lease: WriterLease | ShardedWriterLease,
): Observable<{ readonly state: LeaseState; readonly leading?: readonly number[] }> {
  if (!(lease instanceof ShardedWriterLease)) {
    return lease.state$.pipe(
      map(({ state }) => state),
      distinctUntilChanged(),
      map((state) => ({ state })),
    );
  }
  return merge(of(undefined), lease.events$.pipe(filter((event) => event.type === 'state')), lease.leading$).pipe(
    map(() => {
      const { state, leading } = lease.state;
      return { state, leading: [...leading].sort((a, b) => a - b) };
    }),
    distinctUntilChanged((a, b) => a.state === b.state && a.leading.join() === b.leading.join()),
  );
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
