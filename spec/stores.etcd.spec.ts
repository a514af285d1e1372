/**
 * The writes of one turn on etcd, which the conformance suite
 * (spec/stores.spec.ts) checks for their outcomes only: here the
 * transactions and puts are counted by the server itself (its `/metrics`).
 */
import { openEtcdStore } from '../src/stores/etcd';
import type { RecordStore } from '../src/stores/store';
import { startEtcd, type TestServer } from './support/servers';
import { spec } from './support/records';

const SERVER_START_MS = 60_000;

describe('etcd store, writes made in one turn', () => {
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

  /** The calls of `method` the server has handled, whatever their answer, by its own count. */
  async function handled(method: 'Txn' | 'Put'): Promise<number> {
    const metrics = await (await fetch(`http://${new URL(server.url).host}/metrics`)).text();
    const counts = metrics.matchAll(/^grpc_server_handled_total\{[^}]*grpc_method="(\w+)"[^}]*\} (\d+)/gm);
    return [...counts].reduce((sum, [, name, count]) => (name === method ? sum + Number(count) : sum), 0);
  }
  const transactions = (): Promise<number> => handled('Txn');

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

  it('put together in one transaction with the compare-and-sets, a put alone is a plain put', async () => {
    const g = await store.put('spec', 'g', spec(1));
    const [txnBefore, putBefore] = [await transactions(), await handled('Put')];

    const [put, other, set] = await Promise.all([
      store.put('spec', 'h', spec(1)),
      store.put('status', 'h', spec(1, 'é ✓')),
      store.compareAndSet('spec', 'g', spec(2), g),
    ]);
    const alone = await store.put('spec', 'i', spec(1));

    expect([await transactions(), await handled('Put')]).toEqual([txnBefore + 1, putBefore + 1]);
    expect([other, set]).toEqual([put, { ok: true, version: put }]);
    expect(alone).toBeGreaterThan(put);
    expect(await store.get('status', 'h')).toEqual({ value: spec(1, 'é ✓'), version: put });
    expect(await store.get('spec', 'i')).toEqual({ value: spec(1), version: alone });
  });

  it("apply a put beside a refused compare-and-set all the same, and keep one key's writes in their order", async () => {
    const j = await store.put('spec', 'j', spec(1));
    const [txnBefore, putBefore] = [await transactions(), await handled('Put')];

    const [refused, put, afterPut] = await Promise.all([
      store.compareAndSet('spec', 'j', spec(2), j - 1),
      store.put('spec', 'k', spec(1)),
      // Made after the put of k in the same turn: it goes out once the put is answered, and finds k present.
      store.compareAndSet('spec', 'k', spec(2), null),
    ]);

    // The batch of the first two, refused whole; then each alone: the compare-and-set's transaction, the plain
    // put; then the third write's transaction.
    expect([await transactions(), await handled('Put')]).toEqual([txnBefore + 3, putBefore + 1]);
    expect([refused, afterPut]).toEqual([
      { ok: false, reason: 'conflict' },
      { ok: false, reason: 'conflict' },
    ]);
    expect(await store.get('spec', 'k')).toEqual({ value: spec(1), version: put });
  });
});
