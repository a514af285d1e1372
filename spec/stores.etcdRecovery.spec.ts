/**
 * An etcd member restarted under a store that keeps calling, and under one
 * that only watches: both must be back within the stores' reconnect delays
 * (docs/stores.md: doubling from 100 ms to 2 s), whatever etcd3's own fault
 * handling would do (its default circuit breaker rests a member 5 s).
 *
 * `STORES_REPORT=1` prints the measured recovery times.
 */
import { filter, firstValueFrom } from 'rxjs';
import { EtcdMemberRestingError, openEtcdStore } from '../src/stores/etcd';
import { reconnectDelay } from '../src/stores/reconnectDelay';
import type { RecordStore } from '../src/stores/store';
import { startEtcdCluster, type EtcdCluster } from './support/clusters';
import { waitFor } from './support/waitFor';
import { spec } from './support/records';

const SERVER_START_MS = 60_000;
/** The longest reconnect delay: a member that is back is tried again within it. */
const LONGEST_DELAY_MS = reconnectDelay(Number.POSITIVE_INFINITY);
/** An outage this long makes every delay of the ramp pass, so that the longest one is in force at the restart. */
const RAMP_MS = rampToLongest();
/** What a call, a watch and a loaded 2-core machine add to the delay. */
const SLACK_MS = 500;
/** How often the calling store calls, as a lease retrying a unit would: often enough to time recovery closely. */
const CALL_INTERVAL_MS = 25;
/** Long enough to see etcd3's default (5 s rests) recover, so that a failure reports the time it took. */
const RECOVERY_WAIT_MS = 15_000;

describe('etcd store, a member restarted', () => {
  let cluster: EtcdCluster;
  let caller: RecordStore;
  let watcher: RecordStore;

  beforeAll(async () => {
    cluster = await startEtcdCluster(1);
    [caller, watcher] = await Promise.all([
      openEtcdStore(cluster.url, { prefix: 'recovery' }),
      openEtcdStore(cluster.url, { prefix: 'recovery' }),
    ]);
  }, SERVER_START_MS);

  afterAll(async () => {
    await Promise.all([caller?.close(), watcher?.close()]);
    await cluster?.stop();
  });

  it(
    'answers calls, and delivers changes to a store that only watched, within the longest reconnect delay of the member being back',
    async () => {
      const [member] = cluster.members;
      const initial = await caller.put('spec', 'k', spec(1));
      const calls = keepCalling(caller, 'k');
      try {
        await member.kill();
        // Outlast the ramp of delays, measured from the first call that failed.
        await waitFor(
          () => calls.failures.length > 0 && calls.failures.at(-1)! - calls.failures[0] >= RAMP_MS,
          `calls failing for ${RAMP_MS} ms`,
          RAMP_MS + 10_000,
        );
        await member.start();
        const backAt = performance.now();

        await waitFor(() => calls.successes.some((at) => at > backAt), 'a get after the restart', RECOVERY_WAIT_MS);
        const callsBackMs = calls.successes.find((at) => at > backAt)! - backAt;

        const seenByWatcher = firstValueFrom(watcher.changes().pipe(filter(({ key }) => key === 'k')));
        const seenByCaller = firstValueFrom(caller.changes().pipe(filter(({ key }) => key === 'k')));
        const outcome = await caller.compareAndSet('spec', 'k', spec(2), initial);
        expect(outcome).toEqual({ ok: true, version: expect.any(Number) });
        const { version } = outcome as { version: number };
        const delivered = await Promise.all(
          [seenByCaller, seenByWatcher].map((seen) => seen.then((change) => ({ change, at: performance.now() }))),
        );
        const feedsBackMs = delivered.map(({ at }) => at - backAt);
        if (process.env.STORES_REPORT !== undefined) {
          process.stdout.write(`${JSON.stringify({ rampMs: RAMP_MS, callsBackMs, feedsBackMs })}\n`);
        }

        expect(delivered.map(({ change }) => change)).toEqual([
          { kind: 'spec', key: 'k', value: spec(2), version },
          { kind: 'spec', key: 'k', value: spec(2), version },
        ]);
        expect(callsBackMs).toBeLessThanOrEqual(LONGEST_DELAY_MS + SLACK_MS);
        expect(Math.max(...feedsBackMs)).toBeLessThanOrEqual(LONGEST_DELAY_MS + SLACK_MS);
        // Calls made while the member was left alone failed at once, saying for how long, never above the longest delay.
        const rests = calls.errors.filter((error) => error instanceof EtcdMemberRestingError);
        expect(rests.length).toBeGreaterThan(0);
        expect(rests[0].info).toEqual({
          url: cluster.url,
          member: `127.0.0.1:${member.clientPort}`,
          restMs: expect.any(Number),
          cause: expect.any(Error),
        });
        expect(Math.max(...rests.map((error) => error.info.restMs))).toBeLessThanOrEqual(LONGEST_DELAY_MS);
      } finally {
        await calls.stop();
      }
    },
    SERVER_START_MS,
  );
});

/** The sum of the reconnect delays up to the longest one, which is then in force. */
function rampToLongest(): number {
  let total = 0;
  for (let attempt = 0; reconnectDelay(attempt) < LONGEST_DELAY_MS; attempt++) total += reconnectDelay(attempt);
  return total + LONGEST_DELAY_MS;
}

interface Calls {
  /** When each failed call settled, from `performance.now()`. */
  readonly failures: number[];
  /** What each failed call rejected with. */
  readonly errors: unknown[];
  /** When each successful call settled. */
  readonly successes: number[];
  /** Stops calling; resolves once the call in flight settled. */
  stop(): Promise<void>;
}

/** Gets `key` again and again, `CALL_INTERVAL_MS` apart, recording when each call settled and how. */
function keepCalling(store: RecordStore, key: string): Calls {
  const failures: number[] = [];
  const errors: unknown[] = [];
  const successes: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await store.get('spec', key).then(
        () => successes.push(performance.now()),
        (error: unknown) => {
          failures.push(performance.now());
          errors.push(error);
        },
      );
      await new Promise((resolve) => setTimeout(resolve, CALL_INTERVAL_MS));
    }
  })();
  return {
    failures,
    errors,
    successes,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
