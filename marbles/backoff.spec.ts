import { map } from 'rxjs';
import { exponentialBackoff, LeaseState, WorkResult, limitRetries, type BackoffPolicy } from '../src';
import { createLease, eventsOf, marbles, record, release, runs } from './support';

/** Drives `ticks + 1` releases in a row and reports how long each follower lease lasts. */
function followerDurations(policy: BackoffPolicy, leaseDuration: number, ticks: number): number[] {
  const durations: number[] = [];
  marbles(({ scheduler }) => {
    const lease = createLease(scheduler, { backoff: policy, leaseDuration, retryInterval: 1 });
    lease.events$.subscribe((event) => {
      if (event.type === 'state') durations.push(event.snapshot.expires - event.at);
    });
    lease.run();
    let left = ticks + 1;
    lease.try('k', () => ({ result: WorkResult.Release, retry: --left > 0 }));
  });
  return durations;
}

describe('backoff: tick > steps gives the lease duration', () => {
  it('returns cap (Infinity by default) past the last step, and the lease caps it at leaseDuration', () => {
    const policy = exponentialBackoff({ steps: 2, jitter: 0 });
    expect(policy(3)).toBe(Infinity);
    expect(exponentialBackoff({ steps: 2, jitter: 0, cap: 700 })(3)).toBe(700);
    expect(followerDurations(policy, 1_000, 3)).toEqual([20, 80, 320, 1_000]);
  });
});

describe('backoff: d = jittered(d) × factor, tick times, capped by the lease duration', () => {
  it('grows from initial by factor at each tick', () => {
    const policy = exponentialBackoff({ initial: 20, factor: 4, steps: 5, jitter: 0 });
    expect([0, 1, 2, 3, 4, 5].map(policy)).toEqual([20, 80, 320, 1_280, 5_120, 20_480]);
  });

  it('returns the lease duration as soon as d exceeds it', () => {
    expect(followerDurations(exponentialBackoff({ jitter: 0 }), 500, 4)).toEqual([20, 80, 320, 500, 500]);
  });

  it('a step past the lease duration gives the lease duration, even where a factor below 1 would shrink d again', () => {
    // Property 6 found the case (seed 1388555410, a factor of 0.24 and an initial of 25 above a 6 ms lease).
    // Here 25 × 0.25 = 6.25 > 6: the spec returns 6 at once, not 6.25 × 0.25 one step later.
    const options = { initial: 25, factor: 0.25, steps: 2, jitter: 0 };
    expect(exponentialBackoff({ ...options, cap: 6 })(2)).toBe(6);
    expect(exponentialBackoff({ ...options, cap: 6 })(0)).toBe(6); // initial above the cap
    expect(exponentialBackoff({ initial: 100, factor: 0.5, steps: 3, jitter: 0, cap: 6 })(3)).toBe(6);
    // The lease's default policy is built with cap: leaseDuration; a policy without a cap is capped only at its end.
    expect(followerDurations(exponentialBackoff({ ...options, cap: 6 }), 6, 2)).toEqual([6, 6, 6]);
    expect(followerDurations(exponentialBackoff(options), 6, 2)).toEqual([6, 6, 25 * 0.25 * 0.25]);
  });

  it('stops drawing random numbers once d exceeds the cap', () => {
    const random = jest.fn(() => 0);
    const policy = exponentialBackoff({ jitter: 0.5, cap: 100, random });
    expect(policy(5)).toBe(100);
    expect(random).toHaveBeenCalledTimes(2); // 20 → 80 → 320 > 100
  });
});

describe('backoff: jittered(d) = d + random() × jitter × d', () => {
  it('adds random() × jitter × d before each multiplication', () => {
    const policy = exponentialBackoff({ initial: 20, factor: 4, jitter: 0.5, random: () => 0.5 });
    expect(policy(1)).toBe((20 + 0.5 * 0.5 * 20) * 4); // 100
    expect(policy(2)).toBe((100 + 0.5 * 0.5 * 100) * 4); // 500
  });

  it('stays within [d × factor, d × (1 + jitter) × factor] at each step', () => {
    const draws = [0, 0.999999, 0.25, 0.75];
    let i = 0;
    const policy = exponentialBackoff({ random: () => draws[i++ % draws.length] });
    for (let tick = 0; tick <= 5; tick++) {
      i = 0;
      const d = policy(tick);
      expect(d).toBeGreaterThanOrEqual(20 * 4 ** tick);
      expect(d).toBeLessThanOrEqual(20 * (1.5 * 4) ** tick);
    }
  });

  it('does not jitter when jitter is 0: random is never called', () => {
    const random = jest.fn(() => 0.9);
    expect(exponentialBackoff({ jitter: 0, random })(3)).toBe(1_280);
    expect(random).not.toHaveBeenCalled();
  });
});

describe('backoff: reference defaults', () => {
  it('is initial 20, factor 4, steps 5, jitter 0.5', () => {
    const noJitter = exponentialBackoff({ random: () => 0 });
    expect([0, 1, 5, 6].map(noJitter)).toEqual([20, 80, 20_480, Infinity]);
    expect(exponentialBackoff({ random: () => 1 })(1)).toBe((20 + 0.5 * 20) * 4);
  });

  it("makes a follower's new work wait 2 × initial = 40 ms", () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: exponentialBackoff() }); // the default policy
      lease.run();
      lease.try('x', release); // follower, expires 20
      hot('-k').subscribe(() => lease.try('k', () => WorkResult.Extend)); // due at 1 + max(19, 40)
      expectObservable(eventsOf(lease, 'submitted').pipe(map(({ key, due }) => `${key}@${due}`))).toBe('-k', {
        k: 'k@41',
      });
      expectObservable(runs(lease)).toBe('x 40ms k');
    });
  });
});

describe('backoff: a custom policy is a plain value, testable in virtual time', () => {
  it('drives follower leases by its own durations', () => {
    marbles(({ scheduler, hot, time, expectObservable }) => {
      const step = time('-----|'); // 5 ms per tick
      const linear: BackoffPolicy = (tick) => step * (tick + 1);
      const lease = createLease(scheduler, { backoff: linear, retryInterval: 1 });
      lease.run();
      hot('r').subscribe(() => lease.try('k', () => ({ result: WorkResult.Release, retry: true })));
      hot('-'.repeat(30) + 's').subscribe(() => lease.remove('k'));
      // releases at 0, 5 and 15; each retry (1 ms later) waits out the follower lease; removed at 30
      expectObservable(
        record(lease.state$).pipe(map(({ state, tick, expires }) => `${state}/${tick}/${expires}`)),
      ).toBe('(ab) 1ms c 9ms d', {
        a: `${LeaseState.Election}/0/0`,
        b: `${LeaseState.Follower}/0/5`,
        c: `${LeaseState.Follower}/1/15`,
        d: `${LeaseState.Follower}/2/30`,
      });
      expectObservable(eventsOf(lease, 'deferred').pipe(map(({ until }) => until))).toBe('-c 4ms d 9ms e', {
        c: 5,
        d: 15,
        e: 30,
      });
    });
  });
});

describe('backoff: the lease guards against a policy that returns nonsense', () => {
  it.each([
    [() => Number.NaN, 'received NaN'],
    [() => -1, 'received -1'],
    [() => '5', 'received "5"'],
    [
      () => {
        throw new Error('no table');
      },
      'but it threw',
    ],
  ])('refuses a policy whose backoff(0) is not a number >= 0 at construction: %s', (backoff, received) => {
    marbles(({ scheduler }) => {
      const build = () => createLease(scheduler, { backoff: backoff as (tick: number) => number });
      expect(build).toThrow(RangeError);
      expect(build).toThrow(`options.backoff(0) must return a number >= 0, ${received}`);
    });
  });

  it('uses the lease duration for a later bad value and reports a backoff-error event that says so', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: (tick) => (tick === 0 ? 5 : Number.NaN), leaseDuration: 70 });
      lease.run();
      lease.try(
        'k',
        limitRetries(1, () => ({ result: WorkResult.Release, retry: true })),
      );
      expectObservable(eventsOf(lease, 'backoff-error').pipe(map(({ tick, message }) => `${tick}: ${message}`))).toBe(
        '10ms t',
        { t: '1: backoff(1) returned NaN, expected a number >= 0: the lease waits its lease duration, 70 ms' },
      );
      // Released at 0 (follower until 5), retried at 10 (retryInterval): tick 1 gives NaN, so 10 + 70.
      expectObservable(record(lease.state$).pipe(map(({ expires }) => expires))).toBe('(ab) 6ms c', {
        a: 0,
        b: 5,
        c: 80,
      });
    });
  });
});
