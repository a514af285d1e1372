import { DEFAULT_BACKOFF_STEP_MS } from '../src/backoff';
import type { MacroFigures } from './macro';
import type { MicroFigures } from './micro';
import type { RealFigures } from './realStore';

/** One target of issue 4 (or of the failover bound of the replicas spec), checked against one figure. */
export interface TargetCheck {
  section: 'micro' | 'macro' | 'real';
  /** The run it applies to, e.g. `writer-lease 10 replicas 1000 keys`; empty for micro figures. */
  scope: string;
  /** The figure's name in results.json (`bytesPerPendingKey.100000` for a nested one). */
  figure: string;
  /** What it should be, e.g. `<= 1.05`. */
  target: string;
  value: number | null;
  pass: boolean;
}

/** The durations the failover bound derives from. */
export interface LeaseDurations {
  leaseDuration: number;
  retryInterval: number;
}

/**
 * Checks every figure that has a target:
 *
 * - micro: `tryRatio >= 0.33`, `processRatio >= 0.25`, `<= 300` bytes per pending
 *   key at each size, `<= 2` timers at 100k keys;
 * - writer-lease: `attemptsPerUpdate <= 1.05`, `idleWritesPerMin = 0`, and
 *   `failoverMs <= leaseDuration + retryInterval + one backoff step` (the bound
 *   of docs/replicas.md);
 * - lock-lease: `idleWritesPerMin` ≈ 30 (within 5 %);
 * - uncoordinated: `attemptsPerUpdate` ≈ replicas (within 10 %), in virtual time;
 * - every run: `converged`.
 *
 * @param micro The micro figures.
 * @param macro The macro runs.
 * @param real The real-store runs, if any.
 * @param durations The writer lease's durations, for the failover bound.
 * @returns One check per figure and run.
 */
export function checkTargets(
  micro: MicroFigures,
  macro: readonly MacroFigures[],
  real: readonly RealFigures[],
  durations: LeaseDurations,
): TargetCheck[] {
  const checks: TargetCheck[] = [
    atLeast('micro', '', 'tryRatio', micro.tryRatio, 0.33),
    atLeast('micro', '', 'processRatio', micro.processRatio, 0.25),
    ...Object.entries(micro.bytesPerPendingKey).map(([size, bytes]) =>
      atMost('micro', '', `bytesPerPendingKey.${size}`, bytes, 300),
    ),
    atMost('micro', '', 'timersAt100k', micro.timersAt100k, 2),
  ];
  const failoverBound = durations.leaseDuration + durations.retryInterval + DEFAULT_BACKOFF_STEP_MS;
  for (const [section, runs] of [
    ['macro', macro],
    ['real', real],
  ] as const) {
    for (const run of runs) {
      const scope = scopeOf(run);
      if (run.strategy === 'writer-lease') {
        checks.push(atMost(section, scope, 'attemptsPerUpdate', run.attemptsPerUpdate, 1.05));
        checks.push(atMost(section, scope, 'idleWritesPerMin', run.idleWritesPerMin, 0, '= 0'));
        if (run.failoverMs !== null) checks.push(atMost(section, scope, 'failoverMs', run.failoverMs, failoverBound));
      } else if (run.strategy === 'lock-lease') {
        checks.push(near(section, scope, 'idleWritesPerMin', run.idleWritesPerMin, 30, 0.05));
      } else if (section === 'macro') {
        // On a real store the baseline's replicas do not all race (see docs/benchmarks.md): no target there.
        checks.push(near(section, scope, 'attemptsPerUpdate', run.attemptsPerUpdate, run.replicas, 0.1));
      }
      checks.push({
        section,
        scope,
        figure: 'converged',
        target: 'true',
        value: run.converged ? 1 : 0,
        pass: run.converged,
      });
    }
  }
  return checks;
}

/** The scope name of a run, as checks and tables use it. */
export function scopeOf(run: { strategy: string; replicas: number; keys: number }): string {
  return `${run.strategy} ${run.replicas} replicas ${run.keys} keys`;
}

/**
 * `pass` or `FAIL` for a figure that has a target, empty otherwise.
 *
 * @example
 * ```ts
 * verdict(checks, 'macro', 'writer-lease 3 replicas 10 keys', 'attemptsPerUpdate'); // 'pass'
 * ```
 */
export function verdict(
  checks: readonly TargetCheck[],
  section: TargetCheck['section'],
  scope: string,
  figure: string,
): string {
  const check = checks.find((c) => c.section === section && c.scope === scope && c.figure === figure);
  if (check === undefined) return '';
  return check.pass ? 'pass' : 'FAIL';
}

function atLeast(
  section: TargetCheck['section'],
  scope: string,
  figure: string,
  value: number,
  min: number,
): TargetCheck {
  return { section, scope, figure, target: `>= ${min}`, value, pass: value >= min };
}

function atMost(
  section: TargetCheck['section'],
  scope: string,
  figure: string,
  value: number,
  max: number,
  target = `<= ${max}`,
): TargetCheck {
  return { section, scope, figure, target, value, pass: value <= max };
}

function near(
  section: TargetCheck['section'],
  scope: string,
  figure: string,
  value: number,
  expected: number,
  tolerance: number,
): TargetCheck {
  const target = `≈ ${expected} (±${Math.round(tolerance * 100)} %)`;
  return { section, scope, figure, target, value, pass: Math.abs(value - expected) <= tolerance * expected };
}
