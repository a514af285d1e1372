/**
 * The compare-and-sets of one turn on etcd, which the conformance suite
 * (spec/stores.spec.ts) checks for their outcomes only: here the
 * transactions are counted by the server itself (its `/metrics`).
 */
import { openEtcdStore } from '../src/stores/etcd';
import type { RecordStore } from '../src/stores/store';
import { startEtcd, type TestServer } from './support/servers';
import { spec } from './support/records';

const SERVER_START_MS = 60_000;

describe('etcd store, compare-and-sets made in one turn', () => {
  let server: TestServer;
  let store: RecordStore;

  beforeAll(async () => {
    server = await startEtcd();
    store = await openEtcdStore(server.url, { prefix: 'batched' });
  }, SERVER_START_MS);

  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  /** The transactions the server has handled, whatever their answer, by its own count. */
  async function transactions(): Promise<number> {
    const metrics = await (await fetch(`http://${new URL(server.url).host}/metrics`)).text();
    const handled = metrics.matchAll(/^grpc_server_handled_total\{[^}]*grpc_method="Txn"[^}]*\} (\d+)/gm);
    return [...handled].reduce((sum, [, count]) => sum + Number(count), 0);
  }

  it('go out as one transaction when every one is applied, each record at its revision', async () => {
    const a = await store.put('spec', 'a', spec(1));
    const before = await transactions();

    const outcomes = await Promise.all([
      store.compareAndSet('spec', 'a', spec(2), a),
      store.compareAndSet('spec', 'b', spec(1), null),
      store.compareAndSet('status', 'a', spec(1, 'quotes " and \\ backslashes, é ✓'), null),
    ]);

    expect(await transactions()).toBe(before + 1);
    const [revision] = outcomes.map((outcome) => (outcome.ok ? outcome.version : NaN));
    expect(outcomes).toEqual([
      { ok: true, version: revision },
      { ok: true, version: revision },
      { ok: true, version: revision },
    ]);
    expect(await store.get('spec', 'a')).toEqual({ value: spec(2), version: revision });
    expect(await store.get('spec', 'b')).toEqual({ value: spec(1), version: revision });
    expect(await store.get('status', 'a')).toEqual({
      value: spec(1, 'quotes " and \\ backslashes, é ✓'),
      version: revision,
    });
  });

  it('are each tried alone when one of them is refused: the others are applied', async () => {
    const c = await store.put('spec', 'c', spec(1));
    const before = await transactions();

    const outcomes = await Promise.all([
      store.compareAndSet('spec', 'c', spec(2), c - 1),
      store.compareAndSet('spec', 'd', spec(1), null),
      store.compareAndSet('spec', 'f', spec(1), null),
    ]);

    // The batch's transaction, refused whole, then one for each.
    expect(await transactions()).toBe(before + 4);
    expect(outcomes).toEqual([
      { ok: false, reason: 'conflict' },
      { ok: true, version: expect.any(Number) },
      { ok: true, version: expect.any(Number) },
    ]);
    expect(await store.get('spec', 'c')).toEqual({ value: spec(1), version: c });
    expect(await store.get('spec', 'f')).toEqual({
      value: spec(1),
      version: (outcomes[2] as { version: number }).version,
    });
  });

  it('never put one key twice in a transaction: the second write of a key waits for the first', async () => {
    const e = await store.put('spec', 'e', spec(1));
    const before = await transactions();

    const [first, second] = await Promise.all([
      store.compareAndSet('spec', 'e', spec(2), e),
      store.compareAndSet('spec', 'e', spec(3), e),
    ]);

    // One alone in each call: the plain transaction of one write, each.
    expect(await transactions()).toBe(before + 2);
    expect(first).toEqual({ ok: true, version: expect.any(Number) });
    expect(second).toEqual({ ok: false, reason: 'conflict' });
  });
});
