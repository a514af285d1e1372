import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Subscription, firstValueFrom, from, timeout } from 'rxjs';
import { assertDuration, describeValue } from './internal/validate.js';
import { monotonicScheduler } from './monotonicScheduler.js';
import { leaseMetrics, statusWriterMetrics } from './prometheus.js';
import { PeerDependencyMissingError, requirePeer } from './requirePeer.js';
import type { StatusWriter } from './statusWriter.js';
import type { RecordStore } from './stores/store.js';
import { LeaseState } from './types.js';
import { ShardedWriterLease } from './shardedWriterLease.js';
import type { WriterLease } from './writerLease.js';

/**
 * Options of {@link serveHealth}.
 *
 * @example
 * ```ts
 * serveHealth({ lease, writer, store, leaseDuration: 2_000, workTimeout: 2_000, listen: { host: '0.0.0.0', port: 9464 } });
 * ```
 */
export interface HealthOptions {
  /** This replica's lease; with a {@link ShardedWriterLease}, each shard's lease is reported. */
  lease: WriterLease | ShardedWriterLease;
  /** The StatusWriter that runs on `lease`. */
  writer: StatusWriter;
  /**
   * The lease's `leaseDuration`, in milliseconds: how long the store may be
   * silent while work is pending before `/readyz` says not ready.
   */
  leaseDuration: number;
  /** Where to listen; port 0 takes a free port (see {@link HealthServer.address}). */
  listen: { readonly host: string; readonly port: number };
  /**
   * The writer's store. When the writer has heard nothing from it for a
   * lease, `/readyz` reads one record to learn whether it still answers, so
   * that an idle leader cut off from it says so too.
   * @default none: no probe; an idle replica that has heard from the store once stays ready
   */
  store?: RecordStore;
  /**
   * The lease's `workTimeout`, in milliseconds: a unit still running a lease
   * duration past it means the lease's timers no longer fire, and `/healthz`
   * fails.
   * @default none: how long units run is not checked
   */
  workTimeout?: number;
  /**
   * Prefix of every metric name.
   * @default 'writer_lease_'
   */
  prefix?: string;
}

/**
 * A running {@link serveHealth} server.
 *
 * @example
 * ```ts
 * const health = await serveHealth({ lease, writer, leaseDuration: 2_000, listen: { host: '127.0.0.1', port: 0 } });
 * health.address; // { host: '127.0.0.1', port: 40123 }
 * await health.close();
 * ```
 */
export interface HealthServer {
  /** Where it listens: the port the system chose when given 0. */
  readonly address: { readonly host: string; readonly port: number };
  /** Stops listening, closes the connections open (a scraper's keep-alive) and stops reporting. */
  close(): Promise<void>;
}

/** What a check found: `ok`, or the reasons it is not. @internal */
export interface HealthVerdict {
  readonly ok: boolean;
  readonly reasons: readonly string[];
}

/** What the checks read, taken at once. @internal */
export interface HealthFacts {
  /** `lease.running`: its timers run. */
  readonly running: boolean;
  /** `writer.watching`: the store's feed is subscribed. */
  readonly watching: boolean;
  /** Keys with pending work. */
  readonly pending: number;
  /** Milliseconds since the store last answered (the writer, or a probe); Infinity: never. */
  readonly storeSilentFor: number;
  /** Milliseconds the oldest unit still running has run; 0 when none runs. */
  readonly oldestUnitFor: number;
  readonly leaseDuration: number;
  readonly workTimeout: number | undefined;
  /** Whether a silent store can be probed (a store was given). */
  readonly probes: boolean;
}

const OWNER = 'serveHealth';
const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/** The record a probe reads: any key does, whether or not it exists. */
const PROBE_KEY = 'rx-writer-lease-readyz';
/** A probe waits at most this long, and at most a lease: Kubernetes' default probe timeout is 1 s. */
const MAX_PROBE_MS = 1_000;
/** `/status` lists at most this many pending keys (with their count). */
const MAX_KEYS_LISTED = 100;
const TEXT_FORMAT = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * Serves a replica's health over HTTP, for Kubernetes probes and
 * Prometheus, in the user's own process (`rx-writer-lease replica --listen`
 * serves the same):
 *
 * | path | answers |
 * | --- | --- |
 * | `/healthz` | 200 while live: the lease runs and no unit is held a lease past `workTimeout`; else 503 and why |
 * | `/readyz` | 200 while ready: live, the store's feed subscribed, and the store heard from within a lease while work is pending (idle: a probe, with `store`); else 503 and why |
 * | `/metrics` | Prometheus text: {@link leaseMetrics} and {@link statusWriterMetrics} with a `writer` label when prom-client is installed, else the gauges `leader`, `tick`, `pending_keys`, `believed_leader`, `store_silence_seconds`, `last_write_timestamp_seconds` |
 * | `/status` | JSON: state, the leader it believes in, pending keys, last write, store silence, live, ready and why |
 *
 * A leader cut off from the store (connection open, no bytes) keeps its
 * lease's `leader` state; `/readyz` is what says it is cut off, within a
 * lease of its last word from the store (plus a probe when it is idle).
 *
 * @example
 * ```ts
 * const health = await serveHealth({ lease, writer, store, leaseDuration: 2_000, listen: { host: '0.0.0.0', port: 9464 } });
 * // GET /readyz → 200 ok
 * // GET /status → {"writer":"replica-1","state":"leader","leader":"replica-1","pending":0,...}
 * await health.close();
 * ```
 * @param options The lease, its writer, the lease's durations and where to listen.
 * @returns The server, once it listens.
 * @throws TypeError or RangeError naming the option, when one is missing or of the wrong type.
 * @throws Error when it cannot listen there (the address is in use, say).
 */
export async function serveHealth(options: HealthOptions): Promise<HealthServer> {
  assertOptions(options);
  const { lease, writer, leaseDuration, listen, store, workTimeout, prefix = 'writer_lease_' } = options;
  const checks = new HealthChecks(lease, writer, leaseDuration, workTimeout, store, prefix);
  const server = http.createServer((request, response) => void checks.answer(request, response));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => {
        server.off('error', reject);
        // A connection it could not accept (no file descriptor left) must not end the process: it goes on listening.
        server.on('error', () => undefined);
        resolve();
      });
    });
  } catch (error) {
    checks.stop();
    throw new Error(`${OWNER}: cannot listen on ${listen.host}:${listen.port}: ${messageOf(error)}`, { cause: error });
  }
  const { port } = server.address() as AddressInfo;
  return {
    address: { host: listen.host, port },
    async close() {
      checks.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * Liveness: the lease's machinery runs. A unit the lease should have let
 * go of at `workTimeout` and still holds a lease later means its timers no
 * longer fire; a restart is what helps.
 *
 * @internal
 */
export function livenessOf({ running, oldestUnitFor, workTimeout, leaseDuration }: HealthFacts): HealthVerdict {
  const reasons: string[] = [];
  if (!running) reasons.push('the lease is not running (lease.run() not called, stopped or disposed)');
  if (workTimeout !== undefined && oldestUnitFor > workTimeout + leaseDuration) {
    reasons.push(
      `a unit has run for ${Math.round(oldestUnitFor)} ms, past the work timeout (${workTimeout} ms) by more than a lease ` +
        `(${leaseDuration} ms): the lease does not let go of it`,
    );
  }
  return { ok: reasons.length === 0, reasons };
}

/**
 * Readiness: live, the store's feed subscribed, and the store heard from.
 * A store silent for more than a lease is a cut-off replica when work is
 * pending (its calls do not come back), when a probe of it failed, or when
 * it never answered at all; an idle replica that cannot probe stays ready.
 *
 * @internal
 */
export function readinessOf(facts: HealthFacts): HealthVerdict {
  const { watching, pending, storeSilentFor, leaseDuration, probes } = facts;
  const reasons = [...livenessOf(facts).reasons];
  if (!watching) reasons.push("the store's feed is not subscribed (StatusWriter.run() not called, or stopped)");
  if (storeSilentFor > leaseDuration) {
    const silence =
      storeSilentFor === Infinity
        ? 'the store has not answered yet'
        : `the store has not answered for ${Math.round(storeSilentFor)} ms`;
    if (pending > 0) reasons.push(`${silence}, more than a lease (${leaseDuration} ms), with ${pending} keys pending`);
    else if (probes) reasons.push(`${silence} and did not answer a probe within ${probeTimeout(leaseDuration)} ms`);
    else if (storeSilentFor === Infinity) reasons.push(silence);
  }
  return { ok: reasons.length === 0, reasons };
}

/** The machinery behind the endpoints: what it tracks of the lease, the probe, the metrics. */
class HealthChecks {
  /** Units running now: lease name and id → when they started, on the monotonic clock. */
  readonly #units = new Map<string, number>();
  readonly #reporting = new Subscription();
  /** When a probe last got an answer from the store, on the monotonic clock. */
  #probeAnsweredAt: number | undefined;
  /** The probe in flight: concurrent requests share it. */
  #probing: Promise<void> | undefined;
  readonly #metrics: () => Promise<{ readonly text: string; readonly contentType: string }>;

  constructor(
    readonly lease: WriterLease | ShardedWriterLease,
    readonly writer: StatusWriter,
    readonly leaseDuration: number,
    readonly workTimeout: number | undefined,
    readonly store: RecordStore | undefined,
    prefix: string,
  ) {
    this.#reporting.add(
      lease.events$.subscribe((event) => {
        // Each shard's lease counts its own ids.
        if (event.type === 'started') this.#units.set(`${event.lease}#${event.id}`, monotonicScheduler.now());
        else if (event.type === 'settled' || event.type === 'let-go') this.#units.delete(`${event.lease}#${event.id}`);
      }),
    );
    this.#metrics = this.#metricsSource(prefix);
  }

  async answer(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    try {
      const path = (request.url ?? '/').split('?')[0];
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return send(response, 405, 'text/plain', `${request.method} not allowed; expected GET\n`, {
          allow: 'GET, HEAD',
        });
      }
      switch (path) {
        case '/healthz':
          return sendVerdict(response, 'live', livenessOf(this.#facts()));
        case '/readyz':
          return sendVerdict(response, 'ready', await this.#readiness());
        case '/metrics': {
          const { text, contentType } = await this.#metrics();
          return send(response, 200, contentType, text);
        }
        case '/status':
          return send(response, 200, 'application/json', `${JSON.stringify(await this.#status())}\n`);
        default:
          return send(response, 404, 'text/plain', `no ${path}; expected /healthz, /readyz, /metrics or /status\n`);
      }
    } catch (error) {
      send(response, 500, 'text/plain', `${messageOf(error)}\n`);
    }
  }

  stop(): void {
    this.#reporting.unsubscribe();
  }

  #facts(): HealthFacts {
    const now = monotonicScheduler.now();
    let oldest = now;
    for (const started of this.#units.values()) oldest = Math.min(oldest, started);
    const probed = this.#probeAnsweredAt === undefined ? Infinity : now - this.#probeAnsweredAt;
    return {
      running: this.lease.running,
      watching: this.writer.watching,
      pending: this.lease.size,
      storeSilentFor: Math.min(this.writer.storeSilentFor, probed),
      oldestUnitFor: now - oldest,
      leaseDuration: this.leaseDuration,
      workTimeout: this.workTimeout,
      probes: this.store !== undefined,
    };
  }

  /** The readiness now, after a probe of the store when it has been silent for a lease and can be probed. */
  async #readiness(): Promise<HealthVerdict> {
    const facts = this.#facts();
    if (facts.probes && facts.storeSilentFor > facts.leaseDuration) {
      this.#probing ??= this.#probe().finally(() => (this.#probing = undefined));
      await this.#probing;
      return readinessOf(this.#facts());
    }
    return readinessOf(facts);
  }

  /** Reads one record; an answer within the probe's timeout counts as the store answering. */
  async #probe(): Promise<void> {
    const store = this.store!;
    const abort = new AbortController();
    try {
      await firstValueFrom(
        from(store.get('spec', PROBE_KEY, { signal: abort.signal })).pipe(
          timeout({ first: probeTimeout(this.leaseDuration) }),
        ),
      );
      this.#probeAnsweredAt = monotonicScheduler.now();
    } catch {
      abort.abort();
    }
  }

  async #status(): Promise<ReplicaHealthStatus> {
    const { lease, writer } = this;
    const ready = await this.#readiness();
    const facts = this.#facts();
    const last = writer.lastWritten;
    const snapshot = lease.state;
    return {
      writer: writer.writer,
      lease: lease.name,
      state: snapshot.state,
      tick: 'tick' in snapshot ? snapshot.tick : null,
      ...('leading' in snapshot
        ? { shards: snapshot.shards.length, leading: [...snapshot.leading].sort((a, b) => a - b) }
        : {}),
      leader: writer.believedLeader ?? null,
      pending: facts.pending,
      pendingKeys: lease.pendingKeys().slice(0, MAX_KEYS_LISTED),
      lastWrite: last === undefined ? null : { ...last, at: new Date(last.at).toISOString() },
      storeSilentMs: Number.isFinite(facts.storeSilentFor) ? Math.round(facts.storeSilentFor) : null,
      live: livenessOf(facts).ok,
      ready: ready.ok,
      reasons: ready.reasons,
    };
  }

  /** prom-client's registry, with the reporters of the lease and the writer, when installed; else the built-in text. */
  #metricsSource(prefix: string): () => Promise<{ text: string; contentType: string }> {
    let client: typeof import('prom-client');
    try {
      client = requirePeer<typeof import('prom-client')>('prom-client', OWNER);
    } catch (error) {
      if (!(error instanceof PeerDependencyMissingError)) throw error;
      return () => Promise.resolve({ text: builtInMetrics(prefix, this.lease, this.writer), contentType: TEXT_FORMAT });
    }
    const registry = new client.Registry();
    // Every series names the replica, so that queries across replicas need no relabelling.
    registry.setDefaultLabels({ writer: this.writer.writer });
    for (const lease of leasesOf(this.lease)) this.#reporting.add(leaseMetrics(lease, { registry, prefix }));
    this.#reporting.add(statusWriterMetrics(this.writer, { registry, prefix }));
    return async () => ({ text: await registry.metrics(), contentType: registry.contentType });
  }
}

/** What `/status` answers. */
interface ReplicaHealthStatus {
  readonly writer: string;
  readonly lease: string;
  /** With shards: `leader` while it leads one. */
  readonly state: LeaseState;
  /** Null with shards: each has its own (in /metrics). */
  readonly tick: number | null;
  /** With shards: how many, and those this replica leads. */
  readonly shards?: number;
  readonly leading?: readonly number[];
  /** The writer this replica believes leads; null during an election. */
  readonly leader: string | null;
  readonly pending: number;
  /** The first 100 of them. */
  readonly pendingKeys: readonly string[];
  readonly lastWrite: { readonly key: string; readonly generation: number; readonly at: string } | null;
  readonly storeSilentMs: number | null;
  readonly live: boolean;
  readonly ready: boolean;
  readonly reasons: readonly string[];
}

/** The essential gauges in the text exposition format, as prom-client would write them, without it. */
function builtInMetrics(prefix: string, lease: WriterLease | ShardedWriterLease, writer: StatusWriter): string {
  const name = writer.writer;
  const leases = leasesOf(lease).map((each) => ({ each, labels: { lease: each.name, writer: name } }));
  const believed = writer.believedLeader;
  const silent = writer.storeSilentFor;
  const last = writer.lastWritten;
  return [
    gauge(
      `${prefix}leader`,
      '1 while the lease leads, else 0',
      leases.map(({ each, labels }) => [labels, each.state.state === LeaseState.Leader ? 1 : 0]),
    ),
    gauge(
      `${prefix}tick`,
      'Follower renewals by others in a row',
      leases.map(({ each, labels }) => [labels, each.state.tick]),
    ),
    gauge(
      `${prefix}pending_keys`,
      'Keys with pending work',
      leases.map(({ each, labels }) => [labels, each.size]),
    ),
    gauge(
      `${prefix}believed_leader`,
      'The writer this replica believes leads (label leader): itself, the one it follows; none in an election',
      believed === undefined ? [] : [[{ writer: name, leader: believed }, 1]],
    ),
    gauge(
      `${prefix}store_silence_seconds`,
      'Seconds since the store last answered a call or sent a change',
      Number.isFinite(silent) ? [[{ writer: name }, silent / 1_000]] : [],
    ),
    gauge(
      `${prefix}last_write_timestamp_seconds`,
      'When this replica last wrote a status, in seconds since the epoch (its wall clock)',
      last === undefined ? [] : [[{ writer: name }, last.at / 1_000]],
    ),
  ].join('');
}

/** The leases to report: the lease, or each shard's. */
function leasesOf(lease: WriterLease | ShardedWriterLease): readonly WriterLease[] {
  return lease instanceof ShardedWriterLease ? lease.leases : [lease];
}

function gauge(name: string, help: string, samples: [Record<string, string>, number][]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`];
  for (const [labels, value] of samples) {
    const text = Object.entries(labels)
      .map(([label, labelValue]) => `${label}="${escapeLabel(labelValue)}"`)
      .join(',');
    lines.push(`${name}{${text}} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function probeTimeout(leaseDuration: number): number {
  return Math.min(leaseDuration, MAX_PROBE_MS);
}

function sendVerdict(response: http.ServerResponse, what: 'live' | 'ready', { ok, reasons }: HealthVerdict): void {
  send(response, ok ? 200 : 503, 'text/plain', ok ? 'ok\n' : `not ${what}: ${reasons.join('; ')}\n`);
}

function send(
  response: http.ServerResponse,
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  const type = contentType.includes('charset') ? contentType : `${contentType}; charset=utf-8`;
  response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Bad input fails before anything listens, naming the option, what it expects and what it received. */
function assertOptions(options: HealthOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${OWNER}: options must be an object, received ${describeValue(options)}`);
  }
  const { lease, writer, leaseDuration, listen, store, workTimeout, prefix = 'writer_lease_' } = options;
  if (typeof lease?.events$?.subscribe !== 'function') {
    throw new TypeError(
      `${OWNER}: options.lease must be a WriterLease or a ShardedWriterLease, received ${describeValue(lease)}`,
    );
  }
  if (typeof writer?.believedLeader$?.subscribe !== 'function') {
    throw new TypeError(`${OWNER}: options.writer must be a StatusWriter, received ${describeValue(writer)}`);
  }
  assertDuration(OWNER, 'options.leaseDuration', leaseDuration);
  if (workTimeout !== undefined) assertDuration(OWNER, 'options.workTimeout', workTimeout);
  if (store !== undefined && typeof store?.get !== 'function') {
    throw new TypeError(`${OWNER}: options.store must be a RecordStore, received ${describeValue(store)}`);
  }
  if (typeof listen?.host !== 'string' || listen.host.length === 0) {
    throw new TypeError(
      `${OWNER}: options.listen.host must be a non-empty string, received ${describeValue(listen?.host)}`,
    );
  }
  const { port } = listen;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(
      `${OWNER}: options.listen.port must be an integer from 0 to 65535, received ${describeValue(port)}`,
    );
  }
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_PREFIX.test(prefix))) {
    throw new TypeError(`${OWNER}: options.prefix must match ${METRIC_PREFIX}, received ${describeValue(prefix)}`);
  }
}
