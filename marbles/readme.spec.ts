import { from, map, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { WorkResult, WriterLease } from '../src';

// The README's examples, run as written, so that the README cannot drift from the behaviour.
describe('README', () => {
  it('marble-tests a backoff policy', () => {
    const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    scheduler.run(({ time, expectObservable }) => {
      const step = time('-----|'); // 5 ms
      const lease = new WriterLease({
        leaseDuration: 100,
        retryInterval: 1,
        backoff: (tick) => step * (tick + 1),
        scheduler,
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
      const lease = new WriterLease({ leaseDuration: 100, retryInterval: 10, scheduler });
      lease.run();
      const routes = [{ name: 'a' }, { name: 'b' }, { name: 'b' }];
      const writeStatus = () => WorkResult.Extend;
      const outcomes = from(routes).pipe(
        lease.try((route) => route.name, () => () => writeStatus()),
        map((outcome) => `${outcome.key} ${outcome.status} ${outcome.result}`),
        toArray(),
      );
      expectObservable(outcomes).toBe('(x|)', {
        x: ['b superseded undefined', 'a done extend', 'b done extend'],
      });
    });
  });
});
