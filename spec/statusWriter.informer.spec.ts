import { delayWhen, filter, firstValueFrom, of, timer, toArray, take } from 'rxjs';
import {
  ContentionTracker,
  LeaseState,
  MemoryStore,
  StatusWriter,
  WorkResult,
  WriterLease,
  constantBackoff,
  type RecordStore,
  type SpecValue,
  type StatusValue,
  type StatusWriterEvent,
} from '../src';
import { StoreValueError } from '../src/stores/errors';
import { waitFor } from './support/waitFor';
import { workContext } from './support/workContext';
import { spec, status } from './support/records';

/**
 * The informer pattern (docs/architecture.md, "The informer"): a status
 * writer works from what the store's feed told it, reads the store only to
 * recover, and tells the contention tracker of each status version once.
 * Conflicts that no other writer caused do not demote; a record that cannot
 * be decoded does not stall the others.
 */

/** `store` with its calls counted, and some replaced to stage a failure. */
function counted(store: RecordStore, overrides: Partial<RecordStore> = {}) {
  const calls = { get: 0, compareAndSet: 0, list: 0 };
  const wrapped: RecordStore = {
    url: store.url,
    versioning: store.versioning,
    get: (kind, key, options) => (calls.get++, store.get(kind, key, options)),
    compareAndSet: (kind, key, value, expected, options) => (
      calls.compareAndSet++,
      store.compareAndSet(kind, key, value, expected, options)
    ),
    list: (options) => (calls.list++, store.list!(options)),
    put: (kind, key, value) => store.put(kind, key, value),
    delete: (kind, key) => store.delete(kind, key),
    changes: () => store.changes(),
    close: () => store.close(),
    ...overrides,
  };
  return { store: wrapped, calls };
}

function replica(
  store: RecordStore,
  writer: string,
  extra: Partial<ConstructorParameters<typeof StatusWriter>[0]> = {},
) {
  const lease = new WriterLease({ leaseDuration: 200, retryInterval: 5, backoff: constantBackoff(5), name: writer });
  const statusWriter = new StatusWriter({ store, lease, writer, ...extra });
  const events: StatusWriterEvent[] = [];
  statusWriter.events$.subscribe((event) => events.push(event));
  const running = [lease.run(), statusWriter.run()];
  const stop = () => running.forEach((subscription) => subscription.unsubscribe());
  return { lease, statusWriter, events, stop };
}

const statusOf = async (store: RecordStore, key: string) => (await store.get<StatusValue>('status', key))?.value;

describe('the informer: units work from the feed', () => {
  it('a leader writes each change with one compare-and-set and no read', async () => {
    const memory = new MemoryStore();
    const { store, calls } = counted(memory);
    const { events, stop } = replica(store, 'r1');
    await waitFor(() => calls.list === 1, 'the list on start');
    for (let generation = 1; generation <= 20; generation++) {
      await memory.put('spec', `k${generation % 4}`, spec(generation));
      await waitFor(() => events.filter((e) => e.type === 'written').length === generation, `write ${generation}`);
    }
    expect(calls).toEqual({ get: 0, compareAndSet: 20, list: 1 });
    stop();
  });

  it('on start, lists the store and writes the statuses behind their spec, reading no record', async () => {
    const memory = new MemoryStore();
    await memory.put('spec', 'behind', spec(2));
    await memory.put('status', 'behind', status(1, 'old'));
    await memory.put('spec', 'current', spec(3));
    await memory.put('status', 'current', status(3, 'old'));
    const { store, calls } = counted(memory);
    const { events, stop } = replica(store, 'r1');
    await waitFor(() => events.some((e) => e.type === 'written'), 'the write of the record behind');
    expect(events).toEqual([{ type: 'written', key: 'behind', generation: 2 }]);
    expect(calls).toEqual({ get: 0, compareAndSet: 1, list: 1 });
    expect(await statusOf(memory, 'current')).toMatchObject({ writer: 'old' });
    stop();
  });

  it('without list, reads a record once, when it first needs it', async () => {
    const memory = new MemoryStore();
    await memory.put('spec', 'a', spec(1));
    const { store, calls } = counted(memory, { list: undefined });
    const { statusWriter, stop } = replica(store, 'r1');
    statusWriter.sync('a');
    await waitFor(() => calls.compareAndSet === 1, 'the first write');
    expect(calls.get).toBe(2); // spec and status, once
    await memory.put('spec', 'a', spec(2));
    await waitFor(() => calls.compareAndSet === 2, 'the second write');
    expect(calls.get).toBe(2);
    stop();
  });

  it('synced$: false until the list is in the cache, then true (HasSynced), the records behind already submitted', async () => {
    const memory = new MemoryStore();
    await memory.put('spec', 'behind', spec(2));
    let listed: (() => void) | undefined;
    const { store } = counted(memory, {
      list: async (options) => {
        await new Promise<void>((resolve) => (listed = resolve));
        return memory.list(options);
      },
    });
    const lease = new WriterLease({ leaseDuration: 200, retryInterval: 5, backoff: constantBackoff(5), name: 'r1' });
    const statusWriter = new StatusWriter({ store, lease, writer: 'r1' });
    const seen: boolean[] = [];
    statusWriter.synced$.subscribe((synced) => seen.push(synced));
    const submitted: string[] = [];
    lease.events$.pipe(filter((event) => event.type === 'submitted')).subscribe(({ key }) => submitted.push(key));
    const running = [lease.run(), statusWriter.run()];
    await waitFor(() => listed !== undefined, 'the list to be asked for');
    expect(seen).toEqual([false]);
    listed!();
    await firstValueFrom(statusWriter.synced$.pipe(filter(Boolean)));
    expect(seen).toEqual([false, true]);
    expect(submitted).toEqual(['behind']);
    running.forEach((subscription) => subscription.unsubscribe());
  });

  it('synced$: true at once when the store cannot list, and when the list fails (the cache fills record by record)', async () => {
    for (const list of [undefined, () => Promise.reject(new Error('ECONNRESET'))]) {
      const { store } = counted(new MemoryStore(), { list });
      const { statusWriter, stop } = replica(store, 'r1');
      await expect(firstValueFrom(statusWriter.synced$.pipe(filter(Boolean)))).resolves.toBe(true);
      stop();
    }
  });

  it('a spec change while our write is on its way: the next unit writes on our version, not on the one before it', async () => {
    const memory = new MemoryStore();
    let changeSpecFirst = true;
    const { store, calls } = counted(memory, {
      // The spec moves while the first compare-and-set is on its way...
      compareAndSet: async (kind, key, value, expected, options) => {
        calls.compareAndSet++;
        if (changeSpecFirst) {
          changeSpecFirst = false;
          await memory.put('spec', 'a', spec(2));
        }
        return memory.compareAndSet(kind, key, value, expected, options);
      },
      // ...and, as on Redis under load, our write's echo comes after its answer.
      changes: () => memory.changes().pipe(delayWhen(({ kind }) => (kind === 'status' ? timer(30) : of(0)))),
    });
    const { events, stop } = replica(store, 'r1');
    await waitFor(() => calls.list === 1, 'the list on start');
    await memory.put('spec', 'a', spec(1));
    await waitFor(() => events.filter((e) => e.type === 'written').length === 2, 'both writes');
    // Written on the version before ours, the second would be refused by our own write: a conflict and a read.
    expect(events.map((e) => e.type)).toEqual(['written', 'written']);
    expect(calls).toEqual({ get: 0, compareAndSet: 2, list: 1 });
    expect(await statusOf(memory, 'a')).toMatchObject({ generation: 2, writer: 'r1' });
    stop();
  });

  it('a read overlapping a spec change keeps the status it read: the unit writes on its version, not as new', async () => {
    const memory = new MemoryStore();
    await memory.put('spec', 'a', spec(1));
    await memory.put('status', 'a', status(1, 'old'));
    let moveSpec = true;
    const { store, calls } = counted(memory, {
      list: undefined, // the record is read when first needed, as by a newcomer before its list came
      // The spec moves while the first read is on its way: the feed tells the new spec before the read answers.
      get: (async (kind, key, options) => {
        calls.get++;
        const part = await memory.get(kind, key, options);
        if (moveSpec && kind === 'status') {
          moveSpec = false;
          await memory.put('spec', 'a', spec(2));
        }
        return part;
      }) as RecordStore['get'],
    });
    const { lease, statusWriter, events, stop } = replica(store, 'r1');
    statusWriter.sync('a');
    await waitFor(() => events.some((e) => e.type === 'written' && e.generation === 2), 'the write of generation 2');
    await waitFor(() => lease.size === 0, 'no work left');
    // Before, the status read was dropped with the spec's: the record, held with no status, was written as new
    // and refused (a conflict with "old", a read, a second write).
    expect(events.filter((e) => e.type === 'conflict')).toEqual([]);
    expect(calls).toEqual({ get: 2, compareAndSet: 1, list: 0 });
    expect(await statusOf(memory, 'a')).toMatchObject({ generation: 2, writer: 'r1' });
    stop();
  });

  it("another writer's status, seen while our write was on its way and refusing it: a conflict with that writer, a release", async () => {
    const memory = new MemoryStore();
    let races = 0;
    const { store } = counted(memory, {
      // A lagging writer's status lands just before each of our two attempts, and the feed tells it before our
      // write is answered.
      compareAndSet: async (kind, key, value, expected, options) => {
        if (races > 0) {
          races--;
          await memory.put('status', key, status(1, 'r2', `theirs ${races}`));
        }
        return memory.compareAndSet(kind, key, value, expected, options);
      },
    });
    const { lease, events, stop } = replica(store, 'r1');
    await memory.put('spec', 'a', spec(1));
    await waitFor(() => events.length === 1, 'the first write');
    races = 2;
    await memory.put('spec', 'a', spec(2));
    await waitFor(() => events.length === 3, 'both refusals');
    // Before, the status before our write was read after it, from the cache the feed had updated meanwhile: the
    // status "had not changed", so the second refusal was nobody's too (no release), and the leader raced on.
    expect(events.slice(1)).toEqual([
      { type: 'conflict', key: 'a', generation: 2, writer: 'r2' },
      { type: 'conflict', key: 'a', generation: 2, writer: 'r2' },
    ]);
    expect(lease.state.state).toBe(LeaseState.Follower);
    stop();
  });

  it('a refused write reads the record again (the cache was wrong), then writes on the version read', async () => {
    const memory = new MemoryStore();
    // A feed that lost one message: another tool's status write never reaches the cache.
    const { store, calls } = counted(memory, {
      changes: () =>
        memory.changes().pipe(filter(({ value }) => (value as Partial<StatusValue> | undefined)?.writer !== 'tool')),
    });
    const { events, stop } = replica(store, 'r1');
    await waitFor(() => calls.list === 1, 'the list on start');
    await memory.put('spec', 'a', spec(1));
    await waitFor(() => events.some((e) => e.type === 'written'), 'the first write');
    await memory.put('status', 'a', status(1, 'tool', 'x'));
    await memory.put('spec', 'a', spec(2));
    await waitFor(() => events.filter((e) => e.type === 'written').length === 2, 'the write after the refusal');
    expect(events.map((e) => e.type)).toEqual(['written', 'conflict', 'written']);
    expect(events[1]).toMatchObject({ writer: 'tool' });
    expect(calls.get).toBe(2); // one read of both parts, after the refusal
    expect(await statusOf(memory, 'a')).toMatchObject({ generation: 2, writer: 'r1' });
    stop();
  });
});

describe('contention: each status version is told once, and errors are not contention', () => {
  it('one foreign write and three ECONNRESET errors do not make a key contended', async () => {
    const memory = new MemoryStore();
    let failures = 3;
    const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const { store } = counted(memory, {
      compareAndSet: (kind, key, value, expected, options) =>
        failures-- > 0 ? Promise.reject(reset()) : memory.compareAndSet(kind, key, value, expected, options),
    });
    const contention = new ContentionTracker();
    const changed = jest.spyOn(contention, 'changed');
    const { events, stop } = replica(store, 'r1', { contention });
    await memory.put('spec', 'a', spec(1));
    await memory.put('status', 'a', status(1, 'r2', 'theirs')); // the foreign write, seen once on the feed
    await memory.put('spec', 'a', spec(2)); // our write of it fails three times, then lands
    await waitFor(() => events.some((e) => e.type === 'written'), 'the write after the errors');
    expect(events.filter((e) => e.type === 'error')).toHaveLength(3);
    expect(events.some((e) => e.type === 'contended')).toBe(false);
    expect(contention.isContended('a')).toBe(false);
    expect(changed.mock.calls.filter(([, value]) => value === 'theirs')).toHaveLength(1);
    expect(await statusOf(memory, 'a')).toMatchObject({ writer: 'r1', value: 'v2' });
    stop();
    contention.dispose();
  });
});

describe('one version per record (a Kubernetes object): conflicts that no other writer caused', () => {
  it('a write refused because the spec moved retries without release: the leader stays leader', async () => {
    const memory = new MemoryStore({ versioning: 'record' });
    const { lease, stop } = replica(memory, 'r1');
    await memory.put('spec', 'a', spec(1));
    await waitFor(() => lease.state.state === LeaseState.Leader, 'the first write');
    // The spec moves between the unit's decision and its write: the write is refused on the record's version.
    const moved = counted(memory, {
      compareAndSet: async (kind, key, value, expected, options) => {
        await memory.put('spec', 'a', spec(3));
        return memory.compareAndSet(kind, key, value, expected, options);
      },
    });
    const writer = new StatusWriter({ store: moved.store, lease, writer: 'r1' });
    const events = firstValueFrom(writer.events$);
    await memory.put('spec', 'a', spec(2));
    await expect(writer.unit('a')(workContext('a'))).resolves.toEqual({ result: WorkResult.None, retry: true });
    await expect(events).resolves.toMatchObject({ type: 'conflict', key: 'a', writer: undefined });
    expect(lease.state.state).toBe(LeaseState.Leader);
    stop();
  });

  it("a write refused because another writer's status landed still releases", async () => {
    const memory = new MemoryStore({ versioning: 'record' });
    await memory.put('spec', 'a', spec(1));
    const { lease, stop } = replica(memory, 'r1');
    let at = 0;
    // Another writer lands a new status of its own before each compare-and-set of ours.
    const raced = counted(memory, {
      compareAndSet: async (kind, key, value, expected, options) => {
        const now = await memory.get('status', key);
        const theirs = { ...status(1, 'r2', 'theirs'), at: ++at };
        await memory.compareAndSet('status', key, theirs, now?.version ?? expected);
        return memory.compareAndSet(kind, key, value, expected, options);
      },
    });
    const writer = new StatusWriter({ store: raced.store, lease, writer: 'r1' });
    const events = firstValueFrom(writer.events$);
    await expect(writer.unit('a')(workContext('a'))).resolves.toEqual({ result: WorkResult.Release, retry: true });
    await expect(events).resolves.toMatchObject({ type: 'conflict', key: 'a', writer: 'r2' });
    stop();
  });

  it('three replicas on a record-versioned store converge with one write per change and no demotion', async () => {
    const memory = new MemoryStore({ versioning: 'record' });
    const replicas = ['r1', 'r2', 'r3'].map((name) => replica(memory, name));
    const demotions: string[] = [];
    for (const { lease } of replicas) {
      let last = lease.state.state;
      lease.state$.subscribe(({ state }) => {
        if (last === LeaseState.Leader && state === LeaseState.Follower) demotions.push(lease.name);
        last = state;
      });
    }
    const all = () => replicas.flatMap(({ events }) => events);
    for (let generation = 1; generation <= 30; generation++) {
      const key = `k${generation % 5}`;
      await memory.put('spec', key, spec(generation));
      await waitFor(
        () => all().some((e) => e.type === 'written' && e.key === key && e.generation === generation),
        `the write of ${generation}`,
      );
    }
    expect(demotions).toEqual([]);
    const attempts = all().filter((e) => e.type === 'written' || e.type === 'conflict').length;
    expect(attempts / 30).toBeLessThanOrEqual(1.1);
    replicas.forEach(({ stop }) => stop());
  });
});

describe('one bad record, one bad key', () => {
  it('a status that cannot be decoded counts as none: an error event, then overwritten on its version', async () => {
    const memory = new MemoryStore();
    await memory.put('spec', 'a', spec(2));
    await memory.put('status', 'a', status(1, 'r2'));
    const version = (await memory.get('status', 'a'))!.version;
    const poisoned = counted(memory, {
      list: undefined,
      get: (kind, key, options) =>
        kind === 'status'
          ? Promise.reject(new StoreValueError({ url: memory.url, record: 'status a', received: 'garbage{', version }))
          : memory.get(kind, key, options),
    });
    const lease = new WriterLease({ leaseDuration: 200, retryInterval: 5 });
    const writer = new StatusWriter({ store: poisoned.store, lease, writer: 'r1' });
    const events = firstValueFrom(writer.events$.pipe(take(2), toArray()));
    await expect(writer.unit('a')(workContext('a'))).resolves.toBe(WorkResult.Extend);
    const [error, written] = await events;
    expect(error).toMatchObject({ type: 'error', key: 'a' });
    expect(String((error as { error: unknown }).error)).toContain('garbage{');
    expect(written).toMatchObject({ type: 'written', key: 'a', generation: 2 });
    expect(await statusOf(memory, 'a')).toMatchObject({ generation: 2, writer: 'r1' });
  });

  it('a spec that cannot be decoded: an error event and no work, no retry, until the spec changes', async () => {
    const memory = new MemoryStore();
    const { events, stop, lease } = replica(memory, 'r1');
    const started = jest.fn();
    lease.events$.pipe(filter((e) => e.type === 'started')).subscribe(started);
    await memory.put('spec', 'a', { generation: 1, value: 42 } as unknown as SpecValue);
    await waitFor(() => events.length === 1, 'the error');
    expect(events[0]).toMatchObject({ type: 'error', key: 'a' });
    await waitFor(() => lease.size === 0, 'nothing pending');
    expect(started).toHaveBeenCalledTimes(1);
    await memory.put('spec', 'a', spec(2));
    await waitFor(() => events.some((e) => e.type === 'written'), 'the write once the spec is good');
    stop();
  });
});
