import type { ThroughputFigures } from './throughput';
import os from 'node:os';
import type { MacroFigures } from './macro';
import type { MicroFigures } from './micro';
import type { RealFigures } from './realStore';
import type { TargetCheck } from './targets';

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

/** What `bench/results.json` holds; `docs/benchmarks.md` documents every field. */
export interface BenchResults {
  /** Bumped when a field changes meaning or goes away. */
  schema: 1;
  mode: 'full' | 'quick';
  /** ISO time at which the run started. */
  startedAt: string;
  /** Wall time of each part, and in total, in ms. */
  runtimeMs: { total: number; micro: number; macro: number; real: number | null };
  machine: Machine;
  micro: MicroFigures;
  macro: { settings: MacroSettings; runs: MacroFigures[] };
  /** With `--store URL` only. */
  real: {
    store: string;
    updates: number;
    rate: number;
    killLeaderAfter: number;
    runs: RealFigures[];
    error: string | null;
  } | null;
  /** With `--store URL` only: what a fleet writes beside the store's own rate. */
  throughput: ThroughputFigures | null;
  targets: TargetCheck[];
  /** Every check passed. */
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
