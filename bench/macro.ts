import { MemoryStore, type StatusValue } from '../src';
import { benchReplica, type BenchReplica, type MacroStrategy } from './benchReplica';
import { VirtualClock, VirtualDriver, seededRandom } from '../test-support';

/** One macro run: a strategy, a number of replicas and of keys, and how the run goes. */
export interface MacroConfig {
  strategy: MacroStrategy;
  replicas: number;
  keys: number;
  /** Spec changes of the measured burst. */
  updates: number;
  /** Spec changes per second (47, not 50: see docs/benchmarks.md). @default 47 */
  rate?: number;
  /** Seeds the driver and every replica's randomness. @default 1 */
  seed?: number;
  /** Writer lease. @default 1000 */
  leaseDuration?: number;
  /** Every strategy's retry of a refused write. @default 100 */
  retryInterval?: number;
  /** Lock lease, client-go's durations. @default 15 s / 10 s / 2 s */
  lock?: { leaseDuration: number; renewDeadline: number; retryPeriod: number };
  /** Virtual ms of idle time, once the statuses converged, in which writes are counted. @default 600_000 */
  idleMs?: number;
  /** Ms into the failover burst at which the leader is killed, and into the handover burst at which it stops. @default 1000 */
  killAfterMs?: number;
  /** Ms after the kill at which the failover burst gives up waiting for a new writer. @default 60_000 */
  failoverCapMs?: number;
}

/** What one macro run measured (see docs/benchmarks.md). */
export interface MacroFigures {
  strategy: MacroStrategy;
  replicas: number;
  keys: number;
  /** Spec changes of the measured burst. */
  updates: number;
  /** Successful status writes during the measured burst, until convergence. */
  writes: number;
  /** Status writes refused on version, same span. */
  conflicts: number;
  /** Conflicts by the lease state of the replica that made them, when it made them. */
  conflictsByState: Record<string, number>;
  /** (writes + conflicts) / updates. */
  attemptsPerUpdate: number;
  /** writes / updates. */
  writesPerUpdate: number;
  /** Lock record writes during the measured burst, until convergence. */
  lockWrites: number;
  /** Virtual ms from the last spec change to the status write that made every status current. */
  convergeMs: number | null;
  idleMinutes: number;
  /** Every store write during the idle time, lock renewals included. */
  idleWrites: number;
  idleWritesPerMin: number;
  /** Kill of the leader → first status write of a spec change made after the kill; null with one replica. */
  failoverMs: number | null;
  /** The failover burst, when there is one. */
  failover: (OutageBurst & { killed: string }) | null;
  /**
   * Graceful stop of the leader → first status write, by another replica, of
   * a spec change made after the stop; null with fewer than three replicas
   * (the failover left nobody to hand over to).
   */
  handoverMs: number | null;
  /** The handover burst, when there is one. */
  handover: (OutageBurst & { stopped: string }) | null;
  /** Conflicts of the whole run before the handover: the measured burst (election included) and the failover burst. */
  runConflicts: number;
  /** Every status caught up with its spec, after the measured burst, the failover burst and the handover burst. */
  converged: boolean;
}

const LOCK_KEY = 'leader-election/status-writers';
/** Replicas start, and the lock lease elects, before the first change. */
const WARM_UP_MS = 1000;
/** How long the run waits for the statuses to catch up before it reports `converged: false`. */
const CONVERGE_CAP_MS = 60_000;
/** The failover burst goes on this long after the new writer's first write. */
const AFTER_FAILOVER_MS = 1000;

/** What a burst with an outage of the leader (killed, or stopped gracefully) cost. */
export interface OutageBurst {
  updates: number;
  writes: number;
  conflicts: number;
  conflictsByState: Record<string, number>;
  attemptsPerUpdate: number;
}

/** Which span the writes are counted in; `done` collects what the final kills leave. */
type Phase = 'updates' | 'idle' | 'failover' | 'handover' | 'done';
interface Tally {
  writes: number;
  conflicts: number;
  conflictsByState: Record<string, number>;
  storeWrites: number;
  lockWrites: number;
}

/**
 * Runs one macro configuration in virtual time over the memory store:
 *
 * 1. replicas start; `WARM_UP_MS` later the driver makes `updates` changes
 *    at `rate`; the run waits until every status is current;
 * 2. `idleMs` of idle time: every store write is counted;
 * 3. with two replicas or more, a failover burst at the same rate: after
 *    `killAfterMs` the leader (the lease leader, the lock holder, or for
 *    `uncoordinated` the replica that wrote last) is stopped abruptly; the
 *    changes go on until another replica wrote one made after the kill, and
 *    one second more; then the run waits for convergence again;
 * 4. with two replicas still up, a handover burst, the same way, but the
 *    leader stops gracefully (`BenchReplica.handOver()`: the writer lease
 *    hands over, the lock lease releases its lock).
 *
 * The same config and seed give the same figures, to the last digit.
 *
 * @example
 * ```ts
 * await runMacro({ strategy: 'writer-lease', replicas: 3, keys: 10, updates: 300 });
 * // { attemptsPerUpdate: 1, idleWritesPerMin: 0, failoverMs: 981.7, handoverMs: 9, runConflicts: 0, converged: true, ... }
 * ```
 * @param config The configuration.
 * @returns The figures.
 */
export async function runMacro(config: MacroConfig): Promise<MacroFigures> {
  const {
    strategy,
    replicas: replicaCount,
    keys: keyCount,
    updates,
    rate = 47,
    seed = 1,
    leaseDuration = 1000,
    retryInterval = 100,
    lock = { leaseDuration: 15_000, renewDeadline: 10_000, retryPeriod: 2_000 },
    idleMs = 600_000,
    killAfterMs = 1000,
    failoverCapMs = 60_000,
  } = config;
  const clock = new VirtualClock();
  const { scheduler } = clock;
  const store = new MemoryStore();
  const keys = Array.from({ length: keyCount }, (_, i) => `key-${i}`);
  const driver = new VirtualDriver({ store, keys, scheduler, random: seededRandom(seed) });

  let phase: Phase = 'updates';
  const tallies: Record<Phase, Tally> = {
    updates: tally(),
    idle: tally(),
    failover: tally(),
    handover: tally(),
    done: tally(),
  };

  // Which keys lag their spec, and since when every status is current.
  const lagging = new Set<string>();
  let lastUpdateAt = 0;
  let convergedAt: number | undefined;
  driver.onUpdate(({ key, at }) => {
    lagging.add(key);
    lastUpdateAt = at;
    convergedAt = undefined;
  });
  const storeWatch = store.changes().subscribe(({ kind, key, value }) => {
    tallies[phase].storeWrites++;
    if (key === LOCK_KEY) {
      tallies[phase].lockWrites++;
      return;
    }
    if (kind !== 'status' || value === undefined) return;
    if ((value as StatusValue).generation >= (driver.generations.get(key) ?? Infinity)) lagging.delete(key);
    if (lagging.size === 0 && convergedAt === undefined) convergedAt = clock.now;
  });
  const converged = () => driver.idle && lagging.size === 0;

  // An outage (kill or handover): when, the changes it waits for, and the first write of one by another
  // replica. A kill waits for the first change of any key made after it: the others learn of nothing but
  // the silence. A handover waits for the change made at its instant, which the followers took while they
  // still followed the writer that stopped: written at once only if the handover wakes their waiting keys
  // (rule 17), else once its lease runs out, whatever the later changes do.
  let outage:
    | {
        at: number;
        replica: BenchReplica;
        kind: 'kill' | 'handover';
        firstAfter: Map<string, number>;
        recoveredAt?: number;
      }
    | undefined;
  driver.onUpdate(({ key, generation }) => {
    if (outage === undefined || outage.firstAfter.has(key)) return;
    if (outage.kind === 'kill' || outage.firstAfter.size === 0) outage.firstAfter.set(key, generation);
  });

  const settings = { store, strategy, scheduler, keys, leaseDuration, retryInterval, lock, lockKey: LOCK_KEY };
  const replicas = Array.from({ length: replicaCount }, (_, i) => benchReplica(settings, i, seed));
  const lastWriteAt = new Map<BenchReplica, number>();
  const alive = new Set(replicas);
  for (const replica of replicas) {
    replica.events$.subscribe((event) => {
      const current = tallies[phase];
      if (event.type === 'conflict') {
        current.conflicts++;
        const state = replica.state();
        current.conflictsByState[state] = (current.conflictsByState[state] ?? 0) + 1;
      }
      if (event.type !== 'written') return;
      current.writes++;
      lastWriteAt.set(replica, clock.now);
      if (outage === undefined || outage.recoveredAt !== undefined || replica === outage.replica) return;
      const first = outage.firstAfter.get(event.key);
      if (first !== undefined && event.generation >= first) outage.recoveredAt = clock.now;
    });
  }

  try {
    for (const replica of replicas) replica.start();
    await clock.runUntil(WARM_UP_MS);

    // 1. The measured burst.
    driver.burst({ rate, more: (n) => n < updates });
    const convergedFirst = await clock.runUntil(WARM_UP_MS + (updates * 1000) / rate + CONVERGE_CAP_MS, converged);
    const convergeMs = convergedFirst && convergedAt !== undefined ? round1(convergedAt - lastUpdateAt) : null;

    // 2. Idle.
    phase = 'idle';
    await clock.runUntil(clock.now + idleMs);

    // 3. Failover: the leader dies at an update's instant, before the update is written.
    // 4. Handover: the new leader stops gracefully, the same way, with another replica left to take over.
    let failover: MacroFigures['failover'] = null;
    let handover: MacroFigures['handover'] = null;
    let failoverMs: number | null = null;
    let handoverMs: number | null = null;
    let convergedAfterOutages = true;
    const outageBurst = async (kind: 'kill' | 'handover') => {
      const killIndex = Math.round((killAfterMs * rate) / 1000);
      const madeBefore = driver.made;
      const stopping: Promise<void>[] = [];
      let stopped: BenchReplica | undefined;
      let stoppedAt: number | undefined;
      driver.burst({
        rate,
        before: (n) => {
          if (n !== killIndex) return;
          stopped = leaderOf([...alive], lastWriteAt);
          alive.delete(stopped);
          stoppedAt = clock.now;
          outage = { at: stoppedAt, replica: stopped, kind, firstAfter: new Map() };
          if (kind === 'kill') stopped.kill();
          else stopping.push(stopped.handOver());
        },
        more: (n) => {
          if (n <= killIndex || stoppedAt === undefined) return true;
          const recoveredAt = outage?.recoveredAt;
          return clock.now < (recoveredAt === undefined ? stoppedAt + failoverCapMs : recoveredAt + AFTER_FAILOVER_MS);
        },
      });
      const burstEnd = clock.now + killAfterMs + failoverCapMs + AFTER_FAILOVER_MS + 1000;
      await clock.runUntil(burstEnd, () => driver.idle);
      if (!(await clock.runUntil(clock.now + CONVERGE_CAP_MS, converged))) convergedAfterOutages = false;
      await Promise.all(stopping);
      const { writes, conflicts, conflictsByState } = tallies[phase];
      const updatesMade = driver.made - madeBefore;
      const recoveredAt = outage?.recoveredAt;
      outage = undefined;
      return {
        replica: stopped?.name ?? '',
        ms: stoppedAt === undefined || recoveredAt === undefined ? null : round1(recoveredAt - stoppedAt),
        burst: {
          updates: updatesMade,
          writes,
          conflicts,
          conflictsByState,
          attemptsPerUpdate: ratio(writes + conflicts, updatesMade),
        },
      };
    };
    phase = 'failover';
    if (replicaCount > 1) {
      const { replica, ms, burst } = await outageBurst('kill');
      failover = { killed: replica, ...burst };
      failoverMs = ms;
    }
    phase = 'handover';
    if (alive.size > 1) {
      const { replica, ms, burst } = await outageBurst('handover');
      handover = { stopped: replica, ...burst };
      handoverMs = ms;
    }
    phase = 'done';

    const { writes, conflicts, conflictsByState, lockWrites } = tallies.updates;
    const idleMinutes = idleMs / 60_000;
    return {
      strategy,
      replicas: replicaCount,
      keys: keyCount,
      updates,
      writes,
      conflicts,
      conflictsByState,
      attemptsPerUpdate: ratio(writes + conflicts, updates),
      writesPerUpdate: ratio(writes, updates),
      lockWrites,
      convergeMs,
      idleMinutes,
      idleWrites: tallies.idle.storeWrites,
      idleWritesPerMin: ratio(tallies.idle.storeWrites, idleMinutes),
      failoverMs,
      failover,
      handoverMs,
      handover,
      runConflicts: conflicts + (failover?.conflicts ?? 0),
      converged: convergedFirst && convergedAfterOutages,
    };
  } finally {
    for (const replica of alive) replica.kill();
    storeWatch.unsubscribe();
    await store.close();
  }
}

/** The replica that leads now and wrote last; when none leads, the one that wrote last. */
function leaderOf(replicas: BenchReplica[], lastWriteAt: ReadonlyMap<BenchReplica, number>): BenchReplica {
  const latest = (candidates: BenchReplica[]) =>
    candidates.reduce<BenchReplica | undefined>(
      (best, replica) =>
        best === undefined || (lastWriteAt.get(replica) ?? -1) > (lastWriteAt.get(best) ?? -1) ? replica : best,
      undefined,
    );
  return latest(replicas.filter((replica) => replica.leads())) ?? latest(replicas) ?? replicas[0];
}

function tally(): Tally {
  return { writes: 0, conflicts: 0, conflictsByState: {}, storeWrites: 0, lockWrites: 0 };
}

/** A ratio to three decimals, 0 when there is nothing to divide by. */
function ratio(part: number, whole: number): number {
  return whole === 0 ? 0 : Math.round((part / whole) * 1000) / 1000;
}

/** Virtual times are fractions of a ms when the rate does not divide 1000: one decimal is exact enough. */
function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
