import type { Observable, SchedulerLike, Subscription } from 'rxjs';
import {
  ContentionTracker,
  LeaseState,
  MemoryStore,
  StatusWriter,
  WriterLease,
  exponentialBackoff,
  type ContentionTrackerOptions,
  type SpecValue,
  type StatusValue,
  type StatusWriterEvent,
} from '../../src';
import {
  VirtualClock,
  VirtualDriver,
  failoverBound,
  linkStore,
  seededRandom,
  type StoreLink,
} from '../../test-support';
import { FaultyLink, type CasRecord, type FaultCounts, type FaultOptions } from './faultyStore';

/** The lease of every fault run: the demo's defaults. */
export const LEASE_DURATION = 1000;
export const RETRY_INTERVAL = 100;
/**
 * The convergence bound of the issue: the lease runs out, a retry, one
 * backoff step (exponentialBackoff's 20 ms + 50 % jitter), as the demo's
 * failover bound.
 */
export const CONVERGE_BOUND_MS = failoverBound({ leaseDuration: LEASE_DURATION, retryInterval: RETRY_INTERVAL });
/** Virtual ms each store call spends in transit: replicas race as on a network, not within one instant. */
export const LATENCY = { minMs: 0.5, maxMs: 2 };
/**
 * The margin on top of {@link CONVERGE_BOUND_MS}: the converging unit's three
 * calls (read spec, read status, compare-and-set), each up to `LATENCY.maxMs`
 * in transit.
 */
export const LATENCY_MARGIN_MS = 3 * LATENCY.maxMs;

/** Options of a {@link Scenario}. */
export interface ScenarioOptions {
  /** Seeds the driver, every backoff and every fault. */
  seed: number;
  /** @default 3 */
  replicas?: number;
  /** Keys the driver changes. @default 10 */
  keys?: number;
  /** Virtual ms in transit per store call; `null` for none. @default LATENCY */
  latency?: { minMs: number; maxMs: number } | null;
  /** The faults of replica `index`'s link. */
  faults?: (index: number) => FaultOptions | undefined;
  /** The status replica `index` reports for a spec. @default the spec's value */
  statusOf?: (index: number) => ((spec: SpecValue) => string) | undefined;
  /** Each replica's contention tracker. @default ContentionTracker defaults */
  contention?: Omit<ContentionTrackerOptions, 'scheduler'>;
  /** `false`: every replica does every unit with no lease (the worst case of a fight). @default true */
  coordinate?: boolean;
  /** Replica `index`'s clocks, as on its own machine. @default both read the run's virtual time */
  clock?: (index: number) => ReplicaClock | undefined;
}

/**
 * The clocks of one replica's machine. Its monotonic clock (the lease's,
 * the tracker's and the status writer's) starts at its own origin, as every
 * process's does: `offsetMs` from the run's virtual time. Its wall clock
 * (what the status writer stamps into `at`) is off by `wallOffsetMs`, and
 * jumps by `byMs` at each of `wallSteps` (an NTP step, a restored VM):
 * monotonic clocks never jump.
 */
export interface ReplicaClock {
  readonly offsetMs?: number;
  readonly wallOffsetMs?: number;
  readonly wallSteps?: readonly { readonly atMs: number; readonly byMs: number }[];
}

/** A replica's monotonic clock: the run's scheduler, read `offsetMs` off; timers are relative and unchanged. */
function offsetScheduler(base: SchedulerLike, offsetMs: number): SchedulerLike {
  if (offsetMs === 0) return base;
  return { now: () => base.now() + offsetMs, schedule: base.schedule.bind(base) };
}

/** A replica's wall clock, in ms since the epoch, with its offset and steps, on the run's virtual time. */
function wallClockOf(base: SchedulerLike, { wallOffsetMs = 0, wallSteps = [] }: ReplicaClock): () => number {
  const EPOCH_AT_START = 1_796_000_000_000;
  return () => {
    const now = base.now();
    const stepped = wallSteps.filter(({ atMs }) => atMs <= now).reduce((sum, { byMs }) => sum + byMs, 0);
    return EPOCH_AT_START + now + wallOffsetMs + stepped;
  };
}

/** What one replica's status writer did, by event type. */
export type EventCounts = Record<StatusWriterEvent['type'], number>;

/**
 * One replica of a fault run: a writer lease, a contention tracker and a
 * status writer on its own faulty link to the shared store, behind a
 * severable link to kill it as `kill -9` would.
 */
export interface ScenarioReplica {
  readonly name: string;
  readonly lease: WriterLease;
  readonly tracker: ContentionTracker;
  readonly link: FaultyLink;
  readonly events: EventCounts;
  readonly killed: boolean;
  /** What the replica's last unit for `key` did. */
  lastEventOf(key: string): StatusWriterEvent['type'] | undefined;
  leads(): boolean;
  kill(): void;
  /** Stops gracefully and hands over (StatusWriter.handOver); resolves once announced. */
  handOver(): Promise<void>;
}

/** The figures of one fault run, as docs/reliability.md reports them. */
export interface FaultFigures {
  updates: number;
  /** Compare-and-sets of statuses the store accepted (lost acknowledgements included). */
  writes: number;
  /** Compare-and-sets of statuses the store refused on version. */
  conflicts: number;
  /** Accepted compare-and-sets whose expected version was not the record's: must be 0. */
  staleAccepted: number;
  /** Accepted status writes whose generation was below the status they replaced: must be 0. */
  regressions: number;
  /** Virtual ms from the later of the last update and the last fault to convergence; null: never. */
  convergeMs: number | null;
  /** Status writes accepted while the record had no spec (derived from a spec since deleted). */
  orphanStatusWrites: number;
  /** Status writes in the quiet period after convergence. */
  quietWrites: number;
  /** Faults injected, summed over the links. */
  faults: FaultCounts;
  /** What the status writers did, summed over the replicas. */
  events: EventCounts;
}

/**
 * The replicas scenario of docs/replicas.md in virtual time, on the memory
 * store, from the bench's pieces: its virtual clock, its driver and its
 * severable links, with a {@link FaultyLink} per replica in between.
 *
 * A run: `start()`, a warm-up, a fault window (faults on, the driver's
 * burst, plus whatever the test injects), then `settle()`: faults off,
 * until every status generation equals its spec generation, then a quiet
 * period. Every compare-and-set is in `log`.
 *
 * @example
 * ```ts
 * const scenario = new Scenario({ seed: 1, faults: () => ({ errorRate: 0.2 }) });
 * scenario.start();
 * await scenario.faultWindow({ updates: 300 });
 * const figures = await scenario.settle();
 * // { updates: 300, writes: 57, conflicts: 1, staleAccepted: 0, convergeMs: 148.2, ... }
 * ```
 */
export class Scenario {
  readonly clock = new VirtualClock();
  readonly store = new MemoryStore();
  readonly keys: readonly string[];
  readonly driver: VirtualDriver;
  readonly log: CasRecord[] = [];
  readonly replicas: ScenarioReplica[];

  /** The shared store as it is now, kept from its change feed (which is synchronous). */
  readonly #specs = new Map<string, SpecValue>();
  readonly #statuses = new Map<string, StatusValue>();
  readonly #mirror: Subscription;
  #convergedAt: number | undefined;
  #lastUpdateAt = -Infinity;
  #lastOutsideFaultAt = -Infinity;
  #statusWrites = 0;
  #orphanStatusWrites = 0;
  #updates = 0;

  /** The outage being measured (a kill or a pause), and the first change of each key made after it. */
  #outage: { replica: string; at: number; firstAfter: Map<string, number>; recoveredAt?: number } | undefined;

  constructor(options: ScenarioOptions) {
    const {
      seed,
      replicas = 3,
      keys = 10,
      latency = LATENCY,
      faults,
      statusOf,
      contention,
      coordinate = true,
      clock,
    } = options;
    const { scheduler } = this.clock;
    this.keys = Array.from({ length: keys }, (_, i) => `key-${i}`);
    this.driver = new VirtualDriver({ store: this.store, keys: this.keys, scheduler, random: seededRandom(seed) });
    this.driver.onUpdate(({ key, generation, at }) => {
      this.#lastUpdateAt = at;
      this.#updates++;
      const outage = this.#outage;
      if (outage !== undefined && !outage.firstAfter.has(key)) outage.firstAfter.set(key, generation);
    });
    this.#mirror = this.store.changes().subscribe(({ kind, key, value }) => {
      if (kind === 'spec') {
        if (value === undefined) this.#specs.delete(key);
        else this.#specs.set(key, value as SpecValue);
      } else if (value === undefined) {
        this.#statuses.delete(key);
      } else {
        this.#statuses.set(key, value as StatusValue);
        this.#statusWrites++;
        if (!this.#specs.has(key)) this.#orphanStatusWrites++;
      }
      if (!this.converged()) this.#convergedAt = undefined;
      else this.#convergedAt ??= this.clock.now;
    });
    this.replicas = Array.from({ length: replicas }, (_, index) =>
      this.#replica(index, seed, {
        latency: latency ?? undefined,
        faults: faults?.(index),
        statusOf: statusOf?.(index),
        contention,
        coordinate,
        clock: clock?.(index) ?? {},
      }),
    );
  }

  /** Every status generation equals its spec generation. */
  converged(): boolean {
    for (const [key, spec] of this.#specs) {
      if (this.#statuses.get(key)?.generation !== spec.generation) return false;
    }
    return true;
  }

  /** Keys whose status lags (or leads) its spec. */
  lagging(): string[] {
    return [...this.#specs]
      .filter(([key, spec]) => this.#statuses.get(key)?.generation !== spec.generation)
      .map(([key]) => key);
  }

  /** Keys whose status value differs from the spec's value. */
  valuesDiffer(): string[] {
    return [...this.#specs].filter(([key, spec]) => this.#statuses.get(key)?.value !== spec.value).map(([key]) => key);
  }

  /** Spec changes made by the driver. */
  get updates(): number {
    return this.#updates;
  }

  /** Successful status writes seen on the shared store so far. */
  get statusWrites(): number {
    return this.#statusWrites;
  }

  /** The later of the last fault any link injected and the last fault the test noted. */
  get lastFaultAt(): number {
    return Math.max(this.#lastOutsideFaultAt, ...this.replicas.map(({ link }) => link.lastFaultAt));
  }

  /** Records a fault injected from outside the links (a kill, a deletion) at the current time. */
  noteFault(): void {
    this.#lastOutsideFaultAt = Math.max(this.#lastOutsideFaultAt, this.clock.now);
  }

  /** Starts every replica. */
  start(): void {
    for (const replica of this.replicas) (replica as ReplicaImpl).start();
  }

  /** Runs the clock `ms` further. */
  async advance(ms: number): Promise<void> {
    await this.clock.runUntil(this.clock.now + ms);
  }

  /**
   * Turns the faults on, warms up first, then runs the driver's burst of
   * `updates` at `rate`; `before(n)` runs just before the n-th change.
   * Returns once the burst is over; faults are still on.
   */
  async faultWindow({
    updates,
    rate = 47,
    warmUpMs = 1000,
    before,
  }: {
    updates: number;
    rate?: number;
    warmUpMs?: number;
    before?: (n: number) => void;
  }): Promise<void> {
    await this.advance(warmUpMs);
    for (const { link } of this.replicas) link.faultsOn = true;
    this.driver.burst({ rate, more: (n) => n < updates, before });
    await this.clock.runUntil(this.clock.now + (updates * 1000) / rate + 1000, () => this.driver.idle);
  }

  /** The current leader (the one that leads and is alive), if any. */
  leader(): ScenarioReplica | undefined {
    return this.replicas.find((replica) => !replica.killed && replica.leads());
  }

  /**
   * Measures the failover from now: the first status write, by another
   * replica than `replica`, of a spec change made after now.
   */
  startOutage(replica: ScenarioReplica): void {
    this.#outage = { replica: replica.name, at: this.clock.now, firstAfter: new Map() };
  }

  /** Virtual ms from `startOutage` to the first write of a later change by another replica; null: none. */
  get failoverMs(): number | null {
    const outage = this.#outage;
    return outage?.recoveredAt === undefined ? null : round1(outage.recoveredAt - outage.at);
  }

  /**
   * Turns the faults off and runs until every status generation equals its
   * spec generation (at most `capMs`), then `quietMs` more with no change.
   */
  async settle({ capMs = 30_000, quietMs = 5_000 } = {}): Promise<FaultFigures> {
    for (const { link } of this.replicas) link.faultsOn = false;
    const resumed = () => this.replicas.every(({ link }) => !link.paused);
    const converged = await this.clock.runUntil(this.clock.now + capMs, () => resumed() && this.converged());
    const convergedAt = this.#convergedAt;
    const since = Math.max(this.#lastUpdateAt, this.lastFaultAt);
    const writesBefore = this.#statusWrites;
    await this.advance(quietMs);
    const statusLog = this.log.filter((cas) => cas.kind === 'status');
    return {
      updates: this.#updates,
      writes: statusLog.filter((cas) => cas.ok).length,
      conflicts: statusLog.filter((cas) => !cas.ok).length,
      staleAccepted: staleAccepted(this.log).length,
      regressions: regressions(this.log).length,
      orphanStatusWrites: this.#orphanStatusWrites,
      convergeMs: converged && convergedAt !== undefined ? round1(Math.max(0, convergedAt - since)) : null,
      quietWrites: this.#statusWrites - writesBefore,
      faults: sumCounts(this.replicas.map(({ link }) => link.counts)),
      events: sumCounts(this.replicas.map(({ events }) => events)),
    };
  }

  /** Stops everything: replicas, the mirror, the store. */
  async dispose(): Promise<void> {
    for (const replica of this.replicas) replica.kill();
    this.#mirror.unsubscribe();
    await this.store.close();
  }

  #replica(
    index: number,
    seed: number,
    options: {
      latency: { minMs: number; maxMs: number } | undefined;
      faults: FaultOptions | undefined;
      statusOf: ((spec: SpecValue) => string) | undefined;
      contention: Omit<ContentionTrackerOptions, 'scheduler'> | undefined;
      coordinate: boolean;
      clock: ReplicaClock;
    },
  ): ReplicaImpl {
    const name = `r${index + 1}`;
    const shared = this.clock.scheduler;
    const scheduler = offsetScheduler(shared, options.clock.offsetMs ?? 0);
    const link = new FaultyLink({
      shared: this.store,
      replica: name,
      scheduler: shared,
      random: seededRandom(seed * 7919 + index + 1),
      log: this.log,
      faults: options.faults,
      latency: options.latency,
    });
    const replica = new ReplicaImpl({
      name,
      link,
      severable: linkStore(link.store),
      lease: new WriterLease({
        leaseDuration: LEASE_DURATION,
        retryInterval: RETRY_INTERVAL,
        backoff: exponentialBackoff({ random: seededRandom(seed * 1009 + index + 1) }),
        random: seededRandom(seed * 4651 + index + 1),
        // Uncoordinated replicas never leave the election: its spread would only delay them.
        spread: options.coordinate,
        scheduler,
        name,
      }),
      tracker: new ContentionTracker({ ...options.contention, scheduler }),
      statusOf: options.statusOf,
      coordinate: options.coordinate,
      scheduler,
      wallClock: wallClockOf(shared, options.clock),
    });
    replica.events$.subscribe((event) => {
      const outage = this.#outage;
      if (event.type !== 'written' || outage === undefined || outage.recoveredAt !== undefined) return;
      if (replica.name === outage.replica) return;
      const first = outage.firstAfter.get(event.key);
      if (first !== undefined && event.generation >= first) outage.recoveredAt = this.clock.now;
    });
    return replica;
  }
}

class ReplicaImpl implements ScenarioReplica {
  readonly name: string;
  readonly lease: WriterLease;
  readonly tracker: ContentionTracker;
  readonly link: FaultyLink;
  readonly events: EventCounts = { written: 0, conflict: 0, current: 0, gone: 0, contended: 0, error: 0 };
  readonly #severable: StoreLink;
  readonly #writer: StatusWriter;
  readonly #lastEvents = new Map<string, StatusWriterEvent['type']>();
  readonly #running: Subscription[] = [];
  #killed = false;

  constructor(parts: {
    name: string;
    link: FaultyLink;
    severable: StoreLink;
    lease: WriterLease;
    tracker: ContentionTracker;
    statusOf: ((spec: SpecValue) => string) | undefined;
    coordinate: boolean;
    scheduler: SchedulerLike;
    wallClock: () => number;
  }) {
    this.name = parts.name;
    this.link = parts.link;
    this.lease = parts.lease;
    this.tracker = parts.tracker;
    this.#severable = parts.severable;
    this.#writer = new StatusWriter({
      store: parts.severable.store,
      lease: parts.lease,
      writer: parts.name,
      contention: parts.tracker,
      statusOf: parts.statusOf,
      coordinate: parts.coordinate,
      scheduler: parts.scheduler,
      wallClock: parts.wallClock,
    });
    this.#writer.events$.subscribe((event) => {
      this.events[event.type]++;
      this.#lastEvents.set(event.key, event.type);
    });
  }

  get events$(): Observable<StatusWriterEvent> {
    return this.#writer.events$;
  }

  lastEventOf(key: string): StatusWriterEvent['type'] | undefined {
    return this.#lastEvents.get(key);
  }

  get killed(): boolean {
    return this.#killed;
  }

  leads(): boolean {
    return this.lease.state.state === LeaseState.Leader;
  }

  start(): void {
    this.#running.push(this.lease.run(), this.#writer.run());
  }

  kill(): void {
    if (this.#killed) return;
    this.#killed = true;
    this.#severable.sever();
    for (const subscription of this.#running.splice(0)) subscription.unsubscribe();
    this.lease.dispose();
    this.tracker.dispose();
  }

  async handOver(): Promise<void> {
    if (this.#killed) return;
    this.#killed = true;
    await this.#writer.handOver({ timeoutMs: RETRY_INTERVAL });
    for (const subscription of this.#running.splice(0)) subscription.unsubscribe();
    this.tracker.dispose();
  }
}

/** Accepted compare-and-sets whose expected version was not the record's at that moment. */
export function staleAccepted(log: readonly CasRecord[]): CasRecord[] {
  return log.filter((cas) => cas.ok && cas.expected !== cas.current);
}

/** Accepted status writes whose generation is below that of the status they replaced. */
export function regressions(log: readonly CasRecord[]): CasRecord[] {
  return log.filter(
    (cas) =>
      cas.ok && cas.kind === 'status' && cas.previous !== undefined && cas.value.generation < cas.previous.generation,
  );
}

function sumCounts<T extends object>(all: readonly T[]): T {
  const sum = { ...all[0] } as Record<string, number>;
  for (const counts of all.slice(1)) {
    for (const [name, count] of Object.entries(counts as Record<string, number>)) sum[name] += count;
  }
  return sum as T;
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
