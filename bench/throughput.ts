import { parseDemoArgs } from '../src/cli/args';
import { runDemo, type DemoSummary } from '../src/cli/demo';
import { redactUrl } from '../src/stores/errors';
import { openStore } from '../src/stores/openStore';
import type { CasOutcome, RecordStore, SpecValue } from '../src/stores/store';

/**
 * What a fleet gets written on a real store, beside what the store itself
 * can do (docs/benchmarks.md, "Throughput"):
 *
 * - `rawCas`: compare-and-sets a second through this package's adapter, from
 *   one client (one call in flight) and from many (one call in flight each);
 * - `commandsPerChange`: Redis only, counted by Redis (MONITOR): the
 *   commands the driver and the replicas sent per spec change;
 * - `burst`: every one of 10,000 records changes at once (`demo --burst`);
 * - `ceiling`: the highest steady rate (3 replica processes, 1000 records)
 *   whose p99 latency stays within 100 ms and which converges, as a share of
 *   the one-client raw rate.
 */
export interface ThroughputFigures {
  readonly store: string;
  readonly rawCas: { readonly oneClient: number; readonly manyClients: number; readonly clients: number };
  readonly commandsPerChange: CommandCount | null;
  readonly burst: { readonly keys: number; readonly convergeMs: number | null; readonly attemptsPerUpdate: number };
  readonly rates: readonly RateRow[];
  readonly ceiling: { readonly rate: number; readonly ofRawOneClient: number } | null;
}

/** Commands Redis received during a steady run, by who sent them, per spec change. */
export interface CommandCount {
  readonly changes: number;
  readonly driver: number;
  readonly replicas: number;
  readonly perChange: number;
  readonly replicasPerChange: number;
}

/** One steady run of the ceiling search. */
export interface RateRow {
  readonly rate: number;
  readonly p99: number | null;
  readonly attemptsPerUpdate: number;
  readonly converged: boolean;
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
const PREFIX = 'wl_tp';

/**
 * Runs the throughput figures on `store`.
 *
 * @param options The store URL, and `quick` for fewer and shorter runs.
 * @returns The figures.
 */
export async function throughputSuite(options: ThroughputOptions): Promise<ThroughputFigures> {
  const { store: url, quick = false, progress } = options;
  progress?.(`throughput ${redactUrl(url)}: raw compare-and-set rate`);
  const oneClient = await rawCasRate(url, 1);
  const manyClients = await rawCasRate(url, MANY_CLIENTS);

  progress?.(`throughput ${redactUrl(url)}: commands per change`);
  const commandsPerChange = url.startsWith('redis://') ? await redisCommandsPerChange(url) : null;

  const burstKeys = quick ? 2_000 : 10_000;
  progress?.(`throughput ${redactUrl(url)}: burst of ${burstKeys}`);
  const burst = await demo(url, ['--keys', `${burstKeys}`, '--burst']);

  const rates: RateRow[] = [];
  for (const rate of quick ? [500, 2_000] : [500, 1_000, 2_000, 4_000, 8_000]) {
    progress?.(`throughput ${redactUrl(url)}: ${rate} changes/s`);
    const run = await demo(url, ['--keys', '1000', '--updates', `${rate * (quick ? 2 : 5)}`, '--rate', `${rate}`]);
    const row = {
      rate,
      p99: run.latencyMs?.p99 ?? null,
      attemptsPerUpdate: run.attemptsPerUpdate,
      converged: run.converged,
    };
    rates.push(row);
    if (!row.converged || row.p99 === null || row.p99 > LATENCY_TARGET_MS) break;
  }
  const held = rates.filter(({ converged, p99 }) => converged && p99 !== null && p99 <= LATENCY_TARGET_MS);
  const best = held.at(-1);
  return {
    store: redactUrl(url),
    rawCas: { oneClient, manyClients, clients: MANY_CLIENTS },
    commandsPerChange,
    burst: { keys: burstKeys, convergeMs: round(burst.convergeMs), attemptsPerUpdate: burst.attemptsPerUpdate },
    rates,
    ceiling: best === undefined ? null : { rate: best.rate, ofRawOneClient: round2(best.rate / oneClient) },
  };
}

function demo(url: string, flags: readonly string[]): Promise<DemoSummary> {
  return runDemo(parseDemoArgs(['--store', url, '--replicas', '3', '--prefix', PREFIX, ...flags]));
}

/**
 * Compare-and-sets a second through the adapter: `clients` stores, each
 * with one call in flight, each on keys of its own, for {@link RAW_MS}.
 */
async function rawCasRate(url: string, clients: number): Promise<number> {
  const stores = await Promise.all(Array.from({ length: clients }, () => openStore(url, { prefix: `${PREFIX}_raw` })));
  try {
    const deadline = performance.now() + RAW_MS;
    const counts = await Promise.all(stores.map((store, client) => casLoop(store, `c${client}`, deadline)));
    return Math.round((counts.reduce((sum, count) => sum + count, 0) * 1000) / RAW_MS);
  } finally {
    await Promise.all(stores.map((store) => store.close()));
  }
}

async function casLoop(store: RecordStore, key: string, deadline: number): Promise<number> {
  await store.delete('status', key);
  let version: number | null = null;
  let count = 0;
  for (let generation = 1; performance.now() < deadline; generation++) {
    const written: CasOutcome = await store.compareAndSet<SpecValue>(
      'status',
      key,
      { generation, value: 'x' },
      version,
    );
    if (!written.ok) throw new Error(`raw compare-and-set refused on ${key}: another client wrote it`);
    version = written.version;
    count++;
  }
  return count;
}

/**
 * Counts, with Redis's MONITOR, the commands a steady demo run sends, by
 * the connection that sent them: the demo's own (the one that writes the
 * specs: the driver, and the demo's read-back at the end) and the
 * replicas'. Counted from the driver's first change to its last plus a
 * second, so the demo's setup is left out; the demo's own reads are left out
 * by their connection.
 */
async function redisCommandsPerChange(url: string): Promise<CommandCount> {
  const { default: Redis } = await import('ioredis');
  const monitorClient = new Redis(url);
  const monitor = await monitorClient.monitor();
  const seen: { at: number; args: string[]; source: string }[] = [];
  monitor.on('monitor', (time: string, args: string[], source: string) => {
    if (source !== 'lua') seen.push({ at: Number(time) * 1000, args, source });
  });
  const changes = 4_000;
  try {
    await demo(url, ['--keys', '1000', '--updates', `${changes}`, '--rate', '500']);
  } finally {
    monitor.disconnect();
    monitorClient.disconnect();
  }
  const isSpecWrite = ({ args }: { args: string[] }) =>
    args[0].toLowerCase() === 'evalsha' && args.includes('*') && args.some((arg) => arg.startsWith('{"generation"'));
  const puts = seen.filter(isSpecWrite);
  const demoConnections = new Set(puts.map(({ source }) => source));
  const from = puts[0]?.at ?? 0;
  const to = (puts.at(-1)?.at ?? 0) + 1_000;
  const during = seen.filter(({ at }) => at >= from && at <= to);
  const driver = during.filter(isSpecWrite).length;
  const replicas = during.filter(({ source }) => !demoConnections.has(source)).length;
  return {
    changes,
    driver,
    replicas,
    perChange: round2((driver + replicas) / changes),
    replicasPerChange: round2(replicas / changes),
  };
}

function round(value: number | null): number | null {
  return value === null ? null : Math.round(value);
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
