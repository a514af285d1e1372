import { DEFAULT_BACKOFF_STEP_MS } from '../backoff.js';
import { FOLLOWER_SPREAD_STEPS } from '../internal/rules.js';
import type { DemoSummary } from './demo.js';
import { formatDuration } from './formatDuration.js';
import { wrapText } from './wrapText.js';

/**
 * The summary table printed at the end of a demo: each figure, its value and
 * what it should be; then, for each figure off its ideal, why.
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
 * //
 * // Off the ideal:
 * //   conflicts 2: writes refused on version during the election, ...
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
  // Rule 17: new work waits 2 × backoff(0) (rule 1) and the follower's spread, 2 × backoff(0) at most.
  const handoverBound = (2 + FOLLOWER_SPREAD_STEPS) * DEFAULT_BACKOFF_STEP_MS;
  const rows: [string, string, string][] = [
    ['updates', `${summary.updates}`, ''],
    ['writes', `${summary.writes}`, '<= updates'],
    ['conflicts', `${summary.conflicts}`, '0 in steady state'],
    ['attemptsPerUpdate', summary.attemptsPerUpdate.toFixed(2), '1.00'],
    ['writesPerUpdate', summary.writesPerUpdate.toFixed(2), '<= 1.00'],
    ['idleWrites', `${summary.idleWrites}`, '0'],
    [
      'failoverMs',
      summary.failoverMs === null ? '-' : `${Math.round(summary.failoverMs)}`,
      summary.failoverMs === null ? '' : `<= ${failoverBound}`,
    ],
    [
      'handoverMs',
      summary.handoverMs === null ? '-' : `${Math.round(summary.handoverMs)}`,
      summary.handoverMs === null ? '' : `<= ${handoverBound} + a store round trip`,
    ],
    ['converged', `${summary.converged}`, 'true'],
    ['convergeMs', summary.convergeMs === null ? '-' : `${Math.round(summary.convergeMs)}`, ''],
    ...burstRows(summary.burstConvergeMs),
    [
      'latencyMs',
      summary.latencyMs === null
        ? '-'
        : `${summary.latencyMs.p50} / ${summary.latencyMs.p99} / ${summary.latencyMs.max}`,
      'p50 / p99 / max',
    ],
    ['demotions', `${summary.demotions}`, '0 without outages'],
    ['lostWrites', `${summary.lostWrites}`, '0 (Redis failover: may be more)'],
  ];
  const figureWidth = Math.max(...rows.map(([figure]) => figure.length));
  const valueWidth = Math.max(5, ...rows.map(([, value]) => value.length));
  const notes = offIdeal(summary, failoverBound);
  const remarks = coalescing(summary);
  return [
    `${store} · ${strategy} · ${replicas} replicas · ${keys} keys · ${formatDuration(durationMs)}`,
    '',
    `  ${'figure'.padEnd(figureWidth)}  ${'value'.padStart(valueWidth)}  ideal`,
    ...rows.map(([figure, value, ideal]) =>
      `  ${figure.padEnd(figureWidth)}  ${value.padStart(valueWidth)}  ${ideal}`.trimEnd(),
    ),
    ...section('Off the ideal:', notes),
    ...section('Notes:', remarks),
    '',
    verdict(summary),
  ].join('\n');
}

/** A titled list of notes, wrapped to 80 columns; nothing when there is none. */
function section(title: string, notes: readonly string[]): string[] {
  if (notes.length === 0) return [];
  return [
    '',
    title,
    ...notes.flatMap((note) => wrapText(note, 76).map((line, i) => `${i === 0 ? '  ' : '    '}${line}`)),
  ];
}

/** The one line that says whether it worked. */
function verdict({ converged, writesPerUpdate, conflicts, strategy }: DemoSummary): string {
  const what = `${writesPerUpdate.toFixed(2)} writes per change, ${conflicts} conflict${conflicts === 1 ? '' : 's'}`;
  return converged
    ? `Verdict: converged, ${what}${strategy === 'uncoordinated' ? ' (the baseline, no lease)' : ''}.`
    : `Verdict: NOT converged (some statuses lag their specs), ${what}.`;
}

/** Fewer writes than changes is better than the ideal: say why, outside the notes on what is off it. */
function coalescing({ strategy, updates, writes, attemptsPerUpdate, failoverMs }: DemoSummary): string[] {
  if (strategy === 'uncoordinated' || writes >= updates) return [];
  return [
    `writes ${writes} for ${updates} updates (attemptsPerUpdate ${attemptsPerUpdate.toFixed(2)}): ` +
      `${updates - writes === 1 ? '1 change was' : `${updates - writes} changes were`} coalesced: ` +
      'a key changed again while its work waited ' +
      `(a unit running${failoverMs !== null ? ', the failover' : ''}, a follower's deferral), and its latest ` +
      'generation was written once; the statuses end the same',
  ];
}

/** Why each figure that is off its ideal is. */
function offIdeal(summary: DemoSummary, failoverBound: number): string[] {
  const { strategy, conflicts, attemptsPerUpdate, idleWrites, failoverMs, converged } = summary;
  const notes: string[] = [];
  const killed = failoverMs !== null;
  if (strategy === 'uncoordinated') {
    notes.push(
      `attemptsPerUpdate ${attemptsPerUpdate.toFixed(2)}, conflicts ${conflicts}: uncoordinated, every replica ` +
        'writes every change; this is the baseline the writer lease is measured against',
    );
  } else {
    if (conflicts > 0) {
      notes.push(
        `conflicts ${conflicts}: writes refused on version, from the election (every replica tries once ` +
          `before one leads)${killed ? ' and the failover (the followers race for the dead leader’s keys)' : ''}`,
      );
    }
  }
  if (idleWrites > 0) {
    notes.push(`idleWrites ${idleWrites}: status writes after convergence, with no spec change: each is one too many`);
  }
  if (failoverMs !== null && failoverMs > failoverBound) {
    notes.push(
      `failoverMs ${failoverMs} > ${failoverBound}: the takeover took longer than the lease, a retry and a ` +
        'backoff step; on a busy machine, timers fire late',
    );
  }
  if (!converged) {
    notes.push('converged false: some statuses had not caught up with their specs when the wait gave up');
  }
  return notes;
}

/** With more than one burst, each one's convergence: the first on replicas that just started. */
function burstRows(burstConvergeMs: DemoSummary['burstConvergeMs']): [string, string, string][] {
  if (burstConvergeMs === null || burstConvergeMs.length < 2) return [];
  return [['burstConvergeMs', burstConvergeMs.map((ms) => (ms === null ? '-' : `${ms}`)).join(' / '), 'each burst']];
}
