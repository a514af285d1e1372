import { EMPTY, Subject, finalize, ignoreElements, map, of, throwError, timer, type Observable } from 'rxjs';
import { LeaseState, WorkResult, WorkReturnError, constantBackoff, limitRetries, type WorkReturn } from '../src';
import { deferred, eventLog, nextEvent, waitFor } from './support/waitFor';
import { leaseFactory } from './support/leases';

const createLease = leaseFactory();

describe('Promise work', () => {
  it('becomes leader when the unit resolves extend, with expires = settle time + leaseDuration', async () => {
    const lease = createLease();
    lease.run();
    const settled = nextEvent(lease, 'settled');
    lease.try('a', async () => WorkResult.Extend);

    await expect(lease.wait()).resolves.toBe(true);
    const { at, result, retry } = await settled;
    expect({ result, retry }).toEqual({ result: WorkResult.Extend, retry: false });
    expect(lease.state).toEqual({ state: LeaseState.Leader, expires: at + 50, tick: 0 });
    expect(lease.size).toBe(0);
  });

  it('becomes follower when the unit resolves release, with expires = settle time + backoff(0)', async () => {
    const lease = createLease();
    lease.run();
    const settled = nextEvent(lease, 'settled');
    lease.try('a', () => Promise.resolve(WorkResult.Release));

    await expect(lease.wait()).resolves.toBe(false);
    const { at } = await settled;
    expect(lease.state).toEqual({ state: LeaseState.Follower, expires: at + 5, tick: 0 });
    expect(lease.size).toBe(0);
  });

  it('stays in the election while the unit is pending, and applies the result when it resolves', async () => {
    const lease = createLease();
    const result = deferred<WorkReturn>();
    lease.run();
    const started = nextEvent(lease, 'started');
    lease.try('a', () => result.promise);
    await started;

    expect(lease.state.state).toBe(LeaseState.Election);
    expect(lease.size).toBe(1);

    result.resolve(WorkResult.Extend);
    await expect(lease.wait()).resolves.toBe(true);
    expect(lease.size).toBe(0);
  });

  it('accepts any PromiseLike (a bare thenable)', async () => {
    const lease = createLease();
    lease.run();
    const thenable: PromiseLike<WorkReturn> = {
      then: (onfulfilled, onrejected) => Promise.resolve<WorkReturn>(WorkResult.Extend).then(onfulfilled, onrejected),
    };
    lease.try('a', () => thenable);
    await expect(lease.wait()).resolves.toBe(true);
  });

  it('retries a unit that asks to: again after retryInterval, then forgets it', async () => {
    const lease = createLease({ retryInterval: 15 });
    const log = eventLog(lease);
    let calls = 0;
    lease.run();
    lease.try('a', async () => (++calls === 1 ? { result: WorkResult.Release, retry: true } : WorkResult.Extend));

    await waitFor(() => lease.state.state === LeaseState.Leader, 'leader');
    expect(calls).toBe(2);
    const [first] = log.of('settled');
    const [retried] = log.of('retried');
    expect(retried).toMatchObject({ key: 'a', due: first.at + 15 });
    const [, secondStart] = log.of('started');
    expect(secondStart.at).toBeGreaterThanOrEqual(retried.due);
    expect(lease.size).toBe(0);
  });

  it('as follower, does not start new work before its due time (max(expires - now, 2 × backoff(0)))', async () => {
    const lease = createLease({ backoff: constantBackoff(10) });
    lease.run();
    lease.try('x', async () => WorkResult.Release);
    await lease.wait();

    const submitted = nextEvent(lease, 'submitted');
    const started = nextEvent(lease, 'started', (e) => e.key === 'k');
    lease.try('k', async () => WorkResult.Extend);
    const { at, due } = await submitted;
    expect(due - at).toBeGreaterThanOrEqual(20);
    expect((await started).at).toBeGreaterThanOrEqual(due);
  });
});

describe('Observable work', () => {
  it('settles with a value the Observable emits later, on the real asyncScheduler', async () => {
    const lease = createLease();
    lease.run();
    lease.try('a', () => timer(10).pipe(map(() => WorkResult.Extend)));
    await expect(lease.wait()).resolves.toBe(true);
    expect(lease.size).toBe(0);
  });

  it('counts only the first value, and unsubscribes the unit after it', async () => {
    const lease = createLease();
    const log = eventLog(lease);
    const values = new Subject<WorkReturn>();
    let unsubscribed = false;
    lease.run();
    const started = nextEvent(lease, 'started');
    lease.try('a', () => values.pipe(finalize(() => (unsubscribed = true))));
    await started;

    values.next(WorkResult.Extend);
    expect(unsubscribed).toBe(true);
    expect(values.observed).toBe(false);
    values.next(WorkResult.Release);

    expect(lease.state.state).toBe(LeaseState.Leader);
    expect(log.of('settled').map(({ result }) => result)).toEqual([WorkResult.Extend]);
  });

  it('also takes the first of several synchronous values', async () => {
    const lease = createLease();
    lease.run();
    lease.try('a', () => of(WorkResult.Release, WorkResult.Extend));
    await expect(lease.wait()).resolves.toBe(false);
  });

  it.each<[string, () => Observable<WorkReturn>]>([
    ['at once (EMPTY)', () => EMPTY],
    ['later', () => timer(5).pipe(ignoreElements())],
  ])('a unit that completes without a value %s gives an error event, then release with retry', async (_, work) => {
    const lease = createLease({ retryInterval: 20 });
    const log = eventLog(lease);
    lease.run();
    const retried = nextEvent(lease, 'retried');
    lease.try('a', work);

    const { at, due } = await retried;
    expect(due).toBe(at + 20);
    const [error] = log.of('error');
    expect(error.key).toBe('a');
    expect(error.error).toBeInstanceOf(WorkReturnError);
    expect((error.error as WorkReturnError).info).toEqual({ key: 'a', received: undefined });
    expect((error.error as Error).message).toMatch(/"a".*without a value/);
    expect(log.of('settled')).toEqual([expect.objectContaining({ key: 'a', result: WorkResult.Release, retry: true })]);
    expect(lease.state).toMatchObject({ state: LeaseState.Follower, tick: 0 });
    expect(lease.pendingKeys()).toEqual(['a']);
  });

  it('a unit that errors later gives an error event with that error, then release with retry', async () => {
    const lease = createLease({ retryInterval: 20 });
    const log = eventLog(lease);
    const failure = new Error('store unreachable');
    lease.run();
    const retried = nextEvent(lease, 'retried');
    lease.try('a', () =>
      timer(5).pipe(
        map(() => {
          throw failure;
        }),
      ),
    );

    await retried;
    expect(log.of('error')).toEqual([expect.objectContaining({ key: 'a', error: failure })]);
    expect(lease.state).toMatchObject({ state: LeaseState.Follower, tick: 0 });
    expect(lease.size).toBe(1);
  });

  it('an error event and a retry also follow an Observable that errors at once', async () => {
    const lease = createLease({ retryInterval: 20 });
    const failure = new Error('boom');
    lease.run();
    const error = nextEvent(lease, 'error');
    const retried = nextEvent(lease, 'retried');
    lease.try('a', () => throwError(() => failure));
    expect((await error).error).toBe(failure);
    expect((await retried).key).toBe('a');
    expect(lease.state.state).toBe(LeaseState.Follower);
  });
});

describe('limitRetries with asynchronous units', () => {
  it('honours a Promise unit’s retry requests n times, then lets its result stand', async () => {
    const lease = createLease();
    const log = eventLog(lease);
    let calls = 0;
    lease.run();
    const last = nextEvent(lease, 'settled', (e) => !e.retry);
    lease.try(
      'a',
      limitRetries(2, async () => {
        calls++;
        return { result: WorkResult.Release, retry: true };
      }),
    );

    await last;
    expect(calls).toBe(3);
    expect(log.of('settled').map(({ retry }) => retry)).toEqual([true, true, false]);
    expect(log.of('retried')).toHaveLength(2);
    expect(lease.size).toBe(0);
    expect(lease.state).toMatchObject({ state: LeaseState.Follower, tick: 2 });
  });

  it('honours an Observable unit’s retry requests n times, then lets its result stand', async () => {
    const lease = createLease();
    const log = eventLog(lease);
    let calls = 0;
    lease.run();
    const last = nextEvent(lease, 'settled', (e) => !e.retry);
    lease.try(
      'a',
      limitRetries(1, () => {
        calls++;
        return timer(1).pipe(map(() => ({ result: WorkResult.Release, retry: true })));
      }),
    );

    await last;
    expect(calls).toBe(2);
    expect(log.of('settled').map(({ retry }) => retry)).toEqual([true, false]);
    expect(lease.size).toBe(0);
  });

  it('does not limit retries that come from a rejection: the lease still retries them', async () => {
    const lease = createLease();
    let calls = 0;
    lease.run();
    const errors = eventLog(lease);
    lease.try(
      'a',
      limitRetries(0, async () => {
        if (++calls <= 2) throw new Error(`failure ${calls}`);
        return WorkResult.Extend;
      }),
    );

    await waitFor(() => lease.state.state === LeaseState.Leader, 'leader');
    expect(calls).toBe(3);
    expect(errors.of('error').map(({ error }) => (error as Error).message)).toEqual(['failure 1', 'failure 2']);
    expect(lease.size).toBe(0);
  });
});
