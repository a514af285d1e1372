/**
 * The server goes down mid-run: 3 replicas (the demo's `Replica`, in this
 * process, each on its own store connection) keep the statuses of 10 keys
 * while a driver makes spec changes at 50/s; at the 50th change every key
 * changes at once and the server is stopped and started again
 * (`restart()`: its data is kept) while the replicas write them; the driver
 * goes on to 150 changes, and at least 25 after the server is back.
 *
 * Checked: the replicas reconnect (each one's change feed delivers changes
 * made after the restart, and statuses are written after it); nothing is
 * lost (every acknowledged spec change is in the store, and every status
 * ends at its spec's generation and value); no status ever went back a
 * generation. Every wait is on a condition, with a deadline.
 *
 * `FAULTS_REPORT=1` prints each run's figures (docs/reliability.md).
 */
import type { Subscription } from 'rxjs';
import { openStore, type RecordStore, type SpecValue, type StatusValue } from '../../src';
import { Replica, type ReplicaReport } from '../../src/cli/replica';
import { startEtcd, startPostgres, startRedis, type TestServer } from '../support/servers';
import { readContents } from '../support/storeContents';

const LEASE = { leaseDuration: 500, retryInterval: 100 };
const KEYS = Array.from({ length: 10 }, (_, i) => `key-${i}`);
const UPDATES = 150;
const RATE = 50;
const RESTART_AT = 50;
const AFTER_RESTART = 25;
/** A change the server did not take is tried again this often, until this long has passed. */
const PUT_RETRY_MS = 50;
const PUT_DEADLINE_MS = 20_000;
/** How long the statuses may take to catch up once the last change is in. */
const CONVERGE_DEADLINE_MS = 15_000;
/** How long each replica's change feed may take to catch up once the server is back. */
const FEED_DEADLINE_MS = 15_000;
const SERVER_START_MS = 60_000;
const RUN_MS = 45_000;

describe.each([
  ['Redis', startRedis],
  ['etcd', startEtcd],
  ['PostgreSQL', startPostgres],
])('%s restarted mid-run under 3 replicas', (name, start) => {
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await start();
  }, SERVER_START_MS);
  afterAll(() => server?.stop());

  it(
    'the replicas reconnect, nothing is lost, the statuses converge',
    async () => {
      const prefix = `wl_restart_${name.toLowerCase()}`;
      const run = await restartRun(server!, prefix);
      report(name, run);

      expect(run.restartMs).toBeGreaterThan(0);
      // Every replica's feed delivered changes after the restart (the run waits until it delivered
      // the last change of every key), and statuses were written after it.
      expect(run.changesSeenAfterRestart.every((seen) => seen > 0)).toBe(true);
      expect(run.writesAfterRestart).toBeGreaterThan(0);
      // Nothing lost: each key's spec is the last change acknowledged, and its status says so.
      expect(run.final.specGenerations).toEqual(run.acknowledged);
      expect(run.final.lagging).toEqual([]);
      expect(run.statusRegressions).toBe(0);
    },
    RUN_MS,
  );
});

interface RestartRun {
  /** Spec changes acknowledged. */
  updates: number;
  /** The last generation of each key the server acknowledged. */
  acknowledged: Record<string, number>;
  final: { specGenerations: Record<string, number>; lagging: string[] };
  /** Puts that failed while the server was down and were tried again (ioredis queues them instead). */
  retriedPuts: number;
  /** Spec changes each replica's store delivered after the restart completed. */
  changesSeenAfterRestart: number[];
  writesAfterRestart: number;
  /** Status changes seen going back a generation on the observer's feed: must be 0. */
  statusRegressions: number;
  restartMs: number;
  /** Last change acknowledged → every status current (wall clock). */
  convergeMs: number;
  /** Server back → every replica's feed delivered the last change of every key. */
  feedsCaughtUpMs: number;
  reports: Record<ReplicaReport['type'], number>;
}

async function restartRun(server: TestServer, prefix: string): Promise<RestartRun> {
  const open = () => openStore(server.url, { prefix });
  const driverStore = await open();
  const stores: RecordStore[] = [driverStore];
  const watching: Subscription[] = [];
  const replicas: Replica[] = [];
  try {
    await clearKeys(driverStore);
    const replicaStores = await Promise.all([open(), open(), open()]);
    stores.push(...replicaStores);

    const reports = { ready: 0, synced: 0, state: 0, written: 0, conflict: 0, contended: 0, error: 0, stopped: 0 };
    let restartedAt: number | undefined;
    let writesAfterRestart = 0;
    const changesSeenAfterRestart = replicaStores.map(() => 0);
    /** The spec generations each replica's feed delivered: its view of the specs. */
    const views = replicaStores.map(() => new Map<string, number>());
    replicaStores.forEach((store, i) => {
      watching.push(
        store.changes().subscribe(({ kind, key, value }) => {
          if (kind !== 'spec' || value === undefined) return;
          views[i].set(key, Math.max((value as SpecValue).generation, views[i].get(key) ?? 0));
          if (restartedAt !== undefined) changesSeenAfterRestart[i]++;
        }),
      );
      const replica = new Replica({ store, name: `r${i + 1}`, ...LEASE, strategy: 'writer-lease', spread: true });
      watching.push(
        replica.reports$.subscribe((report) => {
          reports[report.type]++;
          if (report.type === 'written' && restartedAt !== undefined) writesAfterRestart++;
        }),
      );
      replicas.push(replica);
    });

    // The driver's own connection watches statuses: none may go back a generation.
    let statusRegressions = 0;
    const statusGenerations = new Map<string, number>();
    watching.push(
      driverStore.changes().subscribe(({ kind, key, value }) => {
        if (kind !== 'status' || value === undefined) return;
        const { generation } = value as StatusValue;
        if (generation < (statusGenerations.get(key) ?? 0)) statusRegressions++;
        statusGenerations.set(key, Math.max(generation, statusGenerations.get(key) ?? 0));
      }),
    );

    for (const replica of replicas) replica.start();

    let restartMs = 0;
    let restarting: Promise<void> | undefined;
    const acknowledged: Record<string, number> = {};
    let retriedPuts = 0;
    let madeAfterRestart = 0;
    let burstUpdates = 0;
    const started = Date.now();
    let n = 0;
    for (; n < UPDATES || madeAfterRestart < AFTER_RESTART; n++) {
      await sleepUntil(started + (n * 1000) / RATE);
      if (n === RESTART_AT) {
        // Every key changes at once, so that units of every replica are in flight as the server stops.
        const burst = KEYS.map((key) => ({ key, generation: (acknowledged[key] ?? 0) + 1 }));
        const failed = await Promise.all(
          burst.map(({ key, generation }) =>
            putUntilAcknowledged(driverStore, key, { generation, value: `${key}@${generation}` }),
          ),
        );
        for (const { key, generation } of burst) acknowledged[key] = generation;
        retriedPuts += failed.reduce((sum, count) => sum + count, 0);
        burstUpdates = burst.length;
        const restartStarted = Date.now();
        restarting = server.restart().then(() => {
          restartedAt = Date.now();
          restartMs = restartedAt - restartStarted;
        });
      }
      if (restartedAt !== undefined) madeAfterRestart++;
      const key = KEYS[n % KEYS.length];
      const generation = (acknowledged[key] ?? 0) + 1;
      retriedPuts += await putUntilAcknowledged(driverStore, key, { generation, value: `${key}@${generation}` });
      acknowledged[key] = generation;
    }
    await restarting;
    const lastPutAt = Date.now();

    let final = await readContents(driverStore, KEYS);
    await eventually(
      async () => {
        final = await readContents(driverStore, KEYS);
        return final.lagging.length === 0;
      },
      'every status to reach its spec',
      CONVERGE_DEADLINE_MS,
    );
    const convergeMs = Date.now() - lastPutAt;
    // Each replica's own feed caught up, so it reconnected: a deaf replica would not show above,
    // since any one replica can write every status.
    await eventually(
      async () => views.every((view) => KEYS.every((key) => view.get(key) === acknowledged[key])),
      "every replica's feed to deliver the last change of every key",
      FEED_DEADLINE_MS,
    );
    const feedsCaughtUpMs = Date.now() - restartedAt!;

    return {
      updates: n + burstUpdates,
      acknowledged,
      final,
      retriedPuts,
      changesSeenAfterRestart,
      writesAfterRestart,
      statusRegressions,
      restartMs,
      convergeMs,
      feedsCaughtUpMs,
      reports,
    };
  } finally {
    for (const subscription of watching) subscription.unsubscribe();
    await Promise.all(replicas.map((replica) => replica.stop()));
    await Promise.all(stores.map((store) => store.close()));
  }
}

/** Writes a spec, trying again while the server is away; returns how many tries failed. */
async function putUntilAcknowledged(store: RecordStore, key: string, spec: SpecValue): Promise<number> {
  const deadline = Date.now() + PUT_DEADLINE_MS;
  for (let failed = 0; ; failed++) {
    try {
      await store.put<SpecValue>('spec', key, spec);
      return failed;
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(`put ${key} not acknowledged in ${PUT_DEADLINE_MS} ms`, { cause: error });
      await delay(PUT_RETRY_MS);
    }
  }
}

async function clearKeys(store: RecordStore): Promise<void> {
  await Promise.all(KEYS.flatMap((key) => [store.delete('spec', key), store.delete('status', key)]));
}

/** Resolves once `check()` holds, checking every 50 ms; rejects after `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}

function sleepUntil(at: number): Promise<void> {
  return delay(at - Date.now());
}

function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

function report(name: string, run: RestartRun): void {
  if (process.env.FAULTS_REPORT === undefined) return;
  const { updates, restartMs, convergeMs, feedsCaughtUpMs, retriedPuts, writesAfterRestart, statusRegressions } = run;
  process.stdout.write(
    `${JSON.stringify({ store: name, seen: run.changesSeenAfterRestart, updates, restartMs, retriedPuts, writesAfterRestart, convergeMs, feedsCaughtUpMs, statusRegressions, ...run.reports })}\n`,
  );
}
