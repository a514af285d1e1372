import { Driver, type DriverOptions } from '../src/cli/driver';
import { seededRandom } from '../src/cli/seededRandom';
import { MemoryStore } from '../src/stores/memory';
import type { Generational, RecordKind, RecordStore, SpecValue } from '../src/stores/store';

/**
 * A memory store whose puts answer after `delayMs` (a round trip), recording
 * each put's key and generation as it lands, and how many were in flight at
 * most.
 */
class SlowStore extends MemoryStore {
  readonly landed: { key: string; generation: number }[] = [];
  most = 0;
  #inFlight = 0;

  constructor(readonly delayMs: number) {
    super();
  }

  override async put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number> {
    this.#inFlight++;
    this.most = Math.max(this.most, this.#inFlight);
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    this.#inFlight--;
    this.landed.push({ key, generation: value.generation });
    return super.put(kind, key, value);
  }
}

/** A driver of `keys` in bursts on `store`, reading nothing back. */
function burstDriver(store: RecordStore, keys: readonly string[], options: Partial<DriverOptions> = {}): Driver {
  return new Driver({
    store,
    keys,
    updates: 0,
    rate: 1,
    random: seededRandom(1),
    burst: true,
    checkLost: false,
    ...options,
  });
}

describe('Driver: the demo changes specs at a steady rate', () => {
  it("writes without waiting for the writes before it, except the key's own: other keys overlap, a key's changes land in order", async () => {
    const store = new SlowStore(20);
    const { landed } = store;
    const keys = ['a', 'b', 'c', 'd'];
    const driver = new Driver({ store, keys, updates: 120, rate: 2_000, random: seededRandom(3), checkLost: false });
    const made: { key: string; generation: number }[] = [];
    driver.updates$.subscribe(({ key, generation }) => made.push({ key, generation }));
    await driver.run();

    expect(driver.done).toBe(120);
    expect(landed).toHaveLength(120);
    // One write in flight at a time would have taken 120 × 20 ms; the rate needs several at once.
    expect(store.most).toBeGreaterThan(1);
    for (const key of keys) {
      const generations = landed.filter((put) => put.key === key).map((put) => put.generation);
      const mades = made.filter((change) => change.key === key).map((change) => change.generation);
      expect(generations).toEqual(mades);
      expect(generations).toEqual(generations.map((_, i) => i + 1));
      expect(driver.generations.get(key)).toBe(generations.length);
      expect((await store.get<SpecValue>('spec', key))?.value.generation).toBe(generations.length);
    }
  });

  it('a burst writes every key once, at most 500 writes in flight', async () => {
    const store = new SlowStore(5);
    const { landed } = store;
    const keys = Array.from({ length: 1_200 }, (_, i) => `key-${i}`);
    await burstDriver(store, keys).run();

    expect(new Set(landed.map((put) => put.key)).size).toBe(1_200);
    expect(landed.every((put) => put.generation === 1)).toBe(true);
    expect(store.most).toBe(500);
  });

  it('bursts: every key changes once per burst, and the next burst waits for betweenBursts after the writes land', async () => {
    const store = new SlowStore(2);
    const { landed } = store;
    const keys = ['a', 'b', 'c'];
    const between: number[] = [];
    const driver = burstDriver(store, keys, {
      bursts: 3,
      betweenBursts: async () => {
        // Every write of the burst before has landed, and none of the next has left.
        between.push(landed.length);
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(landed).toHaveLength(between.at(-1)!);
      },
    });
    await driver.run();

    expect(between).toEqual([3, 6]);
    // Burst n writes generation n of every key, all of them before burst n + 1 begins.
    for (const burst of [1, 2, 3]) {
      const writes = landed.slice((burst - 1) * 3, burst * 3);
      expect(writes.map(({ key }) => key).sort()).toEqual(keys);
      expect(writes.every(({ generation }) => generation === burst)).toBe(true);
    }
    expect(driver.done).toBe(9);
  });

  it('after stop(), run() waits for the writes in flight and rejects with the error of one that failed for good', async () => {
    const refused = new Error('store down');
    let calls = 0;
    const store = new (class extends MemoryStore {
      override put(): Promise<number> {
        calls++;
        return Promise.reject(refused);
      }
    })();
    const driver = new Driver({
      store,
      keys: ['a'],
      updates: 5,
      rate: 1_000,
      random: seededRandom(1),
      checkLost: false,
    });
    const running = driver.run();
    // A failing write is tried again every 100 ms (a store failing over); stop() ends the retries.
    await new Promise((resolve) => setTimeout(resolve, 150));
    driver.stop();
    await expect(running).rejects.toBe(refused);
    expect(calls).toBeGreaterThanOrEqual(2);
  });

  it('with checkLost, a key is read back before its next change, and an acknowledged change the store lost is counted once', async () => {
    let dropped = false;
    const store = new (class extends MemoryStore {
      // The store acknowledges the second change of 'a' and loses it (a failover of a replicated store).
      override put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number> {
        if (key === 'a' && value.generation === 2 && !dropped) {
          dropped = true;
          return Promise.resolve(99);
        }
        return super.put(kind, key, value);
      }
    })();
    const driver = new Driver({ store, keys: ['a'], updates: 3, rate: 1_000, random: seededRandom(1) });
    await driver.run();

    expect(driver.lostWrites).toBe(1);
    expect((await store.get<SpecValue>('spec', 'a'))?.value.generation).toBe(3);
    expect(driver.generations.get('a')).toBe(3);
  });
});
