import { parseDemoArgs, type Strategy } from '../src/cli/args';
import { runDemo, type DemoSummary } from '../src/cli/demo';
import { redactUrl } from '../src/stores/errors';

/** One real-store configuration's figures: a plain run, and a run with the leader killed. */
export interface RealFigures {
  strategy: Strategy;
  replicas: number;
  keys: number;
  updates: number;
  writes: number;
  conflicts: number;
  attemptsPerUpdate: number;
  writesPerUpdate: number;
  /** Writes the store showed in the demo's idle window (2 × leaseDuration), every replica. */
  idleWrites: number;
  idleMs: number;
  idleWritesPerMin: number;
  /** From the second run, which kills the leader; null with one replica. */
  failoverMs: number | null;
  /** Conflicts of the second run: the election and the failover (the plain run's are `conflicts`); null with one replica. */
  runConflicts: number | null;
  /**
   * From the third run, in which the leader stops gracefully and hands over
   * (`--handover-after`, with `--lease-duration 2000`); null with one replica.
   */
  handoverMs: number | null;
  /** Every run converged. */
  converged: boolean;
  /** Wall time of the plain run, from the first change to convergence. */
  durationMs: number;
}

/** Options of {@link realStoreSuite}. */
export interface RealStoreOptions {
  /** `redis://H:P`, `etcd://H:P` or `postgres://U@H:P/DB`. */
  store: string;
  replicas: readonly number[];
  keys: readonly number[];
  updates: number;
  rate: number;
  /** When the kill run kills the leader, ms after its first change. */
  killLeaderAfter: number;
  /** Told each configuration as it starts. */
  progress?: (line: string) => void;
}

const STRATEGIES: readonly Strategy[] = ['writer-lease', 'uncoordinated'];
const LEASE_DURATION = 1000;
/** The handover run's lease: the handover target is set against a 2 s lease (docs/benchmarks.md). */
const HANDOVER_LEASE_DURATION = 2000;

/**
 * The macro figures in real time on a real store, for the strategies the
 * demo has: it runs `runDemo` (one OS process per replica) once plainly and,
 * with two replicas or more, once more with the leader killed and once with
 * the leader stopped gracefully (it hands over).
 *
 * Real time differs from the virtual-time macro runs: store calls take a
 * round trip, so replicas race for real; and the idle window is the demo's
 * (2 × leaseDuration), not ten minutes.
 *
 * @example
 * ```ts
 * await realStoreSuite({ store: 'redis://127.0.0.1:6379', replicas: [3], keys: [10], updates: 300, rate: 47, killLeaderAfter: 2000 });
 * ```
 * @param options The store and the configurations.
 * @returns One row per strategy, replica count and key count.
 * @throws StoreUnreachableError (from `runDemo`) when the store cannot be reached.
 */
export async function realStoreSuite(options: RealStoreOptions): Promise<RealFigures[]> {
  const { store, replicas: replicaCounts, keys: keyCounts, updates, rate, killLeaderAfter, progress } = options;
  const rows: RealFigures[] = [];
  for (const keys of keyCounts) {
    for (const replicas of replicaCounts) {
      for (const strategy of STRATEGIES) {
        progress?.(`real ${redactUrl(store)} ${strategy} ${replicas} replicas ${keys} keys`);
        const flags = (count: number, leaseDuration = LEASE_DURATION) => [
          '--store',
          store,
          '--strategy',
          strategy,
          '--replicas',
          `${replicas}`,
          '--keys',
          `${keys}`,
          '--updates',
          `${count}`,
          '--rate',
          `${rate}`,
          '--lease-duration',
          `${leaseDuration}`,
        ];
        const plain = await runDemo(parseDemoArgs(flags(updates)));
        let killed: DemoSummary | undefined;
        let handedOver: DemoSummary | undefined;
        if (replicas > 1) {
          // Enough changes after the kill for the failover to show: the kill time plus three seconds.
          const killUpdates = Math.ceil(((killLeaderAfter + 3000) * rate) / 1000);
          killed = await runDemo(parseDemoArgs([...flags(killUpdates), '--kill-leader-after', `${killLeaderAfter}`]));
          // One second of changes after the stop is plenty: the handover takes a few backoff steps.
          const handoverUpdates = Math.ceil(((killLeaderAfter + 1000) * rate) / 1000);
          handedOver = await runDemo(
            parseDemoArgs([
              ...flags(handoverUpdates, HANDOVER_LEASE_DURATION),
              '--handover-after',
              `${killLeaderAfter}`,
            ]),
          );
        }
        rows.push(figuresOf(plain, killed, handedOver));
      }
    }
  }
  return rows;
}

function figuresOf(
  plain: DemoSummary,
  killed: DemoSummary | undefined,
  handedOver: DemoSummary | undefined,
): RealFigures {
  const idleMs = 2 * LEASE_DURATION;
  return {
    strategy: plain.strategy,
    replicas: plain.replicas,
    keys: plain.keys,
    updates: plain.updates,
    writes: plain.writes,
    conflicts: plain.conflicts,
    attemptsPerUpdate: plain.attemptsPerUpdate,
    writesPerUpdate: plain.writesPerUpdate,
    idleWrites: plain.idleWrites,
    idleMs,
    idleWritesPerMin: Math.round((plain.idleWrites * 60_000) / idleMs),
    failoverMs: round1(killed?.failoverMs ?? null),
    runConflicts: killed?.conflicts ?? null,
    handoverMs: round1(handedOver?.handoverMs ?? null),
    converged: plain.converged && (killed?.converged ?? true) && (handedOver?.converged ?? true),
    durationMs: plain.durationMs,
  };
}

/** Real times come from `performance.now()`, to the microsecond: one decimal of a ms is plenty. */
function round1(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 10) / 10;
}
