import {
  LeaseState,
  WorkResult,
  WorkTimeoutError,
  constantBackoff,
  monotonicScheduler,
  type WorkContext,
  type WorkReturn,
} from '../src';
import { leaseFactory } from './support/leases';
import { deferred, eventLog, nextEvent, nextMacrotask, waitFor } from './support/waitFor';

/**
 * The edges of issue 9 on the real clock: a wall clock that jumps, and units
 * that never settle. The rules themselves are proven in virtual time
 * (marbles/letGo.spec.ts); here the real timers and Promises run.
 */

const createLease = leaseFactory();
const HOUR = 3_600_000;

/** Moves `Date.now()` (and only it) by `offsetMs` from now on, as an NTP step or a restored VM would. */
function stepWallClock(offsetMs: number): void {
  const realNow = Date.now.bind(Date);
  jest.spyOn(Date, 'now').mockImplementation(() => realNow() + offsetMs);
}

afterEach(() => jest.restoreAllMocks());

describe('the default clock is monotonic: a wall-clock step moves nothing', () => {
  it.each([
    ['back an hour', -HOUR],
    ['forward an hour', HOUR],
    ['back ten seconds', -10_000],
  ])(
    "stepped %s, a follower's deferred key runs when the other lease runs out, not before and not later",
    async (_, offset) => {
      // tick 0 backs off 20 ms (a key waits 2 × 20), a renewal by another writer (tick 1) 300 ms.
      const lease = createLease({ leaseDuration: 1_000, backoff: (tick) => (tick === 0 ? 20 : 300) });
      const log = eventLog(lease);
      lease.run();
      const settled = nextEvent(lease, 'settled');
      lease.try('other', () => WorkResult.Release);
      await settled;
      lease.try('k', () => WorkResult.Extend); // due in 40 ms
      lease.try('seen', () => WorkResult.Extend);
      lease.extend('seen'); // another writer wrote: the lease runs 300 ms from now
      const renewedAt = performance.now();
      const { expires } = lease.state;

      stepWallClock(offset);
      await waitFor(() => log.of('started').length === 2, 'the key to run (on a wall clock it stalls for the step)');

      // Deferred at its due time, then run once the renewal ran out: on the lease's clock and on an independent reading.
      expect(log.of('deferred').map(({ key, until }) => [key, until])).toEqual([['k', expires]]);
      expect(log.of('started')[1].at).toBeGreaterThanOrEqual(expires);
      expect(performance.now() - renewedAt).toBeGreaterThanOrEqual(299);
    },
  );

  it('waitUntil(ms) ends after ms of real time when the wall clock steps back', async () => {
    const lease = createLease();
    lease.run();
    lease.try('k', () => deferred<WorkReturn>().promise); // nothing ever settles
    const started = performance.now();
    const waiting = lease.waitUntil(150);
    stepWallClock(-HOUR);
    await expect(waiting).resolves.toEqual({ leader: false, ok: false });
    expect(performance.now() - started).toBeGreaterThanOrEqual(149);
  });

  it("a leader's queued keys all run while the wall clock steps back and forth", async () => {
    const lease = createLease();
    lease.run();
    const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
    const steps = [-HOUR, HOUR, -10_000];
    for (const key of keys) {
      lease.try(key, async () => {
        const step = steps.shift();
        if (step !== undefined) {
          jest.restoreAllMocks();
          stepWallClock(step);
        }
        await nextMacrotask();
        return WorkResult.Extend;
      });
    }
    await waitFor(() => lease.size === 0, 'every queued key to run');
    expect(lease.state.state).toBe(LeaseState.Leader);
  });

  it('the lease reads the monotonic clock by default (its snapshot is on it)', () => {
    const before = monotonicScheduler.now();
    const lease = createLease();
    expect(lease.state.expires).toBeGreaterThanOrEqual(before);
    expect(lease.state.expires).toBeLessThanOrEqual(monotonicScheduler.now());
  });
});

describe('Promise units the lease lets go of', () => {
  /** A Promise unit that never settles on its own, and keeps its context. */
  function hangingUnit() {
    const contexts: WorkContext[] = [];
    const held = deferred<WorkReturn>();
    const work = (context: WorkContext) => {
      contexts.push(context);
      return held.promise;
    };
    return { work, contexts, held };
  }

  it('remove(key): the signal is aborted, the worker runs the next key at once, and the late result is ignored', async () => {
    const lease = createLease();
    const log = eventLog(lease);
    lease.run();
    const { work, contexts, held } = hangingUnit();
    let aborted: unknown;
    lease.try('stuck', (context) => {
      context.signal.addEventListener('abort', () => (aborted = context.signal.reason));
      return work(context);
    });
    lease.try('next', async () => WorkResult.Release);
    await waitFor(() => contexts.length === 1, 'the stuck unit to start');

    lease.remove('stuck');
    expect(contexts[0].signal.aborted).toBe(true);
    expect((aborted as Error).name).toBe('AbortError');
    await waitFor(() => log.of('settled').length === 1, 'the next key to run on the freed worker');
    expect(log.of('settled')[0].key).toBe('next');

    held.resolve(WorkResult.Extend); // too late: the lease let go of it
    await nextMacrotask();
    expect(log.of('settled').map(({ key }) => key)).toEqual(['next']);
    expect(lease.state.state).toBe(LeaseState.Follower); // the let-go unit's extend never applied
  });

  it('workTimeout: the unit is let go of with a WorkTimeoutError, counts as release, and is retried', async () => {
    const lease = createLease({ workTimeout: 30, backoff: constantBackoff(0) });
    const log = eventLog(lease);
    lease.run();
    const { work, contexts } = hangingUnit();
    let calls = 0;
    lease.try('k', (context) => (++calls === 1 ? work(context) : WorkResult.Extend));
    await waitFor(() => lease.state.state === LeaseState.Leader, 'the retry to write');

    const [error] = log.of('error');
    expect(error.error).toBeInstanceOf(WorkTimeoutError);
    expect((error.error as WorkTimeoutError).info).toEqual({ key: 'k', id: 1, timeout: 30 });
    expect(contexts[0].signal.reason).toBe(error.error);
    expect(log.of('settled').map(({ result, retry }) => [result, retry])).toEqual([
      [WorkResult.Release, true],
      [WorkResult.Extend, false],
    ]);
    expect(calls).toBe(2);
  });

  it('dispose(): the signal is aborted, the key is reported pending, and the late result changes nothing', async () => {
    const lease = createLease();
    lease.run();
    const { work, contexts, held } = hangingUnit();
    lease.try('k', work);
    await waitFor(() => contexts.length === 1, 'the unit to start');

    expect(lease.dispose()).toEqual(['k']);
    expect(contexts[0].signal.aborted).toBe(true);
    held.resolve(WorkResult.Extend);
    await nextMacrotask();
    expect(lease.state.state).toBe(LeaseState.Election);
  });

  it('stop: the signal is aborted and the unit runs again, with a fresh signal, on the next run()', async () => {
    const lease = createLease();
    const processing = lease.run();
    const { work, contexts } = hangingUnit();
    lease.try('k', (context) => (contexts.length === 0 ? work(context) : WorkResult.Extend));
    await waitFor(() => contexts.length === 1, 'the unit to start');
    processing.unsubscribe();
    expect(contexts[0].signal.aborted).toBe(true);
    expect(lease.pendingKeys()).toEqual(['k']);

    lease.run();
    await waitFor(() => lease.size === 0, 'the unit to run again');
    expect(lease.state.state).toBe(LeaseState.Leader);
  });
});
