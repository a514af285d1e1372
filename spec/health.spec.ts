import http from 'node:http';
import { filter, type Subscription } from 'rxjs';
import {
  LeaseState,
  MemoryStore,
  ShardedWriterLease,
  StatusWriter,
  WorkResult,
  WriterLease,
  serveHealth,
  type HealthOptions,
  type RecordStore,
} from '../src';
import { parseReplicaArgs, UsageError } from '../src/cli/args';
import { main, type CliIO } from '../src/cli/main';
import { livenessOf, readinessOf, type HealthFacts } from '../src/health';
import { eventually } from './support/failoverRun';
import { waitFor } from './support/waitFor';
import { capture } from './support/capture';
import { spec } from './support/records';

/**
 * serveHealth over real HTTP on 127.0.0.1 (port 0), in this process: the
 * rules of /healthz and /readyz as table tests, the endpoints on a memory
 * store (a leader cut off from it included), the metrics text without
 * prom-client, bad input, and `replica --listen`. On Redis, with a real
 * Prometheus and promtool: spec/prometheus.integration.spec.ts.
 */

const LEASE_MS = 200;

interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

function get(port: number, target: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: target, method }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, contentType: response.headers['content-type'] ?? '', body }),
      );
    });
    request.once('error', reject);
    request.end();
  });
}

/** A lease, its StatusWriter and a health server, on `store`; stopped after each test. */
const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const replica of running.splice(0).reverse()) await replica.stop();
});

async function replica(
  store: RecordStore,
  name: string,
  { start = true, health = {} }: { start?: boolean; health?: Partial<HealthOptions> } = {},
) {
  // With rule 16's spread, as the CLI runs it: a replica that hears another's write during the election follows it.
  const lease = new WriterLease({
    leaseDuration: LEASE_MS,
    retryInterval: 20,
    workTimeout: LEASE_MS,
    spread: true,
    name,
  });
  const writer = new StatusWriter({ store, lease, writer: name });
  const subscriptions: Subscription[] = [];
  const run = () => subscriptions.push(lease.run(), writer.run());
  if (start) run();
  const server = await serveHealth({
    lease,
    writer,
    leaseDuration: LEASE_MS,
    workTimeout: LEASE_MS,
    listen: { host: '127.0.0.1', port: 0 },
    ...health,
  });
  const self = {
    lease,
    writer,
    server,
    run,
    get: (target: string, method?: string) => get(server.address.port, target, method),
    status: async () => JSON.parse((await get(server.address.port, '/status')).body) as Record<string, unknown>,
    async stop() {
      for (const subscription of subscriptions.splice(0)) subscription.unsubscribe();
      lease.dispose();
      await server.close();
    },
  };
  running.push(self);
  return self;
}

const FACTS: HealthFacts = {
  running: true,
  watching: true,
  pending: 0,
  storeSilentFor: 10,
  oldestUnitFor: 0,
  leaseDuration: 1_000,
  workTimeout: 1_000,
  probes: false,
};

describe('the rules of /healthz and /readyz', () => {
  it.each<[string, Partial<HealthFacts>, boolean, boolean]>([
    // what                                          facts                                                   live   ready
    ['running, the store heard just now', {}, true, true],
    ['the lease not running', { running: false }, false, false],
    ['a unit held a lease past its work timeout', { oldestUnitFor: 2_001 }, false, false],
    ['a unit at its work timeout plus a lease', { oldestUnitFor: 2_000 }, true, true],
    ['no work timeout: units are not timed', { oldestUnitFor: 60_000, workTimeout: undefined }, true, true],
    ['the feed not subscribed', { watching: false }, true, false],
    ['silent for a lease, work pending', { storeSilentFor: 1_001, pending: 3 }, true, false],
    ['silent for a lease, idle, no probe', { storeSilentFor: 5_000 }, true, true],
    ['silent for a lease, idle, probe failed', { storeSilentFor: 5_000, probes: true }, true, false],
    ['never answered, idle, no probe', { storeSilentFor: Infinity }, true, false],
    ['silent for less than a lease, work pending', { storeSilentFor: 999, pending: 3 }, true, true],
  ])('%s: live %s, ready %s', (_, facts, live, ready) => {
    expect(livenessOf({ ...FACTS, ...facts }).ok).toBe(live);
    expect(readinessOf({ ...FACTS, ...facts }).ok).toBe(ready);
  });

  it('says why, in words', () => {
    expect(readinessOf({ ...FACTS, storeSilentFor: 1_500, pending: 2 }).reasons).toEqual([
      'the store has not answered for 1500 ms, more than a lease (1000 ms), with 2 keys pending',
    ]);
    expect(livenessOf({ ...FACTS, running: false }).reasons).toEqual([
      'the lease is not running (lease.run() not called, stopped or disposed)',
    ]);
  });
});

describe('serveHealth on a memory store', () => {
  it('a replica not yet running is neither live nor ready, then both once it runs and writes', async () => {
    const store = new MemoryStore();
    const r1 = await replica(store, 'r1', { start: false });
    expect(await r1.get('/healthz')).toMatchObject({
      status: 503,
      body: expect.stringMatching(/^not live: the lease is not running/),
    });
    expect((await r1.get('/readyz')).body).toMatch(/the store's feed is not subscribed/);

    r1.run();
    await store.put('spec', 'a', spec(1));
    await waitFor(() => r1.writer.lastWritten !== undefined, 'the first write');
    expect(await r1.get('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await r1.get('/readyz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await r1.status()).toMatchObject({
      writer: 'r1',
      lease: 'r1',
      state: 'leader',
      leader: 'r1',
      pending: 0,
      pendingKeys: [],
      lastWrite: { key: 'a', generation: 1, at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      live: true,
      ready: true,
      reasons: [],
    });
  });

  it('/metrics: the lease and the writer, every series labelled with the writer (prom-client)', async () => {
    const store = new MemoryStore();
    const r1 = await replica(store, 'r1');
    await store.put('spec', 'a', spec(1));
    await waitFor(() => r1.writer.lastWritten !== undefined, 'the first write');
    const metrics = await r1.get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics.body).toContain('writer_lease_leader{lease="r1",writer="r1"} 1\n');
    expect(metrics.body).toContain('writer_lease_pending_keys{lease="r1",writer="r1"} 0\n');
    expect(metrics.body).toContain('writer_lease_believed_leader{writer="r1",leader="r1"} 1\n');
    expect(metrics.body).toMatch(/^writer_lease_store_silence_seconds\{writer="r1"\} [\d.e-]+$/m);
    expect(metrics.body).toMatch(/^writer_lease_last_write_timestamp_seconds\{writer="r1"\} 1\d{9}/m);
  });

  it('a sharded lease: /status lists the shards it leads, /metrics reports each shard, /healthz and /readyz hold', async () => {
    const store = new MemoryStore();
    const lease = new ShardedWriterLease({ name: 'r1', shards: 4, leaseDuration: LEASE_MS, retryInterval: 20 });
    const writer = new StatusWriter({ store, lease, writer: 'r1' });
    const subscriptions = [writer.run(), lease.run()];
    const server = await serveHealth({
      lease,
      writer,
      leaseDuration: LEASE_MS,
      listen: { host: '127.0.0.1', port: 0 },
    });
    try {
      // Keys of two shards only: this replica leads those, and the other two stay in their election.
      const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
      const shards = [...new Set(keys.map((key) => lease.shardOf(key)))].slice(0, 2);
      const written = keys.filter((key) => shards.includes(lease.shardOf(key)));
      for (const key of written) await store.put('spec', key, spec(1));
      await waitFor(() => lease.state.leading.size === shards.length, 'the replica to lead the shards it wrote');
      const status = JSON.parse((await get(server.address.port, '/status')).body) as Record<string, unknown>;
      expect(status).toMatchObject({ state: 'leader', tick: null, shards: 4, leading: [...shards].sort() });
      const metrics = (await get(server.address.port, '/metrics')).body;
      for (let shard = 0; shard < 4; shard++) {
        const leads = shards.includes(shard) ? 1 : 0;
        expect(metrics).toContain(`writer_lease_leader{lease="r1/${shard}",writer="r1"} ${leads}\n`);
      }
      expect((await get(server.address.port, '/healthz')).status).toBe(200);
      expect((await get(server.address.port, '/readyz')).status).toBe(200);
    } finally {
      subscriptions.forEach((subscription) => subscription.unsubscribe());
      lease.dispose();
      await server.close();
    }
  });

  it('who leads: the follower believes in the leader, on believedLeader$, /status and /metrics', async () => {
    const store = new MemoryStore();
    const replicas = [await replica(store, 'r1'), await replica(store, 'r2')];
    const believed = new Map(replicas.map(({ writer }) => [writer.writer, [] as (string | undefined)[]]));
    for (const { writer } of replicas)
      writer.believedLeader$.subscribe((leader) => believed.get(writer.writer)!.push(leader));
    await store.put('spec', 'a', spec(1));
    // Both race in the election; whichever wins, the other follows it.
    const roles = () => {
      const leader = replicas.find(({ lease }) => lease.state.state === LeaseState.Leader);
      const follower = replicas.find(
        ({ writer }) =>
          leader !== undefined && writer.believedLeader === leader.writer.writer && writer !== leader.writer,
      );
      return leader && follower && { leader, follower };
    };
    await waitFor(() => roles() !== undefined, 'one replica to lead and the other to follow it');
    const { leader, follower } = roles()!;
    const [leaderName, followerName] = [leader.writer.writer, follower.writer.writer];
    expect(believed.get(leaderName)).toEqual([undefined, leaderName]);
    expect(believed.get(followerName)!.at(-1)).toBe(leaderName);
    expect(follower.lease.state.state).toBe(LeaseState.Follower);
    expect(await follower.status()).toMatchObject({ state: 'follower', leader: leaderName, ready: true });
    const metrics = (await follower.get('/metrics')).body;
    expect(metrics).toContain(`writer_lease_believed_leader{writer="${followerName}",leader="${leaderName}"} 1\n`);
    expect(metrics).toContain(`writer_lease_leader{lease="${followerName}",writer="${followerName}"} 0\n`);

    // The leader hands over: the follower follows nobody until it writes, then believes in itself.
    const before = believed.get(followerName)!.length;
    await leader.writer.handOver({ timeoutMs: 1_000 });
    await waitFor(() => follower.writer.believedLeader === undefined, 'the follower to follow nobody');
    await store.put('spec', 'a', spec(2));
    await waitFor(() => follower.writer.believedLeader === followerName, 'the follower to lead');
    expect(believed.get(followerName)!.slice(before)).toEqual([undefined, followerName]);
    expect((await follower.get('/metrics')).body).not.toContain(`leader="${leaderName}"`);
  });

  it('a leader cut off with work pending (its calls never come back) is not ready within a lease; still live', async () => {
    const memory = new MemoryStore();
    const link = cuttable(memory);
    const r1 = await replica(link.store, 'r1', { health: { store: undefined } });
    await memory.put('spec', 'a', spec(1));
    await waitFor(() => r1.lease.state.state === LeaseState.Leader, 'r1 to lead');
    expect((await r1.get('/readyz')).status).toBe(200);

    // The calls' connection goes silent; the feed's still brings a change: work pending whose calls hang.
    link.cut({ feed: false });
    const cutAt = performance.now();
    await memory.put('spec', 'a', spec(2));
    await eventually(async () => (await r1.get('/readyz')).status === 503, '/readyz to say 503', 5_000);
    const notReadyMs = performance.now() - cutAt;
    expect(notReadyMs).toBeGreaterThanOrEqual(LEASE_MS - 5);
    expect(notReadyMs).toBeLessThan(LEASE_MS + 1_000);
    expect((await r1.get('/readyz')).body).toMatch(
      /not ready: the store has not answered for \d+ ms, more than a lease \(200 ms\), with 1 keys pending/,
    );
    // The lease lets go of the hung unit at its work timeout: the machinery runs.
    expect(await r1.get('/healthz')).toMatchObject({ status: 200 });
  });

  it('an idle leader cut off (no call in flight) keeps its leader state; /readyz says not ready after a failed probe', async () => {
    const memory = new MemoryStore();
    const link = cuttable(memory);
    const r1 = await replica(link.store, 'r1', { health: { store: link.store } });
    await memory.put('spec', 'a', spec(1));
    await waitFor(() => r1.lease.state.state === LeaseState.Leader, 'r1 to lead');

    link.cut();
    const cutAt = performance.now();
    await eventually(async () => (await r1.get('/readyz')).status === 503, '/readyz to say 503', 5_000);
    const notReadyMs = performance.now() - cutAt;
    expect(notReadyMs).toBeLessThan(LEASE_MS + 1_000);
    expect(await r1.status()).toMatchObject({ state: 'leader', leader: 'r1', ready: false, live: true });
    expect((await r1.get('/readyz')).body).toMatch(/did not answer a probe within 200 ms/);

    link.restore();
    await eventually(async () => (await r1.get('/readyz')).status === 200, 'ready again once the store answers', 5_000);
  });

  it('/healthz fails when a unit is held a lease past its work timeout (the lease does not let go)', async () => {
    const store = new MemoryStore();
    // A lease without a timeout of its own: nothing lets go of a hung unit.
    const lease = new WriterLease({ leaseDuration: 50, retryInterval: 5, name: 'stuck' });
    const writer = new StatusWriter({ store, lease, writer: 'stuck' });
    const processing = lease.run();
    const server = await serveHealth({
      lease,
      writer,
      leaseDuration: 50,
      workTimeout: 50,
      listen: { host: '127.0.0.1', port: 0 },
    });
    try {
      lease.try('k', () => new Promise<WorkResult>(() => undefined));
      await eventually(
        async () => (await get(server.address.port, '/healthz')).status === 503,
        '/healthz to fail',
        5_000,
      );
      expect((await get(server.address.port, '/healthz')).body).toMatch(
        /not live: a unit has run for \d+ ms, past the work timeout \(50 ms\) by more than a lease \(50 ms\)/,
      );
    } finally {
      processing.unsubscribe();
      lease.dispose();
      await server.close();
    }
  });

  it('answers 404 naming the paths, 405 to anything but GET and HEAD', async () => {
    const r1 = await replica(new MemoryStore(), 'r1');
    expect(await r1.get('/nope')).toMatchObject({
      status: 404,
      body: 'no /nope; expected /healthz, /readyz, /metrics or /status\n',
    });
    expect(await r1.get('/healthz', 'POST')).toMatchObject({ status: 405 });
    expect(await r1.get('/healthz', 'HEAD')).toMatchObject({ status: 200, body: '' });
    expect((await r1.get('/readyz?verbose')).status).toBe(200);
  });
});

describe('bad input', () => {
  it('serveHealth names the option, what it expects and what it received', async () => {
    const store = new MemoryStore();
    const lease = new WriterLease({ leaseDuration: 100, retryInterval: 10 });
    const writer = new StatusWriter({ store, lease, writer: 'w' });
    const listen = { host: '127.0.0.1', port: 0 };
    await expect(serveHealth({ lease, writer, leaseDuration: -1, listen })).rejects.toThrow(
      'serveHealth: options.leaseDuration must be a finite number >= 0, received -1',
    );
    await expect(
      serveHealth({ lease, writer, leaseDuration: 100, listen: { host: '127.0.0.1', port: 70_000 } }),
    ).rejects.toThrow('serveHealth: options.listen.port must be an integer from 0 to 65535, received 70000');
    await expect(serveHealth({ lease: {} as WriterLease, writer, leaseDuration: 100, listen })).rejects.toThrow(
      'serveHealth: options.lease must be a WriterLease or a ShardedWriterLease, received an object (Object)',
    );
    await expect(serveHealth({ lease, writer: lease as never, leaseDuration: 100, listen })).rejects.toThrow(
      /options\.writer must be a StatusWriter/,
    );
    const first = await serveHealth({ lease, writer, leaseDuration: 100, listen });
    try {
      await expect(
        serveHealth({ lease, writer, leaseDuration: 100, listen: { host: '127.0.0.1', port: first.address.port } }),
      ).rejects.toThrow(
        new RegExp(`serveHealth: cannot listen on 127\\.0\\.0\\.1:${first.address.port}: .*EADDRINUSE`),
      );
    } finally {
      await first.close();
      lease.dispose();
    }
  });

  it('StatusWriter.run() twice, or a second StatusWriter running on one lease, throws naming both', () => {
    const store = new MemoryStore();
    const lease = new WriterLease({ leaseDuration: 100, retryInterval: 10, name: 'routes' });
    const first = new StatusWriter({ store, lease, writer: 'r1' });
    const second = new StatusWriter({ store, lease, writer: 'r2' });
    const watch = first.run();
    expect(() => first.run()).toThrow(
      'StatusWriter: run() called on "r1" while it already runs; expected one run() at a time ' +
        '(unsubscribe the first to run again), received a second call',
    );
    expect(() => second.run()).toThrow(
      'StatusWriter: options.lease "routes" is already run by StatusWriter "r1"; ' +
        'expected one StatusWriter per lease, received a second ("r2")',
    );
    watch.unsubscribe();
    // Once the first stopped, the lease is free: a watch that ended changes nothing.
    const secondWatch = second.run();
    expect(second.watching).toBe(true);
    expect(() => first.run()).toThrow(/already run by StatusWriter "r2"/);
    secondWatch.unsubscribe();
    expect(first.run().closed).toBe(false);
    lease.dispose();
  });
});

describe('replica --listen H:P', () => {
  const STORE = ['--store', 'redis://127.0.0.1:6379'];

  it.each([
    ['127.0.0.1:9464', { host: '127.0.0.1', port: 9464 }],
    ['0.0.0.0:1', { host: '0.0.0.0', port: 1 }],
    ['metrics.local:65535', { host: 'metrics.local', port: 65_535 }],
    ['[::1]:9464', { host: '::1', port: 9464 }],
  ])('%s', (flag, listen) => {
    expect(parseReplicaArgs([...STORE, '--listen', flag]).listen).toEqual(listen);
  });

  it('is off by default', () => {
    expect(parseReplicaArgs(STORE).listen).toBeUndefined();
  });

  it.each([['9464'], ['127.0.0.1'], ['127.0.0.1:0'], ['127.0.0.1:65536'], [':9464'], ['::1:9464'], ['host:port']])(
    '%s: a UsageError naming the flag, what it expects and what it received',
    (flag) => {
      const parse = () => parseReplicaArgs([...STORE, '--listen', flag]);
      expect(parse).toThrow(UsageError);
      expect(parse).toThrow(
        `--listen: expected HOST:PORT, a host and a port from 1 to 65535 (e.g. 0.0.0.0:9464 or [::1]:9464), received "${flag}"`,
      );
    },
  );

  it('exits 2 with one line naming --listen, and the usage', async () => {
    const { stream, text } = capture();
    const io: CliIO = { stdout: stream, stderr: stream };
    expect(await main(['replica', ...STORE, '--listen', '127.0.0.1:0'], io)).toBe(2);
    const [line, blank, usage] = text().split('\n');
    expect(line).toMatch(/^rx-writer-lease replica: --listen: expected HOST:PORT, .*received "127\.0\.0\.1:0"$/);
    expect(blank).toBe('');
    expect(usage).toMatch(/^Usage: rx-writer-lease replica/);
  });
});

describe('/metrics without prom-client', () => {
  it('serves the essential gauges in the text format, with the same names and labels', async () => {
    const store = new MemoryStore();
    let serve!: typeof serveHealth;
    jest.isolateModules(() => {
      jest.doMock('../src/packageRequire', () => ({
        packageRequire: (name: string) => {
          throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
        },
      }));
      ({ serveHealth: serve } = require('../src/health') as typeof import('../src/health'));
    });
    const lease = new WriterLease({ leaseDuration: LEASE_MS, retryInterval: 20, name: 'r"1' });
    const writer = new StatusWriter({ store, lease, writer: 'r"1' });
    const subscriptions = [lease.run(), writer.run()];
    const server = await serve({ lease, writer, leaseDuration: LEASE_MS, listen: { host: '127.0.0.1', port: 0 } });
    try {
      await store.put('spec', 'a', spec(1));
      await waitFor(() => writer.lastWritten !== undefined, 'the first write');
      const { status, contentType, body } = await get(server.address.port, '/metrics');
      expect(status).toBe(200);
      expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(body).toContain('# TYPE writer_lease_leader gauge\nwriter_lease_leader{lease="r\\"1",writer="r\\"1"} 1\n');
      expect(body).toContain('writer_lease_tick{lease="r\\"1",writer="r\\"1"} 0\n');
      expect(body).toContain('writer_lease_pending_keys{lease="r\\"1",writer="r\\"1"} 0\n');
      expect(body).toContain('writer_lease_believed_leader{writer="r\\"1",leader="r\\"1"} 1\n');
      expect(body).toMatch(/^writer_lease_store_silence_seconds\{writer="r\\"1"\} [\d.e-]+$/m);
      expect(body).toMatch(/^writer_lease_last_write_timestamp_seconds\{writer="r\\"1"\} 1\d{9}/m);
    } finally {
      subscriptions.forEach((subscription) => subscription.unsubscribe());
      lease.dispose();
      await server.close();
    }
  });
});

/** A store whose link can be cut: every call then hangs and the feed says nothing, as a silent connection. */
function cuttable(memory: MemoryStore) {
  let cut = false;
  let feedCut = false;
  const hang = <T>(): Promise<T> => new Promise<T>(() => undefined);
  const store: RecordStore = {
    url: memory.url,
    versioning: memory.versioning,
    get: (kind, key, options) => (cut ? hang() : memory.get(kind, key, options)),
    compareAndSet: (kind, key, value, expected, options) =>
      cut ? hang() : memory.compareAndSet(kind, key, value, expected, options),
    list: (options) => (cut ? hang() : memory.list(options)),
    put: (kind, key, value) => memory.put(kind, key, value),
    delete: (kind, key) => memory.delete(kind, key),
    changes: () => memory.changes().pipe(filter(() => !feedCut)),
    close: () => memory.close(),
  };
  return {
    store,
    cut({ feed = true }: { feed?: boolean } = {}) {
      cut = true;
      feedCut = feed;
    },
    restore() {
      cut = feedCut = false;
    },
  };
}
