import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseDemoArgs } from '../src/cli/args';
import { runDemo, type DemoRunOptions, type DemoSummary } from '../src/cli/demo';
import { redactUrl } from '../src/stores/errors';
import { openStore } from '../src/stores/openStore';
import type { CasOutcome, RecordStore, SpecValue } from '../src/stores/store';
import { CpuProbe, type CpuMark, type CpuShares } from './cpuProbe';
import { LOCK_LEASE_KEY } from './lockLeaseReplica';
import { PhaseProbe, countingDemoReads, storeCounter, type CommandCount } from './storeCounters';

export type { CommandCount } from './storeCounters';

/**
 * What a fleet gets written on a real store, beside what the store itself
 * can do (docs/benchmarks.md, "Throughput"):
 *
 * - `rawCas`: compare-and-sets a second through this package's adapter, from
 *   one client (one call in flight) and from many (one call in flight each),
 *   and the round trip of one;
 * - `commandsPerChange`: the writer lease's, counted by the store itself
 *   (Redis `MONITOR`, etcd `/metrics`, PostgreSQL `pg_stat_statements`): the
 *   commands the driver and the replicas sent per spec change;
 * - `burst`: every one of 10,000 records changes at once (`demo --burst`);
 * - `rates` and `ceiling`: the highest steady rate (3 replica processes,
 *   1000 records) whose p99 latency stays within 100 ms, that converges and
 *   that the driver kept up with, as a share of the one-client raw rate;
 * - `strategies`: the burst and a counted steady run of the writer lease,
 *   uncoordinated replicas and the lock lease, side by side.
 */
export interface ThroughputFigures {
  readonly store: string;
  readonly rawCas: {
    readonly oneClient: number;
    readonly manyClients: number;
    readonly clients: number;
    /** One client's compare-and-set round trip, ms. */
    readonly roundTripMs?: { readonly p50: number; readonly p99: number };
  };
  readonly commandsPerChange: CommandCount | null;
  readonly burst: {
    readonly keys: number;
    /** The first burst, on replica processes that just started. */
    readonly convergeMs: number | null;
    /** The second burst, on the same replicas once the first converged. */
    readonly warmConvergeMs?: number | null;
    readonly attemptsPerUpdate: number;
    /** Why the burst has no figure: the demo run failed twice (a store call timed out...). */
    readonly error?: string;
  };
  readonly rates: readonly RateRow[];
  readonly ceiling: {
    readonly rate: number;
    readonly ofRawOneClient: number;
    readonly ofRawManyClients?: number;
  } | null;
  /** The writer lease, uncoordinated replicas and the lock lease on the same runs. */
  readonly strategies?: readonly StrategyFigures[];
}

/** One steady run of the ceiling search. */
export interface RateRow {
  /** Changes a second the driver was asked for. */
  readonly rate: number;
  /** Of the changes made once the election had ended (the demo's `steadyLatencyMs`): what `held` judges. */
  readonly p99: number | null;
  /** Of every change, the election's too (the demo's `latencyMs`). */
  readonly p99All?: number | null;
  readonly attemptsPerUpdate: number;
  readonly converged: boolean;
  readonly p50?: number | null;
  /** Changes a second it made: changes / (first change → convergence). */
  readonly achievedRate?: number;
  /** Converged, p99 within 100 ms, and the driver kept up (achieved ≥ 90 % of the rate). */
  readonly held?: boolean;
  /** Where the CPU went from the first change to convergence. */
  readonly cpu?: CpuShares;
  /**
   * How late the bench's own event loop ran (it runs the demo's driver and its feed): the 99th
   * percentile and the worst, ms, over the whole run.
   */
  readonly benchLoopDelayMs?: { readonly p99: number; readonly max: number };
  /** Why the run has no figure: the demo run failed twice. */
  readonly error?: string;
}

/** The strategies compared on a real store. */
export type ThroughputStrategy = 'writer-lease' | 'uncoordinated' | 'lock-lease';

/** One strategy's burst and counted steady run. */
export interface StrategyFigures {
  readonly strategy: ThroughputStrategy;
  /** Null when the run failed twice: see `errors`. */
  readonly burst: {
    readonly keys: number;
    /** The first burst, on replica processes that just started. */
    readonly convergeMs: number | null;
    /** The second burst, on the same replicas once the first converged. */
    readonly warmConvergeMs: number | null;
    /** Over both bursts, as `writes` and `conflicts`. */
    readonly attemptsPerUpdate: number;
    readonly writes: number;
    readonly conflicts: number;
    readonly converged: boolean;
  } | null;
  /** The counted run: 3 replicas, 1000 keys, {@link COUNTED_CHANGES} changes at {@link COUNTED_RATE}/s; null when it failed twice. */
  readonly steady: {
    readonly changes: number;
    readonly rate: number;
    /** Changes a second the driver made: changes / (first change → convergence). */
    readonly achievedRate: number;
    /** Spec write → status write of that generation or newer (the change's round trip through the fleet), ms. */
    readonly p50: number | null;
    readonly p99: number | null;
    readonly attemptsPerUpdate: number;
    readonly writesPerUpdate: number;
    readonly conflicts: number;
    readonly idleWrites: number;
    readonly converged: boolean;
  } | null;
  readonly commandsPerChange: CommandCount | null;
  /** The messages of runs that failed twice (the demo gave up: a store call timed out under load...). */
  readonly errors?: readonly string[];
}

/** What {@link throughputSuite} runs. */
export interface ThroughputOptions {
  readonly store: string;
  readonly quick?: boolean;
  readonly progress?: (line: string) => void;
}

const RAW_MS = 2_000;
const MANY_CLIENTS = 50;
const LATENCY_TARGET_MS = 100;
/** The share of the asked rate the driver must make for a rate to hold. */
const KEPT_UP = 0.9;
/**
 * The records of the steady runs (1000 keys). Each demo run clears only its
 * own keys, and a replica lists every record of its prefix when it starts:
 * the 10,000 records a burst leaves behind would be listed by every later
 * replica, and that list, which ends after the replica reports ready, delays
 * the first changes of the run by hundreds of ms. So the bursts have a
 * prefix of their own, {@link BURST_PREFIX}.
 */
const PREFIX = 'wl_tp';
const BURST_PREFIX = 'wl_tp_burst';
const COUNTED_CHANGES = 4_000;
const COUNTED_RATE = 500;
const STEADY_KEYS = 1_000;
/** The lock-lease replica process (`bench/lockLeaseReplica.ts`), next to this file once compiled. */
const LOCK_LEASE_REPLICA = path.join(__dirname, 'lockLeaseReplica.js');
const STRATEGIES: readonly ThroughputStrategy[] = ['writer-lease', 'uncoordinated', 'lock-lease'];
/** The fewest changes of a run of the ceiling search. */
const MIN_RATE_CHANGES = 300;
/** How many times the ceiling search halves (geometrically) the gap between a rate that held and one that did not. */
const CEILING_HALVINGS = 2;
/** The rates the ceiling search climbs, changes a second. */
const RATE_LADDER = [25, 50, 100, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000];

/**
 * Runs the throughput figures on `store`.
 *
 * @param options The store URL, and `quick` for fewer and shorter runs.
 * @returns The figures.
 */
export async function throughputSuite(options: ThroughputOptions): Promise<ThroughputFigures> {
  const { store: url, quick = false, progress } = options;
  const name = redactUrl(url);
  progress?.(`throughput ${name}: raw compare-and-set rate`);
  const one = await rawCasRate(url, 1);
  const many = await rawCasRate(url, MANY_CLIENTS);
  const cpu = new CpuProbe(localPort(url));

  const burstKeys = quick ? 2_000 : 10_000;
  const countedChanges = quick ? 1_000 : COUNTED_CHANGES;
  const strategies: StrategyFigures[] = [];
  const memory = url === 'memory' || url === 'memory://';
  for (const strategy of STRATEGIES) {
    // The lock lease runs as replica processes of the bench's own: a memory store is shared in one process only.
    if (strategy === 'lock-lease' && memory) continue;
    const errors: string[] = [];
    progress?.(`throughput ${name}: ${strategy}, burst of ${burstKeys}`);
    // Two bursts: the first on replicas that just started (cold code), the second on the same ones once it converged.
    const burst = await twice(() => demo(url, strategy, ['--keys', `${burstKeys}`, '--bursts', '2']), errors, progress);
    progress?.(`throughput ${name}: ${strategy}, ${countedChanges} changes at ${COUNTED_RATE}/s, commands counted`);
    const counted = await twice(() => countedRun(url, strategy, countedChanges), errors, progress);
    const steady = counted?.summary;
    strategies.push({
      strategy,
      burst:
        burst === undefined
          ? null
          : {
              keys: burstKeys,
              convergeMs: burst.burstConvergeMs?.[0] ?? null,
              warmConvergeMs: burst.burstConvergeMs?.[1] ?? null,
              attemptsPerUpdate: burst.attemptsPerUpdate,
              writes: burst.writes,
              conflicts: burst.conflicts,
              converged: burst.converged,
            },
      steady:
        steady === undefined
          ? null
          : {
              changes: countedChanges,
              rate: COUNTED_RATE,
              achievedRate: Math.round((steady.updates * 1000) / Math.max(1, steady.durationMs)),
              p50: steady.latencyMs?.p50 ?? null,
              p99: steady.latencyMs?.p99 ?? null,
              attemptsPerUpdate: steady.attemptsPerUpdate,
              writesPerUpdate: steady.writesPerUpdate,
              conflicts: steady.conflicts,
              idleWrites: steady.idleWrites,
              converged: steady.converged,
            },
      commandsPerChange: counted?.count ?? null,
      ...(errors.length === 0 ? {} : { errors }),
    });
  }

  const rates: RateRow[] = [];
  const runRate = async (rate: number): Promise<RateRow> => {
    progress?.(`throughput ${name}: ${rate} changes/s`);
    // 5 s of changes (2 s with quick), and at least 300: a p99 needs a hundred samples or more.
    const updates = Math.max(MIN_RATE_CHANGES, Math.round(rate * (quick ? 2 : 5)));
    const errors: string[] = [];
    const row = (await twice(() => steadyRow(url, rate, updates, cpu), errors, progress)) ?? {
      rate,
      p99: null,
      attemptsPerUpdate: 0,
      converged: false,
      held: false,
      error: errors.join('; '),
    };
    rates.push(row);
    return row;
  };
  // From about an eighth of the raw one-client rate: up the ladder while the rates hold, or down it until
  // one holds; then halfway (geometrically) between the highest that held and the lowest above it that did
  // not, twice: a rung is 2 to 2.5 times the one below, so the ceiling is known to within about 25 %.
  const ladder = quick ? RATE_LADDER.filter((_, i) => i % 2 === 0) : RATE_LADDER;
  let index = Math.max(0, ladder.filter((rate) => rate <= one.rate / 8).length - 1);
  const step = (await runRate(ladder[index])).held ? 1 : -1;
  for (let runs = 1; runs < (quick ? 3 : ladder.length); runs++) {
    const last = rates.at(-1)!;
    if ((step === 1) !== last.held) break;
    index += step;
    if (index < 0 || index >= ladder.length) break;
    await runRate(ladder[index]);
  }
  for (let halvings = 0; halvings < (quick ? 0 : CEILING_HALVINGS); halvings++) {
    const between = rateBetween(rates);
    if (between === undefined) break;
    await runRate(between);
  }
  rates.sort((a, b) => a.rate - b.rate);
  const best = rates.filter((row) => row.held).at(-1);
  const writerLease = strategies.find(({ strategy }) => strategy === 'writer-lease')!;
  return {
    store: name,
    rawCas: { oneClient: one.rate, manyClients: many.rate, clients: MANY_CLIENTS, roundTripMs: one.roundTripMs },
    commandsPerChange: writerLease.commandsPerChange,
    burst:
      writerLease.burst === null
        ? { keys: burstKeys, convergeMs: null, attemptsPerUpdate: 0, error: writerLease.errors?.[0] ?? 'failed' }
        : {
            keys: burstKeys,
            convergeMs: writerLease.burst.convergeMs,
            warmConvergeMs: writerLease.burst.warmConvergeMs,
            attemptsPerUpdate: writerLease.burst.attemptsPerUpdate,
          },
    rates,
    ceiling:
      best === undefined
        ? null
        : {
            rate: best.rate,
            ofRawOneClient: ceilingShare(best.rate, one.rate),
            ofRawManyClients: ceilingShare(best.rate, many.rate),
          },
    strategies,
  };
}

/** How long the bench waits before it runs a failed demo run again. */
const RETRY_AFTER_MS = 3_000;

/**
 * Runs `run`, and once more if it fails: a demo run gives up when a store
 * call times out (the demo clears and writes thousands of records at once,
 * and a loaded machine can hold a call past its 5 s deadline). Each failure's
 * message goes to `errors`.
 *
 * @returns The result, or undefined when both tries failed.
 */
async function twice<T>(
  run: () => Promise<T>,
  errors: string[],
  progress?: (line: string) => void,
): Promise<T | undefined> {
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      return await run();
    } catch (caught) {
      const message = caught instanceof Error ? caught.message : String(caught);
      errors.push(`try ${attempt}: ${message}`);
      progress?.(`  failed (try ${attempt} of 2): ${message}`);
      await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
    }
  }
  return undefined;
}

/**
 * One demo run of 3 replicas of `strategy` on `url` with `flags`, in
 * {@link PREFIX} ({@link BURST_PREFIX} for a burst). The lock lease runs as
 * `bench/lockLeaseReplica.js` processes, its lock record cleared first (a
 * run that was killed leaves it held for 15 s).
 */
async function demo(
  url: string,
  strategy: ThroughputStrategy,
  flags: readonly string[],
  view: PhaseProbe = new PhaseProbe(),
): Promise<DemoSummary> {
  const lock = strategy === 'lock-lease';
  const prefix = flags.includes('--burst') ? BURST_PREFIX : PREFIX;
  if (lock) await clearLock(url, prefix);
  const options = parseDemoArgs([
    '--store',
    url,
    '--replicas',
    '3',
    '--prefix',
    prefix,
    // The lock-lease process ignores it: uncoordinated keeps the demo from waiting for a lease's leader.
    '--strategy',
    lock ? 'uncoordinated' : strategy,
    ...flags,
  ]);
  const run: DemoRunOptions = { view, ...(lock ? { replicaCommand: [process.execPath, LOCK_LEASE_REPLICA] } : {}) };
  try {
    return await runDemo(options, run);
  } catch (caught) {
    // Where the demo was tells whose call failed: its setup, its driver, its wait for convergence...
    const message = caught instanceof Error ? caught.message : String(caught);
    const phase = view.phase ?? 'setting up (opening its store, deleting its records, starting its replicas)';
    throw new Error(`${message} [demo phase: ${phase}]`, { cause: caught });
  }
}

async function clearLock(url: string, prefix: string): Promise<void> {
  const store = await openStore(url, { prefix });
  try {
    await store.delete('status', LOCK_LEASE_KEY);
  } finally {
    await store.close();
  }
}

/**
 * The steady run whose commands the store counts: 3 replicas, 1000 keys,
 * `changes` at {@link COUNTED_RATE}/s, counted from the driver's first change
 * until the replicas are told to stop (2 × leaseDuration after convergence),
 * so that the demo's setup (clearing the records, the replicas' start) and
 * the replicas' stop are left out.
 */
async function countedRun(
  url: string,
  strategy: ThroughputStrategy,
  changes: number,
): Promise<{ summary: DemoSummary; count: CommandCount | null }> {
  const counter = storeCounter(url, PREFIX);
  const flags = ['--keys', `${STEADY_KEYS}`, '--updates', `${changes}`, '--rate', `${COUNTED_RATE}`];
  if (counter === null) return { summary: await demo(url, strategy, flags), count: null };
  const probe = new PhaseProbe();
  await counter.start();
  let run: Awaited<ReturnType<typeof countingDemoReads<DemoSummary>>>;
  try {
    run = await countingDemoReads(() => demo(url, strategy, flags, probe));
  } catch (error) {
    await counter.finish({ from: 0, to: 0 }, changes, []).catch(() => undefined);
    throw error;
  }
  return { summary: run.result, count: await counter.finish(probe.window(), changes, run.reads) };
}

/**
 * One rate of the ceiling search, with where the CPU went from the first change to convergence.
 *
 * @param url The store.
 * @param rate Changes a second.
 * @param updates How many.
 * @param cpu The probe of the store's CPU.
 * @returns The row.
 */
export async function steadyRow(url: string, rate: number, updates: number, cpu: CpuProbe): Promise<RateRow> {
  const probe = new PhaseProbe();
  let first: CpuMark | undefined;
  let converged: CpuMark | undefined;
  probe.onPhase = (phase) => {
    if (phase === 'running') first = cpu.mark();
    else if (phase === 'idle') converged = cpu.mark();
  };
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  let run: DemoSummary;
  try {
    run = await demo(
      url,
      'writer-lease',
      ['--keys', `${STEADY_KEYS}`, '--updates', `${updates}`, '--rate', `${rate}`],
      probe,
    );
  } finally {
    delay.disable();
  }
  const loopMs = (ns: number) => Math.round(ns / 1e5) / 10;
  const achievedRate = Math.round((run.updates * 1000) / Math.max(1, run.durationMs));
  // A sustained rate: the election at the start of each run (rule 16's spread, up to a quarter lease) is not
  // part of it, and would weigh more at the lower rates (the same few changes, among fewer).
  const p99 = run.steadyLatencyMs?.p99 ?? null;
  return {
    rate,
    p50: run.steadyLatencyMs?.p50 ?? null,
    p99,
    p99All: run.latencyMs?.p99 ?? null,
    attemptsPerUpdate: run.attemptsPerUpdate,
    converged: run.converged,
    achievedRate,
    held: run.converged && p99 !== null && p99 <= LATENCY_TARGET_MS && achievedRate >= KEPT_UP * rate,
    ...(first !== undefined && converged !== undefined ? { cpu: cpu.shares(first, converged) } : {}),
    benchLoopDelayMs: { p99: loopMs(delay.percentile(99)), max: loopMs(delay.max) },
  };
}

/** The port of a store on this machine (127.0.0.1, localhost, ::1), for its server's CPU. */
function localPort(url: string): number | undefined {
  if (url.includes(',')) return undefined;
  try {
    const { hostname, port } = new URL(url);
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(hostname) || port === '') return undefined;
    return Number(port);
  } catch {
    return undefined;
  }
}

/**
 * Compare-and-sets a second through the adapter: `clients` stores, each
 * with one call in flight, each on keys of its own, for {@link RAW_MS};
 * and the round trip of one call, from the first client.
 */
async function rawCasRate(
  url: string,
  clients: number,
): Promise<{ rate: number; roundTripMs: { p50: number; p99: number } }> {
  const stores = await Promise.all(Array.from({ length: clients }, () => openStore(url, { prefix: `${PREFIX}_raw` })));
  try {
    const deadline = performance.now() + RAW_MS;
    const loops = await Promise.all(stores.map((store, client) => casLoop(store, `c${client}`, deadline)));
    const count = loops.reduce((sum, { count }) => sum + count, 0);
    const times = loops[0].times.sort((a, b) => a - b);
    const at = (q: number) => round2(times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0);
    return { rate: Math.round((count * 1000) / RAW_MS), roundTripMs: { p50: at(0.5), p99: at(0.99) } };
  } finally {
    await Promise.all(stores.map((store) => store.close()));
  }
}

async function casLoop(store: RecordStore, key: string, deadline: number): Promise<{ count: number; times: number[] }> {
  await store.delete('status', key);
  let version: number | null = null;
  const times: number[] = [];
  for (let generation = 1; performance.now() < deadline; generation++) {
    const started = performance.now();
    const written: CasOutcome = await store.compareAndSet<SpecValue>(
      'status',
      key,
      { generation, value: 'x' },
      version,
    );
    times.push(performance.now() - started);
    if (!written.ok) throw new Error(`raw compare-and-set refused on ${key}: another client wrote it`);
    version = written.version;
  }
  return { count: times.length, times };
}

/**
 * A ceiling as a share of a raw rate, to 3 decimals (results.json's ratios):
 * 1000 / 4065 is 0.246, not 0.25.
 *
 * @param rate The ceiling, changes a second.
 * @param raw The raw compare-and-set rate.
 * @returns The share.
 */
export function ceilingShare(rate: number, raw: number): number {
  return raw > 0 ? Math.round((rate / raw) * 1000) / 1000 : 0;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/**
 * The next rate of the ceiling search's halvings: halfway (geometrically,
 * to a multiple of 5) between the highest rate that held and the lowest
 * above it that did not; undefined when no rate held, none above failed,
 * or they are too close to split.
 *
 * @example
 * ```ts
 * rateBetween([{ rate: 250, held: true }, { rate: 500, held: false }]); // 355
 * ```
 * @param rates The runs so far.
 * @returns The rate to run next, changes a second.
 */
export function rateBetween(rates: readonly Pick<RateRow, 'rate' | 'held'>[]): number | undefined {
  const highestHeld = rates
    .filter((row) => row.held)
    .reduce<number | undefined>((m, row) => Math.max(m ?? 0, row.rate), undefined);
  if (highestHeld === undefined) return undefined;
  const firstFailed = rates
    .filter((row) => !row.held && row.rate > highestHeld)
    .reduce<number | undefined>((m, row) => Math.min(m ?? Infinity, row.rate), undefined);
  if (firstFailed === undefined) return undefined;
  const between = Math.round(Math.sqrt(highestHeld * firstFailed) / 5) * 5;
  return between > highestHeld && between < firstFailed ? between : undefined;
}
