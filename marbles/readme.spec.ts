import { from, map, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { WorkResult, WriterLease, exponentialBackoff, type BackoffPolicy } from '../src';

// The examples of the README and the guides, run as written, so that they cannot drift from the behaviour.
describe('README', () => {
  // As the README writes it, and without the scheduler option: inside run(), the default clock is virtual.
  it.each([
    ['with the scheduler option', true],
    ['without it', false],
  ])('marble-tests a backoff policy, %s', (_, passScheduler) => {
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ time, expectObservable }) => {
      const step = time('-----|'); // 5 ms
      const lease = new WriterLease({
        leaseDuration: 100,
        retryInterval: 1,
        backoff: (tick) => step * (tick + 1),
        spread: false, // the reference timing exactly: no random spread of attempts (docs/lease.md, rule 16)
        ...(passScheduler ? { scheduler } : {}),
      });
      lease.run();
      expectObservable(lease.state$.pipe(map((s) => `${s.state}/${s.expires}`))).toBe('a 4ms b', {
        a: 'election/0',
        b: 'follower/10', // released at 5 ms with tick 0: expires 5 + 5
      });
      scheduler.schedule(() => lease.try('k', () => WorkResult.Release), step);
    });
  });

  it('pipes a stream through lease.try(keyOf, workOf)', () => {
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ expectObservable }) => {
      const lease = new WriterLease({ leaseDuration: 100, retryInterval: 10, spread: false, scheduler });
      lease.run();
      const routes = [{ name: 'a' }, { name: 'b' }, { name: 'b' }];
      const writeStatus = () => WorkResult.Extend;
      const outcomes = from(routes).pipe(
        lease.try(
          (route) => route.name,
          () => () => writeStatus(),
        ),
        map((outcome) => `${outcome.key} ${outcome.status} ${outcome.result}`),
        toArray(),
      );
      expectObservable(outcomes).toBe('(x|)', {
        x: ['b superseded undefined', 'a done extend', 'b done extend'],
      });
    });
  });
});

describe('docs/testing-backoff.md', () => {
  it('grows ×4 from 20 ms without jitter', () => {
    const backoff = exponentialBackoff({ jitter: 0 });
    expect([0, 1, 2, 3].map(backoff)).toEqual([20, 80, 320, 1_280]);
  });

  it('stays within its jitter bounds', () => {
    const backoff = exponentialBackoff({ random: () => 0.999 }); // the largest draw
    expect(backoff(2)).toBeLessThanOrEqual(20 * (1.5 * 4) ** 2);
  });

  it('makes a follower wait 5 ms × (tick + 1)', () => {
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ time, hot, expectObservable }) => {
      const step = time('-----|'); // 5 ms
      const linear: BackoffPolicy = (tick) => step * (tick + 1);
      const lease = new WriterLease({
        leaseDuration: 100,
        retryInterval: 1,
        backoff: linear,
        spread: false,
        scheduler,
      });
      lease.run();

      // Every write conflicts: release and retry, at 0, then each time the follower lease runs out.
      hot('r').subscribe(() => lease.try('k', () => ({ result: WorkResult.Release, retry: true })));
      hot('-'.repeat(30) + 's').subscribe(() => lease.remove('k'));

      expectObservable(lease.state$.pipe(map((s) => `${s.state}/${s.tick}/${s.expires}`))).toBe('(ab) 1ms c 9ms d', {
        a: 'election/0/0',
        b: 'follower/0/5', // released at 0: waits 5
        c: 'follower/1/15', // released at 5: waits 10
        d: 'follower/2/30', // released at 15: waits 15
      });
    });
  });
});
