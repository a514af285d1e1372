import { filter, firstValueFrom, take, timeout, toArray } from 'rxjs';
import {
  LeaseState,
  StatusWriter,
  StoreClosedError,
  WriterLease,
  type RecordChange,
  type RecordStore,
  type StatusWriterEvent,
} from '../src';
import { recordStoreConformance } from '../src/testing';
import {
  IngressStatusStore,
  SPEC_ANNOTATION,
  type IngressApi,
  type IngressWatch,
} from '../examples/kubernetes/ingressStatusStore';
import {
  minimalIngressClient,
  startIngressApiImitation,
  type IngressApiImitation,
} from './support/ingressApiImitation';
import { spec } from './support/records';
import { waitFor } from './support/waitFor';

/**
 * The Ingress RecordStore of docs/kubernetes.md (examples/kubernetes/ingressStatusStore.ts)
 * against an IMITATION of the Kubernetes API server (spec/support/ingressApiImitation.ts):
 * a small HTTP server on 127.0.0.1 that answers the Ingress calls the store makes with the
 * API server's semantics (resourceVersion as the compare-and-set fence, 409, 404, the status
 * subresource, watch from a version, 410 Gone after compaction). It is not a Kubernetes: no
 * API server can run on the test machines. What it shows is that the store keeps the
 * RecordStore contract, and a StatusWriter works on it, as far as the imitation is faithful.
 *
 * Over two clients: @kubernetes/client-node 2 itself, pointed at the imitation (on Node 20
 * with undici 7, pinned by package.json's overrides: the undici 8 it asks for needs Node
 * 22.19+), and a minimal node:http client with the same methods.
 */

type ClientNode = typeof import('@kubernetes/client-node');

/**
 * @kubernetes/client-node is an ES module, which jest's module loader cannot load (without
 * --experimental-vm-modules): Node's own require loads it (require(esm), Node 20.19+), or says why not.
 * `process.getBuiltinModule` gives Node's own `module`, where an import of it would give jest's.
 */
function loadClientNode(): { client: ClientNode } | { reason: string } {
  try {
    const { createRequire } = process.getBuiltinModule('node:module');
    return { client: createRequire(__filename)('@kubernetes/client-node') as ClientNode };
  } catch (error) {
    return { reason: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

function clientNodeOf(k8s: ClientNode, server: string): { api: IngressApi; watch: IngressWatch } {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'imitation', server, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'imitation', cluster: 'imitation', user: 'nobody' }],
    currentContext: 'imitation',
  });
  return { api: kc.makeApiClient(k8s.NetworkingV1Api), watch: new k8s.Watch(kc) };
}

const loaded = loadClientNode();
const CLIENTS = [
  { name: 'a minimal node:http client', namespace: 'minimal', connect: minimalIngressClient },
  ...('client' in loaded
    ? [
        {
          name: '@kubernetes/client-node 2',
          namespace: 'client-node',
          connect: (server: string) => clientNodeOf(loaded.client, server),
        },
      ]
    : []),
];

let server: IngressApiImitation;
beforeAll(async () => {
  server = await startIngressApiImitation();
});
afterAll(() => server?.close());

if ('reason' in loaded) {
  it.skip(`over @kubernetes/client-node 2: not run: the client does not load on Node ${process.version} (${loaded.reason}); on Node 20 it needs undici 7 (package.json's overrides)`, () =>
    undefined);
}

// Real HTTP and real timers: room for a busy CI machine.
jest.setTimeout(15_000);

describe.each(CLIENTS)('IngressStatusStore over $name', ({ namespace, connect }) => {
  const open = (inNamespace = namespace) => IngressStatusStore.open({ ...connect(server.url), namespace: inNamespace });
  let keys = 0;
  const freshKey = () => `ingress-${++keys}`;
  const opened: RecordStore[] = [];
  const openStore = async (inNamespace?: string) => {
    const store = await open(inNamespace);
    opened.push(store);
    return store;
  };
  afterAll(() => Promise.all(opened.map((store) => store.close())));

  const changesOf = (store: RecordStore, key: string, count: number): Promise<RecordChange[]> =>
    firstValueFrom(
      store.changes().pipe(
        filter((change) => change.key === key),
        take(count),
        toArray(),
        timeout(4_000),
      ),
    );

  recordStoreConformance('the RecordStore contract', () => open(`${namespace}-conformance`), {
    closedError: StoreClosedError,
  });

  it('writes the spec into the annotation and the status through the status subresource', async () => {
    const store = await openStore();
    const key = freshKey();
    const version = await store.put('spec', key, spec(1, 'admitted'));
    const written = await store.compareAndSet(
      'status',
      key,
      { generation: 1, value: 'admitted', writer: 'r1' },
      version,
    );
    expect(written).toEqual({ ok: true, version: expect.any(Number) });
    expect(server.requests).toContain(
      `PUT /apis/networking.k8s.io/v1/namespaces/${namespace}/ingresses/${key}/status 200`,
    );
    const { api } = connect(server.url);
    const ingress = await api.readNamespacedIngress({ namespace, name: key });
    expect(ingress.metadata?.annotations?.[SPEC_ANNOTATION]).toBe('{"generation":1,"value":"admitted"}');
    expect(ingress.status?.loadBalancer?.ingress).toEqual([
      { ports: [{ port: 0, protocol: 'TCP', error: '{"generation":1,"value":"admitted","writer":"r1"}' }] },
    ]);
    expect(ingress.metadata?.resourceVersion).toBe(String(written.ok && written.version));
  });

  it('keeps the Ingress when both parts are deleted: the record is gone, and a compare-and-set against null writes it again', async () => {
    const store = await openStore();
    const key = freshKey();
    await store.put('spec', key, spec(1));
    await store.put('status', key, spec(1));
    await store.delete('spec', key);
    await store.delete('status', key);
    const { api } = connect(server.url);
    expect((await api.readNamespacedIngress({ namespace, name: key })).metadata?.name).toBe(key);
    const again = await store.compareAndSet('status', key, spec(2), null);
    expect(again).toEqual({ ok: true, version: expect.any(Number) });
    expect(await store.compareAndSet('spec', key, spec(2), null)).toEqual({ ok: false, reason: 'conflict' });
    expect(await store.get('status', key)).toEqual({ value: spec(2), version: again.ok && again.version });
  });

  /** A store whose status writes let `race` run first: another client's write lands in between. */
  const racingStore = async (inNamespace: string, race: { next?: () => unknown }) => {
    const { api, watch } = connect(server.url);
    const racing: IngressApi = {
      listNamespacedIngress: (request) => api.listNamespacedIngress(request),
      readNamespacedIngress: (request) => api.readNamespacedIngress(request),
      createNamespacedIngress: (request) => api.createNamespacedIngress(request),
      replaceNamespacedIngress: (request) => api.replaceNamespacedIngress(request),
      replaceNamespacedIngressStatus: async (request) => {
        const next = race.next;
        race.next = undefined;
        await next?.();
        return api.replaceNamespacedIngressStatus(request);
      },
    };
    const store = await IngressStatusStore.open({ api: racing, watch, namespace: inNamespace });
    opened.push(store);
    return store;
  };

  it('takes the API server’s 409 as a refused compare-and-set, and its 404 (the Ingress deleted) too', async () => {
    const race: { next?: () => unknown } = {};
    const [a, b] = [await racingStore(namespace, race), await openStore()];
    const key = freshKey();
    const version = await a.put('spec', key, spec(1));
    const status = (writer: string) => ({ generation: 1, value: 'v1', writer });
    const path = `PUT /apis/networking.k8s.io/v1/namespaces/${namespace}/ingresses/${key}/status`;

    race.next = () => b.compareAndSet('status', key, status('b'), version); // lands first, on the same version
    expect(await a.compareAndSet('status', key, status('a'), version)).toEqual({ ok: false, reason: 'conflict' });
    expect(server.requests.filter((line) => line.startsWith(path))).toEqual([`${path} 200`, `${path} 409`]);
    expect((await a.get('status', key))?.value).toEqual(status('b'));

    const current = (await a.get('status', key))!.version;
    race.next = () => server.remove(namespace, key); // kubectl delete
    expect(await a.compareAndSet('status', key, status('a'), current)).toEqual({ ok: false, reason: 'conflict' });
    expect(server.requests.filter((line) => line.startsWith(path)).at(-1)).toBe(`${path} 404`);
    expect(await a.get('spec', key)).toBeUndefined();
  });

  it('resumes its watch from the last resourceVersion when the API server ends it: what changed meanwhile arrives', async () => {
    const [a, b] = [await openStore(), await openStore()];
    const key = freshKey();
    const seen = changesOf(a, key, 2);
    server.dropWatches();
    const first = await b.put('spec', key, spec(1));
    const second = await b.put('status', key, { generation: 1, value: 'v1', writer: 'b' });
    expect(await seen).toEqual([
      { kind: 'spec', key, value: spec(1), version: first },
      { kind: 'status', key, value: { generation: 1, value: 'v1', writer: 'b' }, version: second },
    ]);
  });

  it('lists again after 410 Gone (its version compacted away): changes and deletions made meanwhile arrive', async () => {
    const ns = `${namespace}-relist`;
    const a = await openStore(ns);
    const [changed, deleted] = [freshKey(), freshKey()];
    const live = firstValueFrom(a.changes().pipe(take(2), toArray(), timeout(4_000)));
    const changedAt = await a.put('spec', changed, spec(1));
    const deletedAt = await a.put('spec', deleted, spec(1));
    await live; // the feed saw both
    const relists = () => server.requests.filter((line) => line === `GET ${PATH}${ns}/ingresses 200`).length;
    const listedBefore = relists();
    const seen = firstValueFrom(a.changes().pipe(take(2), toArray(), timeout(4_000)));
    // While its watch is away, another client edits one Ingress and deletes the other; then etcd compacts.
    server.dropWatches();
    server.edit(ns, changed, (ingress) => {
      ingress.metadata!.annotations = { [SPEC_ANNOTATION]: JSON.stringify(spec(2)) };
    });
    server.remove(ns, deleted);
    server.compact();
    const changes = await seen;
    expect(changes).toContainEqual({ kind: 'spec', key: deleted, value: undefined, version: deletedAt });
    expect(changes).toContainEqual({ kind: 'spec', key: changed, value: spec(2), version: expect.any(Number) });
    expect(changes.find(({ key }) => key === changed)!.version).toBeGreaterThan(changedAt);
    expect(relists()).toBe(listedBefore + 1);
  });

  it('runs two StatusWriter replicas: each change written once, through the status subresource; no demotion', async () => {
    const ns = `${namespace}-replicas`;
    const driver = await openStore(ns);
    const replicas = await Promise.all(['r1', 'r2'].map(async (writer) => replica(await openStore(ns), writer)));
    const changes = 20;
    for (let generation = 1; generation <= changes; generation++) {
      const key = `ingress-${generation % 4}`;
      await driver.put('spec', key, spec(generation));
      await waitFor(
        () => replicas.some(({ events }) => events.some((e) => e.type === 'written' && e.generation === generation)),
        `the write of generation ${generation}`,
        5_000,
      );
    }
    const all = replicas.flatMap(({ events }) => events);
    expect(all.filter(({ type }) => type === 'written')).toHaveLength(changes);
    expect(all.filter(({ type }) => type === 'conflict').length).toBeLessThanOrEqual(2); // the election's
    expect(replicas.map(({ demotions }) => demotions())).toEqual([0, 0]);
    expect(replicas.filter(({ lease }) => lease.state.state === LeaseState.Leader)).toHaveLength(1);
    const writes = server.requests.filter((line) => /^PUT .*\/status 200$/.test(line) && line.includes(`/${ns}/`));
    expect(writes).toHaveLength(changes);
    replicas.forEach(({ stop }) => stop());
  }, 30_000);

  it('a label edit between a replica’s decision and its write: 409, read again, written; the leader stays leader', async () => {
    const ns = `${namespace}-edit`;
    const race: { next?: () => unknown } = {};
    const driver = await openStore(ns);
    const one = replica(await racingStore(ns, race), 'r1');
    await driver.put('spec', 'edited', spec(1));
    await waitFor(() => one.lease.state.state === LeaseState.Leader, 'the first write', 5_000);
    race.next = () =>
      server.edit(ns, 'edited', (ingress) => {
        ingress.metadata!.labels = { team: 'web' };
      });
    await driver.put('spec', 'edited', spec(2));
    await waitFor(() => one.events.some((e) => e.type === 'written' && e.generation === 2), 'the write of 2', 5_000);
    expect(one.events.map(({ type }) => type)).toEqual(['written', 'conflict', 'written']);
    expect(one.events[1]).toEqual({ type: 'conflict', key: 'edited', generation: 2, writer: undefined });
    expect(one.lease.state.state).toBe(LeaseState.Leader);
    expect(one.demotions()).toBe(0);
    one.stop();
  });
});

const PATH = '/apis/networking.k8s.io/v1/namespaces/';

/** A replica: its lease and StatusWriter on `store`, running; what its writer did; how often it was demoted. */
function replica(store: RecordStore, writer: string) {
  const lease = new WriterLease({ leaseDuration: 2_000, retryInterval: 100, name: writer });
  const statusWriter = new StatusWriter({ store, lease, writer });
  const events: StatusWriterEvent[] = [];
  statusWriter.events$.subscribe((event) => events.push(event));
  let demotions = 0;
  let last = lease.state.state;
  lease.state$.subscribe(({ state }) => {
    if (last === LeaseState.Leader && state === LeaseState.Follower) demotions++;
    last = state;
  });
  const running = [statusWriter.run(), lease.run()];
  const stop = () => {
    running.forEach((subscription) => subscription.unsubscribe());
    lease.dispose();
  };
  return { lease, events, demotions: () => demotions, stop };
}
