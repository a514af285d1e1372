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
  #updates = 0;
  /** The leader's kill or graceful stop, measured from `at`. */
  #outage: { readonly kind: 'kill' | 'handover'; readonly name: string; readonly at: number } | undefined;
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

  /**
   * @param names The replicas, in the order the view lists them.
   */
  constructor(names: readonly string[]) {
    this.#tallies = names.map((name) => ({ name, state: 'starting', writes: 0, conflicts: 0, lastWriteAt: 0 }));
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
    if (this.#outage !== undefined && at >= this.#outage.at && !this.#firstAfterOutage.has(key)) {
      this.#firstAfterOutage.set(key, generation);
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
      case 'state':
        if (tally.state === LeaseState.Leader && report.state === LeaseState.Follower) this.#demotions++;
        if (tally.state !== 'killed') tally.state = report.state;
        return;
      case 'written': {
        tally.writes++;
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
    const up = this.#tallies.filter(({ state }) => !['killed', 'stopped', 'gone'].includes(state));
    const latest = (tallies: ReplicaTally[]) =>
      tallies.reduce<ReplicaTally | undefined>(
        (best, t) => (best === undefined || t.lastWriteAt > best.lastWriteAt ? t : best),
        undefined,
      );
    return (latest(up.filter(({ state }) => state === LeaseState.Leader)) ?? latest(up))?.name;
  }

  /**
   * Records the kill of `name` at `at`; failover is measured from there.
   *
   * @param name The killed replica.
   * @param at When it was killed.
   */
  killed(name: string, at: number): void {
    const tally = this.#tallies.find((t) => t.name === name);
    if (tally !== undefined) tally.state = 'killed';
    this.#outage = { kind: 'kill', name, at };
  }

  /**
   * Records the graceful stop of `name` at `at`; the handover is measured
   * from there.
   *
   * @param name The replica that stops and hands over.
   * @param at When it was told to stop.
   */
  handedOver(name: string, at: number): void {
    this.#outage = { kind: 'handover', name, at };
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
  }

  /**
   * The figures now.
   *
   * @returns The figures.
   */
  /** A status write of `generation` covers every change of `key` up to it. */
  #written(key: string, generation: number, at: number): void {
    const unwritten = this.#unwritten.get(key);
    if (unwritten === undefined) return;
    let covered = 0;
    while (covered < unwritten.length && unwritten[covered].generation <= generation) {
      this.#latencies.push(Math.max(0, at - unwritten[covered].at));
      covered++;
    }
    unwritten.splice(0, covered);
  }

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
