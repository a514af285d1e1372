import type { Subscription } from 'rxjs';
import { Driver } from '../../src/cli/driver';
import { Replica, type ReplicaReport } from '../../src/cli/replica';
import { seededRandom } from '../../src/cli/seededRandom';
import { openStore } from '../../src/stores/openStore';
import type { RecordStore, SpecValue, StatusValue } from '../../src/stores/store';
import { readContents } from './storeContents';

/**
 * The scenario of the store failover specs: 3 replicas (the demo's
 * `Replica`, in this process, each on its own store connection) keep the
 * statuses of 10 keys while the demo's `Driver` changes specs; `faults` runs
 * beside the driver and breaks the store, waiting on the driver's progress.
 * Once the driver is done the run waits, each time on a condition read from
 * the store, for every status to match its spec and for every replica's feed
 * to show every key's final spec.
 */

const LEASE = { leaseDuration: 500, retryInterval: 100 };
const KEYS = Array.from({ length: 10 }, (_, i) => `key-${i}`);
/** How long the statuses may take to catch up once the driver is done. */
const CONVERGE_DEADLINE_MS = 20_000;
/** How long each replica's feed may take to show the final specs. */
const FEED_DEADLINE_MS = 15_000;

export interface FaultContext {
  readonly driver: Driver;
  /** A store connection of its own, to read what the store holds mid-run. */
  readonly store: RecordStore;
  /** Notes that a fault happened now: the run measures from there. */
  mark(label: string): void;
}

export interface FailoverRunOptions {
  readonly url: string;
  readonly prefix: string;
  readonly updates: number;
  /** Spec changes per second. */
  readonly rate: number;
  readonly faults: (context: FaultContext) => Promise<void>;
}

export interface FailoverRun {
  readonly updates: number;
  /** What the driver counted as acknowledged then lost. */
  readonly lostWrites: number;
  /** Each key's spec generation, from the driver (corrected for losses) and as the store holds it at the end. */
  readonly expected: Record<string, number>;
  readonly stored: Record<string, number>;
  /** Keys whose status does not match their spec at the end. */
  readonly lagging: string[];
  /** Status changes seen going back a generation on an observer's feed. */
  readonly statusRegressions: number;
  /** Each mark's time, ms after the driver started. */
  readonly marks: Record<string, number>;
  /** Per mark: ms from it to the first status write after it, and how many writes came after it. */
  readonly afterMarks: Record<string, { firstWriteMs: number | null; writes: number }>;
  /** Driver done → every status current. */
  readonly convergeMs: number;
  readonly reports: Record<ReplicaReport['type'], number>;
}

/**
 * Runs the scenario once (see the file's comment).
 *
 * @param options The store, the load and the faults.
 * @returns What happened, for the spec to check.
 */
export async function failoverRun(options: FailoverRunOptions): Promise<FailoverRun> {
  const { url, prefix, updates, rate, faults } = options;
  const open = (): Promise<RecordStore> => openStore(url, { prefix });
  const stores: RecordStore[] = [];
  const watching: Subscription[] = [];
  const replicas: Replica[] = [];
  try {
    const [driverStore, observer, faultStore, ...replicaStores] = await Promise.all([
      open(),
      open(),
      open(),
      open(),
      open(),
      open(),
    ]);
    stores.push(driverStore, observer, faultStore, ...replicaStores);
    await Promise.all(KEYS.flatMap((key) => [driverStore.delete('spec', key), driverStore.delete('status', key)]));

    const reports = { ready: 0, synced: 0, state: 0, written: 0, conflict: 0, contended: 0, error: 0, stopped: 0 };
    const writeTimes: number[] = [];
    /** The latest spec generation each replica's feed delivered, per key. */
    const views = replicaStores.map(() => new Map<string, number>());
    replicaStores.forEach((store, i) => {
      watching.push(
        store.changes().subscribe(({ kind, key, value }) => {
          if (kind === 'spec') views[i].set(key, (value as SpecValue | undefined)?.generation ?? 0);
        }),
      );
      const replica = new Replica({ store, name: `r${i + 1}`, ...LEASE, strategy: 'writer-lease', spread: true });
      watching.push(
        replica.reports$.subscribe((report) => {
          reports[report.type]++;
          if (report.type === 'written') writeTimes.push(Date.now());
        }),
      );
      replicas.push(replica);
    });

    let statusRegressions = 0;
    const statusGenerations = new Map<string, number>();
    watching.push(
      observer.changes().subscribe(({ kind, key, value }) => {
        if (kind !== 'status') return;
        const generation = (value as StatusValue | undefined)?.generation ?? 0;
        if (generation < (statusGenerations.get(key) ?? 0)) statusRegressions++;
        statusGenerations.set(key, generation);
      }),
    );

    for (const replica of replicas) replica.start();

    const driver = new Driver({ store: driverStore, keys: KEYS, updates, rate, random: seededRandom(7) });
    const started = Date.now();
    const markTimes = new Map<string, number>();
    await Promise.all([
      driver.run(),
      faults({ driver, store: faultStore, mark: (label) => markTimes.set(label, Date.now()) }).catch((error) => {
        // The driver would go on against stores closed on the way out.
        driver.stop();
        throw error;
      }),
    ]);
    const driverDone = Date.now();
    const expected = Object.fromEntries(driver.generations);

    let final = await readContents(observer, KEYS);
    await eventually(
      async () => {
        final = await readContents(observer, KEYS);
        return final.lagging.length === 0 && KEYS.every((key) => final.specGenerations[key] === expected[key]);
      },
      'every status to match its spec, and every spec to be what the driver expects',
      CONVERGE_DEADLINE_MS,
    );
    const convergeMs = Date.now() - driverDone;
    await eventually(
      async () => views.every((view) => KEYS.every((key) => view.get(key) === final.specGenerations[key])),
      "every replica's feed to show every key's final spec",
      FEED_DEADLINE_MS,
    );

    const afterMarks = Object.fromEntries(
      [...markTimes].map(([label, at]) => {
        const after = writeTimes.filter((time) => time >= at);
        return [label, { firstWriteMs: after.length > 0 ? after[0] - at : null, writes: after.length }];
      }),
    );
    return {
      updates: driver.done,
      lostWrites: driver.lostWrites,
      expected,
      stored: final.specGenerations,
      lagging: final.lagging,
      statusRegressions,
      marks: Object.fromEntries([...markTimes].map(([label, at]) => [label, at - started])),
      afterMarks,
      convergeMs,
      reports,
    };
  } finally {
    for (const subscription of watching) subscription.unsubscribe();
    await Promise.all(replicas.map((replica) => replica.stop()));
    await Promise.all(stores.map((store) => store.close()));
  }
}

/** Resolves once `check()` holds, checking every 50 ms; rejects after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Resolves once the driver has made `count` changes (it makes them at a
 * steady rate, so this is a point in the run).
 */
export function afterChanges(driver: Driver, count: number, timeoutMs = 30_000): Promise<void> {
  return eventually(async () => driver.done >= count, `${count} spec changes`, timeoutMs);
}

/** Prints a run's figures with `CLUSTERS_REPORT=1` (docs/stores.md quotes them). */
export function report(name: string, run: FailoverRun): void {
  if (process.env.CLUSTERS_REPORT === undefined) return;
  const { updates, lostWrites, statusRegressions, marks, afterMarks, convergeMs, reports } = run;
  process.stdout.write(
    `${JSON.stringify({ store: name, updates, lostWrites, statusRegressions, marks, afterMarks, convergeMs, ...reports })}\n`,
  );
}
