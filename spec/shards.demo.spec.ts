import { parseDemoArgs, type DemoOptions } from '../src/cli/args';
import { runDemo, type DemoSummary } from '../src/cli/demo';
import { failoverBound } from '../test-support';
import { buildCli } from './support/buildCli';
import { startRedis, type TestServer } from './support/servers';

/** Short durations keep each run to a few seconds; the bounds scale with them. */
const LEASE = { leaseDuration: 500, retryInterval: 50 };
/** A shard's failover: its lease runs out, then the next replica by rank writes at once (docs/lease.md, "Shards"). */
const FAILOVER_BOUND = failoverBound(LEASE);
const RUN_MS = 60_000;

const demo = (flags: string[]): DemoOptions =>
  parseDemoArgs(['--lease-duration', `${LEASE.leaseDuration}`, '--retry-interval', `${LEASE.retryInterval}`, ...flags]);

/** 30 shards, 3 replicas, 300 keys, `updates` changes at 500/s: every shard changes many times a second. */
const sharded = (updates: number) => [
  '--shards',
  '30',
  '--replicas',
  '3',
  '--keys',
  '300',
  '--updates',
  `${updates}`,
  '--rate',
  '500',
];
const SHARDED = sharded(1500);

/**
 * The replica leading the most shards (at least 10 of 30) stopped: each of its shards moved, and at most 2
 * others; every shard is led by one of the 2 left (on Redis, two may both lead one at the end).
 */
function expectItsShardsMoved(run: DemoSummary): void {
  expect(run.converged).toBe(true);
  const survivors = Object.values(run.shardsByReplica);
  expect(survivors).toHaveLength(2);
  expect(survivors.reduce((sum, count) => sum + count, 0)).toBeGreaterThanOrEqual(30);
  expect(run.movedShards).toBeGreaterThanOrEqual(10);
  expect(run.movedShards).toBeLessThanOrEqual(12);
}

/** A fourth replica took its share: 7 or 8 of 30. */
function expectJoinerLeadsItsShare(run: DemoSummary): void {
  expect(run.converged).toBe(true);
  expect(Object.keys(run.shardsByReplica).sort()).toEqual(['r1', 'r2', 'r3', 'r4']);
  expect(run.shardsByReplica.r4).toBeGreaterThanOrEqual(7);
  expect(run.joinMs).not.toBeNull();
}

describe('demo --shards 30 --replicas 3 --keys 300, on the memory store', () => {
  let run: DemoSummary;

  beforeAll(async () => {
    run = await runDemo(demo([...SHARDED, '--seed', '5']));
  }, RUN_MS);

  it('each replica leads its share of the shards, 10 ± 2', () => {
    const counts = Object.values(run.shardsByReplica);
    expect(counts).toHaveLength(3);
    for (const count of counts) expect(Math.abs(count - 10)).toBeLessThanOrEqual(2);
    expect(counts.reduce((sum, count) => sum + count, 0)).toBe(30);
  });

  it('converges with about one attempt per update: no conflicts once the shards are shared out', () => {
    expect(run.converged).toBe(true);
    expect(run.attemptsPerUpdate).toBeLessThanOrEqual(1.05);
    expect(run.idleWrites).toBe(0);
    expect(run.movedShards).toBeNull();
    expect(run.joinMs).toBeNull();
    expect(run.conflictsSinceEvent).toBeNull();
  });
});

describe('demo --shards 30: a kill and a join', () => {
  it(
    '--kill-leader-after: the replica leading the most shards dies; only its shards move, within the failover bound',
    async () => {
      const run = await runDemo(demo([...SHARDED, '--kill-leader-after', '1000', '--seed', '6']));
      expectItsShardsMoved(run);
      expect(Object.values(run.shardsByReplica).reduce((sum, count) => sum + count, 0)).toBe(30);
      expect(run.failoverMs).not.toBeNull();
      expect(run.failoverMs!).toBeLessThanOrEqual(FAILOVER_BOUND);
      expect(run.conflicts).toBeLessThanOrEqual(3); // the whole run, the election too
    },
    RUN_MS,
  );

  it(
    '--join-after: a fourth replica takes its share (7 or 8 of 30) within a second',
    async () => {
      const run = await runDemo(demo([...SHARDED, '--join-after', '1000', '--seed', '8']));
      expectJoinerLeadsItsShare(run);
      expect(run.joinMs!).toBeLessThanOrEqual(1000);
      expect(run.conflictsSinceEvent).toBe(0);
    },
    RUN_MS,
  );
});

describe('demo --shards 30 on Redis: 3 replica processes (the built CLI)', () => {
  let redis: TestServer;
  let main: string;

  beforeAll(async () => {
    main = buildCli('shards-demo');
    redis = await startRedis();
  }, RUN_MS);
  afterAll(() => redis?.stop());

  it(
    'each replica leads 10 ± 2 shards, the changes converge, and the replicas rarely race',
    async () => {
      const run = await runDemo(demo(['--store', redis.url, '--prefix', 'wl_shards', ...SHARDED, '--seed', '9']), {
        replicaCommand: [process.execPath, main],
      });
      expect(run.converged).toBe(true);
      const counts = Object.values(run.shardsByReplica);
      expect(counts).toHaveLength(3);
      expect(counts.reduce((sum, count) => sum + count, 0)).toBe(30);
      for (const count of counts) expect(Math.abs(count - 10)).toBeLessThanOrEqual(2);
      expect(run.attemptsPerUpdate).toBeLessThanOrEqual(1.05);
    },
    RUN_MS,
  );

  /** SHARDED with twice the changes (6 s): a replica process started at 1 s is ready with changes left to take. */
  const onRedis = (flags: string[]) =>
    runDemo(demo(['--store', redis.url, '--prefix', 'wl_shards', ...sharded(3000), ...flags]), {
      replicaCommand: [process.execPath, main],
    });

  it(
    '--kill-leader-after: the process leading the most shards is killed; only its shards move, within the failover bound',
    async () => {
      const run = await onRedis(['--kill-leader-after', '1500', '--seed', '6']);
      expectItsShardsMoved(run);
      expect(run.failoverMs).not.toBeNull();
      expect(run.failoverMs!).toBeLessThanOrEqual(FAILOVER_BOUND);
      // The whole run, the election too: a follower leaves a key just changed to the holder heard writing
      // (docs/lease.md); before that, its probes at the election's short backoffs met 0 to 9 conflicts a run.
      expect(run.conflicts).toBeLessThanOrEqual(3);
    },
    RUN_MS,
  );

  it(
    '--join-after: a fourth process takes its share by handover',
    async () => {
      const run = await onRedis(['--join-after', '1000', '--seed', '8']);
      expectJoinerLeadsItsShare(run);
      // 0 in 10 of 10 runs on a 2-core machine since a third replica no longer takes a yielded shard from a
      // newcomer slow to write (docs/lease.md, "A start"); before, 1 to 4 in 3 of 11. A loaded CI machine may
      // still see one: the bound keeps the test about the join, not the machine.
      expect(run.conflictsSinceEvent).toBeLessThanOrEqual(3);
    },
    RUN_MS,
  );

  it(
    '--handover-after: a process stopped gracefully hands over each shard it led',
    async () => {
      const run = await onRedis(['--handover-after', '1500', '--seed', '7']);
      expectItsShardsMoved(run);
      expect(run.handoverMs).not.toBeNull();
    },
    RUN_MS,
  );

  it(
    '--keys 3000 --burst --client-qps 500: the store queues every call for hundreds of ms, and the shares stay 10 ± 2',
    async () => {
      // The scenario: a turn on the clock alone gave shares such as 26/4/0 and 0/30/0 here.
      // The CLI's own durations (a 1 s lease): the figures are for them.
      const flags = ['--store', redis.url, '--prefix', 'wl_shards', '--shards', '30', '--replicas', '3'];
      const run = await runDemo(parseDemoArgs([...flags, '--keys', '3000', '--burst', '--client-qps', '500']), {
        replicaCommand: [process.execPath, main],
      });
      expect(run.converged).toBe(true);
      const counts = Object.values(run.shardsByReplica);
      expect(counts).toHaveLength(3);
      // Two replicas may both lead a shard at the end, each having written other keys of it at the election.
      expect(counts.reduce((sum, count) => sum + count, 0)).toBeGreaterThanOrEqual(30);
      for (const count of counts) expect(Math.abs(count - 10)).toBeLessThanOrEqual(2);
      expect(run.attemptsPerUpdate).toBeLessThanOrEqual(1.05);
    },
    RUN_MS,
  );
});
