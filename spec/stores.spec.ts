import { filter, firstValueFrom, take, throwError, timeout, toArray, type Observable } from 'rxjs';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { ChangeFeed } from '../src/stores/changeFeed';
import { StoreClosedError, StoreUnreachableError, StoreUrlError, StoreValueError } from '../src/stores/errors';
import { MemoryStore } from '../src/stores/memory';
import { openStore } from '../src/stores/openStore';
import { parseRedisClusterUrl } from '../src/stores/redisClusterUrl';
import type { RecordChange, RecordStore, SpecValue } from '../src/stores/store';
import { recordStoreConformance } from '../src/testing';
import { describeEachStore, SERVER_START_MS, type StoreKind } from './support/describeEachStore';
import { freePort, type TestServer } from './support/servers';
import { spec } from './support/records';

/** Two clients of one store: for a server, two connections; in memory, the one store. */
interface Harness {
  readonly url: string;
  open(): Promise<RecordStore>;
  restart(): Promise<void>;
}

/** The harness of a store: `server` is the one describeEachStore started (it stops it); none in memory. */
function setUp(server: TestServer | undefined): Harness {
  if (!server) {
    const store = new MemoryStore();
    return { url: store.url, open: async () => store, restart: async () => undefined };
  }
  return { url: server.url, open: () => openStore(server.url), restart: () => server.restart() };
}

/** How long a change may take to arrive: below jest's 5 s, so that a missing one fails with a message. */
const CHANGE_WAIT_MS = 4_000;

function changesOf(store: RecordStore, key: string, count: number, waitMs = CHANGE_WAIT_MS): Promise<RecordChange[]> {
  return firstValueFrom(
    store.changes().pipe(
      filter((change) => change.key === key),
      take(count),
      toArray(),
      timeout({
        first: waitMs,
        with: () => throwError(() => new Error(`fewer than ${count} changes of ${key} in ${waitMs} ms`)),
      }),
    ),
  );
}

/** How many PUBLISH commands one Redis has run (`INFO commandstats`, scripts' included); 0 elsewhere. */
async function publishCalls(kind: StoreKind, url: string): Promise<number> {
  if (kind !== 'redis') return 0;
  const admin = new Redis(url);
  try {
    const stats = await admin.info('commandstats');
    return Number(/cmdstat_publish:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  } finally {
    admin.disconnect();
  }
}

/** Makes the server drop the change feeds' connections, and only those. */
type DropFeeds = (url: string) => Promise<void>;

async function dropRedisSubscribers(url: string): Promise<void> {
  const admin = new Redis(url);
  try {
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  } finally {
    admin.disconnect();
  }
}

/** Every node: the feed has a subscriber connection on each master. */
async function dropRedisClusterSubscribers(url: string): Promise<void> {
  let dropped = 0;
  for (const { host, port } of parseRedisClusterUrl(url).seeds) {
    const admin = new Redis({ host, port });
    try {
      dropped += Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    } finally {
      admin.disconnect();
    }
  }
  expect(dropped).toBeGreaterThan(0);
}

async function dropPostgresListeners(url: string): Promise<void> {
  const admin = new Client(url);
  await admin.connect();
  try {
    const { rowCount } = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`,
    );
    expect(rowCount).toBeGreaterThan(0);
  } finally {
    await admin.end();
  }
}

/**
 * How each store's change feeds are dropped. None for etcd: etcd3 resumes a
 * dropped watch from the last revision it received, nothing to re-read.
 */
const DROP_FEEDS: Partial<Record<StoreKind, DropFeeds>> = {
  redis: dropRedisSubscribers,
  'redis-cluster': dropRedisClusterSubscribers,
  postgres: dropPostgresListeners,
};

describeEachStore('$kind store', (backend) => {
  const name = backend.kind;
  const dropFeeds = DROP_FEEDS[name];
  let harness: Harness;
  let a: RecordStore;
  let b: RecordStore;
  let keys = 0;
  const freshKey = (): string => `${name}-key-${++keys}`;

  beforeAll(async () => {
    harness = setUp(backend.server);
    [a, b] = await Promise.all([harness.open(), harness.open()]);
  }, SERVER_START_MS);

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
  }, SERVER_START_MS);

  // The contract every store keeps (src/testing.ts, as `rx-writer-lease/testing` publishes it), with a
  // memory store of its own: its last test closes it.
  let memory: MemoryStore | undefined;
  recordStoreConformance(
    'the RecordStore contract',
    async () => (backend.server ? openStore(backend.server.url) : (memory ??= new MemoryStore())),
    { closedError: StoreClosedError, changeTimeoutMs: CHANGE_WAIT_MS, setupTimeoutMs: SERVER_START_MS },
  );

  it('says whether it may lose an acknowledged write: only Redis Cluster here (asynchronous replication)', () => {
    expect(a.losesAcknowledgedWrites ?? false).toBe(name === 'redis-cluster');
  });

  it('refuses a value without a numeric generation, naming the store and the value', async () => {
    const error = await a.put('spec', freshKey(), { value: 'x' } as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreValueError);
    expect((error as Error).message).toContain('{"value":"x"}');
  });

  it('delivers a value too large for a notification (10 kB) on the change feed', async () => {
    const key = freshKey();
    const large = spec(1, 'x'.repeat(10_000));
    const seen = changesOf(a, key, 1);
    const version = await b.put('status', key, large);
    expect(await seen).toEqual([{ kind: 'status', key, value: large, version }]);
  });

  it('delivers each of the writes made in one turn as its own change, a refused one left out', async () => {
    const keys = Array.from({ length: 40 }, freshKey);
    const taken = keys[7];
    const first = await b.compareAndSet('status', taken, spec(1), null);
    if (!first.ok) throw new Error(`${taken} was written before`);
    const seen = firstValueFrom(
      a.changes().pipe(
        filter((change) => keys.includes(change.key) && (change.value as SpecValue | undefined)?.generation === 2),
        take(keys.length - 1),
        toArray(),
        timeout(CHANGE_WAIT_MS),
      ),
    );
    const publishedBefore = await publishCalls(name, harness.url);
    // One turn: a Redis store sends them as one script call, whose changes are published as one message.
    const outcomes = await Promise.all(
      keys.map((key) => b.compareAndSet('status', key, spec(2), key === taken ? first.version - 1 : null)),
    );
    expect(outcomes[7]).toEqual({ ok: false, reason: 'conflict' });
    const written = keys.flatMap((key, i): RecordChange[] => {
      const outcome = outcomes[i];
      return outcome.ok ? [{ kind: 'status', key, value: spec(2), version: outcome.version }] : [];
    });
    const byVersion = (changes: readonly RecordChange[]) => [...changes].sort((x, y) => x.version - y.version);
    const got = await seen;
    expect(byVersion(got)).toEqual(byVersion(written));
    // In version order where one feed carries them in the order they were committed: not on Redis Cluster
    // (a feed per bucket), nor PostgreSQL (its sequence hands versions out before the commits).
    if (name !== 'redis-cluster' && name !== 'postgres') expect(got).toEqual(byVersion(got));
    // Counted by Redis: one PUBLISH for the 39 changes.
    if (name === 'redis') expect((await publishCalls(name, harness.url)) - publishedBefore).toBe(1);
  });

  (dropFeeds ? it : it.skip)('re-reads when its feed’s connection drops: what changed meanwhile arrives', async () => {
    const gone = freshKey();
    const added = freshKey();
    const put = changesOf(a, gone, 1);
    const version = await b.put('spec', gone, spec(1));
    await put;
    const deleted = changesOf(a, gone, 1);
    const created = changesOf(a, added, 1);
    await dropFeeds!(harness.url);
    // The feed reconnects after 100 ms at the earliest: these changes are published while it is away.
    await b.delete('spec', gone);
    const addedVersion = await b.put('spec', added, spec(2));
    expect(await deleted).toEqual([{ kind: 'spec', key: gone, value: undefined, version }]);
    expect(await created).toEqual([{ kind: 'spec', key: added, value: spec(2), version: addedVersion }]);
  });

  (name === 'memory' ? it.skip : it)(
    'keeps delivering changes after the server restarts',
    async () => {
      await harness.restart();
      const key = freshKey();
      // The feed reconnects with growing delays of at most 2 s.
      const seen = changesOf(a, key, 1, SERVER_START_MS / 2);
      const version = await b.put('spec', key, spec(7));
      expect(await seen).toEqual([{ kind: 'spec', key, value: spec(7), version }]);
    },
    SERVER_START_MS,
  );
});

describe('memory store', () => {
  it('settles without timers: the change is emitted before put returns', () => {
    const store = new MemoryStore();
    const changes: RecordChange[] = [];
    store.changes().subscribe((change) => changes.push(change));
    void store.put('spec', 'a', spec(1));
    expect(changes).toEqual([{ kind: 'spec', key: 'a', value: spec(1), version: 1 }]);
  });

  it('shows every subscriber the changes in write order, even those written from a subscriber', async () => {
    const store = new MemoryStore();
    const late: number[] = [];
    store.changes().subscribe((change) => {
      if (change.key === 'a') void store.put('spec', 'b', spec(2));
    });
    store.changes().subscribe((change) => late.push(change.version));
    await store.put('spec', 'a', spec(1));
    expect(late).toEqual([1, 2]);
  });

  it('keeps what was written, whatever the caller does to its object afterwards', async () => {
    const store = new MemoryStore();
    const value = { generation: 1, value: 'x' };
    await store.put('spec', 'a', value);
    value.value = 'changed';
    expect((await store.get('spec', 'a'))?.value).toEqual(spec(1, 'x'));
  });
});

describe('ChangeFeed re-read after a reconnect', () => {
  const record = (key: string, version: number): RecordChange => ({ kind: 'spec', key, value: spec(version), version });
  const collect = (changes$: Observable<RecordChange>): RecordChange[] => {
    const changes: RecordChange[] = [];
    changes$.subscribe((change) => changes.push(change));
    return changes;
  };

  it('emits what changed and what is gone, and nothing for what it already saw', async () => {
    let stored = [record('same', 1), record('changed', 2), record('gone', 3)];
    const feed = new ChangeFeed(async () => stored);
    await feed.reread();
    const changes = collect(feed.changes$);
    stored = [record('same', 1), record('changed', 5), record('new', 6)];
    await feed.reread();
    expect(changes).toEqual([
      record('changed', 5),
      record('new', 6),
      { kind: 'spec', key: 'gone', value: undefined, version: 3 },
    ]);
    feed.close();
  });

  it('gives a deletion notified without a version the last version it saw, and emits none for a record it lacks', async () => {
    const feed = new ChangeFeed(async () => [record('read', 4)]);
    await feed.reread();
    const changes = collect(feed.changes$);
    feed.push(record('pushed', 7));
    feed.pushDeletion('spec', 'read');
    feed.pushDeletion('spec', 'pushed');
    feed.pushDeletion('spec', 'pushed');
    feed.pushDeletion('spec', 'never');
    expect(changes).toEqual([
      record('pushed', 7),
      { kind: 'spec', key: 'read', value: undefined, version: 4 },
      { kind: 'spec', key: 'pushed', value: undefined, version: 7 },
    ]);
    feed.close();
  });

  it('lets a change pushed during a re-read win over the re-read, which may be older', async () => {
    let release!: (records: RecordChange[]) => void;
    const feed = new ChangeFeed(() => new Promise((resolve) => (release = resolve)));
    const changes = collect(feed.changes$);
    const reread = feed.reread();
    await Promise.resolve();
    feed.push(record('a', 9));
    feed.push({ kind: 'spec', key: 'b', value: undefined, version: 4 });
    release([record('a', 8), record('b', 4)]);
    await reread;
    expect(changes).toEqual([record('a', 9), { kind: 'spec', key: 'b', value: undefined, version: 4 }]);
    feed.close();
  });

  it('drops a pushed change older than what it already emitted (a resumed watch replaying)', async () => {
    const feed = new ChangeFeed(async () => [record('a', 7)]);
    const changes = collect(feed.changes$);
    await feed.reread();
    feed.push(record('a', 6));
    feed.push(record('a', 8));
    expect(changes).toEqual([record('a', 7), record('a', 8)]);
    feed.close();
  });
});

describe('openStore', () => {
  it.each(['not a url', 'redis//127.0.0.1:6379', 'redis://127.0.0.1:notaport'])(
    'refuses the malformed URL %j with StoreUrlError naming it',
    async (url) => {
      const error = await openStore(url).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUrlError);
      expect((error as Error).message).toContain(`"${url}"`);
    },
  );

  it('refuses a URL without a host', async () => {
    await expect(openStore('redis://')).rejects.toThrow(/Store URL "redis:\/\/": no host; expected memory, redis/);
  });

  it('refuses an unknown scheme with StoreUrlError naming the URL and the schemes it knows', async () => {
    const error = await openStore('mysql://127.0.0.1:3306/db').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect((error as Error).message).toBe(
      'Store URL "mysql://127.0.0.1:3306/db": unknown scheme "mysql:"; ' +
        'expected memory, redis://HOST:PORT, redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME, ' +
        'redis-cluster://HOST:PORT[,HOST:PORT...], etcd://HOST:PORT[,HOST:PORT...] or postgres://USER@HOST:PORT/DB',
    );
  });

  it('opens a memory store for "memory"', async () => {
    const store = await openStore('memory');
    expect(store).toBeInstanceOf(MemoryStore);
    await store.close();
  });

  it.each([
    ['redis', (port: number) => `redis://127.0.0.1:${port}`],
    ['redis-cluster', (port: number) => `redis-cluster://127.0.0.1:${port}`],
    ['etcd', (port: number) => `etcd://127.0.0.1:${port}`],
    ['postgres', (port: number) => `postgres://postgres@127.0.0.1:${port}/postgres`],
  ])('fails within seconds with StoreUnreachableError naming the URL when %s is down', async (_name, urlOf) => {
    const url = urlOf(await freePort());
    const started = Date.now();
    const error = await openStore(url, { connectTimeout: 2000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnreachableError);
    expect((error as Error).message).toContain(`Cannot reach the store at ${url}: `);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('keeps the password out of its messages', async () => {
    const url = `postgres://postgres:secret@127.0.0.1:${await freePort()}/postgres`;
    const error = await openStore(url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnreachableError);
    expect((error as Error).message).toContain('postgres://postgres:***@127.0.0.1:');
    expect((error as Error).message).not.toContain('secret');
  });
});

describe('lazy client libraries', () => {
  afterEach(() => ['ioredis', 'etcd3', 'pg'].forEach((name) => jest.dontMock(name)));

  it('loads none of ioredis, etcd3 and pg to import the stores and open a memory store', async () => {
    const loaded: string[] = [];
    let open!: typeof openStore;
    jest.isolateModules(() => {
      for (const name of ['ioredis', 'etcd3', 'pg']) {
        jest.doMock(name, () => {
          loaded.push(name);
          return jest.requireActual(name);
        });
      }
      ({ openStore: open } = require('../src/stores/openStore'));
    });
    await (await open('memory')).close();
    expect(loaded).toEqual([]);
  });
});
