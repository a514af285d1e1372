import { startRedisCluster } from './clusters';
import { startEtcd, startPostgres, startRedis, type TestServer } from './servers';

/** The stores the suites run on: in memory, or on a server this file starts. */
export type StoreKind = 'memory' | 'redis' | 'redis-cluster' | 'etcd' | 'postgres';
export type ServerKind = Exclude<StoreKind, 'memory'>;

/** Every kind, in the order the suites run them. */
export const STORE_KINDS: readonly StoreKind[] = ['memory', 'redis', 'redis-cluster', 'etcd', 'postgres'];

/** Redis, etcd and PostgreSQL: the stores of one server each (not the Redis Cluster). */
export const SERVER_KINDS: readonly ServerKind[] = ['redis', 'etcd', 'postgres'];

/** How each kind reads in a title: `$label`. */
const LABELS: Record<StoreKind, string> = {
  memory: 'memory',
  redis: 'Redis',
  'redis-cluster': 'Redis Cluster',
  etcd: 'etcd',
  postgres: 'PostgreSQL',
};

const STARTS: Record<ServerKind, () => Promise<TestServer>> = {
  redis: startRedis,
  // 3 masters without replicas: failover is spec/redisCluster.spec.ts's.
  'redis-cluster': () => startRedisCluster({ masters: 3, replicasPerMaster: 0 }),
  etcd: startEtcd,
  postgres: startPostgres,
};

/** How long a server may take to start or stop. */
export const SERVER_START_MS = 60_000;

/** One store of {@link describeEachStore}. */
export interface StoreUnderTest {
  readonly kind: StoreKind;
  readonly label: string;
  /**
   * Its server, started before the describe's own `beforeAll` hooks and
   * stopped after its `afterAll` hooks; undefined in memory. Read it in
   * hooks and tests, not while the describe is collected.
   */
  readonly server: TestServer | undefined;
}

/** Servers started together for a whole file: see {@link startStoreServers}. */
export interface StoreServers {
  /** The running server of `kind`; throws when it was not started. */
  get(kind: ServerKind): TestServer;
}

/**
 * Starts the servers of `kinds` all at once before the file's tests, and
 * stops them after; for a file whose other describes use the same servers
 * as its {@link describeEachStore} (pass them as `servers`). Call it at the
 * top level of the file.
 */
export function startStoreServers(kinds: readonly ServerKind[]): StoreServers {
  const running = new Map<ServerKind, TestServer>();
  beforeAll(async () => {
    const started = await Promise.allSettled(kinds.map(async (kind) => running.set(kind, await STARTS[kind]())));
    const failed = started.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
  }, SERVER_START_MS);
  afterAll(async () => {
    await Promise.all([...running.values()].map((server) => server.stop()));
  }, SERVER_START_MS);
  return {
    get(kind) {
      const server = running.get(kind);
      if (server === undefined) throw new Error(`no ${kind} server was started`);
      return server;
    },
  };
}

export interface EachStoreOptions {
  /** The kinds to run on, in this order; every kind by default. */
  readonly kinds?: readonly StoreKind[];
  /** Servers started for the whole file, rather than one per describe. */
  readonly servers?: StoreServers;
}

/**
 * `describe(title, body)` for each store kind, with its server: `title`
 * names the store with `$kind` (`redis-cluster`) or `$label` (`Redis
 * Cluster`). Each describe starts its server before its tests and stops it
 * after them, unless `options.servers` (from {@link startStoreServers})
 * has them.
 *
 * @example
 * ```ts
 * describeEachStore('$kind store', (store) => {
 *   it('opens', async () => (await openStore(store.server?.url ?? 'memory')).close());
 * });
 * ```
 */
export function describeEachStore(title: string, body: (store: StoreUnderTest) => void): void;
export function describeEachStore(
  title: string,
  options: EachStoreOptions,
  body: (store: StoreUnderTest) => void,
): void;
export function describeEachStore(
  title: string,
  ...args: [(store: StoreUnderTest) => void] | [EachStoreOptions, (store: StoreUnderTest) => void]
): void {
  const [{ kinds = STORE_KINDS, servers } = {}, body] = args.length === 1 ? [undefined, args[0]] : args;
  describe.each(kinds.map((kind) => ({ kind, label: LABELS[kind] })))(title, ({ kind, label }) => {
    const store: { kind: StoreKind; label: string; server: TestServer | undefined } = {
      kind,
      label,
      server: undefined,
    };
    const own = kind !== 'memory' && servers === undefined;
    beforeAll(async () => {
      if (kind === 'memory') return;
      store.server = servers === undefined ? await STARTS[kind]() : servers.get(kind);
    }, SERVER_START_MS);
    body(store);
    // Declared after the body's hooks, so that it runs after them (jest runs afterAll hooks in order).
    afterAll(async () => {
      if (own) await store.server?.stop();
    }, SERVER_START_MS);
  });
}
