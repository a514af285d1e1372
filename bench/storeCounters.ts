import http from 'node:http';
import type { DemoPhase, DemoProgress } from '../src/cli/liveView';
import * as openStoreModule from '../src/stores/openStore';
import type { RecordStore } from '../src/stores/store';

/**
 * Client commands the store itself counted during a steady demo run, by who
 * sent them, per spec change (docs/benchmarks.md, "Commands per change").
 */
export interface CommandCount {
  /** Spec changes the driver made. */
  readonly changes: number;
  /** Commands of the driver: its spec writes. */
  readonly driver: number;
  /** Commands of the replicas, every one of them. */
  readonly replicas: number;
  /** (driver + replicas) / changes. */
  readonly perChange: number;
  /** replicas / changes. */
  readonly replicasPerChange: number;
  /**
   * What counted them: `MONITOR` (Redis), `/metrics` (etcd: gRPC requests
   * started, and messages received on streams), `pg_stat_statements`
   * (PostgreSQL: statements executed) or `pg_stat_database` (transactions).
   */
  readonly counter?: string;
  /** Every client command of the window by kind, the demo's own included. */
  readonly byCommand?: Readonly<Record<string, number>>;
  /**
   * The demo's read-back when it checks convergence (its reads of the
   * statuses), left out: on Redis by its connection; elsewhere counted as
   * the demo's store is called (`get`: one Range / one SELECT; `list`: one
   * Range / one SELECT) and taken off those commands.
   */
  readonly demoReads?: number;
  /** Redis: the commands of the replica connection that sent the most (the leader's)... */
  readonly leader?: number;
  /** ...and of every other replica connection. */
  readonly followers?: number;
  /**
   * Commands of a replica's start or stop that fell in the window, by kind,
   * left out (PostgreSQL: the schema statements of a store's open, a
   * stopped replica's handover).
   */
  readonly setupLeftOut?: Readonly<Record<string, number>>;
  /** From the driver's first change until the replicas are told to stop (2 × leaseDuration after convergence). */
  readonly windowMs?: number;
  /** etcd: Raft proposals committed in the window (every write: puts, successful compare-and-sets). */
  readonly storeWrites?: number;
}

/** The window of a steady run: from the last moment before the driver's first change to the stop. */
export interface Window {
  readonly from: number;
  readonly to: number;
}

/**
 * Follows the phases of a demo run: passed to `runDemo` as its view, it
 * reads the run's progress every few ms and tells each change of phase.
 *
 * @example
 * ```ts
 * const probe = new PhaseProbe();
 * await runDemo(options, { view: probe });
 * probe.window(); // { from, to }: 'starting' → 'running' … 'idle' → 'stopping'
 * ```
 */
export class PhaseProbe {
  #read: (() => DemoProgress) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #phase: DemoPhase | undefined;
  #lastPoll = 0;
  /** Each phase: when it was entered, between the last poll of the phase before and the first poll of it. */
  readonly #entered = new Map<DemoPhase, { after: number; before: number }>();
  /** The phase now; undefined before the demo started its view (it opens its store and clears its records first). */
  get phase(): DemoPhase | undefined {
    return this.#phase;
  }

  /** Called on each change of phase, at once (the poll that saw it). */
  onPhase: ((phase: DemoPhase) => void) | undefined;

  start(read: () => DemoProgress): void {
    this.#read = read;
    this.#poll();
    this.#timer = setInterval(() => this.#poll(), 5);
  }

  stop(): void {
    this.#poll();
    clearInterval(this.#timer);
  }

  /**
   * The window of the steady run, in `Date.now()` ms: from the last poll
   * before the driver started to the last poll before the replicas were
   * told to stop.
   */
  window(): Window {
    const running = this.#entered.get('running');
    const stopping = this.#entered.get('stopping');
    if (running === undefined || stopping === undefined)
      throw new Error('the demo run ended before it stopped its replicas');
    return { from: running.after, to: stopping.after };
  }

  #poll(): void {
    if (this.#read === undefined) return;
    const now = Date.now();
    const { phase } = this.#read();
    if (phase !== this.#phase) {
      this.#entered.set(phase, { after: this.#lastPoll, before: now });
      this.#phase = phase;
      this.onPhase?.(phase);
    }
    this.#lastPoll = now;
  }
}

/** Counts a store's client commands while a demo runs. */
export interface StoreCounter {
  /** Starts counting (or sampling the server's counters). */
  start(): Promise<void>;
  /**
   * Stops and counts the window.
   *
   * @param window The steady run's window.
   * @param changes The driver's changes.
   * @param demoReads The demo store's reads, for the stores that cannot tell its commands by connection.
   */
  finish(window: Window, changes: number, demoReads: readonly DemoRead[]): Promise<CommandCount>;
}

/**
 * The counter of a store URL: Redis's `MONITOR`, etcd's `/metrics` on the
 * client URL, PostgreSQL's `pg_stat_statements` (or, without it,
 * `pg_stat_database`); null for a store that has none here (memory, the
 * clusters).
 *
 * @param url The store URL.
 * @param prefix The demo's `--prefix` (PostgreSQL's table is `<prefix>_records`).
 * @returns The counter, not started.
 */
export function storeCounter(url: string, prefix: string): StoreCounter | null {
  if (url.startsWith('redis://')) return new RedisMonitorCounter(url);
  if (url.startsWith('etcd://') && !url.includes(',')) return new SampledCounter(etcdSampler(url), ETCD_ROLES);
  if (/^postgres(ql)?:\/\//.test(url)) return new SampledCounter(postgresSampler(url, prefix), POSTGRES_ROLES);
  return null;
}

/** A read of the demo's own store: when (`Date.now()`), and which call. */
export interface DemoRead {
  readonly at: number;
  readonly call: 'get' | 'list';
}

/**
 * Runs `run` (a `runDemo`) with every store it opens counting its reads
 * (`get` and `list` calls): the demo's own store, whose reads are its
 * read-back. `runDemo` calls `openStore` through its module's exports,
 * which this swaps for the time of the run.
 *
 * @returns What `run` returns, and the demo store's reads.
 */
export async function countingDemoReads<T>(run: () => Promise<T>): Promise<{ result: T; reads: DemoRead[] }> {
  const exports: { openStore: typeof openStoreModule.openStore } = openStoreModule;
  const original = exports.openStore;
  const reads: DemoRead[] = [];
  exports.openStore = async (...args) => countingReads(await original(...args), reads);
  try {
    return { result: await run(), reads };
  } finally {
    exports.openStore = original;
  }
}

function countingReads(store: RecordStore, reads: DemoRead[]): RecordStore {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const call = value as (...args: unknown[]) => unknown;
      if (property !== 'get' && property !== 'list') return call.bind(target);
      return (...args: unknown[]) => {
        reads.push({ at: Date.now(), call: property });
        return call.apply(target, args);
      };
    },
  });
}

// ---- Redis: MONITOR, by connection ----------------------------------------

interface Seen {
  readonly at: number;
  readonly args: string[];
  readonly source: string;
}

/**
 * Redis's `MONITOR` prints every command it runs with the client's address:
 * the demo's connection is the one that writes the specs (its spec writes
 * are the driver's commands, its reads are the read-back, left out); every
 * other connection is a replica's. A script's own `redis.call`s are not
 * client commands (source `lua`).
 */
class RedisMonitorCounter implements StoreCounter {
  readonly #url: string;
  #close: (() => void) | undefined;
  readonly #seen: Seen[] = [];

  constructor(url: string) {
    this.#url = url;
  }

  async start(): Promise<void> {
    const { default: Redis } = await import('ioredis');
    const client = new Redis(this.#url);
    const monitor = await client.monitor();
    monitor.on('monitor', (time: string, args: string[], source: string) => {
      if (source !== 'lua') this.#seen.push({ at: Number(time) * 1000, args, source });
    });
    this.#close = () => {
      monitor.disconnect();
      client.disconnect();
    };
  }

  async finish({ from, to }: Window, changes: number): Promise<CommandCount> {
    // MONITOR's lines of the last moments are still on their way.
    await new Promise((resolve) => setTimeout(resolve, 200));
    this.#close?.();
    const isSpecWrite = ({ args }: Seen) =>
      args[0].toLowerCase() === 'evalsha' && args.includes('*') && args.some((arg) => arg.startsWith('{"generation"'));
    const specWrites = this.#seen.filter(isSpecWrite);
    const demo = new Set(specWrites.map(({ source }) => source));
    const writeScript = specWrites[0]?.args[1];
    const during = this.#seen.filter(({ at }) => at >= from && at <= to);
    const byCommand: Record<string, number> = {};
    const byReplica = new Map<string, number>();
    let driver = 0;
    let demoReads = 0;
    for (const seen of during) {
      const name = seen.args[0].toLowerCase();
      const kind = name === 'evalsha' ? (seen.args[1] === writeScript ? 'write script' : 'read script') : name;
      byCommand[kind] = (byCommand[kind] ?? 0) + 1;
      if (!demo.has(seen.source)) byReplica.set(seen.source, (byReplica.get(seen.source) ?? 0) + 1);
      else if (isSpecWrite(seen)) driver++;
      else demoReads++;
    }
    const counts = [...byReplica.values()];
    const replicas = counts.reduce((sum, count) => sum + count, 0);
    const leader = Math.max(0, ...counts);
    return {
      ...perChange(changes, driver, replicas),
      counter: 'MONITOR',
      byCommand,
      demoReads,
      leader,
      followers: replicas - leader,
      windowMs: Math.round(to - from),
    };
  }
}

// ---- etcd and PostgreSQL: the server's counters, sampled ------------------

/** One reading of a server's counters: when it was asked and answered, and every counter by command. */
interface Sample {
  readonly asked: number;
  readonly answered: number;
  readonly counts: ReadonlyMap<string, number>;
  /** Committed writes, where the server counts them. */
  readonly writes?: number;
}

interface Sampler {
  readonly counter: string;
  read(): Promise<Omit<Sample, 'asked' | 'answered'>>;
  close(): Promise<void>;
}

/** Which command of a sampled counter is the driver's spec write, and which a `get` and a `list` of the demo. */
interface Roles {
  readonly driver: string;
  readonly get: string;
  readonly list: string;
}

const ETCD_ROLES: Roles = { driver: 'Put', get: 'Range', list: 'Range' };
const POSTGRES_ROLES: Roles = { driver: 'put', get: 'get', list: 'list' };
/** How often the server's counters are read during a run. */
const SAMPLE_EVERY_MS = 200;

/**
 * Reads the server's counters every {@link SAMPLE_EVERY_MS} while the demo
 * runs; the window is the difference between the last reading answered
 * before the driver's first change and the last one answered before the
 * replicas were told to stop. The server cannot tell the demo's connection
 * from the replicas': the driver's commands are its spec writes (a command
 * no replica sends), and the demo's read-back is taken off the gets.
 */
class SampledCounter implements StoreCounter {
  readonly #sampler: Sampler;
  readonly #roles: Roles;
  readonly #samples: Sample[] = [];
  #running = false;
  #loop: Promise<void> | undefined;

  constructor(sampler: Sampler, roles: Roles) {
    this.#sampler = sampler;
    this.#roles = roles;
  }

  async start(): Promise<void> {
    await this.#sample();
    this.#running = true;
    this.#loop = (async () => {
      while (this.#running) {
        await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
        await this.#sample();
      }
    })();
  }

  async finish({ from, to }: Window, changes: number, demoReads: readonly DemoRead[]): Promise<CommandCount> {
    this.#running = false;
    await this.#loop;
    await this.#sampler.close();
    const before = this.#samples.filter(({ answered }) => answered <= from).at(-1);
    const after = this.#samples.filter(({ answered }) => answered <= to).at(-1);
    if (before === undefined || after === undefined || after === before) {
      throw new Error(`${this.#sampler.counter}: no reading of the counters before the run, or none during it`);
    }
    if (process.env.WL_BENCH_DEBUG) {
      for (const sample of this.#samples) {
        const mark = sample === before ? ' <- from' : sample === after ? ' <- to' : '';
        process.stderr.write(
          `${sample.asked - from} ${sample.answered - from} ${JSON.stringify(Object.fromEntries(sample.counts))}${mark}\n`,
        );
      }
      process.stderr.write(`window ${from} .. ${to} (${to - from} ms)\n`);
    }
    const byCommand: Record<string, number> = {};
    const setupLeftOut: Record<string, number> = {};
    for (const [command, count] of after.counts) {
      const delta = count - (before.counts.get(command) ?? 0);
      if (delta <= 0) continue;
      if (command.startsWith(SETUP)) setupLeftOut[command.slice(SETUP.length)] = delta;
      else byCommand[command] = delta;
    }
    const total = Object.values(byCommand).reduce((sum, count) => sum + count, 0);
    let driver = byCommand[this.#roles.driver] ?? 0;
    // The demo's reads of the window, taken off the commands they are, as far as the server counted them.
    const inWindow = demoReads.filter(({ at }) => at >= before.answered && at <= after.answered);
    const taken = new Map<string, number>();
    for (const { call } of inWindow) {
      const kind = this.#roles[call];
      if ((taken.get(kind) ?? 0) < (byCommand[kind] ?? 0)) taken.set(kind, (taken.get(kind) ?? 0) + 1);
    }
    let reads = [...taken.values()].reduce((sum, count) => sum + count, 0);
    let own = 0;
    if (byCommand.transactions !== undefined) {
      // pg_stat_database: one transaction per spec write and per read-back get; one per reading of ours.
      driver = changes;
      reads = inWindow.length;
      own = this.#samples.filter(({ answered }) => answered > before.answered && answered <= after.answered).length;
    }
    return {
      ...perChange(changes, driver, Math.max(0, total - driver - reads - own)),
      counter: this.#sampler.counter,
      byCommand,
      demoReads: reads,
      windowMs: Math.round(after.answered - before.answered),
      ...(Object.keys(setupLeftOut).length === 0 ? {} : { setupLeftOut }),
      ...(after.writes === undefined || before.writes === undefined
        ? {}
        : { storeWrites: after.writes - before.writes }),
    };
  }

  async #sample(): Promise<void> {
    const asked = Date.now();
    try {
      const reading = await this.#sampler.read();
      this.#samples.push({ asked, answered: Date.now(), ...reading });
    } catch {
      // A reading that failed is skipped: the next one covers it.
    }
  }
}

/**
 * etcd's `/metrics` on its client URL: `grpc_server_started_total` of the
 * unary calls (Range, Put, Txn, DeleteRange...) and
 * `grpc_server_msg_received_total` of the streams (a Watch's create and
 * cancel requests), by method; `etcd_server_proposals_committed_total`, the
 * writes.
 */
function etcdSampler(url: string): Sampler {
  const { host, port } = new URL(url.replace(/^etcd:/, 'http:'));
  return {
    counter: '/metrics (gRPC calls and stream messages)',
    async read() {
      const text = await httpGet(`http://${host}${port === '' ? ':2379' : ''}/metrics`);
      const counts = new Map<string, number>();
      let writes: number | undefined;
      for (const line of text.split('\n')) {
        const metric = /^(grpc_server_started_total|grpc_server_msg_received_total)\{([^}]*)\} (\S+)$/.exec(line);
        if (metric !== null) {
          const labels = Object.fromEntries([...metric[2].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
          const unary = labels.grpc_type === 'unary';
          // A unary call counts once when it starts; a stream by the requests it receives.
          if (unary !== (metric[1] === 'grpc_server_started_total')) continue;
          const name = unary ? labels.grpc_method : `${labels.grpc_method} (stream message)`;
          counts.set(name, (counts.get(name) ?? 0) + Number(metric[3]));
        } else if (line.startsWith('etcd_server_proposals_committed_total ')) {
          writes = Number(line.split(' ')[1]);
        }
      }
      return { counts, writes };
    },
    close: async () => undefined,
  };
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { timeout: 2_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () =>
        response.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${response.statusCode}`)),
      );
    });
    request.once('timeout', () => request.destroy(new Error(`${url}: no answer within 2 s`)));
    request.once('error', reject);
  });
}

/**
 * PostgreSQL: `pg_stat_statements` when the server loads it
 * (`shared_preload_libraries`): the calls of every top-level statement of
 * this database, by statement, the bench's own readings left out. Without
 * it, `pg_stat_database`'s transactions (`xact_commit + xact_rollback`),
 * which a backend reports at most once a second, when idle: a lower bound.
 */
function postgresSampler(url: string, prefix: string): Sampler {
  let client: import('pg').Client | undefined;
  let statements: boolean | undefined;
  const table = `${prefix}_records`;
  const sampler = {
    counter: 'pg_stat_statements',
    async read() {
      if (client === undefined) {
        const { Client } = await import('pg');
        client = new Client({ connectionString: url });
        client.on('error', () => undefined);
        await client.connect();
        try {
          await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
          await client.query('SELECT 1 FROM pg_stat_statements LIMIT 1');
          statements = true;
        } catch {
          statements = false;
          sampler.counter = 'pg_stat_database (xact_commit + xact_rollback)';
        }
      }
      const counts = new Map<string, number>();
      if (statements) {
        const { rows } = await client.query<{ query: string; calls: string }>(
          `SELECT query, sum(calls)::bigint AS calls FROM pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND query NOT LIKE '%pg_stat_statements%' GROUP BY query`,
        );
        for (const { query, calls } of rows) {
          const name = statementKind(query, table);
          counts.set(name, (counts.get(name) ?? 0) + Number(calls));
        }
      } else {
        const { rows } = await client.query<{ transactions: string }>(
          `SELECT xact_commit + xact_rollback AS transactions FROM pg_stat_database WHERE datname = current_database()`,
        );
        // Each reading is a transaction of its own: the count goes up by one per reading.
        counts.set('transactions', Number(rows[0]?.transactions ?? 0));
      }
      return { counts };
    },
    async close() {
      await client?.end().catch(() => undefined);
    },
  };
  return sampler;
}

/**
 * A statement of `src/stores/postgres.ts`, by what it does; anything else by
 * its first words. The statements a replica runs only when it opens the
 * store (the schema, under an advisory lock, in a transaction) or when it
 * stops (the handover's `pg_notify`) are {@link SETUP}.
 */
function statementKind(query: string, table: string): string {
  const sql = query.replace(/\s+/g, ' ').trim();
  if (/^SELECT \$1$/i.test(sql)) return 'feed check (SELECT 1)';
  if (sql.includes('DO UPDATE SET value = EXCLUDED.value')) return 'put';
  if (sql.startsWith(`UPDATE ${table} SET value`)) return 'compare-and-set (UPDATE)';
  if (sql.includes('DO NOTHING RETURNING version')) return 'compare-and-set (INSERT)';
  if (sql.startsWith('WITH batch AS')) return 'compare-and-sets (one statement for a batch)';
  if (sql.startsWith('SELECT value, version FROM')) return 'get';
  if (sql.startsWith('SELECT kind, key, value, version FROM')) return 'list';
  if (sql.startsWith(`DELETE FROM ${table}`)) return 'delete';
  if (/^LISTEN/i.test(sql)) return 'LISTEN';
  if (sql.includes('pg_notify')) return `${SETUP}stop: handover (pg_notify)`;
  if (/^(BEGIN|COMMIT)$/i.test(sql) || sql.includes('pg_advisory_xact_lock') || sql.includes(`${table}_version`)) {
    return `${SETUP}open: schema`;
  }
  if (/^(CREATE|DO \$\$)/i.test(sql) || sql.startsWith('-- ')) return `${SETUP}open: schema`;
  return sql.split(' ').slice(0, 2).join(' ');
}

/**
 * The prefix of a command kind that only a replica's start or stop sends:
 * left out of the count, and shown apart (`setupLeftOut`). A replica's open
 * can end after the last reading of the counters before the driver's first
 * change (the replica reports ready, the driver starts at once), and a
 * stopped replica's last statement can be run by the server late.
 */
const SETUP = 'setup: ';

function perChange(
  changes: number,
  driver: number,
  replicas: number,
): Pick<CommandCount, 'changes' | 'driver' | 'replicas' | 'perChange' | 'replicasPerChange'> {
  return {
    changes,
    driver,
    replicas,
    perChange: round2((driver + replicas) / changes),
    replicasPerChange: round2(replicas / changes),
  };
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
