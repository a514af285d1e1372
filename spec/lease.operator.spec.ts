import { Subject, from, lastValueFrom, toArray, type Observable } from 'rxjs';
import { LeaseState, WorkResult, WriterLease, type TryOutcome, type WorkFunc, type WorkReturn } from '../src';
import { deferred, eventLog, waitFor, type Deferred } from './support/waitFor';
import { leaseFactory } from './support/leases';

const createLease = leaseFactory();

/** A record to write: `name` is its key, `v` tells two values of one key apart. */
interface Route {
  name: string;
  v: number;
  returns?: WorkReturn;
}
const route = (name: string, v = 1, returns: WorkReturn = WorkResult.Extend): Route => ({ name, v, returns });
const keyOf = (r: Route) => r.name;

/** Units that record which value ran and return what the value says. */
function units() {
  const ran: string[] = [];
  const workOf =
    (r: Route): WorkFunc =>
    async () => {
      ran.push(`${r.name}${r.v}`);
      return r.returns ?? WorkResult.Extend;
    };
  return { ran, workOf };
}

/** Units that stay open until the test settles them. */
function heldUnits() {
  const held = new Map<string, Deferred<WorkReturn>>();
  const workOf =
    (r: Route): WorkFunc =>
    () => {
      const result = deferred<WorkReturn>();
      held.set(`${r.name}${r.v}`, result);
      return result.promise;
    };
  return { held, workOf };
}

/** Subscribes to the operator's output and records everything it does. */
function watch<T>(output: Observable<TryOutcome<T>>) {
  const outcomes: TryOutcome<T>[] = [];
  const state = { completed: false, error: undefined as unknown };
  const subscription = output.subscribe({
    next: (outcome) => outcomes.push(outcome),
    error: (error: unknown) => (state.error = error),
    complete: () => (state.completed = true),
  });
  return { outcomes, state, subscription };
}

async function becomeFollower(lease: WriterLease): Promise<void> {
  lease.try('x', async () => WorkResult.Release);
  await expect(lease.wait()).resolves.toBe(false);
}

describe('lease.try(keyOf, workOf)', () => {
  it('emits one done outcome per value, with the unit’s result, then completes', async () => {
    const lease = createLease();
    const { ran, workOf } = units();
    lease.run();
    const values = [
      route('a', 1, WorkResult.Extend),
      route('b', 1, WorkResult.None),
      route('c', 1, WorkResult.Release),
    ];

    const outcomes = await lastValueFrom(from(values).pipe(lease.try(keyOf, workOf), toArray()));
    expect(outcomes).toEqual([
      { key: 'a', value: values[0], status: 'done', result: WorkResult.Extend },
      { key: 'b', value: values[1], status: 'done', result: WorkResult.None },
      { key: 'c', value: values[2], status: 'done', result: WorkResult.Release },
    ]);
    expect(ran).toEqual(['a1', 'b1', 'c1']);
    expect(lease.size).toBe(0);
  });

  it('reports superseded for a value replaced by a newer one of the same key before it ran', async () => {
    const lease = createLease();
    const { ran, workOf } = units();
    lease.run();
    const [first, second] = [route('a', 1), route('a', 2)];

    const outcomes = await lastValueFrom(from([first, second]).pipe(lease.try(keyOf, workOf), toArray()));
    expect(outcomes).toEqual([
      { key: 'a', value: first, status: 'superseded' },
      { key: 'a', value: second, status: 'done', result: WorkResult.Extend },
    ]);
    expect(ran).toEqual(['a2']);
  });

  it('reports extended when lease.extend(key) drops the pending work of a follower', async () => {
    const lease = createLease();
    const { ran, workOf } = units();
    lease.run();
    await becomeFollower(lease);
    const source = new Subject<Route>();
    const { outcomes, state } = watch(source.pipe(lease.try(keyOf, workOf)));

    source.next(route('a'));
    expect(lease.size).toBe(1);
    lease.extend('a');
    expect(outcomes).toEqual([{ key: 'a', value: route('a'), status: 'extended' }]);
    expect(lease.size).toBe(0);
    expect(lease.state).toMatchObject({ state: LeaseState.Follower, tick: 1 });
    source.complete();
    expect(state.completed).toBe(true);
    expect(ran).toEqual([]);
  });

  it('reports removed when lease.remove(key) drops the pending work', () => {
    const lease = createLease();
    const { workOf } = units();
    const source = new Subject<Route>();
    const { outcomes } = watch(source.pipe(lease.try(keyOf, workOf)));

    source.next(route('a'));
    source.next(route('b'));
    lease.remove('a');
    expect(outcomes).toEqual([{ key: 'a', value: route('a'), status: 'removed' }]);
    expect(lease.pendingKeys()).toEqual(['b']);
  });

  it('reports stopped for running and waiting values when run() is unsubscribed; the work stays in the lease', async () => {
    const lease = createLease();
    const { held, workOf } = heldUnits();
    const processing = lease.run();
    const { outcomes, state } = watch(from([route('a'), route('b')]).pipe(lease.try(keyOf, workOf)));
    await waitFor(() => held.has('a1'), 'a running');

    processing.unsubscribe();
    expect(outcomes).toEqual([
      { key: 'a', value: route('a'), status: 'stopped' },
      { key: 'b', value: route('b'), status: 'stopped' },
    ]);
    expect(state.completed).toBe(true);
    expect(lease.pendingKeys()).toEqual(['a', 'b']);
  });

  it('emits one outcome for a value whose unit retried, once it settles without retry', async () => {
    const lease = createLease();
    let calls = 0;
    lease.run();
    const outcomes = await lastValueFrom(
      from([route('a')]).pipe(
        lease.try(
          keyOf,
          () => async () => (++calls === 1 ? { result: WorkResult.Release, retry: true } : WorkResult.Extend),
        ),
        toArray(),
      ),
    );
    expect(calls).toBe(2);
    expect(outcomes).toEqual([{ key: 'a', value: route('a'), status: 'done', result: WorkResult.Extend }]);
  });

  it('completes only once the source has completed and every outcome is out', async () => {
    const lease = createLease();
    const { held, workOf } = heldUnits();
    lease.run();
    const source = new Subject<Route>();
    const { outcomes, state } = watch(source.pipe(lease.try(keyOf, workOf)));

    source.next(route('a'));
    source.complete();
    await waitFor(() => held.has('a1'), 'a running');
    expect(state.completed).toBe(false);

    held.get('a1')!.resolve(WorkResult.Extend);
    await waitFor(() => state.completed, 'completion');
    expect(outcomes).toEqual([{ key: 'a', value: route('a'), status: 'done', result: WorkResult.Extend }]);
  });

  it('does not complete while the source is open, even with every outcome out', async () => {
    const lease = createLease();
    const { workOf } = units();
    lease.run();
    const source = new Subject<Route>();
    const { outcomes, state } = watch(source.pipe(lease.try(keyOf, workOf)));

    source.next(route('a'));
    await waitFor(() => outcomes.length === 1, 'the outcome of a');
    expect(state.completed).toBe(false);
    source.complete();
    expect(state.completed).toBe(true);
  });

  it('errors when the source errors', () => {
    const lease = createLease();
    const { workOf } = units();
    const source = new Subject<Route>();
    const { state } = watch(source.pipe(lease.try(keyOf, workOf)));
    const failure = new Error('source failed');

    source.next(route('a'));
    source.error(failure);
    expect(state.error).toBe(failure);
    expect(state.completed).toBe(false);
  });

  it.each([
    [
      'keyOf',
      (r: Route) => {
        if (r.v === 2) throw new Error('no key');
        return r.name;
      },
      units().workOf,
    ],
    [
      'workOf',
      keyOf,
      (r: Route): WorkFunc => {
        if (r.v === 2) throw new Error('no key');
        return () => WorkResult.Extend;
      },
    ],
  ])('errors the output when %s throws', (_, keyFn, workFn) => {
    const lease = createLease();
    const { state, outcomes } = watch(from([route('a', 1), route('b', 2)]).pipe(lease.try(keyFn, workFn)));
    expect(state.error).toEqual(new Error('no key'));
    expect(outcomes).toEqual([]);
  });

  it('takes no more source values once keyOf has thrown', () => {
    const lease = createLease();
    const log = eventLog(lease);
    const worked: number[] = [];
    const keyFn = (r: Route) => {
      if (r.v === 2) throw new Error('no key');
      return r.name;
    };
    const workFn = (r: Route): WorkFunc => {
      worked.push(r.v);
      return () => WorkResult.Extend;
    };
    const { state } = watch(from([route('a', 1), route('b', 2), route('c', 3)]).pipe(lease.try(keyFn, workFn)));

    expect(state.error).toEqual(new Error('no key'));
    expect(worked).toEqual([1]);
    expect(log.of('submitted').map(({ key }) => key)).toEqual(['a']);
  });

  it('finishes when the lease is disposed while not running, instead of hanging', () => {
    const lease = createLease();
    const { workOf } = units();
    const { outcomes, state } = watch(from([route('a')]).pipe(lease.try(keyOf, workOf)));

    expect(lease.dispose()).toEqual(['a']);
    // Its submission stays pending in the disposed lease: the outcome says so, and the output completes.
    expect(state).toMatchObject({ completed: true, error: undefined });
    expect(outcomes).toEqual([{ key: 'a', value: route('a'), status: 'stopped' }]);
  });

  it('unsubscribing the output removes the pending work it submitted', () => {
    const lease = createLease();
    const { workOf } = units();
    const log = eventLog(lease);
    const { subscription } = watch(from([route('a'), route('b')]).pipe(lease.try(keyOf, workOf)));
    expect(lease.size).toBe(2);

    subscription.unsubscribe();
    expect(lease.size).toBe(0);
    expect(log.of('dropped').map(({ key, reason }) => [key, reason])).toEqual([
      ['a', 'removed'],
      ['b', 'removed'],
    ]);
  });

  it('unsubscribing the output leaves a newer submission of another submitter for the same key', async () => {
    const lease = createLease();
    const { held, workOf } = heldUnits();
    const ran: string[] = [];
    lease.run();
    const { subscription } = watch(from([route('a')]).pipe(lease.try(keyOf, workOf)));
    await waitFor(() => held.has('a1'), 'a1 running');
    lease.try('a', async () => {
      ran.push('theirs');
      return WorkResult.Extend;
    });

    subscription.unsubscribe();
    expect(lease.pendingKeys()).toEqual(['a']);

    held.get('a1')!.resolve(WorkResult.Extend);
    await waitFor(() => lease.size === 0, 'their submission to run');
    expect(ran).toEqual(['theirs']);
  });
});
