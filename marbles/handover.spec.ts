import { map } from 'rxjs';
import { WorkResult, constantBackoff } from '../src';
import { createLease, eventsOf, extend, marbles, record, release, runs } from './support';

/** Issue 10 (docs/lease.md, "Handover"): the lease's two halves of a graceful stop. */

const r = { result: WorkResult.Extend } as const;

describe('rule 17: expire({ wake: true }) makes the keys that wait for the other lease due now', () => {
  it("a follower's deferred keys run at once, in the order they became due, instead of at expires", () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: constantBackoff(50) });
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 50
      scheduler.schedule(() => {
        lease.try('a', extend); // due at 100 (2 × backoff(0))
        lease.try('b', extend);
      }, 1);
      scheduler.schedule(() => lease.expire({ wake: true }), 20);
      expectObservable(runs(lease)).toBe('x 19ms (ab)', { x: 'x', a: 'a', b: 'b' });
    });
  });

  it('without wake (rule 7), the keys still wait for their due time', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: constantBackoff(50) });
      lease.run();
      lease.try('x', release);
      scheduler.schedule(() => lease.try('a', extend), 1); // due at 101
      scheduler.schedule(() => lease.expire(), 20);
      expectObservable(runs(lease)).toBe('x 100ms a', { x: 'x', a: 'a' });
    });
  });

  it('with the spread (rule 16), woken keys wait their share of 2 × backoff(0), all the same share', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, {
        leaseDuration: 2_000,
        backoff: constantBackoff(50),
        spread: true,
        random: () => 0.1,
      });
      lease.run();
      lease.try('x', release); // election: due at 0 + 0.1 × 8 × 50 = 40 (bound 500); follower from 40, expires 90
      scheduler.schedule(() => {
        lease.try('a', extend);
        lease.try('b', extend);
      }, 41);
      scheduler.schedule(() => lease.expire({ wake: true }), 60); // due at 60 + 0.1 × 2 × 50 = 70
      expectObservable(eventsOf(lease, 'started').pipe(map(({ key, at }) => `${key}@${at}`))).toBe('40ms x 29ms (ab)', {
        x: 'x@40',
        a: 'a@70',
        b: 'b@70',
      });
    });
  });
});

describe('drain(timeoutMs): no unit starts, running units may settle, then the lease is disposed', () => {
  it('a running unit settles and its result applies; work not started is reported pending', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      const unit = cold('----r|', { r });
      lease.run();
      lease.try('running', () => unit);
      lease.try('queued', extend);
      scheduler.schedule(() => void lease.drain(10), 2);
      expectSubscriptions(unit.subscriptions).toBe('^---!');
      expectObservable(runs(lease)).toBe('r---|', { r: 'running' }); // events$ completes as the lease is disposed
      expectObservable(record(lease.leader$)).toBe('f---(t|)', { f: false, t: true });
      scheduler.schedule(() => expect(lease.pendingKeys()).toEqual(['queued']), 10);
    });
  });

  it('a unit still running at the timeout is let go of', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      const unit = cold('----------r|', { r });
      lease.run();
      lease.try('slow', () => unit);
      scheduler.schedule(() => void lease.drain(3), 2);
      expectSubscriptions(unit.subscriptions).toBe('^----!');
      expectObservable(eventsOf(lease, 'let-go').pipe(map(({ reason }) => reason))).toBe('-----(s|)', {
        s: 'stopped',
      });
    });
  });

  it('rejects a bad timeout, naming it, and changes nothing', () => {
    marbles(({ scheduler }) => {
      const lease = createLease(scheduler);
      expect(() => void lease.drain(-1)).toThrow(/drain: timeoutMs must be a finite number >= 0, received -1/);
      expect(lease.running).toBe(false);
    });
  });
});

describe("rule 16: the election's delay ends with the election", () => {
  it('keys submitted while the winning unit was in flight run as soon as it wins, not at the election delay', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      // backoff(0) = 5: the election's delay is 0.5 × 8 × 5 = 20 frames (the bound, 250, is far).
      const lease = createLease(scheduler, { leaseDuration: 1_000, spread: true, random: () => 0.5 });
      lease.run();
      lease.try('a', () => cold('--(r|)', { r })); // due at 20, writes at 22
      scheduler.schedule(() => lease.try('b', extend), 21); // in the election: due at 21 + 20 = 41
      expectObservable(eventsOf(lease, 'started').pipe(map(({ key, at }) => `${key}@${at}`))).toBe('20ms a 1ms b', {
        a: 'a@20',
        b: 'b@22',
      });
    });
  });
});

describe('rule 16: no delay it adds exceeds min(leaseDuration / 4, 1 s)', () => {
  it('a backoff of a minute delays the first unit of a lone replica by less than a second, not minutes', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, {
        leaseDuration: 60_000,
        retryInterval: 0,
        backoff: constantBackoff(60_000),
        spread: true,
        random: () => 0.999,
      });
      lease.run();
      lease.try('a', extend); // 0.999 × min(8 × 60 000, 1 000)
      expectObservable(eventsOf(lease, 'started').pipe(map(({ at }) => at))).toBe('999ms a', { a: 999 });
    });
  });

  it("a follower's share is bounded by a quarter of a short lease", () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: constantBackoff(50), spread: true, random: () => 0.999 });
      lease.run();
      lease.try('x', release); // election: 0.999 × min(8 × 50, 100 / 4) = 24.975; follower, expires 74.975
      scheduler.schedule(() => lease.try('a', extend), 30); // due at 30 + 100 + 0.999 × min(2 × 50, 25)
      expectObservable(eventsOf(lease, 'started').pipe(map(({ key, at }) => `${key}@${at}`))).toBe(
        '24.975ms x 129ms a',
        { x: 'x@24.975', a: 'a@154.975' },
      );
    });
  });
});
