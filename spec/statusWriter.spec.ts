import { asyncScheduler, filter, firstValueFrom } from 'rxjs';
import {
  ContentionTracker,
  StatusWriter,
  WorkResult,
  WriterLease,
  constantBackoff,
  type RecordStore,
  type StatusValue,
} from '../src';
import { MemoryStore } from '../src/stores/memory';
import { workContext } from './support/workContext';
import { spec, status } from './support/records';

/** A clock a test sets by hand, for what the status writer decides from its scheduler. */
function manualClock(start: number) {
  let now = start;
  return {
    now: () => now,
    schedule: asyncScheduler.schedule.bind(asyncScheduler),
    set: (at: number) => (now = at),
  };
}

/** `store` with some methods replaced, to stage a race or a failure. */
function wrap(store: RecordStore, overrides: Partial<RecordStore>): RecordStore {
  return {
    url: store.url,
    get: (kind, key, options) => store.get(kind, key, options),
    compareAndSet: (kind, key, value, expected, options) => store.compareAndSet(kind, key, value, expected, options),
    put: (kind, key, value) => store.put(kind, key, value),
    delete: (kind, key) => store.delete(kind, key),
    changes: () => store.changes(),
    close: () => store.close(),
    ...overrides,
  };
}

function replica(
  store: RecordStore,
  writer: string,
  extra: Partial<ConstructorParameters<typeof StatusWriter>[0]> = {},
) {
  const lease = new WriterLease({ leaseDuration: 200, retryInterval: 5, backoff: constantBackoff(5), name: writer });
  const statusWriter = new StatusWriter({ store, lease, writer, ...extra });
  return { lease, statusWriter };
}

describe('StatusWriter: one unit, row by row of the scenario table', () => {
  let store: MemoryStore;
  beforeEach(() => {
    store = new MemoryStore();
  });

  it('writes the status with compare-and-set and returns extend', async () => {
    const { statusWriter } = replica(store, 'r1');
    await store.put('spec', 'a', spec(1));
    await expect(statusWriter.unit('a')(workContext())).resolves.toBe(WorkResult.Extend);
    expect((await store.get<StatusValue>('status', 'a'))?.value).toMatchObject({
      generation: 1,
      value: 'v1',
      writer: 'r1',
    });
  });

  it('status current, written by another replica: extend(key) on the lease, result none', async () => {
    const clock = manualClock(1_000);
    const { lease, statusWriter } = replica(store, 'r1', { scheduler: clock });
    await store.put('spec', 'a', spec(1));
    await store.put('status', 'a', { ...status(1, 'r2'), at: 4e12 }); // the other machine's clock: never read
    const extended = jest.spyOn(lease, 'extend');
    const unit = statusWriter.unit('a'); // submitted at 1000; generation 1 was never seen on the feed
    clock.set(1_700);
    await expect(unit(workContext('a'))).resolves.toBe(WorkResult.None);
    // A write of unknown age renews as of the submission, on this replica's clock.
    expect(extended).toHaveBeenCalledWith('a', 1_000);
  });

  it('a write of a generation seen on the feed renews as of when this replica saw it, whatever its `at` says', async () => {
    const clock = manualClock(0);
    const { lease, statusWriter } = replica(store, 'r1', { scheduler: clock });
    const watch = statusWriter.run();
    clock.set(2_000);
    await store.put('spec', 'a', spec(1)); // seen at 2000
    clock.set(2_500);
    await store.put('status', 'a', { ...status(1, 'r2'), at: -5e9 }); // a wall clock far behind
    const extended = jest.spyOn(lease, 'extend');
    clock.set(3_000);
    await expect(statusWriter.unit('a')(workContext('a'))).resolves.toBe(WorkResult.None);
    expect(extended).toHaveBeenCalledWith('a', 2_000);
    watch.unsubscribe();
  });

  it('hands the signal to every store call, and a unit whose signal aborted writes nothing', async () => {
    const signals: (AbortSignal | undefined)[] = [];
    const controller = new AbortController();
    const watched = wrap(store, {
      get: async (kind, key, options) => {
        signals.push(options?.signal);
        const read = await store.get(kind, key, options);
        controller.abort(new Error('let go')); // the lease lets go of the unit between read and write
        return read as never;
      },
    });
    const { statusWriter } = replica(watched, 'r1');
    await store.put('spec', 'a', spec(1));
    await expect(statusWriter.unit('a')(workContext('a', controller.signal))).resolves.toEqual({
      result: WorkResult.Release,
      retry: true,
    });
    expect(signals).toEqual([controller.signal, controller.signal]);
    expect(await store.get('status', 'a')).toBeUndefined();
  });

  it('status current, written by us: nothing, result none', async () => {
    const { lease, statusWriter } = replica(store, 'r1');
    await store.put('spec', 'a', spec(1));
    await store.put('status', 'a', status(1, 'r1'));
    const extended = jest.spyOn(lease, 'extend');
    await expect(statusWriter.unit('a')(workContext())).resolves.toBe(WorkResult.None);
    expect(extended).not.toHaveBeenCalled();
  });

  it('record gone: release without retry', async () => {
    const { statusWriter } = replica(store, 'r1');
    await expect(statusWriter.unit('missing')(workContext())).resolves.toBe(WorkResult.Release);
  });

  it('version conflict: release with retry, and the other write stands', async () => {
    await store.put('spec', 'a', spec(1));
    // Another replica writes another value between our read and each compare-and-set of ours.
    const racing = wrap(store, {
      compareAndSet: async (kind, key, value, expected) => {
        await store.put('status', 'a', status(1, 'r2', 'theirs'));
        return store.compareAndSet(kind, key, value, expected);
      },
    });
    const writer = new StatusWriter({ store: racing, lease: replica(store, 'r1').lease, writer: 'r1' });
    const events = firstValueFrom(writer.events$);
    await expect(writer.unit('a')(workContext('a'))).resolves.toEqual({ result: WorkResult.Release, retry: true });
    await expect(events).resolves.toMatchObject({ type: 'conflict', key: 'a' });
    expect((await store.get<StatusValue>('status', 'a'))?.value.writer).toBe('r2');
  });

  it('contended: release without retry, and nothing written', async () => {
    const contention = new ContentionTracker();
    const { lease, statusWriter } = replica(store, 'r1', { contention });
    const running = [lease.run(), statusWriter.run()];
    const written = firstValueFrom(statusWriter.events$.pipe(filter((e) => e.type === 'written')));
    await store.put('spec', 'a', spec(1));
    await written; // the tracker holds our value
    await store.put('status', 'a', status(1, 'r2', 'theirs')); // a change away from it: contended
    expect(contention.isContended('a')).toBe(true);
    await expect(statusWriter.unit('a')(workContext())).resolves.toBe(WorkResult.Release);
    expect((await store.get<StatusValue>('status', 'a'))?.value.value).toBe('theirs');
    running.forEach((subscription) => subscription.unsubscribe());
    contention.dispose();
  });

  it('any other store error: release with retry, reported as an error event', async () => {
    const broken = wrap(store, {
      get: async () => {
        throw new Error('connection reset');
      },
    });
    const { lease } = replica(store, 'r1');
    const writer = new StatusWriter({ store: broken, lease, writer: 'r1' });
    const reported = firstValueFrom(writer.events$);
    await expect(writer.unit('a')(workContext('a'))).resolves.toEqual({ result: WorkResult.Release, retry: true });
    await expect(reported).resolves.toMatchObject({ type: 'error', key: 'a' });
  });

  it('uncoordinated: the same work, but the lease only ever hears none', async () => {
    const { statusWriter } = replica(store, 'r1', { coordinate: false });
    await store.put('spec', 'a', spec(1));
    await expect(statusWriter.unit('a')(workContext())).resolves.toEqual({ result: WorkResult.None, retry: false });
    expect((await store.get<StatusValue>('status', 'a'))?.value.writer).toBe('r1');
  });

  it('rejects bad options naming the option', () => {
    const { lease } = replica(store, 'r1');
    expect(() => new StatusWriter({ store, lease, writer: '' })).toThrow(
      /options\.writer must be a non-empty string, received ""/,
    );
    expect(() => new StatusWriter({ store: {} as RecordStore, lease, writer: 'w' })).toThrow(TypeError);
  });
});

describe('StatusWriter: three replicas on one store', () => {
  it('converge with about one write per spec change', async () => {
    const store = new MemoryStore();
    const replicas = ['r1', 'r2', 'r3'].map((name) => replica(store, name));
    const running = replicas.flatMap(({ lease, statusWriter }) => [lease.run(), statusWriter.run()]);
    const counts = { written: 0, conflict: 0 };
    for (const { statusWriter } of replicas) {
      statusWriter.events$.subscribe((event) => {
        if (event.type === 'written' || event.type === 'conflict') counts[event.type]++;
      });
    }
    const keys = ['a', 'b', 'c', 'd'];
    let updates = 0;
    for (let generation = 1; generation <= 10; generation++) {
      for (const key of keys) {
        await store.put('spec', key, spec(generation));
        updates++;
        // Let the leader write each change before the next, as a steady driver would.
        await firstValueFrom(
          store
            .changes()
            .pipe(
              filter((c) => c.kind === 'status' && c.key === key && (c.value as StatusValue).generation === generation),
            ),
        );
      }
    }
    for (const key of keys) expect((await store.get<StatusValue>('status', key))?.value.generation).toBe(10);
    expect(counts.written).toBe(updates);
    expect((counts.written + counts.conflict) / updates).toBeLessThanOrEqual(1.1);
    const leaders = replicas.filter(({ lease }) => lease.state.state === 'leader');
    expect(leaders).toHaveLength(1);
    running.forEach((subscription) => subscription.unsubscribe());
  });
});

describe('StatusWriter: a store that lost status writes (a Redis failover)', () => {
  it('writes a status that went back again, with no spec change to prompt it', async () => {
    const store = new MemoryStore();
    const { lease, statusWriter } = replica(store, 'r1');
    const running = [lease.run(), statusWriter.run()];
    const statusAt = (generation: number) =>
      firstValueFrom(
        store
          .changes()
          .pipe(
            filter(
              (c) =>
                c.kind === 'status' && c.key === 'a' && (c.value as StatusValue | undefined)?.generation === generation,
            ),
          ),
      );
    const written = statusAt(2);
    await store.put('spec', 'a', spec(1));
    await store.put('spec', 'a', spec(2));
    await written;

    // What the feed shows when a promoted replica lacks the last status write: the status at an
    // older generation. The spec (generation 2) did not change.
    const rewritten = statusAt(2);
    await store.put('status', 'a', status(1, 'r1'));
    await rewritten;
    expect((await store.get<StatusValue>('status', 'a'))?.value).toMatchObject({ generation: 2, writer: 'r1' });
    running.forEach((subscription) => subscription.unsubscribe());
  });

  it('writes a status that is gone again', async () => {
    const store = new MemoryStore();
    const { lease, statusWriter } = replica(store, 'r1');
    const running = [lease.run(), statusWriter.run()];
    const statusWritten = () =>
      firstValueFrom(store.changes().pipe(filter((c) => c.kind === 'status' && c.value !== undefined)));
    const written = statusWritten();
    await store.put('spec', 'a', spec(1));
    await written;

    const rewritten = statusWritten();
    await store.delete('status', 'a');
    await rewritten;
    expect((await store.get<StatusValue>('status', 'a'))?.value).toMatchObject({ generation: 1, writer: 'r1' });
    running.forEach((subscription) => subscription.unsubscribe());
  });
});
