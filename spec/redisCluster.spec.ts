/**
 * Redis Cluster: 3 masters and 3 replicas on loopback (node timeout 1 s),
 * started by this file. The RecordStore contract runs on a cluster in
 * spec/stores.spec.ts; here: the key layout and how it spreads, handovers
 * across shards, bad input, the CLI, and a master's failover under 3
 * replica processes.
 *
 * The failover: after 40 spec changes a master stops replicating (it asks
 * a password its replica lacks), acknowledges 30 more changes and the
 * statuses written for them, and is SIGKILLed; the cluster promotes its
 * replica, which never received those writes. Checked: the first status
 * write on the dead master's keys after the kill, that no compare-and-set
 * on a version the store issued before is accepted again, the lost writes
 * counted and written again, and every status current when read back with
 * redis-cli. Last, the promoted master, which has no replica, is killed
 * too: its slots are served by nobody, and the store says so.
 *
 * `CLUSTERS_REPORT=1` prints the figures (docs/stores.md).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { map, merge, type Subscription } from 'rxjs';
import { parseDemoArgs } from '../src/cli/args';
import { runDemo } from '../src/cli/demo';
import { demoNow } from '../src/cli/demoClock';
import { Driver } from '../src/cli/driver';
import { main } from '../src/cli/main';
import type { ReplicaReport } from '../src/cli/replica';
import { seededRandom } from '../src/cli/seededRandom';
import { BUCKETS, clusterLayout } from '../src/stores/clusterBuckets';
import { StoreUnreachableError, StoreUrlError } from '../src/stores/errors';
import { hashSlot } from '../src/stores/hashSlot';
import { openStore } from '../src/stores/openStore';
import { openRedisClusterStore } from '../src/stores/redis';
import { EPOCH } from '../src/stores/redisRecords';
import type { RecordStore, SpecValue, StatusValue } from '../src/stores/store';
import { buildCli } from './support/buildCli';
import { startRedisCluster, type RedisCluster } from './support/clusters';
import { afterChanges, eventually } from './support/failoverRun';
import { freePort, startRedis, type TestServer } from './support/servers';
import { waitFor } from './support/waitFor';

const SERVER_START_MS = 60_000;
const RUN_MS = 90_000;
/** How long a message may take to arrive: below jest's 5 s, so that a missing one fails with a message. */
const ARRIVAL_MS = 4_000;
const report = (figures: Record<string, unknown>): void => {
  if (process.env.CLUSTERS_REPORT !== undefined) process.stdout.write(`${JSON.stringify(figures)}\n`);
};

let cluster: RedisCluster;
let cliMain: string;
const opened: RecordStore[] = [];
const open = async (prefix: string, connectTimeout?: number): Promise<RecordStore> => {
  const store = await openStore(cluster.url, { prefix, connectTimeout });
  opened.push(store);
  return store;
};

beforeAll(async () => {
  cliMain = buildCli('redis-cluster');
  cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
}, SERVER_START_MS);

// A store left open would keep mending its subscriptions once the last test has taken the cluster down.
afterEach(() => Promise.all(opened.splice(0).map((store) => store.close())));

afterAll(() => cluster?.stop(), SERVER_START_MS);

describe('the key layout', () => {
  it('computes hash slots as Redis does', async () => {
    const names = ['foo', 'wl:{3560}:spec:a', '{}x', 'é', 'route/a'];
    const admin = new Redis({ port: cluster.ports[0], host: '127.0.0.1' });
    try {
      const slots = await Promise.all(names.map((name) => admin.call('CLUSTER', 'KEYSLOT', name)));
      expect(names.map(hashSlot)).toEqual(slots);
    } finally {
      admin.disconnect();
    }
  });

  it('puts a record’s spec, status and versions in one slot, the tag inside the prefix, buckets 16 slots apart', () => {
    const layout = clusterLayout('wl:');
    expect(layout.buckets.map(({ slot }) => slot)).toEqual(Array.from({ length: BUCKETS }, (_, n) => n * 16));
    for (const key of ['route-a', 'route/b', 'ключ', '{odd}']) {
      const bucket = layout.of(key);
      const spec = bucket.records.keyOf('spec', key);
      expect(spec).toMatch(/^wl:\{\d+\}:spec:/);
      expect(bucket.records.keyOf('status', key)).toBe(spec.replace(':spec:', ':status:'));
      const names = [spec, bucket.records.keyOf('status', key), bucket.versionsKey, bucket.revisionKey, bucket.channel];
      expect(new Set(names.map(hashSlot))).toEqual(new Set([bucket.slot]));
      expect(layout.parse(spec)).toEqual({ bucket, kind: 'spec', key });
    }
    expect(layout.parse('wl:{3560}:versions')).toBeUndefined();
  });

  it(
    'spreads 10,000 records over every master within 20 % of the mean',
    async () => {
      const prefix = 'wl_spread';
      const store = await open(prefix);
      const keys = Array.from({ length: 10_000 }, (_, i) => `route-${i}`);
      for (let i = 0; i < keys.length; i += 500) {
        await Promise.all(keys.slice(i, i + 500).map((key) => store.put('spec', key, { generation: 1 })));
      }
      const masters = await cluster.masters();
      const counts = await Promise.all(masters.map(({ port }) => countKeys(port, `${prefix}:{*}:spec:*`)));
      const mean = keys.length / masters.length;
      const spread = Math.max(...counts.map((count) => Math.abs(count - mean) / mean));
      report({ figure: 'keys per master', masters: counts, mean, spread: Math.round(spread * 1000) / 10 });
      expect(counts.reduce((sum, count) => sum + count, 0)).toBe(keys.length);
      expect(spread).toBeLessThanOrEqual(0.2);
    },
    RUN_MS,
  );
});

describe('handovers across shards', () => {
  /** A key whose bucket each master serves. */
  let keyPerMaster: string[];
  beforeAll(async () => {
    const layout = clusterLayout('wl_handover:');
    const masters = await cluster.masters();
    keyPerMaster = masters.map(({ slots }) => {
      for (let i = 0; ; i++) {
        const { slot } = layout.of(`route-${i}`);
        if (slots.some(([start, end]) => start <= slot && slot <= end)) return `route-${i}`;
      }
    });
  });

  it('reaches a follower after the writer’s status writes on every master, and then the fence still decides', async () => {
    const [writer, follower] = await Promise.all([open('wl_handover'), open('wl_handover')]);
    const items: string[] = [];
    const watching = merge(
      follower.changes().pipe(map((change) => `${change.kind}:${change.key}:${change.version}`)),
      follower.handovers!().pipe(map((writer) => `handover:${writer}`)),
    ).subscribe((item) => items.push(item));
    const before = new Map<string, number>();
    for (const key of keyPerMaster) before.set(key, await writer.put('status', key, status(1, 'w')));
    await waitFor(() => items.length === keyPerMaster.length, 'the first writes', ARRIVAL_MS);
    items.length = 0;
    const expected: string[] = [];
    for (const key of keyPerMaster) {
      const outcome = await writer.compareAndSet('status', key, status(2, 'w'), before.get(key)!);
      if (!outcome.ok) throw new Error(`conflict on ${key}`);
      expected.push(`status:${key}:${outcome.version}`);
    }
    await writer.handOver!('w');
    await waitFor(() => items.includes('handover:w'), 'the handover', ARRIVAL_MS);
    watching.unsubscribe();
    // Changes of different masters may interleave; every one of them comes before the handover.
    expect(items.slice(0, -1).sort()).toEqual([...expected].sort());
    expect(items.at(-1)).toBe('handover:w');
    // A follower that acted on an older view of a status is refused: the version fence decides.
    for (const key of keyPerMaster) {
      expect(await follower.compareAndSet('status', key, status(3, 'f'), before.get(key)!)).toEqual({
        ok: false,
        reason: 'conflict',
      });
    }
  });

  it('emits no handover until every part arrived: a part alone is held', async () => {
    const follower = await open('wl_handover');
    const seen: string[] = [];
    const watching = follower.handovers!().subscribe((writer) => seen.push(writer));
    const channel = clusterLayout('wl_handover:').of(keyPerMaster[0]).channel;
    const admin = new Redis({ port: await cluster.masterOf(hashSlot(channel)), host: '127.0.0.1' });
    try {
      await admin.spublish(channel, JSON.stringify({ writer: 'partial', handover: 'h-1', parts: 2 }));
      await (
        await open('wl_handover')
      ).handOver!('whole');
      await waitFor(() => seen.length > 0, 'the whole handover', ARRIVAL_MS);
      expect(seen).toEqual(['whole']);
    } finally {
      admin.disconnect();
      watching.unsubscribe();
    }
  });
});

describe('bad input', () => {
  let plain: TestServer | undefined;
  afterAll(() => plain?.stop());

  it.each([
    ['redis-cluster://', 'no host'],
    ['redis-cluster://127.0.0.1:7000,', 'an empty member in the host list'],
    ['redis-cluster://127.0.0.1:7000/2', 'Redis Cluster has one database: expected no path, received /2'],
  ])('%s: StoreUrlError, %s', async (url, message) => {
    const error = await openStore(url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect((error as Error).message).toBe(
      `Store URL "${url}": ${message}; expected redis-cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]`,
    );
  });

  it('refuses a prefix with a brace, naming the option, what it expects and what it received', async () => {
    await expect(openRedisClusterStore(cluster.url, { prefix: 'a{b}:' })).rejects.toThrow(
      'openRedisClusterStore: options.prefix: expected no "{" or "}" (a hash tag follows the prefix), received "a{b}:"',
    );
  });

  it('a seed that is not a cluster node: StoreUnreachableError saying so', async () => {
    plain = await startRedis();
    const port = new URL(plain.url).port;
    const url = `redis-cluster://127.0.0.1:${port}`;
    const error = await openStore(url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnreachableError);
    expect((error as Error).message).toBe(
      `Cannot reach the store at ${url}: 127.0.0.1:${port} is not a Redis Cluster node: ` +
        'ERR This instance has cluster support disabled',
    );
  });

  it('no seed answers: StoreUnreachableError naming each', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const url = `redis-cluster://127.0.0.1:${a},127.0.0.1:${b}`;
    await expect(openStore(url, { connectTimeout: 2000 })).rejects.toThrow(
      `Cannot reach the store at ${url}: no seed answered (127.0.0.1:${a}: connect ECONNREFUSED 127.0.0.1:${a}; ` +
        `127.0.0.1:${b}: connect ECONNREFUSED 127.0.0.1:${b})`,
    );
  });

  it('a seed that takes the connection and never answers: StoreUnreachableError in time, and no connection left', async () => {
    const open = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      open.add(socket);
      // Read and dropped: a socket never read never sees the client's end.
      socket.resume();
      socket.on('close', () => open.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `redis-cluster://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      await expect(openStore(url, { connectTimeout: 500 })).rejects.toBeInstanceOf(StoreUnreachableError);
      await waitFor(() => open.size === 0, 'the store to close its connection to the silent seed', 3000);
    } finally {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it.each([
    [['demo', '--store', 'redis-cluster://'], 2, 'rx-writer-lease demo: Store URL "redis-cluster://": no host; '],
    [
      ['replica', '--store', 'redis-cluster://:secret@127.0.0.1:7000/0'],
      2,
      'rx-writer-lease replica: Store URL "redis-cluster://:***@127.0.0.1:7000/0": Redis Cluster has one database',
    ],
  ])('the CLI: %j exits %i with one line', async (argv, code, line) => {
    const { exitCode, stderr } = await cli(argv);
    expect(exitCode).toBe(code);
    expect(stderr.split('\n')[0]).toContain(line);
    expect(stderr).not.toContain('secret');
  });

  it('the CLI: seeds that are not a cluster exit 1 with one line', async () => {
    plain ??= await startRedis();
    const url = `redis-cluster://${new URL(plain.url).host}`;
    const { exitCode, stderr } = await cli(['replica', '--store', url]);
    expect(exitCode).toBe(1);
    expect(stderr).toBe(
      `rx-writer-lease replica: Cannot reach the store at ${url}: ${new URL(plain.url).host} is not a Redis ` +
        'Cluster node: ERR This instance has cluster support disabled\n',
    );
  });
});

describe('the demo on the cluster', () => {
  it(
    'runs its replicas as processes and converges',
    async () => {
      const summary = await runDemo(
        parseDemoArgs(['--store', cluster.url, '--updates', '60', '--rate', '50', '--prefix', 'wl_demo_cluster']),
        { replicaCommand: [process.execPath, cliMain] },
      );
      expect(summary).toMatchObject({ updates: 60, converged: true, lostWrites: 0 });
    },
    RUN_MS,
  );
});

describe('a master fails over under 3 replica processes', () => {
  const PREFIX = 'wl_failover';
  const KEYS = Array.from({ length: 30 }, (_, i) => `key-${i}`);
  const layout = clusterLayout(`${PREFIX}:`);
  const replicas: ChildProcess[] = [];
  const reports: ReplicaReport[] = [];
  const watching: Subscription[] = [];
  /** The master killed in the first test, and the replica promoted in its place, killed in the last test. */
  let victim = 0;
  let promoted = 0;
  /** A store opened before the last test's kill. */
  let survivor: RecordStore;

  afterAll(async () => {
    watching.forEach((subscription) => subscription.unsubscribe());
    await Promise.all(replicas.map((child) => stopReplica(child)));
    await survivor?.close();
  });

  it(
    'the fence holds, lost writes are counted and written again, every status converges',
    async () => {
      const masters = await cluster.masters();
      victim = masters[0].port;
      const onVictim = KEYS.filter((key) =>
        masters[0].slots.some(([s, e]) => s <= layout.of(key).slot && layout.of(key).slot <= e),
      );
      // Every master holds some of the keys.
      for (const { slots } of masters) {
        expect(KEYS.some((key) => slots.some(([s, e]) => s <= layout.of(key).slot && layout.of(key).slot <= e))).toBe(
          true,
        );
      }

      let killedAt = 0;
      let promotedAt = 0;
      const [driverStore, observer, faults] = await Promise.all([open(PREFIX), open(PREFIX), open(PREFIX)]);
      survivor = await openStore(cluster.url, { prefix: PREFIX, connectTimeout: 2000 });
      await Promise.all(KEYS.flatMap((key) => [driverStore.delete('spec', key), driverStore.delete('status', key)]));
      for (let i = 1; i <= 3; i++) replicas.push(startReplica(`r${i}`, PREFIX, reports));
      await waitFor(() => reports.filter(({ type }) => type === 'ready').length === 3, 'the 3 replicas ready', 20_000);

      /** Every status version the observer saw, per key: none but the last may be accepted again. */
      const versionsSeen = new Map<string, Set<number>>();
      /** Versions of the dead master's keys seen before it was killed, and those seen first after: the new master's. */
      const beforeKill = new Set<number>();
      const newVersions: number[] = [];
      let statusRegressions = 0;
      const generations = new Map<string, number>();
      watching.push(
        observer.changes().subscribe(({ kind, key, value, version }) => {
          if (kind !== 'status') return;
          versionsSeen.set(key, (versionsSeen.get(key) ?? new Set()).add(version));
          if (onVictim.includes(key) && killedAt === 0) beforeKill.add(version);
          else if (onVictim.includes(key) && !beforeKill.has(version)) newVersions.push(version);
          const generation = (value as StatusValue | undefined)?.generation ?? 0;
          if (generation < (generations.get(key) ?? 0)) statusRegressions++;
          generations.set(key, generation);
        }),
      );

      const driver = new Driver({ store: driverStore, keys: KEYS, updates: 200, rate: 50, random: seededRandom(7) });
      let startedDuringCut = 0;
      await Promise.all([
        driver.run(),
        (async () => {
          await afterChanges(driver, 40);
          await cluster.cutReplication(victim);
          const startedAtCut = driver.done;
          await afterChanges(driver, 70);
          await cluster.kill(victim);
          killedAt = demoNow(); // the clock of the replica processes' reports
          startedDuringCut = driver.done - startedAtCut;
          promoted = await cluster.promoted(victim);
          promotedAt = demoNow();
        })(),
      ]);
      const expected = Object.fromEntries(driver.generations);

      // Every status current, as redis-cli reads it from the cluster.
      let lagging: string[] = [];
      await eventually(
        async () => {
          lagging = [];
          for (const key of KEYS) {
            const [spec, current] = await Promise.all([
              cliGet(promoted, layout.of(key).records.keyOf('spec', key)),
              cliGet(promoted, layout.of(key).records.keyOf('status', key)),
            ]);
            if (spec?.generation !== expected[key] || current?.generation !== spec?.generation) lagging.push(key);
          }
          return lagging.length === 0;
        },
        'every status to match its spec, read with redis-cli',
        20_000,
      );

      const firstWrite = reports.find(
        (entry) => entry.type === 'written' && entry.at >= killedAt && onVictim.includes(entry.key),
      );
      const firstWriteMs = firstWrite === undefined ? null : firstWrite.at - killedAt;

      // The fence: no version seen before is accepted again, not even those the dead master issued.
      let staleAttempts = 0;
      let staleAccepted = 0;
      for (const key of KEYS) {
        const current = (await faults.get<StatusValue>('status', key))?.version;
        for (const version of versionsSeen.get(key) ?? []) {
          if (version === current) continue;
          staleAttempts++;
          const outcome = await faults.compareAndSet('status', key, status(10_000, 'stale'), version);
          if (outcome.ok) staleAccepted++;
        }
      }
      // The promoted master counts from 2^32 × its config epoch, above every version its dead master issued.
      const epoch = Number(/cluster_my_epoch:(\d+)/.exec(await cliText(promoted, ['CLUSTER', 'INFO']))?.[1]);

      report({
        figure: 'Redis Cluster failover',
        updates: driver.done,
        lostWrites: driver.lostWrites,
        startedDuringCut,
        statusRegressions,
        killToPromotedMs: promotedAt - killedAt,
        killToFirstWriteOnItsKeysMs: firstWriteMs,
        staleAttempts,
        staleAccepted,
        promotedConfigEpoch: epoch,
        written: reports.filter(({ type }) => type === 'written').length,
        conflicts: reports.filter(({ type }) => type === 'conflict').length,
        errors: reports.filter(({ type }) => type === 'error').length,
      });
      await Promise.all(replicas.map((child) => stopReplica(child)));
      expect(replicas.map(({ exitCode }) => exitCode)).toEqual([0, 0, 0]);
      expect(lagging).toEqual([]);
      expect(firstWriteMs).not.toBeNull();
      // Most of it is the cluster's own failover (node timeout, then an election 0.5-1 s later); the
      // store's part, from the promotion (as this test sees it, polling) to the write, is small.
      expect(firstWriteMs! - (promotedAt - killedAt)).toBeLessThanOrEqual(1000);
      expect(firstWriteMs).toBeLessThanOrEqual(3500);
      expect(staleAttempts).toBeGreaterThan(0);
      expect(staleAccepted).toBe(0);
      // Lost with the master: what it acknowledged during the cut (give or take the change in flight at each end).
      expect(driver.lostWrites).toBeGreaterThan(0);
      expect(driver.lostWrites).toBeLessThanOrEqual(startedDuringCut + 1);
      expect(statusRegressions).toBeGreaterThan(0);
      expect(newVersions.length).toBeGreaterThan(0);
      expect(Math.min(...newVersions)).toBeGreaterThanOrEqual(epoch * EPOCH);
      expect(Math.max(...beforeKill)).toBeLessThan(epoch * EPOCH);
    },
    RUN_MS,
  );

  it(
    'a master with no replica dies: calls fail within seconds, and a new store says the cluster is down',
    async () => {
      const slots = (await cluster.masters()).find(({ port }) => port === promoted)?.slots ?? [];
      const key = KEYS.find((k) => slots.some(([s, e]) => s <= layout.of(k).slot && layout.of(k).slot <= e))!;
      await cluster.kill(promoted);
      const started = Date.now();
      const error = await survivor.put('spec', key, { generation: 1 }).catch((e: unknown) => e);
      await survivor.close();
      expect(error).toBeInstanceOf(Error);
      expect(Date.now() - started).toBeLessThan(4000);

      const live = cluster.ports.find((port) => port !== promoted && port !== victim)!;
      await eventually(
        async () => (await cliText(live, ['CLUSTER', 'INFO'])).includes('cluster_state:fail'),
        'cluster_state:fail',
        10_000,
      );
      const url = cluster.url;
      const opening = Date.now();
      const refused = await openStore(url, { prefix: PREFIX, connectTimeout: 2000 }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(StoreUnreachableError);
      expect((refused as Error).message).toMatch(
        /: the cluster is down: 127\.0\.0\.1:\d+ says cluster_state:fail, \d+ of 16384 slots served$/,
      );
      expect(Date.now() - opening).toBeLessThan(2000);
      const { exitCode, stderr } = await cli(['replica', '--store', url]);
      expect(exitCode).toBe(1);
      expect(stderr).toMatch(/^rx-writer-lease replica: Cannot reach the store at .*: the cluster is down: .*\n$/);
    },
    RUN_MS,
  );
});

function status(generation: number, writer: string): StatusValue {
  return { generation, value: `v${generation}`, writer, at: 0 };
}

async function countKeys(port: number, pattern: string): Promise<number> {
  const admin = new Redis({ port, host: '127.0.0.1' });
  try {
    let count = 0;
    let cursor = '0';
    do {
      const [next, names] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      count += names.length;
    } while (cursor !== '0');
    return count;
  } finally {
    admin.disconnect();
  }
}

/** `redis-cli -c`: follows the cluster's redirections, as a person reading the store would. */
async function cliText(port: number, command: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('redis-cli', ['-c', '-p', `${port}`, ...command]);
  return stdout.trim();
}

async function cliGet(port: number, name: string): Promise<SpecValue | undefined> {
  const text = await cliText(port, ['GET', name]);
  return text === '' ? undefined : (JSON.parse(text) as SpecValue);
}

/** One `rx-writer-lease replica` process; its reports go to `reports`. */
function startReplica(name: string, prefix: string, reports: ReplicaReport[]): ChildProcess {
  const child = spawn(
    process.execPath,
    [cliMain, 'replica', '--store', cluster.url, '--prefix', prefix, '--name', name, '--lease-duration', '500'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.trim() !== '') reports.push(JSON.parse(line) as ReplicaReport);
  });
  return child;
}

async function stopReplica(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(killer);
}

async function cli(argv: string[]): Promise<{ exitCode: number; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  stdout.resume();
  const exitCode = await main(argv, { stdout, stderr });
  return { exitCode, stderr: text };
}
