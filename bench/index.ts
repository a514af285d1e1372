import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_BACKOFF_STEP_MS } from '../src/backoff';
import { redactUrl } from '../src/stores/errors';
import { attemptsChart, outageChart } from './chart';
import { runMacro, type MacroFigures } from './macro';
import { micro } from './micro';
import { realStoreSuite, type RealFigures } from './realStore';
import { throughputSuite, type ThroughputFigures } from './throughput';
import { failedTargets, reportTables } from './report';
import { machine, type BenchResults, type MacroSettings } from './results';
import { markdownTable, textTable } from './tables';
import { HANDOVER_BOUND_MS, checkTargets, checkThroughput } from './targets';

const USAGE =
  'Usage: npm run bench [-- [--quick] [--store redis://H:P|etcd://H:P|postgres://U@H:P/DB] [--rate 47] [--seed 1]\n' +
  '                         [--replicas 1,3,5,10,30] [--keys 10,1000]]';
const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS = path.join(ROOT, 'bench', 'results.json');
const DOC = path.join(ROOT, 'docs', 'benchmarks.md');
const CHART = path.join(ROOT, 'docs', 'benchmarks', 'attempts.svg');
const OUTAGE_CHART = path.join(ROOT, 'docs', 'benchmarks', 'outages.svg');
const DOC_START = '<!-- bench:results:start -->';
const DOC_END = '<!-- bench:results:end -->';

/**
 * The macro settings. 47 updates per second rather than 50: at 50/s an
 * update falls exactly `retryInterval` (5 periods) after an earlier one, so
 * in virtual time the retries of that update's conflicts run at the same
 * instant as the new update, ahead of it, and the uncoordinated baseline
 * loses half its races: an artifact of two timers at one instant, which a
 * real clock never gives. docs/benchmarks.md shows the 50/s figures.
 */
const MACRO_DEFAULTS: MacroSettings = {
  replicas: [1, 3, 5, 10, 30],
  keys: [10, 1000],
  strategies: ['writer-lease', 'uncoordinated', 'lock-lease'],
  updates: 300,
  rate: 47,
  seed: 1,
  leaseDuration: 1000,
  retryInterval: 100,
  lock: { leaseDuration: 15_000, renewDeadline: 10_000, retryPeriod: 2_000 },
  idleMs: 600_000,
  killAfterMs: 1000,
};

interface BenchArgs {
  quick: boolean;
  store: string | undefined;
  rate: number;
  seed: number;
  /** `--replicas` and `--keys`: narrow the runs (macro and real store); the docs are then left alone. */
  replicas: number[] | undefined;
  keys: number[] | undefined;
}

async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  const macro: MacroSettings = {
    ...MACRO_DEFAULTS,
    rate: args.rate,
    seed: args.seed,
    replicas: args.replicas ?? MACRO_DEFAULTS.replicas,
    keys: args.keys ?? MACRO_DEFAULTS.keys,
  };
  const narrowed = args.replicas !== undefined || args.keys !== undefined;
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const mode = args.quick ? 'quick' : 'full';
  log(`bench (${mode}) on ${machine().cpuModel}, ${machine().cpus} cpus, node ${process.version}`);

  log('micro...');
  let mark = Date.now();
  const microFigures = await micro(args.quick);
  const microMs = Date.now() - mark;

  log('macro (virtual time)...');
  mark = Date.now();
  const macroRuns: MacroFigures[] = [];
  for (const keys of macro.keys) {
    for (const replicas of macro.replicas) {
      for (const strategy of macro.strategies as MacroFigures['strategy'][]) {
        const { updates, rate, seed, leaseDuration, retryInterval, lock, idleMs, killAfterMs } = macro;
        macroRuns.push(
          await runMacro({
            strategy,
            replicas,
            keys,
            updates,
            rate,
            seed,
            leaseDuration,
            retryInterval,
            lock,
            idleMs,
            killAfterMs,
          }),
        );
      }
    }
  }
  const macroMs = Date.now() - mark;

  let real: BenchResults['real'] = null;
  let throughput: ThroughputFigures | null = null;
  let realMs: number | null = null;
  if (args.store !== undefined) {
    mark = Date.now();
    const settings = { updates: args.quick ? 150 : 300, rate: macro.rate, killLeaderAfter: 2000 };
    let runs: RealFigures[] = [];
    let error: string | null = null;
    try {
      runs = await realStoreSuite({
        store: args.store,
        replicas: args.quick && !narrowed ? [3] : macro.replicas,
        keys: args.quick && !narrowed ? [10] : macro.keys,
        ...settings,
        progress: log,
      });
    } catch (caught) {
      error = caught instanceof Error ? caught.message : String(caught);
      log(`real store: ${error}`);
    }
    try {
      throughput = await throughputSuite({ store: args.store, quick: args.quick, progress: log });
    } catch (caught) {
      error = caught instanceof Error ? caught.message : String(caught);
      log(`throughput: ${error}`);
    }
    real = { store: redactUrl(args.store), ...settings, runs, error };
    realMs = Date.now() - mark;
  }

  const targets = [
    ...checkTargets(microFigures, macroRuns, real?.runs ?? [], macro, args.store),
    ...(throughput === null ? [] : checkThroughput(throughput)),
  ];
  const results: BenchResults = {
    schema: 1,
    mode,
    startedAt,
    runtimeMs: { total: Date.now() - started, micro: microMs, macro: macroMs, real: realMs },
    machine: machine(),
    micro: microFigures,
    macro: { settings: macro, runs: macroRuns },
    real,
    throughput,
    targets,
    allTargetsMet: targets.every((check) => check.pass) && real?.error == null,
  };

  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  const tables = reportTables(results);
  console.log(tables.map(textTable).join('\n\n'));
  const failed = failedTargets(targets);
  console.log(`\n${failed.length === 0 ? 'Every target met.' : `Targets missed:\n  ${failed.join('\n  ')}`}`);
  console.log(`\nwrote ${path.relative(ROOT, RESULTS)} (${mode}, ${(results.runtimeMs.total / 1000).toFixed(1)} s)`);

  // The docs show the canonical run: full, default rate and seed.
  if (mode === 'full' && args.rate === MACRO_DEFAULTS.rate && args.seed === MACRO_DEFAULTS.seed && !narrowed) {
    mkdirSync(path.dirname(CHART), { recursive: true });
    writeFileSync(CHART, attemptsChart(macroRuns));
    console.log(`wrote ${path.relative(ROOT, CHART)}`);
    const failoverBound = macro.leaseDuration + macro.retryInterval + DEFAULT_BACKOFF_STEP_MS;
    writeFileSync(
      OUTAGE_CHART,
      outageChart(macroRuns, {
        failover: { ms: failoverBound, label: `writer-lease target ${failoverBound} ms` },
        handover: { ms: HANDOVER_BOUND_MS, label: `writer-lease target ${HANDOVER_BOUND_MS} ms` },
      }),
    );
    console.log(`wrote ${path.relative(ROOT, OUTAGE_CHART)}`);
    const sections = tables.map((table) => `**${table.title}**\n\n${markdownTable(table)}`);
    if (await updateDoc(results, sections)) console.log(`updated ${path.relative(ROOT, DOC)}`);
  }
  return real?.error == null ? 0 : 1;
}

/**
 * Replaces the results section of docs/benchmarks.md with this run's tables,
 * formatted by the repository's Prettier when it is installed, so that
 * `prettier --check` stays green after a run.
 */
async function updateDoc(results: BenchResults, tables: string[]): Promise<boolean> {
  if (!existsSync(DOC)) return false;
  const doc = readFileSync(DOC, 'utf8');
  const start = doc.indexOf(DOC_START);
  const end = doc.indexOf(DOC_END);
  if (start < 0 || end < start) return false;
  const { machine: m, runtimeMs } = results;
  const header =
    `Run of ${results.startedAt.slice(0, 10)} (\`npm run bench\`, full, ${(runtimeMs.total / 1000).toFixed(1)} s): ` +
    `${m.cpuModel}, ${m.cpus} cpus, ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}.`;
  const failed = failedTargets(results.targets);
  const verdict =
    failed.length === 0 ? 'Every target met.' : `Targets missed:\n\n${failed.map((line) => `- ${line}`).join('\n')}`;
  const section = [DOC_START, '', header, '', ...tables.flatMap((table) => [table, '']), verdict, '', DOC_END].join(
    '\n',
  );
  writeFileSync(DOC, await formatted(doc.slice(0, start) + section + doc.slice(end + DOC_END.length)));
  return true;
}

async function formatted(markdown: string): Promise<string> {
  let prettier: typeof import('prettier');
  try {
    prettier = await import('prettier');
  } catch {
    return markdown;
  }
  const config = (await prettier.resolveConfig(DOC)) ?? {};
  return prettier.format(markdown, { ...config, filepath: DOC });
}

function parseArgs(argv: readonly string[]): BenchArgs {
  const args: BenchArgs = {
    quick: false,
    store: undefined,
    rate: MACRO_DEFAULTS.rate,
    seed: MACRO_DEFAULTS.seed,
    replicas: undefined,
    keys: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') {
      args.quick = true;
      continue;
    }
    const [, flag, inline] = /^--(store|rate|seed|replicas|keys)(?:=(.*))?$/s.exec(arg) ?? [];
    if (flag === undefined) usage(`unexpected argument ${JSON.stringify(arg)}`);
    const value = inline ?? argv[++i];
    if (value === undefined || value === '' || value.startsWith('--')) {
      usage(`--${flag}: expected a value, received ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
    }
    if (flag === 'store') {
      args.store = value;
    } else if (flag === 'replicas' || flag === 'keys') {
      args[flag] = countList(flag, value);
    } else if (flag === 'rate') {
      const rate = Number(value);
      if (!(rate > 0 && rate <= 1000))
        usage(`--rate: expected updates per second, a number in (0, 1000], received ${JSON.stringify(value)}`);
      args.rate = rate;
    } else {
      const seed = Number(value);
      if (!Number.isInteger(seed) || seed < 0)
        usage(`--seed: expected an integer >= 0, received ${JSON.stringify(value)}`);
      args.seed = seed;
    }
  }
  return args;
}

/** `3,10,30` → [3, 10, 30]: integers >= 1, at least one. */
function countList(flag: string, value: string): number[] {
  const counts = value.split(',').map(Number);
  if (!counts.every((count) => Number.isInteger(count) && count >= 1)) {
    usage(`--${flag}: expected a comma-separated list of integers >= 1, received ${JSON.stringify(value)}`);
  }
  return counts;
}

function usage(message: string): never {
  console.error(`bench: ${message}\n${USAGE}`);
  process.exit(2);
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
