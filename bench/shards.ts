import { parseDemoArgs } from '../src/cli/args';
import { runDemo } from '../src/cli/demo';
import { redactUrl } from '../src/stores/errors';

/**
 * One row of the shards runs: a burst of `keys` records with every replica
 * limited to `clientQps` store calls a second (docs/replicas.md, "Shards").
 */
export interface ShardRow {
  /** `memory` (the replicas in the bench's process) or the store URL, password masked. */
  readonly store: string;
  readonly replicas: number;
  readonly shards: number;
  readonly keys: number;
  readonly clientQps: number;
  /** First change → every status current; null when it did not converge. */
  readonly convergeMs: number | null;
  /** convergeMs of 1 replica, same store and shards, / this run's; null without both. */
  readonly speedUp: number | null;
  readonly attemptsPerUpdate: number;
  readonly conflicts: number;
  /** Shards each replica leads at the end, in replica order (with one shard: 1 for the leader). */
  readonly shardsByReplica: readonly number[];
  readonly converged: boolean;
}

/** What {@link shardsSuite} runs. */
export interface ShardsOptions {
  /** `memory`, and the Redis URLs to run on too. */
  readonly stores: readonly string[];
  readonly quick?: boolean;
  readonly progress?: (line: string) => void;
}

/** The replica counts and shard counts of the rows (the shards issue). */
export const SHARD_REPLICAS = [1, 3, 10] as const;
export const SHARD_COUNTS = [1, 30] as const;
const CLIENT_QPS = 500;
/** Runs of each row; the row is the fastest. */
const RUNS = 2;
const PREFIX = 'wl_sh';

/**
 * The burst with `--client-qps`: 1, 3 and 10 replicas × 1 and 30 shards on
 * each store, 3000 keys (1000 with `quick`), and each run's speed-up over
 * one replica. With one shard one replica leads every key, so more replicas
 * cannot go faster than the tokens of one; with 30, each leads its share.
 *
 * @param options The stores, and `quick` for fewer keys.
 * @returns One row per store × shards × replicas.
 */
export async function shardsSuite(options: ShardsOptions): Promise<ShardRow[]> {
  const { stores, quick = false, progress } = options;
  const keys = quick ? 1_000 : 3_000;
  const rows: ShardRow[] = [];
  for (const store of stores) {
    for (const shards of SHARD_COUNTS) {
      let alone: number | null = null;
      for (const replicas of SHARD_REPLICAS) {
        progress?.(`shards ${redactUrl(store)}: ${replicas} replicas, ${shards} shards, burst of ${keys}`);
        const burst = () =>
          runDemo(
            parseDemoArgs([
              '--store',
              store,
              '--replicas',
              `${replicas}`,
              '--shards',
              `${shards}`,
              '--client-qps',
              `${CLIENT_QPS}`,
              '--keys',
              `${keys}`,
              '--burst',
              '--prefix',
              PREFIX,
            ]),
          );
        // The faster of two runs (one with `quick`), the 1 replica's as the others': on this 2-core machine a
        // 3-replica burst that takes 1.7-2.2 s on its own took 3.0-3.3 s now and then in the bench's sequence.
        let run = await burst();
        for (let i = 1; i < (quick ? 1 : RUNS); i++) run = fasterOf(run, await burst());
        const convergeMs = run.convergeMs === null ? null : Math.round(run.convergeMs);
        if (replicas === 1) alone = convergeMs;
        rows.push({
          store: redactUrl(store),
          replicas,
          shards,
          keys,
          clientQps: CLIENT_QPS,
          convergeMs,
          speedUp: alone === null || convergeMs === null ? null : Math.round((alone / convergeMs) * 100) / 100,
          attemptsPerUpdate: run.attemptsPerUpdate,
          conflicts: run.conflicts,
          shardsByReplica: Object.values(run.shardsByReplica),
          converged: run.converged,
        });
      }
    }
  }
  return rows;
}

/** The run that converged sooner (a run that did not converge is the slower). */
function fasterOf<T extends { convergeMs: number | null }>(a: T, b: T): T {
  return (b.convergeMs ?? Infinity) < (a.convergeMs ?? Infinity) ? b : a;
}
