import { DEFAULT_BACKOFF_STEP_MS } from '../backoff.js';
import type { DemoSummary } from './demo.js';

/**
 * The summary table printed at the end of a demo: each figure, its value and
 * what it should be.
 *
 * @example
 * ```ts
 * console.log(summaryTable(summary, { leaseDuration: 1000, retryInterval: 100 }));
 * // memory · writer-lease · 3 replicas · 10 keys · 2.51 s
 * //
 * //   figure               value  ideal
 * //   updates                100
 * //   writes                  97  <= updates
 * //   ...
 * ```
 * @param summary The run's figures and settings.
 * @param durations The lease's durations, for the failover bound.
 * @returns The table, lines joined with `\n`, no trailing newline.
 */
export function summaryTable(
  summary: DemoSummary,
  { leaseDuration, retryInterval }: { leaseDuration: number; retryInterval: number },
): string {
  const { store, strategy, replicas, keys, durationMs } = summary;
  // The lease runs out, a retry, and one step of the default backoff.
  const failoverBound = leaseDuration + retryInterval + DEFAULT_BACKOFF_STEP_MS;
  const rows: [string, string, string][] = [
    ['updates', `${summary.updates}`, ''],
    ['writes', `${summary.writes}`, '<= updates'],
    ['conflicts', `${summary.conflicts}`, '0 in steady state'],
    ['attemptsPerUpdate', summary.attemptsPerUpdate.toFixed(2), '1.00'],
    ['writesPerUpdate', summary.writesPerUpdate.toFixed(2), '<= 1.00'],
    ['idleWrites', `${summary.idleWrites}`, '0'],
    [
      'failoverMs',
      summary.failoverMs === null ? '-' : `${summary.failoverMs}`,
      summary.failoverMs === null ? '' : `<= ${failoverBound}`,
    ],
    ['converged', `${summary.converged}`, 'true'],
    ['lostWrites', `${summary.lostWrites}`, '0 (Redis failover: may be more)'],
  ];
  const figureWidth = Math.max(...rows.map(([figure]) => figure.length));
  const valueWidth = Math.max(5, ...rows.map(([, value]) => value.length));
  return [
    `${store} · ${strategy} · ${replicas} replicas · ${keys} keys · ${(durationMs / 1000).toFixed(2)} s`,
    '',
    `  ${'figure'.padEnd(figureWidth)}  ${'value'.padStart(valueWidth)}  ideal`,
    ...rows.map(([figure, value, ideal]) =>
      `  ${figure.padEnd(figureWidth)}  ${value.padStart(valueWidth)}  ${ideal}`.trimEnd(),
    ),
  ].join('\n');
}
