import { shardOf } from '../internal/shardOf.js';
import { LeaseState } from '../types.js';
import type { SpecUpdate } from './driver.js';
import type { ReplicaReport } from './replica.js';

/**
 * The figures of a demo run, as `docs/replicas.md` defines them.
 *
 * @example
 * ```ts
 * // { updates: 100, writes: 97, conflicts: 2, attemptsPerUpdate: 0.99, writesPerUpdate: 0.97,
 * //   idleWrites: 0, failoverMs: null, converged: true, lostWrites: 0 }
 * ```
 */
export interface Figures {
  /** Spec changes the driver made. */
  readonly updates: number;
  /** Successful status writes, all replicas. */
  readonly writes: number;
  /** Status writes refused on version, all replicas. */
  readonly conflicts: number;
  /** (writes + conflicts) / updates. */
  readonly attemptsPerUpdate: number;
  /** writes / updates. */
  readonly writesPerUpdate: number;
  /** Writes made once every status had converged, while no spec changed. */
  readonly idleWrites: number;
  /** Kill of the leader → first status write of a spec change made after it; null without a kill. */
  readonly failoverMs: number | null;
  /**
   * Graceful stop of the leader → first status write, by another replica, of
   * a spec change made after the stop; null without a handover.
   */
  readonly handoverMs: number | null;
  /** Every status generation equals its spec generation at the end. */
  readonly converged: boolean;
  /**
   * Spec changes the store acknowledged and then lost: 0 except on a store
   * that replicates asynchronously and failed over (Redis behind Sentinel).
   */
  readonly lostWrites: number;
  /** Leader → follower transitions, all replicas: 0 when no conflict demotes a leader. */
  readonly demotions: number;
  /** Spec write → first status write of that generation or a newer one, over every change; null with none. */
  readonly latencyMs: LatencyFigures | null;
  /**
   * {@link latencyMs} over the changes made once the election had ended (at
   * or after the run's first status write): what a running fleet gives,
   * without the election's wait (rule 16's spread, the losers' backoff);
   * null with none.
   */
  readonly steadyLatencyMs: LatencyFigures | null;
  /**
   * How many shards each replica up at the end leads (with one shard: 1 for
   * the leader); by name.
   */
  readonly shardsByReplica: Readonly<Record<string, number>>;
  /**
   * Shards led at the end by another replica than the one that led them at
   * the kill (or handover); null without one.
   */
  readonly movedShards: number | null;
  /**
   * The joining replica's ready → the moment it leads its share of the
   * shards (`shards / replicas`, rounded down, at least 1); null without a
   * join, or when it never did.
   */
  readonly joinMs: number | null;
  /**
   * Conflicts reported after the run's kill, graceful stop or join (the
   * newcomer's `ready`), whichever came first: what the event cost, apart
   * from the election's; null without one.
   */
  readonly conflictsSinceEvent: number | null;
}

/**
 * How late statuses were, in ms: median, 99th percentile and worst.
 *
 * @example
 * ```ts
 * { p50: 3, p99: 41, max: 57 }
 * ```
 */
export interface LatencyFigures {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** What the demo knows of one replica, from its reports. */
export interface ReplicaTally {
  readonly name: string;
  /** The lease's state; `killed` once the demo killed it, `stopped` or `gone` once it ended. */
  state: LeaseState | 'starting' | 'killed' | 'stopped' | 'gone';
  writes: number;
  conflicts: number;
  /** When its latest write was made (its clock), 0 before any. */
  lastWriteAt: number;
  /** The shards it leads, from its latest state report; undefined with one shard. */
  leading?: readonly number[];
}

/**
 * The leader's kill or graceful stop, measured from `at`; `owners`, who led
 * each shard then; `shards`, those the stopped replica led.
 */
interface Outage {
  readonly kind: 'kill' | 'handover';
  readonly name: string;
  readonly at: number;
  readonly owners: ReadonlyMap<number, string>;
  readonly shards: ReadonlySet<number>;
}

/**
 * Counts the figures from the driver's changes and the replicas' reports.
 *
 * @example
 * ```ts
 * const counter = new FigureCounter(['r1', 'r2']);
 * driver.updates$.subscribe((update) => counter.update(update));
 * replica.reports$.subscribe((report) => counter.record(report));
 * counter.figures(); // { updates: 100, writes: 97, ... }
 * ```
 */
export class FigureCounter {
  readonly #tallies: ReplicaTally[];
  readonly #shards: number;
  #updates = 0;
  #outage: Outage | undefined;
  /** The replica that joined during the run, and when it was ready. */
  #joiner: { readonly name: string; readyAt?: number } | undefined;
  #joinMs: number | null = null;
  #conflictsSinceEvent = 0;
  /** Who led each shard once the run settled. */
  #ownersAtEnd = new Map<number, string>();
  #shardsByReplica: Record<string, number> = {};
  /** Per key, the generation of its first spec change made after the outage. */
  readonly #firstAfterOutage = new Map<string, number>();
  #outageMs: number | null = null;
  #converged = false;
  #idleWrites = 0;
  #lostWrites = 0;
  #demotions = 0;
  /** Per key, the changes not yet written, oldest first: their generation and when the driver made them. */
  readonly #unwritten = new Map<string, { readonly generation: number; readonly at: number }[]>();
  readonly #latencies: number[] = [];
  /** When the change of each of {@link #latencies} was made, in the same order. */
  readonly #latencyMadeAt: number[] = [];
  /** The run's first status write: the election has ended. */
  #firstWrittenAt = Infinity;

  /**
   * @param names The replicas, in the order the view lists them.
   * @param options `shards`: how many shards the keys hash to (default 1).
   */
  constructor(names: readonly string[], { shards = 1 }: { readonly shards?: number } = {}) {
    this.#shards = shards;
    this.#tallies = names.map((name) => ({
      name,
      state: 'starting',
      writes: 0,
      conflicts: 0,
      lastWriteAt: 0,
    }));
  }

  /** Each replica's tally, in the order given. */
  get replicas(): readonly Readonly<ReplicaTally>[] {
    return this.#tallies;
  }

  /** Spec changes counted so far. */
  get updates(): number {
    return this.#updates;
  }

  /**
   * Counts one spec change of the driver.
   *
   * @param update The change.
   */
  update({ key, generation, at }: SpecUpdate): void {
    this.#updates++;
    let unwritten = this.#unwritten.get(key);
    if (unwritten === undefined) this.#unwritten.set(key, (unwritten = []));
    unwritten.push({ generation, at });
    const outage = this.#outage;
    if (outage !== undefined && at >= outage.at && !this.#firstAfterOutage.has(key)) {
      // With shards, a failover is that of the stopped replica's shards: the others never stopped.
      if (this.#shards === 1 || outage.shards.has(shardOf(key, this.#shards))) {
        this.#firstAfterOutage.set(key, generation);
      }
    }
  }

  /**
   * Counts one report of a replica.
   *
   * @param report The report.
   */
  record(report: ReplicaReport): void {
    const tally = this.#tallies.find(({ name }) => name === report.replica);
    if (tally === undefined) return;
    switch (report.type) {
      case 'ready':
        if (this.#joiner?.name === report.replica) this.#joiner.readyAt = report.at;
        return;
      case 'state':
        if (tally.state === LeaseState.Leader && report.state === LeaseState.Follower) this.#demotions++;
        if (tally.state !== 'killed') tally.state = report.state;
        if (report.leading !== undefined) tally.leading = report.leading;
        this.#checkJoined(tally, report.at);
        return;
      case 'written': {
        tally.writes++;
        this.#firstWrittenAt = Math.min(this.#firstWrittenAt, report.at);
        this.#written(report.key, report.generation, report.at);
        tally.lastWriteAt = Math.max(tally.lastWriteAt, report.at);
        const first = this.#firstAfterOutage.get(report.key);
        const outage = this.#outage;
        if (
          outage !== undefined &&
          report.replica !== outage.name &&
          first !== undefined &&
          report.generation >= first
        ) {
          const ms = report.at - outage.at;
          if (this.#outageMs === null || ms < this.#outageMs) this.#outageMs = ms;
        }
        return;
      }
      case 'conflict':
        tally.conflicts++;
        if (report.at >= this.#eventAt()) this.#conflictsSinceEvent++;
        return;
      case 'stopped':
        if (tally.state !== 'killed') tally.state = 'stopped';
        return;
      default:
        return;
    }
  }

  /**
   * Marks that a replica's reports ended without `stopped` (it crashed).
   *
   * @param name The replica.
   */
  ended(name: string): void {
    const tally = this.#tallies.find((t) => t.name === name);
    if (tally !== undefined && tally.state !== 'killed' && tally.state !== 'stopped') tally.state = 'gone';
  }

  /**
   * The replica that leads now: the one in state leader that wrote last; when
   * none is, the one that wrote last (uncoordinated replicas never lead).
   *
   * @returns Its name, or undefined when no replica is up.
   */
  leader(): string | undefined {
    const up = this.#up();
    const latest = (tallies: ReplicaTally[]) =>
      tallies.reduce<ReplicaTally | undefined>(
        (best, t) => (best === undefined || t.lastWriteAt > best.lastWriteAt ? t : best),
        undefined,
      );
    if (this.#shards > 1) {
      // The one that leads the most shards; of those, the one that wrote last.
      const most = Math.max(0, ...up.map(({ leading }) => leading?.length ?? 0));
      if (most > 0) return latest(up.filter(({ leading }) => (leading?.length ?? 0) === most))?.name;
    }
    return (latest(up.filter(({ state }) => state === LeaseState.Leader)) ?? latest(up))?.name;
  }

  /**
   * Records that `name` joins the run now: {@link Figures.joinMs} is
   * measured from its `ready` report.
   *
   * @param name The replica that joins.
   */
  joining(name: string): void {
    this.#joiner = { name };
  }

  /**
   * Records the kill of `name` at `at`; failover is measured from there.
   *
   * @param name The killed replica.
   * @param at When it was killed.
   */
  killed(name: string, at: number): void {
    const outage = this.#outageOf('kill', name, at);
    const tally = this.#tallies.find((t) => t.name === name);
    if (tally !== undefined) tally.state = 'killed';
    this.#outage = outage;
  }

  /**
   * Records the graceful stop of `name` at `at`; the handover is measured
   * from there.
   *
   * @param name The replica that stops and hands over.
   * @param at When it was told to stop.
   */
  handedOver(name: string, at: number): void {
    this.#outage = this.#outageOf('handover', name, at);
  }

  /**
   * Records how the run ended.
   *
   * @param outcome Whether every status caught up with its spec, how
   *   many status writes the store showed afterwards, while no spec changed,
   *   and how many acknowledged spec changes the store lost.
   */
  settled({
    converged,
    idleWrites,
    lostWrites = 0,
  }: {
    converged: boolean;
    idleWrites: number;
    lostWrites?: number;
  }): void {
    this.#converged = converged;
    this.#idleWrites = idleWrites;
    this.#lostWrites = lostWrites;
    this.#ownersAtEnd = this.#owners();
    this.#shardsByReplica = Object.fromEntries(this.#up().map((t) => [t.name, this.#ledBy(t).length]));
  }

  /** The replicas neither killed nor stopped nor gone. */
  #up(): ReplicaTally[] {
    return this.#tallies.filter(({ state }) => !['killed', 'stopped', 'gone'].includes(state));
  }

  /** The shards `tally` leads: from its reports, or with one shard, shard 0 while it leads. */
  #ledBy({ leading, state }: ReplicaTally): readonly number[] {
    return leading ?? (state === LeaseState.Leader ? [0] : []);
  }

  /** Who leads each shard now, among the replicas up. */
  #owners(): Map<number, string> {
    const owners = new Map<number, string>();
    for (const tally of this.#up()) for (const shard of this.#ledBy(tally)) owners.set(shard, tally.name);
    return owners;
  }

  #outageOf(kind: 'kill' | 'handover', name: string, at: number): Outage {
    const tally = this.#tallies.find((t) => t.name === name);
    return { kind, name, at, owners: this.#owners(), shards: new Set(tally === undefined ? [] : this.#ledBy(tally)) };
  }

  /** The joiner leads its share: `shards / replicas up`, rounded down, at least one. */
  #checkJoined(tally: ReplicaTally, at: number): void {
    const joiner = this.#joiner;
    if (joiner?.name !== tally.name || joiner.readyAt === undefined || this.#joinMs !== null) return;
    const share = Math.max(1, Math.floor(this.#shards / this.#up().length));
    if (this.#ledBy(tally).length >= share) this.#joinMs = Math.round(at - joiner.readyAt);
  }

  /** When the run's first kill, stop or join happened; Infinity before (or without) one. */
  #eventAt(): number {
    return Math.min(this.#outage?.at ?? Infinity, this.#joiner?.readyAt ?? Infinity);
  }

  /** Shards whose leader at the end is another replica than the one that led them at the outage. */
  #movedShards(): number | null {
    const outage = this.#outage;
    if (outage === undefined) return null;
    let moved = 0;
    for (const [shard, owner] of this.#ownersAtEnd) if (outage.owners.get(shard) !== owner) moved++;
    return moved;
  }

  /** A status write of `generation` covers every change of `key` up to it. */
  #written(key: string, generation: number, at: number): void {
    const unwritten = this.#unwritten.get(key);
    if (unwritten === undefined) return;
    let covered = 0;
    while (covered < unwritten.length && unwritten[covered].generation <= generation) {
      this.#latencies.push(Math.max(0, at - unwritten[covered].at));
      this.#latencyMadeAt.push(unwritten[covered].at);
      covered++;
    }
    unwritten.splice(0, covered);
  }

  /**
   * The figures now.
   *
   * @returns The figures.
   */
  figures(): Figures {
    const writes = this.#tallies.reduce((sum, t) => sum + t.writes, 0);
    const conflicts = this.#tallies.reduce((sum, t) => sum + t.conflicts, 0);
    const updates = this.#updates;
    return {
      updates,
      writes,
      conflicts,
      attemptsPerUpdate: ratio(writes + conflicts, updates),
      writesPerUpdate: ratio(writes, updates),
      idleWrites: this.#idleWrites,
      failoverMs: this.#outage?.kind === 'kill' ? roundMs(this.#outageMs) : null,
      handoverMs: this.#outage?.kind === 'handover' ? roundMs(this.#outageMs) : null,
      converged: this.#converged,
      lostWrites: this.#lostWrites,
      demotions: this.#demotions,
      latencyMs: latencyOf(this.#latencies),
      steadyLatencyMs: latencyOf(this.#latencies.filter((_, i) => this.#latencyMadeAt[i] >= this.#firstWrittenAt)),
      shardsByReplica: this.#shardsByReplica,
      movedShards: this.#movedShards(),
      joinMs: this.#joinMs,
      conflictsSinceEvent: this.#outage === undefined && this.#joiner === undefined ? null : this.#conflictsSinceEvent,
    };
  }
}

function ratio(part: number, whole: number): number {
  return whole === 0 ? 0 : Math.round((part / whole) * 1000) / 1000;
}

function latencyOf(latencies: number[]): LatencyFigures | null {
  if (latencies.length === 0) return null;
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (share: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(share * sorted.length) - 1)]);
  return { p50: at(0.5), p99: at(0.99), max: Math.round(sorted[sorted.length - 1]) };
}

function roundMs(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms);
}
