import type { MacroFigures } from './macro';
import type { RealFigures } from './realStore';
import type { BenchResults } from './results';
import type { Table } from './tables';
import { checkOf, scopeOf, verdict, type TargetCheck } from './targets';

/**
 * The tables of a run: micro, macro, where the macro attempts go, and the
 * real store when there is one. Figures with a target carry `pass` or `FAIL`.
 *
 * @param results The run.
 * @returns The tables, in the order they are printed.
 */
export function reportTables(results: BenchResults): Table[] {
  const tables = [microTable(results), macroTable(results), attemptsTable(results), outageTable(results)];
  if (results.real !== null && results.real.runs.length > 0) tables.push(realTable(results));
  if (results.throughput != null) tables.push(throughputTable(results));
  return tables;
}

/** The checks that failed, one line each. */
export function failedTargets(checks: readonly TargetCheck[]): string[] {
  return checks
    .filter((check) => !check.pass)
    .map(
      ({ section, scope, figure, target, value }) =>
        `${section}${scope === '' ? '' : ` ${scope}`}: ${figure} = ${value} (target ${target})`,
    );
}

function microTable({ micro, targets }: BenchResults): Table {
  /** The target and the verdict of a micro figure, as the checks have them. */
  const judged = (figure: string) => {
    const check = checkOf(targets, 'micro', '', figure);
    return [check?.target ?? '', verdict(targets, 'micro', '', figure)];
  };
  const sizes = Object.keys(micro.bytesPerPendingKey);
  return {
    title: `Micro (${micro.keys.toLocaleString('en')} keys, median of the rounds)`,
    header: ['figure', 'ours', 'baseline', 'value', 'target', ''],
    right: new Set([1, 2, 3]),
    rows: [
      [
        'try() as follower, ops/s → tryRatio',
        int(micro.tryOpsPerSec),
        int(micro.tryBaselineOpsPerSec),
        micro.tryRatio.toFixed(2),
        ...judged('tryRatio'),
      ],
      [
        'processing extend units, ops/s → processRatio',
        int(micro.processOpsPerSec),
        int(micro.processBaselineOpsPerSec),
        micro.processRatio.toFixed(2),
        ...judged('processRatio'),
      ],
      ...sizes.map((size) => [
        `bytes per pending key at ${int(Number(size))}`,
        '',
        '',
        `${micro.bytesPerPendingKey[size]}`,
        ...judged(`bytesPerPendingKey.${size}`),
      ]),
      ['timers held with 100,000 pending keys', '', '', `${micro.timersAt100k}`, ...judged('timersAt100k')],
    ],
  };
}

/** The columns of a macro or real-store run, numbers right-aligned. */
const RUN_COLUMNS = {
  header: [
    'strategy',
    'replicas',
    'keys',
    'writes',
    'conflicts',
    'attempts/update',
    'writes/update',
    'idle writes/min',
    'failover ms',
    'converged',
  ],
  right: new Set([1, 2, 3, 4, 5, 6, 7, 8]),
};

function macroTable({ macro, targets }: BenchResults): Table {
  const { settings, runs } = macro;
  return {
    title:
      `Macro (virtual time, memory store, ${settings.updates} updates at ${settings.rate}/s, seed ${settings.seed}; ` +
      `idle ${settings.idleMs / 60_000} min; writer lease ${settings.leaseDuration} ms / retry ${settings.retryInterval} ms; ` +
      `lock lease ${settings.lock.leaseDuration / 1000} s / ${settings.lock.renewDeadline / 1000} s / ${settings.lock.retryPeriod / 1000} s)`,
    ...RUN_COLUMNS,
    rows: runs.map((run) => runRow(run, 'macro', targets)),
  };
}

function realTable({ real, targets }: BenchResults): Table {
  const { store, updates, rate, killLeaderAfter, runs } = real!;
  const mark = (run: RealFigures, figure: string, text: string) => {
    const v = verdict(targets, 'real', scopeOf(run), figure);
    return v === '' ? text : `${text} ${v}`;
  };
  return {
    title:
      `Real store ${store} (real time, ${store === 'memory' || store === 'memory://' ? 'replicas in this process' : 'one process per replica'}, ` +
      `${updates} updates at ${rate}/s; idle = 2 × leaseDuration; ` +
      `leader killed ${killLeaderAfter} ms into a second run, stopped gracefully ${killLeaderAfter} ms into a third run with a 2 s lease)`,
    header: [...RUN_COLUMNS.header, 'handover ms', 'conflicts, kill run'],
    right: new Set([...RUN_COLUMNS.right, 10, 11]),
    rows: runs.map((run) => [
      ...runRow(run, 'real', targets),
      mark(run, 'handoverMs', run.handoverMs === null ? '-' : `${run.handoverMs}`),
      mark(run, 'runConflicts', run.runConflicts === null ? '-' : `${run.runConflicts}`),
    ]),
  };
}

/**
 * Failover and handover of the macro runs with more than one replica, next
 * to the conflicts they cost: the table of issue 10.
 */
function outageTable({ macro, targets }: BenchResults): Table {
  const { settings } = macro;
  const runs = macro.runs.filter((run) => run.replicas > 1);
  const mark = (run: MacroFigures, figure: string, text: string) => {
    const v = verdict(targets, 'macro', scopeOf(run), figure);
    return v === '' ? text : `${text} ${v}`;
  };
  const ms = (value: number | null) => (value === null ? '-' : `${value}`);
  return {
    title:
      `Failover and handover (macro, virtual time; the leader is killed ${settings.killAfterMs} ms into a burst, ` +
      `then the next one stops gracefully ${settings.killAfterMs} ms into another: writer-lease hands over, lock-lease releases its lock)`,
    header: [
      'strategy',
      'replicas',
      'keys',
      'failover ms',
      'handover ms',
      'conflicts: election + failover',
      'killed',
      'stopped',
      'handover: updates',
      'writes',
      'conflicts',
    ],
    right: new Set([1, 2, 3, 4, 5, 8, 9, 10]),
    rows: runs.map((run) => [
      run.strategy,
      `${run.replicas}`,
      `${run.keys}`,
      mark(run, 'failoverMs', ms(run.failoverMs)),
      mark(run, 'handoverMs', ms(run.handoverMs)),
      mark(run, 'runConflicts', `${run.runConflicts}`),
      run.failover?.killed ?? '-',
      run.handover?.stopped ?? '-',
      run.handover === null ? '-' : `${run.handover.updates}`,
      run.handover === null ? '-' : `${run.handover.writes}`,
      run.handover === null ? '-' : `${run.handover.conflicts}`,
    ]),
  };
}

function runRow(run: MacroFigures | RealFigures, section: 'macro' | 'real', targets: readonly TargetCheck[]): string[] {
  const scope = scopeOf(run);
  const mark = (figure: string, text: string) => {
    const v = verdict(targets, section, scope, figure);
    return v === '' ? text : `${text} ${v}`;
  };
  return [
    run.strategy,
    `${run.replicas}`,
    `${run.keys}`,
    `${run.writes}`,
    `${run.conflicts}`,
    mark('attemptsPerUpdate', run.attemptsPerUpdate.toFixed(3)),
    run.writesPerUpdate.toFixed(3),
    mark('idleWritesPerMin', `${run.idleWritesPerMin}`),
    mark('failoverMs', run.failoverMs === null ? '-' : `${run.failoverMs}`),
    mark('converged', run.converged ? 'yes' : 'no'),
  ];
}

/** Where the attempts of the macro runs come from, to explain the figures. */
function attemptsTable({ macro }: BenchResults): Table {
  return {
    title:
      'Where the attempts go (macro): conflicts by the lease state of the replica that made them; lock writes; the failover burst',
    header: [
      'strategy',
      'replicas',
      'keys',
      'conflicts by state',
      'lock writes',
      'converge ms',
      'failover: killed',
      'updates',
      'writes',
      'conflicts by state',
      'attempts/update',
    ],
    right: new Set([1, 2, 4, 5, 7, 8, 10]),
    rows: macro.runs.map((run) => {
      const { failover } = run;
      return [
        run.strategy,
        `${run.replicas}`,
        `${run.keys}`,
        byState(run.conflictsByState),
        `${run.lockWrites}`,
        run.convergeMs === null ? '-' : `${run.convergeMs}`,
        failover?.killed ?? '-',
        failover === null ? '-' : `${failover.updates}`,
        failover === null ? '-' : `${failover.writes}`,
        failover === null ? '-' : byState(failover.conflictsByState),
        failover === null ? '-' : failover.attemptsPerUpdate.toFixed(3),
      ];
    }),
  };
}

/** `election 2, follower 1`, or `-` for none. */
function byState(conflicts: Record<string, number>): string {
  const parts = Object.entries(conflicts).map(([state, count]) => `${state} ${count}`);
  return parts.length === 0 ? '-' : parts.join(', ');
}

function int(value: number): string {
  return value.toLocaleString('en');
}

/** What a fleet writes on the real store, beside the store's own compare-and-set rate. */
function throughputTable({ throughput, targets }: BenchResults): Table {
  const t = throughput!;
  const judged = (figure: string, text: string) => {
    const v = verdict(targets, 'throughput', t.store, figure);
    const target = checkOf(targets, 'throughput', t.store, figure)?.target;
    return [text, target ?? '', v];
  };
  const rows: string[][] = [
    ['raw compare-and-set, 1 client, /s', ...judged('', int(t.rawCas.oneClient))],
    [`raw compare-and-set, ${t.rawCas.clients} clients, /s`, ...judged('', int(t.rawCas.manyClients))],
  ];
  if (t.commandsPerChange !== null) {
    const c = t.commandsPerChange;
    rows.push([
      `commands per change, counted by Redis (driver ${c.driver}, replicas ${c.replicas}, ${c.changes} changes)`,
      ...judged('commandsPerChange', `${c.perChange}`),
    ]);
  }
  rows.push(
    [`burst of ${int(t.burst.keys)}: convergeMs`, ...judged('burst.convergeMs', `${t.burst.convergeMs ?? '-'}`)],
    [
      `burst of ${int(t.burst.keys)}: attempts per change`,
      ...judged('burst.attemptsPerUpdate', `${t.burst.attemptsPerUpdate}`),
    ],
    ...t.rates.map((row) => [
      `${int(row.rate)} changes/s, 1000 keys: p99 ms (attempts, converged)`,
      `${row.p99 ?? '-'} (${row.attemptsPerUpdate}, ${row.converged})`,
      '<= 100',
      '',
    ]),
    [
      'ceiling (p99 <= 100 ms), share of the 1-client raw rate',
      ...judged(
        'ceiling.ofRawOneClient',
        t.ceiling === null ? '-' : `${t.ceiling.rate}/s = ${t.ceiling.ofRawOneClient}`,
      ),
    ],
  );
  return {
    title: `Throughput on ${t.store} (3 replica processes; real time)`,
    header: ['figure', 'value', 'target', ''],
    right: new Set([1]),
    rows,
  };
}
