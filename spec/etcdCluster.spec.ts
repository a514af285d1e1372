/**
 * A 3-member etcd cluster under 3 replicas: the Raft leader is SIGKILLed
 * mid-run; it is started again; then another member, one the clients talk
 * to (etcd3 sends each call to any member), is SIGKILLed. The cluster keeps
 * a quorum throughout (2 of 3).
 *
 * Checked, from the store's own contents: no acknowledged spec change is
 * lost, every status ends at its spec, no status ever went back a
 * generation, and the replicas wrote after each kill.
 *
 * `CLUSTERS_REPORT=1` prints the run's figures (docs/stores.md).
 */
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from './support/clusters';
import { afterChanges, failoverRun, report } from './support/failoverRun';

const SERVER_START_MS = 60_000;
const RUN_MS = 60_000;
const UPDATES = 150;

describe('etcd, 3 members, under 3 replicas', () => {
  let cluster: EtcdCluster | undefined;
  beforeAll(async () => {
    cluster = await startEtcdCluster(3);
  }, SERVER_START_MS);
  afterAll(() => cluster?.stop());

  it(
    'the leader and then another member are killed mid-run: nothing acknowledged is lost, every status converges',
    async () => {
      const { url, members } = cluster!;
      let leader: EtcdMember | undefined;
      let follower: EtcdMember | undefined;
      const run = await failoverRun({
        url,
        prefix: 'wl_etcd_cluster',
        updates: UPDATES,
        rate: 50,
        async faults({ driver, mark }) {
          await afterChanges(driver, 40);
          leader = await cluster!.leader();
          await leader.kill();
          mark('leaderKilled');
          await afterChanges(driver, 80);
          await leader.start();
          mark('leaderBack');
          const newLeader = await cluster!.leader();
          follower = members.find((member) => member !== newLeader && member.alive);
          await afterChanges(driver, 100);
          await follower!.kill();
          mark('followerKilled');
        },
      });
      report('etcd', run);

      expect(leader).toBeDefined();
      expect(follower).toBeDefined();
      expect(run.updates).toBe(UPDATES);
      // etcd acknowledges a write once a majority has it: nothing acknowledged is lost.
      expect(run.lostWrites).toBe(0);
      expect(run.stored).toEqual(run.expected);
      expect(run.lagging).toEqual([]);
      expect(run.statusRegressions).toBe(0);
      expect(run.afterMarks.leaderKilled.writes).toBeGreaterThan(0);
      expect(run.afterMarks.followerKilled.writes).toBeGreaterThan(0);
    },
    RUN_MS,
  );
});
