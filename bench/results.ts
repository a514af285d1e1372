import os from 'node:os';
import type { MacroFigures } from './macro';
import type { MicroFigures } from './micro';
import type { RealFigures } from './realStore';
import type { ShardRow } from './shards';
import type { TargetCheck } from './targets';
import type { ThroughputFigures } from './throughput';

/** The settings every macro run shared (see docs/benchmarks.md). */
export interface MacroSettings {
  replicas: number[];
  keys: number[];
  strategies: string[];
  updates: number;
  rate: number;
  seed: number;
  leaseDuration: number;
  retryInterval: number;
  lock: { leaseDuration: number; renewDeadline: number; retryPeriod: number };
  idleMs: number;
  killAfterMs: number;
}

/** The real-store runs of one `--store` (`realStoreSuite`). */
export interface RealSection {
  /** The URL, password masked. */
  store: string;
  /** The configurations it ran: every one with the first store, 3 replicas × 10 keys with the others. */
  replicas: number[];
  keys: number[];
  updates: number;
  rate: number;
  killLeaderAfter: number;
  runs: RealFigures[];
  /** The message when the store could not be reached (real-store runs or throughput); null otherwise. */
  error: string | null;
}

/** What `bench/results.json` holds; `docs/benchmarks.md` documents every field. */
export interface BenchResults {
  /** Bumped when a field changes meaning or goes away. */
  schema: 2;
  mode: 'full' | 'quick';
  /** ISO time at which the run started. */
  startedAt: string;
  /** Wall time of each part, and in total, in ms; null for a part that did not run. */
  runtimeMs: { total: number; micro: number; macro: number; real: number | null; shards: number | null };
  machine: Machine;
  /** The machine's load averages (1, 5, 15 min) when the run started and when it ended: other work shares it. */
  load: { start: number[]; end: number[] };
  micro: MicroFigures;
  macro: { settings: MacroSettings; runs: MacroFigures[] };
  /** One per `--store`, in the order given; empty without. */
  real: RealSection[];
  /** One per `--store` that answered: what a fleet writes beside the store's own rate. */
  throughput: ThroughputFigures[];
  /** The shards runs: memory, and each Redis `--store`; null when they did not run. */
  shards: ShardRow[] | null;
  targets: TargetCheck[];
  /** Every check passed, and every store answered. */
  allTargetsMet: boolean;
}

/** Where the figures were measured. */
export interface Machine {
  node: string;
  platform: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
}

/** This machine. */
export function machine(): Machine {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  };
}

/** The load averages now, 2 decimals. */
export function loadAverage(): number[] {
  return os.loadavg().map((load) => Math.round(load * 100) / 100);
}
