/**
 * Reports a {@link WriterLease} and a {@link StatusWriter} to Prometheus with
 * `prom-client`, an optional peer dependency: `npm install prom-client`.
 *
 * @packageDocumentation
 * @module rx-writer-lease/prometheus
 */
// Types only: the declarations this file emits must not name prom-client, so that a
// project without it type-checks; the library itself is loaded when leaseMetrics is called.
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { Subscription } from 'rxjs';
import { describeValue } from './internal/validate.js';
import { requirePeer } from './requirePeer.js';
import type { StatusWriter } from './statusWriter.js';
import { LeaseState, WorkResult } from './types.js';
import type { WriterLease } from './writerLease.js';

export { PeerDependencyMissingError } from './requirePeer.js';

/**
 * What {@link leaseMetrics} needs of a prom-client `Registry`: a `Registry`
 * (or the default `register`) is one. Declared here so that these types do
 * not depend on prom-client's.
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client';
 * const registry: MetricsRegistry = new Registry();
 * ```
 */
export interface MetricsRegistry {
  /** Adds a metric; called by prom-client's metric constructors. */
  registerMetric(metric: object): void;
  /** The text exposition of every metric registered. */
  metrics(): Promise<string>;
}

/**
 * Options of {@link leaseMetrics}.
 *
 * @example
 * ```ts
 * leaseMetrics(lease, { registry: new Registry(), prefix: 'router_status_' });
 * ```
 */
export interface LeaseMetricsOptions {
  /**
   * Where the metrics are registered.
   * @default the prom-client default registry
   */
  registry?: MetricsRegistry;
  /**
   * Prefix of every metric name.
   * @default 'writer_lease_'
   */
  prefix?: string;
  /**
   * Buckets of the work duration histogram, in seconds.
   * @default [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]
   */
  buckets?: number[];
}

/** The metrics of one registry and prefix, shared by every lease reported there. */
interface MetricSet {
  readonly leases: Map<string, WriterLease>;
  readonly leader: Gauge<'lease'>;
  readonly tick: Gauge<'lease'>;
  readonly pending: Gauge<'lease'>;
  readonly submissions: Counter<'lease'>;
  readonly results: Counter<'lease' | 'result'>;
  readonly retries: Counter<'lease'>;
  readonly errors: Counter<'lease'>;
  readonly dropped: Counter<'lease' | 'reason'>;
  readonly durations: Histogram<'lease' | 'result'>;
}

/** The metrics of one registry and prefix, shared by every status writer reported there. */
interface WriterMetricSet {
  readonly writers: Map<string, StatusWriter>;
  readonly believedLeader: Gauge<'writer' | 'leader'>;
  readonly storeSilence: Gauge<'writer'>;
  readonly lastWrite: Gauge<'writer'>;
}

type PromClient = typeof import('prom-client');
const metricSets = new WeakMap<MetricsRegistry, Map<string, MetricSet>>();
const writerMetricSets = new WeakMap<MetricsRegistry, Map<string, WriterMetricSet>>();
const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Reports a lease to Prometheus (prom-client): whether it leads, its follower
 * tick, its queue depth, and per unit of work its result, duration, retries
 * and errors. Every metric has a `lease` label with the lease's `name`, so
 * several leases share one registry.
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `<prefix>leader` | gauge, 1 while leading | lease |
 * | `<prefix>tick` | gauge | lease |
 * | `<prefix>pending_keys` | gauge, read at scrape time | lease |
 * | `<prefix>submissions_total` | counter | lease |
 * | `<prefix>results_total` | counter | lease, result |
 * | `<prefix>retries_total` | counter | lease |
 * | `<prefix>errors_total` | counter | lease |
 * | `<prefix>dropped_total` | counter | lease, reason |
 * | `<prefix>work_duration_seconds` | histogram | lease, result |
 *
 * @example
 * ```ts
 * import { leaseMetrics } from 'rx-writer-lease/prometheus';
 * const reporting = leaseMetrics(lease);
 * // await register.metrics() now includes: writer_lease_leader{lease="writer-lease"} 1
 * reporting.unsubscribe(); // stops reporting and removes this lease's series
 * ```
 * @param lease The lease to report.
 * @param options Registry, prefix and buckets.
 * @returns The reporting; unsubscribe to stop it and remove the lease's series.
 * @throws TypeError when `lease` is not a WriterLease or `prefix` is not a valid metric name prefix.
 * @throws PeerDependencyMissingError when prom-client is not installed.
 */
export function leaseMetrics(lease: WriterLease, options: LeaseMetricsOptions = {}): Subscription {
  const client = requirePeer<PromClient>('prom-client', 'leaseMetrics');
  const {
    registry = client.register,
    prefix = 'writer_lease_',
    buckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  } = options;
  if (typeof lease?.events$?.subscribe !== 'function') {
    throw new TypeError(`leaseMetrics: lease must be a WriterLease, received ${describeValue(lease)}`);
  }
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_PREFIX.test(prefix))) {
    throw new TypeError(`leaseMetrics: options.prefix must match ${METRIC_PREFIX}, received ${describeValue(prefix)}`);
  }
  const metrics = metricSetOf(client, registry, prefix, buckets);
  const labels = { lease: lease.name };
  metrics.leases.set(lease.name, lease);

  const reporting = new Subscription();
  reporting.add(
    lease.state$.subscribe(({ state, tick }) => {
      metrics.leader.set(labels, state === LeaseState.Leader ? 1 : 0);
      metrics.tick.set(labels, tick);
    }),
  );
  reporting.add(
    lease.events$.subscribe((event) => {
      switch (event.type) {
        case 'submitted':
          metrics.submissions.inc(labels);
          return;
        case 'settled':
          metrics.results.inc({ ...labels, result: event.result });
          metrics.durations.observe({ ...labels, result: event.result }, (event.at - event.started) / 1_000);
          return;
        case 'retried':
          metrics.retries.inc(labels);
          return;
        case 'error':
          metrics.errors.inc(labels);
          return;
        case 'dropped':
          metrics.dropped.inc({ ...labels, reason: event.reason });
          return;
      }
    }),
  );
  reporting.add(() => {
    metrics.leases.delete(lease.name);
    for (const metric of [
      metrics.leader,
      metrics.tick,
      metrics.pending,
      metrics.submissions,
      metrics.retries,
      metrics.errors,
    ]) {
      metric.remove(labels);
    }
    for (const result of Object.values(WorkResult)) {
      metrics.results.remove({ ...labels, result });
      metrics.durations.remove({ ...labels, result });
    }
    for (const reason of ['removed', 'extended']) metrics.dropped.remove({ ...labels, reason });
  });
  return reporting;
}

/**
 * Reports a {@link StatusWriter} to Prometheus (prom-client): the writer it
 * believes leads (as client-go's `OnNewLeader`), how long the store has been
 * silent, and when it last wrote a status. Every metric has a `writer` label
 * with the writer's name. With {@link leaseMetrics} for its lease, this is
 * what `serveHealth`'s `/metrics` serves.
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `<prefix>believed_leader` | gauge, 1 for the writer it believes leads; no series during an election | writer, leader |
 * | `<prefix>store_silence_seconds` | gauge, read at scrape time; no series before the store first answered | writer |
 * | `<prefix>last_write_timestamp_seconds` | gauge, wall clock, read at scrape time; no series before the first write | writer |
 *
 * @example
 * ```ts
 * import { statusWriterMetrics } from 'rx-writer-lease/prometheus';
 * const reporting = statusWriterMetrics(writer);
 * // await register.metrics() now includes: writer_lease_believed_leader{writer="replica-1",leader="replica-2"} 1
 * reporting.unsubscribe(); // stops reporting and removes this writer's series
 * ```
 * @param writer The status writer to report.
 * @param options Registry and prefix (`buckets` is not used).
 * @returns The reporting; unsubscribe to stop it and remove the writer's series.
 * @throws TypeError when `writer` is not a StatusWriter or `prefix` is not a valid metric name prefix.
 * @throws PeerDependencyMissingError when prom-client is not installed.
 */
export function statusWriterMetrics(writer: StatusWriter, options: LeaseMetricsOptions = {}): Subscription {
  const client = requirePeer<PromClient>('prom-client', 'statusWriterMetrics');
  const { registry = client.register, prefix = 'writer_lease_' } = options;
  if (typeof writer?.believedLeader$?.subscribe !== 'function') {
    throw new TypeError(`statusWriterMetrics: writer must be a StatusWriter, received ${describeValue(writer)}`);
  }
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_PREFIX.test(prefix))) {
    throw new TypeError(
      `statusWriterMetrics: options.prefix must match ${METRIC_PREFIX}, received ${describeValue(prefix)}`,
    );
  }
  const metrics = writerMetricSetOf(client, registry, prefix);
  const name = writer.writer;
  metrics.writers.set(name, writer);

  let believed: string | undefined;
  const reporting = writer.believedLeader$.subscribe((leader) => {
    if (believed !== undefined) metrics.believedLeader.remove({ writer: name, leader: believed });
    believed = leader;
    if (leader !== undefined) metrics.believedLeader.set({ writer: name, leader }, 1);
  });
  reporting.add(() => {
    metrics.writers.delete(name);
    if (believed !== undefined) metrics.believedLeader.remove({ writer: name, leader: believed });
    metrics.storeSilence.remove({ writer: name });
    metrics.lastWrite.remove({ writer: name });
  });
  return reporting;
}

function writerMetricSetOf({ Gauge }: PromClient, registry: MetricsRegistry, prefix: string): WriterMetricSet {
  let byPrefix = writerMetricSets.get(registry);
  if (byPrefix === undefined) writerMetricSets.set(registry, (byPrefix = new Map<string, WriterMetricSet>()));
  const known = byPrefix.get(prefix);
  if (known !== undefined) return known;

  const registers = [registry as Registry];
  const writers = new Map<string, StatusWriter>();
  const set: WriterMetricSet = {
    writers,
    believedLeader: new Gauge({
      name: `${prefix}believed_leader`,
      help: 'The writer this replica believes leads (label leader): itself, the one it follows; none in an election',
      labelNames: ['writer', 'leader'],
      registers,
    }),
    storeSilence: new Gauge({
      name: `${prefix}store_silence_seconds`,
      help: 'Seconds since the store last answered a call or sent a change',
      labelNames: ['writer'],
      registers,
      collect() {
        for (const [name, writer] of writers) {
          const silent = writer.storeSilentFor;
          if (Number.isFinite(silent)) this.set({ writer: name }, silent / 1_000);
          else this.remove({ writer: name });
        }
      },
    }),
    lastWrite: new Gauge({
      name: `${prefix}last_write_timestamp_seconds`,
      help: 'When this replica last wrote a status, in seconds since the epoch (its wall clock)',
      labelNames: ['writer'],
      registers,
      collect() {
        for (const [name, writer] of writers) {
          const written = writer.lastWritten;
          if (written !== undefined) this.set({ writer: name }, written.at / 1_000);
        }
      },
    }),
  };
  byPrefix.set(prefix, set);
  return set;
}

function metricSetOf(
  { Counter, Gauge, Histogram }: PromClient,
  registry: MetricsRegistry,
  prefix: string,
  buckets: number[],
): MetricSet {
  let byPrefix = metricSets.get(registry);
  if (byPrefix === undefined) metricSets.set(registry, (byPrefix = new Map<string, MetricSet>()));
  const known = byPrefix.get(prefix);
  if (known !== undefined) return known;

  const registers = [registry as Registry];
  const leases = new Map<string, WriterLease>();
  const set: MetricSet = {
    leases,
    leader: new Gauge({
      name: `${prefix}leader`,
      help: '1 while the lease leads, else 0',
      labelNames: ['lease'],
      registers,
    }),
    tick: new Gauge({
      name: `${prefix}tick`,
      help: 'Follower renewals by others in a row',
      labelNames: ['lease'],
      registers,
    }),
    pending: new Gauge({
      name: `${prefix}pending_keys`,
      help: 'Keys with pending work',
      labelNames: ['lease'],
      registers,
      // Read at scrape time: counting on every submission would put work on the hot path.
      collect() {
        for (const [name, lease] of leases) this.set({ lease: name }, lease.size);
      },
    }),
    submissions: new Counter({
      name: `${prefix}submissions_total`,
      help: 'Units submitted',
      labelNames: ['lease'],
      registers,
    }),
    results: new Counter({
      name: `${prefix}results_total`,
      help: 'Units settled, by result',
      labelNames: ['lease', 'result'],
      registers,
    }),
    retries: new Counter({
      name: `${prefix}retries_total`,
      help: 'Units due again after a retry',
      labelNames: ['lease'],
      registers,
    }),
    errors: new Counter({
      name: `${prefix}errors_total`,
      help: 'Units that threw, rejected, errored or returned garbage',
      labelNames: ['lease'],
      registers,
    }),
    dropped: new Counter({
      name: `${prefix}dropped_total`,
      help: 'Pending work forgotten, by reason (removed, extended)',
      labelNames: ['lease', 'reason'],
      registers,
    }),
    durations: new Histogram({
      name: `${prefix}work_duration_seconds`,
      help: 'How long units ran, by result',
      labelNames: ['lease', 'result'],
      buckets,
      registers,
    }),
  };
  byPrefix.set(prefix, set);
  return set;
}
