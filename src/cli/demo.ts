import { demoNow } from './demoClock.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { filter, firstValueFrom, merge, race, timer, type Subscription } from 'rxjs';
import { redactUrl } from '../stores/errors.js';
import { MemoryStore } from '../stores/memory.js';
import { openStore } from '../stores/openStore.js';
import type { RecordStore } from '../stores/store.js';
import { LeaseState } from '../types.js';
import { DEFAULT_MEMORY_LATENCY, type DemoOptions, type Strategy } from './args.js';
import { Driver } from './driver.js';
import { FigureCounter, type Figures } from './figures.js';
import { inProcessReplica } from './inProcessReplica.js';
import type { DemoPhase, DemoProgress } from './liveView.js';
import type { ReplicaHandle } from './replicaHandle.js';
import { spawnReplica } from './replicaProcess.js';
import { seededRandom } from './seededRandom.js';
import { StatusWatch } from './statusWatch.js';

/**
 * What `rx-writer-lease demo --json` prints: the figures and the run's
 * settings, in this order.
 *
 * @example
 * ```ts
 * // { store: 'memory', strategy: 'writer-lease', replicas: 3, keys: 10, updates: 100, writes: 97,
 * //   conflicts: 2, attemptsPerUpdate: 0.99, writesPerUpdate: 0.97, idleWrites: 0, failoverMs: null,
 * //   converged: true, lostWrites: 0, durationMs: 2012 }
 * ```
 */
export interface DemoSummary extends Figures {
  /** The store URL, with any password masked. */
  readonly store: string;
  readonly strategy: Strategy;
  readonly replicas: number;
  readonly keys: number;
  /** From the driver's first change until every status had converged (or the wait gave up). */
  readonly durationMs: number;
  /** From the driver's first change until every status was current; null when they never all were. */
  readonly convergeMs: number | null;
  /**
   * With `--burst`: each burst's time from its first change until every
   * status was current (null for one that never converged), the first
   * burst's on replicas that just started; null without `--burst`.
   */
  readonly burstConvergeMs: readonly (number | null)[] | null;
}

/**
 * How a demo run is shown and how its replica processes are started.
 *
 * @example
 * ```ts
 * await runDemo(options, { view: new LiveView(process.stdout) });
 * ```
 */
export interface DemoRunOptions {
  /**
   * Draws the progress while the demo runs.
   * @default none: the run is silent
   */
  view?: { start(read: () => DemoProgress): void; stop(): void };
  /**
   * The program and first arguments that run the CLI, for replica processes
   * (real stores only); `replica` and its flags are appended.
   * @default [process.execPath, '<this CLI>/main.js']
   */
  replicaCommand?: readonly string[];
}

/** Starting a Node process per replica takes a while on a busy machine. */
const READY_TIMEOUT_MS = 30_000;

/**
 * Runs the scenario of `docs/replicas.md` once: replicas keep the statuses of
 * `keys` records while a driver changes their specs, then the figures.
 *
 * With `memory`, the replicas run in this process on one shared store; with a
 * real store, each is a process of its own (`rx-writer-lease replica`). The
 * keys `key-0` … are cleared first, and left in the store afterwards.
 *
 * 1. replicas start and report ready;
 * 2. the driver makes `updates` spec changes at `rate` per second (seeded);
 *    with `killLeaderAfter`, the replica leading at that moment is killed;
 * 3. the run waits for every status to catch up with its spec (bounded);
 * 4. an idle period of 2 × leaseDuration counts the writes nobody needed;
 * 5. the replicas stop and report their totals.
 *
 * @example
 * ```ts
 * const summary = await runDemo({ ...parseDemoArgs([]), updates: 100, rate: 200 });
 * summary.attemptsPerUpdate; // 1.02
 * ```
 * @param options The demo's flags.
 * @param run How to show it and start replica processes.
 * @returns The figures.
 * @throws StoreUrlError when the store URL is malformed; StoreUnreachableError when the store cannot be reached;
 *   an Error when a replica process fails to start.
 */
export async function runDemo(options: DemoOptions, run: DemoRunOptions = {}): Promise<DemoSummary> {
  const {
    replicas: replicaCount,
    keys: keyCount,
    updates,
    rate,
    leaseDuration,
    retryInterval,
    strategy,
    spread,
    versioning,
    burst,
    bursts,
    killLeaderAfter,
    handoverAfter,
    prefix,
    seed,
    shards,
    clientQps,
    joinAfter,
  } = options;
  const { view, replicaCommand = defaultReplicaCommand() } = run;
  const memory = isMemory(options.store);
  const store: RecordStore = memory ? new MemoryStore({ versioning }) : await openStore(options.store, { prefix });
  const handles: ReplicaHandle[] = [];
  const subscriptions: Subscription[] = [];
  let watch: StatusWatch | undefined;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  let joinTimer: ReturnType<typeof setTimeout> | undefined;
  try {
    const keys = Array.from({ length: keyCount }, (_, i) => `key-${i}`);
    await clearRecords(store, keys);
    const statuses = (watch = new StatusWatch(store));

    const names = Array.from({ length: replicaCount }, (_, i) => `r${i + 1}`);
    const joiner = joinAfter === undefined ? undefined : `r${replicaCount + 1}`;
    const counter = new FigureCounter(joiner === undefined ? names : [...names, joiner], { shards });
    const startReplica = (name: string): ReplicaHandle => {
      const settings = { name, leaseDuration, retryInterval, strategy, spread, shards, clientQps };
      const handle = memory
        ? inProcessReplica({ ...settings, store, latency: options.latency ?? DEFAULT_MEMORY_LATENCY })
        : spawnReplica({ ...settings, command: replicaCommand, store: options.store, prefix });
      handles.push(handle);
      subscriptions.push(
        handle.reports$.subscribe({ next: (report) => counter.record(report), complete: () => counter.ended(name) }),
      );
      return handle;
    };
    for (const name of names) startReplica(name);

    let phase: DemoPhase = 'starting';
    let started = 0;
    // Once the statuses have converged, the view shows the time that took: the table's duration.
    let convergedAt: number | undefined = undefined;
    view?.start(() => ({
      store: redactUrl(options.store),
      strategy,
      keys: keyCount,
      phase,
      elapsedMs: started === 0 ? 0 : (convergedAt ?? demoNow()) - started,
      updates: counter.updates,
      totalUpdates: updates,
      replicas: counter.replicas,
    }));
    await withTimeout(Promise.all(handles.map((handle) => handle.ready())), READY_TIMEOUT_MS, () => {
      const waiting = counter.replicas.filter(({ state }) => state === 'starting').map(({ name }) => name);
      return `replicas ${waiting.join(', ')} did not report ready within ${READY_TIMEOUT_MS} ms`;
    });

    const convergenceTimeout = 10_000 + 10 * leaseDuration;
    const burstConvergeMs: (number | null)[] = [];
    let burstStarted = 0;
    const burstOver = ({ converged, at }: { converged: boolean; at: number }): void => {
      burstConvergeMs.push(converged ? Math.round(at - burstStarted) : null);
    };
    const driver: Driver = new Driver({
      store,
      keys,
      updates,
      rate,
      burst,
      bursts,
      betweenBursts: async () => {
        burstOver(await statuses.convergence(driver.generations, convergenceTimeout));
        burstStarted = demoNow();
      },
      // A single server loses no acknowledged write; a failover of asynchronous replication may.
      checkLost: store.losesAcknowledgedWrites === true,
      random: seededRandom(seed),
    });
    subscriptions.push(driver.updates$.subscribe((update) => counter.update(update)));
    phase = 'running';
    started = demoNow();
    burstStarted = started;
    let killed: Promise<void> = Promise.resolve();
    const outageAfter = killLeaderAfter ?? handoverAfter;
    if (outageAfter !== undefined) {
      const outage = killLeaderAfter !== undefined ? 'kill' : 'handover';
      killed = new Promise<void>((resolve) => {
        killTimer = setTimeout(
          () => resolve(stopLeader(counter, handles, { strategy, leaseDuration, outage })),
          outageAfter,
        );
      });
    }
    let joined: Promise<void> = Promise.resolve();
    if (joiner !== undefined) {
      joined = new Promise<void>((resolve, reject) => {
        joinTimer = setTimeout(() => {
          counter.joining(joiner);
          startReplica(joiner).ready().then(resolve, reject);
        }, joinAfter);
      });
    }
    // Awaited after the run; handled now, so that a failure during the run is not an unhandled rejection.
    for (const outcome of [killed, joined]) outcome.catch(() => undefined);
    await driver.run();
    await killed;
    await withTimeout(
      joined,
      READY_TIMEOUT_MS,
      () => `replica ${joiner} did not report ready within ${READY_TIMEOUT_MS} ms`,
    );

    phase = 'converging';
    const convergence = await statuses.convergence(driver.generations, convergenceTimeout);
    convergedAt = convergence.at;
    // Whole milliseconds: the clocks behind them are not finer than that, and a figure reads better.
    const durationMs = Math.round(convergence.at - started);
    if (burst) burstOver(convergence);

    phase = 'idle';
    await sleep(2 * leaseDuration);
    counter.settled({
      converged: convergence.converged,
      idleWrites: statuses.idleWrites,
      lostWrites: driver.lostWrites,
    });
    phase = 'stopping';
    await Promise.all(handles.map((handle) => handle.stop()));
    phase = 'done';

    return {
      store: redactUrl(options.store),
      strategy,
      replicas: replicaCount,
      keys: keyCount,
      ...counter.figures(),
      durationMs,
      convergeMs: convergence.converged ? durationMs : null,
      burstConvergeMs: burst ? burstConvergeMs : null,
    };
  } finally {
    clearTimeout(killTimer);
    clearTimeout(joinTimer);
    view?.stop();
    watch?.close();
    for (const handle of handles) handle.kill();
    for (const subscription of subscriptions) subscription.unsubscribe();
    await store.close();
  }
}

/**
 * Kills the replica that leads now (with shards, the one that leads the
 * most), or stops it gracefully so that it hands over. A writer lease still
 * in its election gets up to 2 × leaseDuration to elect one; uncoordinated
 * replicas never lead, so the one that wrote last stands for the leader.
 */
async function stopLeader(
  counter: FigureCounter,
  handles: readonly ReplicaHandle[],
  { strategy, leaseDuration, outage }: { strategy: Strategy; leaseDuration: number; outage: 'kill' | 'handover' },
): Promise<void> {
  if (strategy === 'writer-lease' && !counter.replicas.some(({ state }) => state === LeaseState.Leader)) {
    const leads$ = merge(...handles.map((handle) => handle.reports$)).pipe(
      filter((report) => report.type === 'state' && report.state === LeaseState.Leader),
    );
    await firstValueFrom(race(leads$, timer(2 * leaseDuration)), { defaultValue: undefined });
  }
  const handle = handles.find(({ name }) => name === counter.leader());
  if (handle === undefined) return;
  if (outage === 'kill') {
    counter.killed(handle.name, demoNow());
    handle.kill();
    return;
  }
  counter.handedOver(handle.name, demoNow());
  await handle.stop(); // a replica process gets SIGTERM; an in-process one stops as it would on SIGTERM
}

/**
 * The CLI this file belongs to: `main.js` next to it once compiled; from the
 * TypeScript sources (under ts-jest), the package's bin, which needs `dist/`.
 */
function defaultReplicaCommand(): string[] {
  const main = path.join(__dirname, 'main.js');
  return [process.execPath, existsSync(main) ? main : path.resolve(__dirname, '..', '..', 'bin', 'rx-writer-lease.js')];
}

function isMemory(url: string): boolean {
  return url === 'memory' || url === 'memory://';
}

/** Deletes in flight at once when the demo clears its records: 20,000 at once overran etcd's call deadline. */
const CLEAR_IN_FLIGHT = 256;

/** Deletes the spec and status of every key, {@link CLEAR_IN_FLIGHT} calls at a time. */
async function clearRecords(store: RecordStore, keys: readonly string[]): Promise<void> {
  let next = 0;
  const clearNext = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++];
      await Promise.all([store.delete('spec', key), store.delete('status', key)]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CLEAR_IN_FLIGHT / 2, keys.length) }, clearNext));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timeout: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timeout = setTimeout(() => reject(new Error(message())), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timeout);
  }
}
