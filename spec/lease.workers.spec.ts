import { LeaseState, WorkResult, WriterLease, type WorkReturn } from '../src';
import { deferred, eventLog, waitFor, type Deferred } from './support/waitFor';
import { leaseFactory } from './support/leases';

const createLease = leaseFactory();

/** Units that stay open until the test settles them, each call recorded under a label. */
function heldUnits() {
  const calls: { key: string; label: string; result: Deferred<WorkReturn> }[] = [];
  const unit =
    (key: string, label: string = key) =>
    () => {
      const result = deferred<WorkReturn>();
      calls.push({ key, label, result });
      return result.promise;
    };
  const settle = (label: string, returned: WorkReturn = WorkResult.Extend) => {
    const call = calls.find((c) => c.label === label);
    if (call === undefined) throw new Error(`unit ${label} was not called`);
    call.result.resolve(returned);
  };
  const labels = () => calls.map(({ label }) => label);
  return { calls, unit, settle, labels };
}

/** Which keys run at once, as the lease reports it (from `started` to `settled`). */
function concurrency(lease: WriterLease) {
  const running = new Set<string>();
  const sameKeyTwice: string[] = [];
  let max = 0;
  lease.events$.subscribe((event) => {
    if (event.type === 'started') {
      if (running.has(event.key)) sameKeyTwice.push(event.key);
      running.add(event.key);
      max = Math.max(max, running.size);
    } else if (event.type === 'settled') {
      running.delete(event.key);
    }
  });
  return { running, sameKeyTwice, max: () => max };
}

/** Makes the lease lead with a unit that extends at once: until it leads, one unit runs at a time (rule 18). */
async function lead(lease: WriterLease): Promise<void> {
  lease.try('leading', () => WorkResult.Extend);
  await waitFor(() => lease.state.state === LeaseState.Leader, 'the lease leading');
}

describe('workers', () => {
  it('runs exactly `workers` keys at once, earliest due first', async () => {
    const lease = createLease({ workers: 3 });
    const held = heldUnits();
    lease.run();
    await lead(lease);
    const seen = concurrency(lease);
    for (const key of ['a', 'b', 'c', 'd', 'e', 'f']) lease.try(key, held.unit(key));

    await waitFor(() => held.calls.length === 3, 'three units running');
    expect(held.labels()).toEqual(['a', 'b', 'c']);
    expect([...seen.running]).toEqual(['a', 'b', 'c']);

    held.settle('a');
    await waitFor(() => held.calls.length === 4, 'a freed worker to take d');
    expect(held.labels()).toEqual(['a', 'b', 'c', 'd']);

    for (const key of ['b', 'c', 'd']) held.settle(key);
    await waitFor(() => held.calls.length === 6, 'e and f running');
    held.settle('e');
    held.settle('f');
    await waitFor(() => lease.size === 0, 'all work done');

    expect(held.labels()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(seen.max()).toBe(3);
    expect(seen.sameKeyTwice).toEqual([]);
  });

  it('never runs one key twice at once: a new submission for a running key waits for it, then runs', async () => {
    const lease = createLease({ workers: 3 });
    const held = heldUnits();
    lease.run();
    await lead(lease);
    const seen = concurrency(lease);
    const log = eventLog(lease);
    lease.try('a', held.unit('a', 'a1'));
    await waitFor(() => held.calls.length === 1, 'a1 running');

    lease.try('a', held.unit('a', 'a2'));
    lease.try('b', held.unit('b'));
    // b was due after a2 and took a free worker: a2 was passed over while a1 runs.
    await waitFor(() => held.labels().includes('b'), 'b running');
    expect(held.labels()).toEqual(['a1', 'b']);
    expect(lease.size).toBe(2);

    held.settle('a1');
    await waitFor(() => held.labels().includes('a2'), 'a2 running after a1');
    const [a1, a2] = log
      .of('started')
      .filter((e) => e.key === 'a')
      .map(({ id }) => id);
    const a1Settled = log.all.findIndex((e) => e.type === 'settled' && e.id === a1);
    const a2Started = log.all.findIndex((e) => e.type === 'started' && e.id === a2);
    expect(a1Settled).toBeGreaterThanOrEqual(0);
    expect(a2Started).toBeGreaterThan(a1Settled);

    held.settle('a2');
    held.settle('b');
    await waitFor(() => lease.size === 0, 'all work done');
    expect(held.labels()).toEqual(['a1', 'b', 'a2']);
    expect(seen.sameKeyTwice).toEqual([]);
  });

  it('a submission made while the key’s unit runs stays, and runs next', async () => {
    const lease = createLease({ workers: 1 });
    const held = heldUnits();
    const log = eventLog(lease);
    lease.run();
    lease.try('a', held.unit('a', 'a1'));
    await waitFor(() => held.calls.length === 1, 'a1 running');
    lease.try('a', held.unit('a', 'a2'));
    lease.try('b', held.unit('b'));

    held.settle('a1');
    await waitFor(() => held.calls.length === 2, 'the next unit');
    expect(held.labels()).toEqual(['a1', 'a2']);
    expect(log.of('settled')).toEqual([
      expect.objectContaining({ key: 'a', id: 1, result: WorkResult.Extend, retry: false }),
    ]);
    // a1's submission ended when a2 replaced it; its unit still settled and its result applied.
    expect(log.of('superseded')).toEqual([expect.objectContaining({ key: 'a', id: 1, by: 2 })]);
    expect(log.of('dropped')).toEqual([]);
    expect(lease.pendingKeys()).toEqual(['a', 'b']);

    held.settle('a2');
    await waitFor(() => held.calls.length === 3, 'b');
    held.settle('b');
    await waitFor(() => lease.size === 0, 'all work done');
    expect(held.labels()).toEqual(['a1', 'a2', 'b']);
  });

  it('a unit that asks to retry while a newer submission waits is superseded: the newer one runs instead', async () => {
    const lease = createLease({ workers: 1 });
    const held = heldUnits();
    const log = eventLog(lease);
    lease.run();
    lease.try('a', held.unit('a', 'a1'));
    await waitFor(() => held.calls.length === 1, 'a1 running');
    lease.try('a', held.unit('a', 'a2'));

    held.settle('a1', { result: WorkResult.Release, retry: true });
    await waitFor(() => held.calls.length === 2, 'the next unit of a');
    expect(held.labels()).toEqual(['a1', 'a2']);
    expect(log.of('superseded')).toEqual([expect.objectContaining({ key: 'a', id: 1, by: 2 })]);
    expect(log.of('retried')).toEqual([expect.objectContaining({ key: 'a', id: 2 })]);

    held.settle('a2');
    await waitFor(() => lease.size === 0, 'a done');
    expect(held.labels()).toEqual(['a1', 'a2']);
    expect(lease.state.state).toBe(LeaseState.Leader);
  });

  it('the latest submission wins: only the last of several submissions for a key runs, once', async () => {
    const lease = createLease({ workers: 3 });
    const log = eventLog(lease);
    const ran: string[] = [];
    const unit = (label: string) => async () => {
      ran.push(label);
      return WorkResult.Extend;
    };
    lease.run();
    lease.try('k', unit('k1'));
    lease.try('k', unit('k2'));
    lease.try('k', unit('k3'));
    expect(lease.size).toBe(1);

    await waitFor(() => lease.size === 0, 'k done');
    expect(ran).toEqual(['k3']);
    expect(log.of('started').map(({ id }) => id)).toEqual([3]);
    expect(log.of('superseded').map(({ id, by }) => [id, by])).toEqual([
      [1, 2],
      [2, 3],
    ]);
  });
});
