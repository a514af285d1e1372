import type { Observable, SchedulerLike, Subscription } from 'rxjs';
import {
  ContentionTracker,
  LeaseState,
  StatusWriter,
  WriterLease,
  exponentialBackoff,
  type RecordStore,
  type StatusWriterEvent,
} from '../src';
import { linkStore, seededRandom } from '../test-support';
import { LockElector } from './lockElector';

/** How long a graceful stop lets the units in flight settle (the demo's replicas use one lease). */
const HANDOVER_TIMEOUT_MS = 1_000;

/** How the replicas of a macro run decide who writes. */
export type MacroStrategy = 'writer-lease' | 'uncoordinated' | 'lock-lease';

/** The settings every replica of a macro run shares. */
export interface ReplicaSettings {
  /** The store every replica shares; each gets its own severable link to it. */
  store: RecordStore;
  strategy: MacroStrategy;
  scheduler: SchedulerLike;
  /** Every key the driver may change: a new lock-lease leader lists them all, as an informer would. */
  keys: readonly string[];
  /** Writer lease: ms a leader's write holds the lease. */
  leaseDuration: number;
  /** ms before a refused write is tried again (every strategy). */
  retryInterval: number;
  /** Lock lease: client-go's three durations. */
  lock: { leaseDuration: number; renewDeadline: number; retryPeriod: number };
  /** The record the lock lease's elector holds. */
  lockKey: string;
}

/**
 * One replica of a macro run, whatever its strategy: it starts, it can be
 * killed (no cleanup: timers stop, calls in flight never land), and it tells
 * what its status writer did and where it stands.
 */
export interface BenchReplica {
  readonly name: string;
  /** What the status writer's units did: `written` and `conflict` are the attempts. */
  readonly events$: Observable<StatusWriterEvent>;
  start(): void;
  /** Stops the replica abruptly, as `kill -9` would. */
  kill(): void;
  /**
   * Stops the replica gracefully, as on SIGTERM: the writer lease hands over
   * (`StatusWriter.handOver()`), the lock lease releases its lock (client-go's
   * `ReleaseOnCancel`), an uncoordinated replica just stops. Resolves once it
   * has stopped; it writes nothing afterwards.
   */
  handOver(): Promise<void>;
  /** Whether it considers itself the writer now (never, uncoordinated). */
  leads(): boolean;
  /** Its lease's state now, or the elector's (`leader` / `candidate`), to attribute conflicts. */
  state(): string;
}

/**
 * Builds replica `index` of a macro run.
 *
 * @param settings What every replica shares.
 * @param index Its number; its name is `r<index + 1>` and its seed derives from it.
 * @param seed The run's seed.
 * @returns The replica, not started.
 */
export function benchReplica(settings: ReplicaSettings, index: number, seed: number): BenchReplica {
  const name = `r${index + 1}`;
  const random = seededRandom(seed * 1009 + index + 1);
  return settings.strategy === 'lock-lease'
    ? lockLeaseReplica(settings, name, random)
    : writerLeaseReplica(settings, name, random);
}

/** The library's replica (`writer-lease`), or the same work with no coordination (`uncoordinated`). */
function writerLeaseReplica(settings: ReplicaSettings, name: string, random: () => number): BenchReplica {
  const { store, strategy, scheduler, leaseDuration, retryInterval } = settings;
  // A round trip of 1 ms, as the demo's memory replicas have: without it, a unit's calls to the memory
  // store settle within a microtask, and no two replicas ever race as they do on a real store.
  const link = linkStore(store, { latency: 1, scheduler });
  const lease = new WriterLease({
    leaseDuration,
    retryInterval,
    backoff: exponentialBackoff({ random }),
    // Uncoordinated replicas never leave the election: its spread would only delay them.
    spread: strategy === 'writer-lease',
    random,
    scheduler,
    name,
  });
  const tracker = new ContentionTracker({ scheduler });
  const writer = new StatusWriter({
    store: link.store,
    lease,
    writer: name,
    contention: tracker,
    coordinate: strategy === 'writer-lease',
    scheduler,
  });
  const running: Subscription[] = [];
  return {
    name,
    events$: writer.events$,
    start() {
      running.push(lease.run(), writer.run());
    },
    kill() {
      link.sever();
      for (const subscription of running.splice(0)) subscription.unsubscribe();
      lease.dispose();
      tracker.dispose();
    },
    async handOver() {
      // Drains the lease and, coordinated, announces the stop through the store.
      await writer.handOver({ timeoutMs: HANDOVER_TIMEOUT_MS });
      this.kill();
    },
    leads: () => strategy === 'writer-lease' && lease.state.state === LeaseState.Leader,
    state: () => lease.state.state,
  };
}

/**
 * A client-go style controller: only the holder of the lock writes statuses.
 * Its work queue is a `WriterLease` used without coordination (every unit
 * reports `none`), so the unit of work, compare-and-set included, is the
 * very one the other strategies run. On taking the lock it lists every key,
 * as a controller's informer does when it starts.
 */
function lockLeaseReplica(settings: ReplicaSettings, name: string, random: () => number): BenchReplica {
  const { store, scheduler, retryInterval, keys, lock, lockKey } = settings;
  const link = linkStore(store);
  // A plain work queue: rule 16's spread would only delay the holder's writes.
  const queue = new WriterLease({ leaseDuration: lock.leaseDuration, retryInterval, spread: false, scheduler, name });
  const writer = new StatusWriter({ store: link.store, lease: queue, writer: name, coordinate: false, scheduler });
  const leading: Subscription[] = [];
  const stopLeading = () => {
    for (const subscription of leading.splice(0)) subscription.unsubscribe();
  };
  const elector = new LockElector({
    store: link.store,
    lockKey,
    identity: name,
    scheduler,
    random,
    ...lock,
    onStartedLeading() {
      leading.push(writer.run(), queue.run());
      for (const key of keys) writer.sync(key);
    },
    onStoppedLeading: stopLeading,
  });
  return {
    name,
    events$: writer.events$,
    start: () => elector.run(),
    kill() {
      link.sever();
      elector.halt();
      stopLeading();
      queue.dispose();
    },
    async handOver() {
      // client-go: the context is cancelled, the controller's work stops, then the lock is released.
      stopLeading();
      queue.dispose();
      await elector.release();
      this.kill();
    },
    leads: () => elector.leading,
    state: () => (elector.leading ? 'leader' : 'candidate'),
  };
}
