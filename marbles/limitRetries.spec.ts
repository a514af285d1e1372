import { map } from 'rxjs';
import { limitRetries, WorkResult } from '../src';
import { createLease, eventsOf, marbles, record, runs } from './support';
import { workContext } from '../spec/support/workContext';

const alwaysRetry = () => ({ result: WorkResult.Release, retry: true });

describe('limitRetries(n, work): retry honoured at most n times, then the result stands', () => {
  it('retries twice, then settles the release without retry', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, { retryInterval: 10, leaseDuration: 5 });
      lease.run();
      lease.try('k', limitRetries(2, alwaysRetry));
      expectObservable(runs(lease)).toBe('k 9ms k 9ms k');
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ result, retry }) => `${result}/${retry}`))).toBe(
        'a 9ms a 9ms b',
        { a: 'release/true', b: 'release/false' },
      );
      expectObservable(record(lease.leader$)).toBe('f', { f: false });
    });
  });

  it('with n = 0, never retries', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('k', limitRetries(0, alwaysRetry));
      expectObservable(runs(lease)).toBe('k');
      expectObservable(eventsOf(lease, 'retried')).toBe('');
    });
  });

  it('passes results without a retry request through unchanged', () => {
    const work = limitRetries(0, () => WorkResult.Extend);
    expect(work(workContext())).toBe(WorkResult.Extend);
    expect(limitRetries(0, () => ({ result: WorkResult.None }))(workContext())).toEqual({ result: WorkResult.None });
  });

  it('limits an Observable unit in virtual time, and keeps a synchronous unit synchronous', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const lease = createLease(scheduler, { retryInterval: 10, leaseDuration: 5 });
      lease.run();
      lease.try(
        'slow',
        limitRetries(1, () => cold('--(r|)', { r: { result: WorkResult.None, retry: true } })),
      );
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ retry }) => retry))).toBe('--t 11ms f', {
        t: true,
        f: false,
      });
    });
    expect(limitRetries(1, alwaysRetry)(workContext())).toEqual({ result: WorkResult.Release, retry: true }); // not a Promise
  });
});
