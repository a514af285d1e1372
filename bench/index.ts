import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_BACKOFF_STEP_MS } from '../src/backoff';
import { redactUrl } from '../src/stores/errors';
import { attemptsChart, ceilingChart, outageChart } from './chart';
import { runMacro, type MacroFigures } from './macro';
import { micro } from './micro';
import { realStoreSuite, type RealFigures } from './realStore';
import { failedTargets, reportTables } from './report';
import { loadAverage, machine, type BenchResults, type MacroSettings, type RealSection } from './results';
import { shardsSuite, type ShardRow } from './shards';
import { markdownTable, textTable } from './tables';
import {
  HANDOVER_BOUND_MS,
  THROUGHPUT_TARGETS,
  checkRealRuns,
  checkShards,
  checkTargets,
  checkThroughput,
  type TargetCheck,
} from './targets';
import { ceilingShare, throughputSuite, type ThroughputFigures } from './throughput';

const USAGE =
  'Usage: npm run bench [-- [--quick] [--store redis://H:P|etcd://H:P|postgres://U@H:P/DB]... [--rate 47] [--seed 1]\n' +
  '                         [--replicas 1,3,5,10,30] [--keys 10,1000] [--no-shards]]\n' +
  '       npm run bench -- --from-results   (publish bench/results.json again: tables, charts, docs)\n' +
  '       --store may be given more than once: the real-store runs and the throughput figures run on each.';
const ROOT = path.resolve(__dirname, '..', '..');
const RESULTS = path.join(ROOT, 'bench', 'results.json');
const DOC = path.join(ROOT, 'docs', 'benchmarks.md');
const CHART = path.join(ROOT, 'docs', 'benchmarks', 'attempts.svg');
const OUTAGE_CHART = path.join(ROOT, 'docs', 'benchmarks', 'outages.svg');
const CEILING_CHART = path.join(ROOT, 'docs', 'benchmarks', 'ceiling.svg');
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
  /** `--from-results`: publish bench/results.json again, run nothing. */
  fromResults: boolean;
  /** Every `--store`, in the order given. */
  stores: string[];
  /** `--no-shards`: leave the shards runs out. */
  shards: boolean;
  rate: number;
  seed: number;
  /** `--replicas` and `--keys`: narrow the runs (macro and real store); the docs are then left alone. */
  replicas: number[] | undefined;
  keys: number[] | undefined;
}

async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.fromResults) return republish();
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
  const loadAtStart = loadAverage();
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

  const real: RealSection[] = [];
  const throughput: ThroughputFigures[] = [];
  let realMs: number | null = null;
  const storeChecks: TargetCheck[] = [];
  if (args.stores.length > 0) {
    mark = Date.now();
    const settings = { updates: args.quick ? 150 : 300, rate: macro.rate, killLeaderAfter: 2000 };
    for (const [index, store] of args.stores.entries()) {
      const { replicas, keys } = realConfigurations(args, macro, index, narrowed);
      let runs: RealFigures[] = [];
      let error: string | null = null;
      try {
        runs = await realStoreSuite({ store, replicas, keys, ...settings, progress: log });
      } catch (caught) {
        error = caught instanceof Error ? caught.message : String(caught);
        log(`real store ${redactUrl(store)}: ${error}`);
      }
      if (error === null) {
        try {
          const figures = await throughputSuite({ store, quick: args.quick, progress: log });
          throughput.push(figures);
          storeChecks.push(...checkThroughput(figures));
        } catch (caught) {
          error = caught instanceof Error ? caught.message : String(caught);
          log(`throughput ${redactUrl(store)}: ${error}`);
        }
      }
      storeChecks.push(...checkRealRuns(runs, macro, store));
      real.push({ store: redactUrl(store), replicas, keys, ...settings, runs, error });
    }
    realMs = Date.now() - mark;
  }

  let shards: ShardRow[] | null = null;
  let shardsMs: number | null = null;
  if (args.shards) {
    mark = Date.now();
    // Memory, and the Redis stores given (the shards issue's rows).
    const stores = ['memory', ...args.stores.filter((store) => store.startsWith('redis://'))];
    try {
      shards = await shardsSuite({ stores, quick: args.quick, progress: log });
    } catch (caught) {
      log(`shards: ${caught instanceof Error ? caught.message : String(caught)}`);
    }
    shardsMs = Date.now() - mark;
  }

  const targets = [
    ...checkTargets(microFigures, macroRuns, [], macro),
    ...storeChecks,
    ...(shards === null ? [] : checkShards(shards)),
  ];
  const results: BenchResults = {
    schema: 2,
    mode,
    startedAt,
    runtimeMs: { total: Date.now() - started, micro: microMs, macro: macroMs, real: realMs, shards: shardsMs },
    machine: machine(),
    load: { start: loadAtStart, end: loadAverage() },
    micro: microFigures,
    macro: { settings: macro, runs: macroRuns },
    real,
    throughput,
    shards,
    targets,
    allTargetsMet: targets.every((check) => check.pass) && real.every((section) => section.error === null),
  };

  const canonical = args.rate === MACRO_DEFAULTS.rate && args.seed === MACRO_DEFAULTS.seed && !narrowed;
  await publish(results, canonical);
  return real.every((section) => section.error === null) ? 0 : 1;
}

/**
 * Writes results.json and prints the tables; for the canonical run (full,
 * default rate and seed, not narrowed), also the charts and this run's
 * section of docs/benchmarks.md.
 */
async function publish(results: BenchResults, canonical: boolean): Promise<void> {
  const { mode, macro, throughput, targets } = results;
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  const tables = reportTables(results);
  console.log(tables.map(textTable).join('\n\n'));
  const failed = failedTargets(targets);
  console.log(`\n${failed.length === 0 ? 'Every target met.' : `Targets missed:\n  ${failed.join('\n  ')}`}`);
  console.log(`\nwrote ${path.relative(ROOT, RESULTS)} (${mode}, ${(results.runtimeMs.total / 1000).toFixed(1)} s)`);

  // The docs show the canonical run: full, default rate and seed.
  if (mode === 'full' && canonical) {
    mkdirSync(path.dirname(CHART), { recursive: true });
    writeFileSync(CHART, attemptsChart(macro.runs));
    console.log(`wrote ${path.relative(ROOT, CHART)}`);
    const failoverBound = macro.settings.leaseDuration + macro.settings.retryInterval + DEFAULT_BACKOFF_STEP_MS;
    writeFileSync(
      OUTAGE_CHART,
      outageChart(macro.runs, {
        failover: { ms: failoverBound, label: `writer-lease target ${failoverBound} ms` },
        handover: { ms: HANDOVER_BOUND_MS, label: `writer-lease target ${HANDOVER_BOUND_MS} ms` },
      }),
    );
    console.log(`wrote ${path.relative(ROOT, OUTAGE_CHART)}`);
    if (throughput.length > 0) {
      writeFileSync(CEILING_CHART, ceilingChart(throughput, THROUGHPUT_TARGETS.ceilingOfRaw));
      console.log(`wrote ${path.relative(ROOT, CEILING_CHART)}`);
    }
    const sections = tables.map((table) => `**${table.title}**\n\n${markdownTable(table)}`);
    if (await updateDoc(results, sections)) console.log(`updated ${path.relative(ROOT, DOC)}`);
  }
}

/**
 * `--from-results`: the figures of bench/results.json, measured by an
 * earlier run, checked against today's targets and published again (tables,
 * charts, docs) without running anything: after a change to the checks or
 * the report. The ceiling's shares are recomputed from its rates.
 */
async function republish(): Promise<number> {
  const results = JSON.parse(readFileSync(RESULTS, 'utf8')) as BenchResults;
  const throughput = results.throughput.map((figures) => ({
    ...figures,
    ceiling:
      figures.ceiling === null
        ? null
        : {
            rate: figures.ceiling.rate,
            ofRawOneClient: ceilingShare(figures.ceiling.rate, figures.rawCas.oneClient),
            ofRawManyClients: ceilingShare(figures.ceiling.rate, figures.rawCas.manyClients),
          },
  }));
  const settings = results.macro.settings;
  const targets = [
    ...checkTargets(results.micro, results.macro.runs, [], settings),
    ...results.real.flatMap((section) => [
      ...throughput.filter(({ store }) => store === section.store).flatMap(checkThroughput),
      ...checkRealRuns(section.runs, settings, section.store),
    ]),
    ...(results.shards === null ? [] : checkShards(results.shards)),
  ];
  const republished: BenchResults = {
    ...results,
    throughput,
    targets,
    allTargetsMet: targets.every((check) => check.pass) && results.real.every((section) => section.error === null),
  };
  await publish(republished, true);
  return 0;
}

/**
 * The real-store configurations of the `index`-th `--store`: those of
 * `--replicas` and `--keys` when given; with `--quick`, 3 replicas × 10 keys;
 * with one store, every macro configuration; with several, 3, 10 and 30
 * replicas × 10 keys on the first and 3 × 10 on the others, which keeps a
 * full run on three stores within 25 minutes on 2 cores.
 */
function realConfigurations(
  args: BenchArgs,
  macro: MacroSettings,
  index: number,
  narrowed: boolean,
): { replicas: number[]; keys: number[] } {
  if (narrowed) return { replicas: macro.replicas, keys: macro.keys };
  if (args.quick) return { replicas: [3], keys: [10] };
  if (args.stores.length === 1) return { replicas: macro.replicas, keys: macro.keys };
  return { replicas: index === 0 ? [3, 10, 30] : [3], keys: [10] };
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
  const stores = results.real.map(({ store }) => ` --store ${store}`).join('');
  const header =
    `Run of ${results.startedAt.slice(0, 10)} (\`npm run bench${stores === '' ? '' : ` --${stores}`}\`, full, ` +
    `${(runtimeMs.total / 1000).toFixed(1)} s): ${m.cpuModel}, ${m.cpus} cpus, ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}; ` +
    `load average ${results.load.start.join(' / ')} at the start, ${results.load.end.join(' / ')} at the end (other work shares the machine).`;
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
    fromResults: false,
    stores: [],
    shards: true,
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
    if (arg === '--from-results') {
      args.fromResults = true;
      continue;
    }
    if (arg === '--no-shards') {
      args.shards = false;
      continue;
    }
    const [, flag, inline] = /^--(store|rate|seed|replicas|keys)(?:=(.*))?$/s.exec(arg) ?? [];
    if (flag === undefined) usage(`unexpected argument ${JSON.stringify(arg)}`);
    const value = inline ?? argv[++i];
    if (value === undefined || value === '' || value.startsWith('--')) {
      usage(`--${flag}: expected a value, received ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
    }
    if (flag === 'store') {
      if (args.stores.includes(value)) usage(`--store: ${JSON.stringify(redactUrl(value))} given twice`);
      args.stores.push(value);
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
