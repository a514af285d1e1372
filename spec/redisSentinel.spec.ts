/**
 * Redis behind Sentinel (1 primary, 1 replica, 3 Sentinels, quorum 2) under
 * 3 replicas. Mid-run the primary stops replicating (it asks a password the
 * replica lacks), acknowledges 20 more spec changes and the statuses written
 * for them, and is SIGKILLed; the Sentinels promote the replica, which never
 * received those writes. This is Redis's documented hole (asynchronous
 * replication) made to happen every run instead of by chance.
 *
 * Checked, from the store's own contents: the replicas follow the new
 * primary and the statuses converge against what it holds; the statuses
 * that went back are written again; the driver counts exactly the spec
 * changes it lost; a compare-and-set on a version the old primary issued is
 * refused, and the new primary counts versions in a new epoch.
 *
 * `CLUSTERS_REPORT=1` prints the run's figures (docs/stores.md).
 */
import { Redis } from 'ioredis';
import { openStore } from '../src/stores/openStore';
import type { StatusValue } from '../src/stores/store';
import { startSentinelCluster, type SentinelCluster } from './support/clusters';
import { afterChanges, failoverRun, report } from './support/failoverRun';

const SERVER_START_MS = 60_000;
const RUN_MS = 60_000;
const UPDATES = 150;
const PREFIX = 'wl_sentinel';
/** Versions of the first primary are below this; the promoted one counts from there. */
const EPOCH = 2 ** 32;

describe('Redis behind Sentinel, under 3 replicas', () => {
  let redis: SentinelCluster | undefined;
  beforeAll(async () => {
    redis = await startSentinelCluster();
  }, SERVER_START_MS);
  afterAll(() => redis?.stop());

  it(
    'the primary dies with writes its replica never got: replicas follow the promoted one, ' +
      'lost writes are counted and written again, the fence holds',
    async () => {
      let startedDuringCut = 0;
      let newPrimary = 0;
      /** A status the old primary wrote after the cut: its version must never be accepted again. */
      let stale: { key: string; version: number } | undefined;
      const run = await failoverRun({
        url: redis!.url,
        prefix: PREFIX,
        updates: UPDATES,
        rate: 50,
        async faults({ driver, store, mark }) {
          await afterChanges(driver, 40);
          const before = await statusVersions(store);
          await redis!.cutReplication();
          mark('replicationCut');
          const startedAtCut = driver.done;
          await afterChanges(driver, 60);
          const during = await statusVersions(store);
          const [key, version] = [...during].find(([k, v]) => v > (before.get(k) ?? 0)) ?? [];
          if (key !== undefined && version !== undefined) stale = { key, version };
          const oldPrimary = await redis!.killPrimary();
          startedDuringCut = driver.done - startedAtCut;
          mark('primaryKilled');
          newPrimary = await redis!.promoted(oldPrimary);
          mark('promoted');
        },
      });
      report('Redis Sentinel', run);

      // The replicas followed the promoted primary: they wrote there, and converged against what it holds.
      expect(run.afterMarks.promoted.writes).toBeGreaterThan(0);
      expect(run.stored).toEqual(run.expected);
      expect(run.lagging).toEqual([]);
      // Every change started after the cut and acknowledged before the kill was lost. The one in
      // flight at the cut may have been lost too; the one in flight at the kill is sent again to
      // the new primary (ioredis resends unanswered commands), and when it is a later change of a
      // key changed during the cut it hides that loss: the driver counts what the store lacks.
      expect(run.lostWrites).toBeGreaterThan(0);
      expect(run.lostWrites).toBeGreaterThanOrEqual(startedDuringCut - 2);
      expect(run.lostWrites).toBeLessThanOrEqual(startedDuringCut + 1);
      // Statuses went back with the failover, and were written again (every status matches above).
      expect(run.statusRegressions).toBeGreaterThan(0);

      // The fence, checked on the new primary itself.
      expect(stale).toBeDefined();
      const direct = new Redis({ host: '127.0.0.1', port: newPrimary, lazyConnect: true });
      const store = await openStore(redis!.url, { prefix: PREFIX });
      try {
        // It says so itself: the demo's driver reads its writes back on such a store, and counted the loss above.
        expect(store.losesAcknowledgedWrites).toBe(true);
        expect(Number(await direct.get(`${PREFIX}:revision`))).toBeGreaterThan(EPOCH);
        const stored = await store.get<StatusValue>('status', stale!.key);
        expect(stored?.version).not.toBe(stale!.version);
        const write = { generation: 1_000, value: 'stale', writer: 'old-primary-reader', at: 0 };
        expect(await store.compareAndSet('status', stale!.key, write, stale!.version)).toEqual({
          ok: false,
          reason: 'conflict',
        });
      } finally {
        direct.disconnect();
        await store.close();
      }
    },
    RUN_MS,
  );
});

async function statusVersions(store: import('../src/stores/store').RecordStore): Promise<Map<string, number>> {
  const keys = Array.from({ length: 10 }, (_, i) => `key-${i}`);
  const read = await Promise.all(keys.map((key) => store.get<StatusValue>('status', key)));
  return new Map(keys.map((key, i) => [key, read[i]?.version ?? 0]));
}
