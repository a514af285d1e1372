import type { MacroFigures } from './macro';
import type { RealFigures } from './realStore';
import type { BenchResults, RealSection } from './results';
import type { Table } from './tables';
import { THROUGHPUT_TARGETS, checkOf, scopeOf, shardScope, verdict, type TargetCheck } from './targets';
import type { CommandCount } from './storeCounters';
import type { RateRow } from './throughput';

/**
 * The tables of a run: micro, macro, where the macro attempts go, the real
 * stores, the throughput on them, and the shards runs. Figures with a target
 * carry `pass` or `FAIL`.
 *
 * @param results The run.
 * @returns The tables, in the order they are printed.
 */
export function reportTables(results: BenchResults): Table[] {
  const tables = [microTable(results), macroTable(results), attemptsTable(results), outageTable(results)];
  for (const section of results.real) if (section.runs.length > 0) tables.push(realTable(section, results.targets));
  if (results.throughput.length > 0) {
    tables.push(commandsTable(results), ceilingTable(results), ratesTable(results), strategiesTable(results));
  }
  if (results.shards !== null && results.shards.length > 0) tables.push(shardsTable(results));
  return tables;
}

/** The checks that failed, one line each. */
export function failedTargets(checks: readonly TargetCheck[]): string[] {
  return checks
    .filter((check) => !check.pass)
    .map(
      ({ section, store, scope, figure, target, value }) =>
        `${section}${store === undefined || store === scope ? '' : ` ${store}`}${scope === '' ? '' : ` ${scope}`}: ` +
        `${figure} = ${value} (target ${target})`,
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

function realTable(section: RealSection, targets: readonly TargetCheck[]): Table {
  const { store, updates, rate, killLeaderAfter, runs } = section;
  const mark = (run: RealFigures, figure: string, text: string) => {
    const v = verdict(targets, 'real', scopeOf(run), figure, store);
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
      ...runRow(run, 'real', targets, store),
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

function runRow(
  run: MacroFigures | RealFigures,
  section: 'macro' | 'real',
  targets: readonly TargetCheck[],
  store?: string,
): string[] {
  const scope = scopeOf(run);
  const mark = (figure: string, text: string) => {
    const v = verdict(targets, section, scope, figure, store);
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

/** The verdict of a throughput figure of `store`, after its text. */
function judgedText(targets: readonly TargetCheck[], store: string, figure: string, text: string): string {
  const v = verdict(targets, 'throughput', store, figure, store);
  return v === '' ? text : `${text} ${v}`;
}

/** `Txn 4,012, Put 4,000, Range 985`: the window's commands, most first. */
function commandList(count: CommandCount): string {
  const entries = Object.entries(count.byCommand ?? {}).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '-' : entries.map(([name, n]) => `${name} ${int(n)}`).join(', ');
}

/** Commands per change, counted by each store, for each strategy. */
function commandsTable({ throughput, targets }: BenchResults): Table {
  const rows: string[][] = [];
  for (const t of throughput) {
    for (const s of t.strategies ?? [{ strategy: 'writer-lease', commandsPerChange: t.commandsPerChange }]) {
      const c = s.commandsPerChange;
      if (c === null) continue;
      const writerLease = s.strategy === 'writer-lease';
      rows.push([
        t.store,
        s.strategy,
        c.counter ?? '',
        c.windowMs === undefined ? '-' : (c.windowMs / 1000).toFixed(1),
        int(c.driver),
        c.leader === undefined ? int(c.replicas) : `${int(c.replicas)} (${int(c.leader)} + ${int(c.followers ?? 0)})`,
        writerLease
          ? judgedText(targets, t.store, 'commandsPerChange', c.perChange.toFixed(2))
          : c.perChange.toFixed(2),
        c.replicasPerChange.toFixed(2),
        c.demoReads === undefined ? '-' : int(c.demoReads),
        commandList(c),
      ]);
    }
  }
  const changes = throughput.find((t) => t.commandsPerChange !== null)?.commandsPerChange?.changes ?? 4_000;
  return {
    title:
      `Commands per change, counted by the store (3 replica processes, 1000 keys, ${int(changes)} changes at 500/s; ` +
      `from the driver's first change until the replicas are told to stop, 2 s after convergence; ` +
      `target for the writer lease <= ${THROUGHPUT_TARGETS.commandsPerChange})`,
    header: [
      'store',
      'strategy',
      'counted by',
      'window s',
      'driver',
      'replicas (leader + others)',
      'per change',
      'replicas per change',
      'demo read-back left out',
      'every command of the window, every client',
    ],
    right: new Set([3, 4, 5, 6, 7, 8]),
    rows,
  };
}

/** Cores, one decimal; `-` when unknown. */
function cores(value: number | null | undefined): string {
  return value === null || value === undefined ? '-' : value.toFixed(1);
}

/** Why a rate did not hold. */
function whyNot(row: RateRow): string {
  if (row.error !== undefined) return `the run failed twice (${row.error})`;
  const reasons: string[] = [];
  if (!row.converged) reasons.push('did not converge');
  if (row.p99 === null || row.p99 > 100) reasons.push(`p99 ${row.p99 ?? '-'} ms`);
  if (row.achievedRate !== undefined && row.achievedRate < 0.9 * row.rate) {
    reasons.push(`driver made ${int(row.achievedRate)}/s`);
  }
  return reasons.join(', ');
}

/** The raw compare-and-set rates and the fleet's ceiling, one row per store. */
function ceilingTable({ throughput, targets }: BenchResults): Table {
  return {
    title:
      'Raw compare-and-set rate and the fleet ceiling (3 replica processes, 1000 keys; the highest rate whose p99 (after the ' +
      `election) stays within 100 ms, that converges and that the driver keeps up with; target >= ${THROUGHPUT_TARGETS.ceilingOfRaw} of the 1-client raw rate)`,
    header: [
      'store',
      'raw CAS 1 client /s',
      'CAS round trip p50 / p99 ms',
      'raw CAS 50 clients /s',
      'ceiling changes/s',
      'share of 1-client raw',
      'share of 50-client raw',
      'first rate that did not hold',
      'CPU there, cores: bench / replicas (leader) / store / machine',
    ],
    right: new Set([1, 2, 3, 4, 5, 6]),
    rows: throughput.map((t) => {
      const failed = t.rates.find((row) => row.held === false && row.rate > (t.ceiling?.rate ?? 0));
      const cpu = failed?.cpu;
      const rt = t.rawCas.roundTripMs;
      return [
        t.store,
        int(t.rawCas.oneClient),
        rt === undefined ? '-' : `${rt.p50} / ${rt.p99}`,
        int(t.rawCas.manyClients),
        t.ceiling === null ? '-' : int(t.ceiling.rate),
        judgedText(
          targets,
          t.store,
          'ceiling.ofRawOneClient',
          t.ceiling === null ? '-' : `${t.ceiling.ofRawOneClient}`,
        ),
        t.ceiling?.ofRawManyClients === undefined ? '-' : `${t.ceiling.ofRawManyClients}`,
        failed === undefined ? '-' : `${int(failed.rate)}/s: ${whyNot(failed)}`,
        cpu === undefined
          ? '-'
          : `${cores(cpu.bench)} / ${cores(cpu.replicas)} (${cores(cpu.leader)}) / ${cores(cpu.store)} / ${cores(cpu.machine)}`,
      ];
    }),
  };
}

/** Every run of the ceiling searches. */
function ratesTable({ throughput, machine }: BenchResults): Table {
  return {
    title:
      'Ceiling search (writer lease, 3 replica processes, 1000 keys, 5 s of changes a rate, at least 300): latency is spec write → ' +
      'status write of that generation or newer, of the changes made once the election had ended (p99 all: every change); ' +
      `CPU from the first change to convergence, in cores of ${machine.cpus}; the bench process runs the driver`,
    header: [
      'store',
      'rate /s',
      'made /s',
      'p50 ms',
      'p99 ms',
      'p99 all ms',
      'attempts/change',
      'converged',
      'held',
      'CPU bench',
      'replicas (leader)',
      'store',
      'machine',
      'bench loop delay p99 / max ms',
    ],
    right: new Set([1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13]),
    rows: throughput.flatMap((t) =>
      t.rates.map((row) => [
        t.store,
        int(row.rate),
        row.achievedRate === undefined ? '-' : int(row.achievedRate),
        row.p50 === undefined || row.p50 === null ? '-' : `${row.p50}`,
        row.p99 === null ? '-' : `${row.p99}`,
        row.p99All === undefined || row.p99All === null ? '-' : `${row.p99All}`,
        row.attemptsPerUpdate.toFixed(3),
        row.converged ? 'yes' : 'no',
        row.held === undefined ? '-' : row.held ? 'yes' : 'no',
        cores(row.cpu?.bench),
        row.cpu === undefined ? '-' : `${cores(row.cpu.replicas)} (${cores(row.cpu.leader)})`,
        cores(row.cpu?.store),
        cores(row.cpu?.machine),
        row.benchLoopDelayMs === undefined ? '-' : `${row.benchLoopDelayMs.p99} / ${row.benchLoopDelayMs.max}`,
      ]),
    ),
  };
}

/** The burst and the counted steady run of each strategy, side by side. */
function strategiesTable({ throughput, targets }: BenchResults): Table {
  const rows: string[][] = [];
  for (const t of throughput) {
    for (const s of t.strategies ?? []) {
      const writerLease = s.strategy === 'writer-lease';
      const mark = (figure: string, text: string) => (writerLease ? judgedText(targets, t.store, figure, text) : text);
      const ms = (value: number | null) => (value === null ? '-' : int(value));
      const { burst, steady } = s;
      const failed = 'failed twice';
      rows.push([
        t.store,
        s.strategy,
        int(burst?.keys ?? t.burst.keys),
        mark(
          'burst.convergeMs',
          burst === null ? failed : burst.convergeMs === null ? 'not converged' : int(burst.convergeMs),
        ),
        burst === null ? '-' : ms(burst.warmConvergeMs ?? null),
        mark('burst.attemptsPerUpdate', burst === null ? '-' : burst.attemptsPerUpdate.toFixed(3)),
        burst === null ? '-' : int(burst.conflicts),
        steady === null ? failed : int(steady.achievedRate),
        steady === null ? '-' : ms(steady.p50),
        steady === null ? '-' : ms(steady.p99),
        steady === null ? '-' : steady.attemptsPerUpdate.toFixed(3),
        steady === null ? '-' : int(steady.conflicts),
        steady === null ? '-' : int(steady.idleWrites),
        s.commandsPerChange === null ? '-' : s.commandsPerChange.perChange.toFixed(2),
        burst === null || steady === null ? '-' : steady.converged && burst.converged ? 'yes' : 'no',
      ]);
    }
  }
  return {
    title:
      'Writer lease, uncoordinated replicas and the lock lease on each store (3 replica processes): two bursts (every ' +
      'record changes once, at once), the first on replicas that just started, the second on the same ones once the ' +
      'first converged, and the counted steady run (1000 keys at 500/s; round trip = spec write → status write); ' +
      `burst targets for the writer lease: <= ${THROUGHPUT_TARGETS.burstConvergeMs} ms at 10,000 records, ` +
      `<= ${THROUGHPUT_TARGETS.burstAttemptsPerUpdate} attempts per change`,
    header: [
      'store',
      'strategy',
      'burst records',
      'burst convergeMs',
      'second burst convergeMs',
      'burst attempts/change',
      'burst conflicts',
      '500/s run: made /s',
      'round trip p50 ms',
      'round trip p99 ms',
      'attempts/change',
      'conflicts',
      'idle writes (2 s)',
      'commands/change',
      'converged',
    ],
    right: new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]),
    rows,
  };
}

/** The shards runs: the burst with a client rate limit, 1, 3 and 10 replicas, 1 and 30 shards. */
function shardsTable({ shards, targets }: BenchResults): Table {
  const rows = shards ?? [];
  const first = rows[0];
  return {
    title:
      `Shards: a burst of ${first === undefined ? '' : int(first.keys)} records, every replica limited to ` +
      `${first?.clientQps ?? ''} store calls a second (--client-qps); speed-up = convergeMs of 1 replica / convergeMs`,
    header: [
      'store',
      'shards',
      'replicas',
      'convergeMs',
      'speed-up vs 1 replica',
      'attempts/update',
      'conflicts',
      'shards led by each replica',
      'converged',
    ],
    right: new Set([1, 2, 3, 4, 5, 6]),
    rows: rows.map((row) => {
      const v = verdict(targets, 'shards', shardScope(row), 'converged', row.store);
      return [
        row.store,
        `${row.shards}`,
        `${row.replicas}`,
        row.convergeMs === null ? '-' : int(row.convergeMs),
        row.speedUp === null ? '-' : `${row.speedUp.toFixed(2)}×`,
        row.attemptsPerUpdate.toFixed(3),
        int(row.conflicts),
        row.shardsByReplica.join(', '),
        `${row.converged ? 'yes' : 'no'}${v === '' ? '' : ` ${v}`}`,
      ];
    }),
  };
}
