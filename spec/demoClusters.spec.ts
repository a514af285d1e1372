/**
 * The demo on store clusters, each replica an OS process of the built CLI
 * given the cluster URL, while the test breaks the store mid-run. The test
 * follows the run on a store connection of its own (the spec changes it
 * sees) and breaks the store once enough have been made.
 *
 * etcd, 3 members: the Raft leader is SIGKILLed; the demo converges and
 * counts no lost write. Redis behind Sentinel: the primary stops
 * replicating, acknowledges more spec changes, and is SIGKILLed; the demo's
 * driver counts the changes the promoted replica never got (`lostWrites`)
 * and the run still converges, against what the store then holds.
 */
import type { Subscription } from 'rxjs';
import { parseDemoArgs } from '../src/cli/args';
import { runDemo, type DemoSummary } from '../src/cli/demo';
import { openStore } from '../src/stores/openStore';
import type { RecordStore } from '../src/stores/store';
import { buildCli } from './support/buildCli';
import { startEtcdCluster, startSentinelCluster, type EtcdCluster, type SentinelCluster } from './support/clusters';
import { eventually } from './support/failoverRun';

const SERVER_START_MS = 60_000;
const RUN_MS = 90_000;
const PREFIX = 'wl_demo_cluster';

let main: string;
let etcd: EtcdCluster | undefined;
let redis: SentinelCluster | undefined;
beforeAll(async () => {
  main = buildCli('demo-clusters');
  [etcd, redis] = await Promise.all([startEtcdCluster(3), startSentinelCluster()]);
}, SERVER_START_MS + 60_000);
afterAll(() => Promise.all([etcd?.stop(), redis?.stop()]));

it(
  'etcd, 3 members: the leader is killed mid-run, the demo converges with no lost write',
  async () => {
    const summary = await demoWhile(etcd!.url, async (specChanges) => {
      await specChanges(50);
      await (await etcd!.leader()).kill();
    });
    expect(summary).toMatchObject({ updates: 150, converged: true, lostWrites: 0 });
  },
  RUN_MS,
);

it(
  'Redis behind Sentinel: the primary dies with writes its replica never got, the demo counts them and converges',
  async () => {
    const summary = await demoWhile(redis!.url, async (specChanges) => {
      await specChanges(40);
      await redis!.cutReplication();
      await specChanges(60);
      const old = await redis!.killPrimary();
      await redis!.promoted(old);
    });
    expect(summary).toMatchObject({ updates: 150, converged: true });
    expect(summary.lostWrites).toBeGreaterThan(0);
  },
  RUN_MS,
);

/**
 * Runs the demo on `url` while `faults` breaks the store; `faults` waits on
 * `specChanges(n)`: resolves once the test's own connection has seen n spec
 * changes of this run.
 */
async function demoWhile(
  url: string,
  faults: (specChanges: (count: number) => Promise<void>) => Promise<void>,
): Promise<DemoSummary> {
  const watcher: RecordStore = await openStore(url, { prefix: PREFIX });
  let seen = 0;
  let watching: Subscription | undefined;
  try {
    const demo = runDemo(
      parseDemoArgs([
        '--store',
        url,
        '--updates',
        '150',
        '--rate',
        '50',
        '--lease-duration',
        '500',
        '--retry-interval',
        '100',
        '--prefix',
        PREFIX,
      ]),
      { replicaCommand: [process.execPath, main] },
    ).then((summary) => {
      if (process.env.CLUSTERS_REPORT !== undefined) process.stdout.write(`${JSON.stringify(summary)}\n`);
      return summary;
    });
    // The demo deletes the keys first: only the spec changes made after count.
    watching = watcher.changes().subscribe(({ kind, value }) => {
      if (kind === 'spec' && value !== undefined) seen++;
    });
    const specChanges = (count: number): Promise<void> =>
      eventually(async () => seen >= count, `${count} spec changes`, 30_000);
    const [summary] = await Promise.all([demo, faults(specChanges)]);
    return summary;
  } finally {
    watching?.unsubscribe();
    await watcher.close();
  }
}
