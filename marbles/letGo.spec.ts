import { NEVER, map, type Observable } from 'rxjs';
import { LeaseDisposedError, WorkResult, WorkTimeoutError, type WorkContext, type WorkReturn } from '../src';
import { constantBackoff } from '../src';
import { createLease, eventsOf, extend, marbles, record, release, runs } from './support';

/**
 * The rules of issue 9 (docs/lease.md, "Rules" 11 to 15): what a running
 * unit is told, and when the lease lets go of it.
 */

const r = { result: WorkResult.Extend } as const;
const RELEASE_RETRY = { result: WorkResult.Release, retry: true };

/** A unit that keeps the context it is given, for the test to read. */
function keeping(returned: (context: WorkContext) => WorkReturn | Observable<WorkReturn>) {
  const contexts: WorkContext[] = [];
  const work = (context: WorkContext) => {
    contexts.push(context);
    return returned(context);
  };
  return { work, contexts };
}

describe('rule 11: a unit is given its context (key, submission id, signal)', () => {
  it('the context names the key and the submission, and its signal is not aborted while the lease wants the unit', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      const { work, contexts } = keeping(() => cold('---r|', { r }));
      const submitted = eventsOf(lease, 'submitted').pipe(map(({ id }) => id));
      lease.run();
      lease.try('k', work);
      expectObservable(submitted).toBe('i', { i: 1 });
      expectObservable(
        hot('--s').pipe(map(() => contexts.map(({ key, id, signal }) => [key, id, signal.aborted]))),
      ).toBe('--c', { c: [['k', 1, false]] });
      // Settled normally: the signal is never aborted.
      expectObservable(hot('-----s').pipe(map(() => contexts[0].signal.aborted))).toBe('-----f', { f: false });
    });
  });

  it('a unit with no parameter runs as before', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('k', () => WorkResult.Extend);
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ result }) => result))).toBe('e', { e: 'extend' });
    });
  });
});

describe('rule 12: workTimeout lets go of a unit that has not settled, as release with retry', () => {
  it('an Observable unit is unsubscribed at the timeout; error (WorkTimeoutError), settled release + retry, retried', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler, { workTimeout: 3 });
      const unit = cold('-----r|', { r });
      let calls = 0;
      lease.run();
      lease.try('k', () => (++calls === 1 ? unit : WorkResult.Extend));
      expectSubscriptions(unit.subscriptions).toBe('^--!');
      expectObservable(eventsOf(lease, 'let-go').pipe(map(({ reason }) => reason))).toBe('---t', { t: 'timeout' });
      expectObservable(
        eventsOf(lease, 'error').pipe(map(({ error }) => (error instanceof WorkTimeoutError ? error.info : error))),
      ).toBe('---i', { i: { key: 'k', id: 1, timeout: 3 } });
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ result, retry }) => ({ result, retry })))).toBe(
        '---a 9ms b',
        { a: RELEASE_RETRY, b: { result: WorkResult.Extend, retry: false } },
      );
      // Release from the election: follower at 3; the retry (after retryInterval 10) writes at 13.
      expectObservable(record(lease.leader$)).toBe('f 12ms t', { f: false, t: true });
    });
  });

  it('workTimeout 0 lets go of every unit that does not settle synchronously, at once; a synchronous one completes', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler, { workTimeout: 0 });
      const unit = cold('-r|', { r });
      lease.run();
      lease.try('async', () => unit);
      lease.try('sync', () => WorkResult.Extend);
      // A timeout is a release with retry whatever the unit says: without this it would retry for ever.
      scheduler.schedule(() => lease.remove('async'), 1);
      expectSubscriptions(unit.subscriptions).toBe('(^!)');
      expectObservable(eventsOf(lease, 'let-go').pipe(map(({ key, reason }) => `${key} ${reason}`))).toBe('t', {
        t: 'async timeout',
      });
      // Released at 0: a follower until 5, when the sync unit, submitted in the election, runs and extends.
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ key, result }) => `${key} ${result}`))).toBe('a 4ms b', {
        a: 'async release',
        b: 'sync extend',
      });
    });
  });

  it("the unit's signal is aborted with the WorkTimeoutError", () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { workTimeout: 4 });
      const { work, contexts } = keeping(() => NEVER);
      lease.run();
      lease.try('k', work);
      scheduler.schedule(() => lease.dispose(), 10); // it retries, and times out, for ever
      expectObservable(
        hot('---a-b').pipe(
          map(() => {
            const { signal } = contexts[0];
            return signal.aborted ? (signal.reason as Error).name : 'running';
          }),
        ),
      ).toBe('---x-y', { x: 'running', y: 'WorkTimeoutError' });
    });
  });

  it('frees the worker at once: with one worker, the next key runs at the timeout', () => {
    marbles(({ scheduler, expectObservable }) => {
      // No backoff: the timeout's release makes a follower whose lease has already run out.
      const lease = createLease(scheduler, { workTimeout: 5, backoff: constantBackoff(0) });
      lease.run();
      lease.try('stuck', () => NEVER);
      lease.try('next', extend);
      scheduler.schedule(() => lease.dispose(), 10); // stuck retries, and times out, for ever
      expectObservable(runs(lease)).toBe('s 4ms n 4ms |', { s: 'stuck', n: 'next' });
    });
  });

  it('a unit that settles before its timeout (or in that very frame) is not affected, and leaves no timer', () => {
    marbles(({ scheduler, cold, expectObservable, flush }) => {
      const lease = createLease(scheduler, { workTimeout: 3 });
      lease.run();
      lease.try('early', () => cold('-r|', { r }));
      scheduler.schedule(() => lease.try('tie', () => cold('---r|', { r })), 10);
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ key, result }) => `${key}:${result}`))).toBe(
        '-e 11ms t',
        { e: 'early:extend', t: 'tie:extend' },
      );
      expectObservable(eventsOf(lease, 'let-go')).toBe('');
      flush();
      expect(scheduler.actions).toHaveLength(0);
    });
  });

  it('no workTimeout: a unit may run for ever, as in the reference', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      const unit = cold('-------------------r|', { r });
      lease.run();
      lease.try('k', () => unit);
      expectSubscriptions(unit.subscriptions).toBe('^------------------!');
      expectObservable(eventsOf(lease, 'let-go')).toBe('');
    });
  });
});

describe('rule 13: remove(key) or extend(key) while its unit runs lets go of the unit', () => {
  it('remove: the unit is unsubscribed, its result never applies, and the worker takes the next key in that frame', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      const unit = cold('-----r|', { r });
      lease.run();
      lease.try('k', () => unit);
      lease.try('next', release);
      scheduler.schedule(() => lease.remove('k'), 2);
      expectSubscriptions(unit.subscriptions).toBe('^-!');
      expectObservable(runs(lease)).toBe('k-n', { k: 'k', n: 'next' });
      expectObservable(eventsOf(lease, 'let-go').pipe(map(({ key, reason }) => `${key}:${reason}`))).toBe('--l', {
        l: 'k:removed',
      });
      // Only `next` settles (release): the removed unit's extend never made this replica leader.
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ key }) => key))).toBe('--n', { n: 'next' });
      expectObservable(record(lease.leader$)).toBe('f', { f: false });
    });
  });

  it("extend: the unit is let go of, the other writer's lease is renewed (tick + 1), and the signal says why", () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', release); // follower at 0, expires 5
      const { work, contexts } = keeping(() => cold('----------r|', { r }));
      scheduler.schedule(() => lease.try('k', work), 1); // due at 11
      scheduler.schedule(() => lease.extend('k'), 13);
      expectObservable(record(lease.state$).pipe(map(({ tick }) => tick))).toBe('(01) 9ms 2', {
        0: 0,
        1: 0,
        2: 1,
      });
      expectObservable(
        hot('-------------a').pipe(map(() => [contexts[0].signal.aborted, (contexts[0].signal.reason as Error).name])),
      ).toBe('-------------a', { a: [true, 'AbortError'] });
    });
  });
  it('extend while leading: the let-go unit lost the race to the other writer, which counts as a release', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', extend); // leader at 0
      scheduler.schedule(() => lease.try('k', () => cold('-----r|', { r })), 2);
      scheduler.schedule(() => lease.extend('k'), 4);
      // Without it, a replica that loses every race would stay leader, and keep competing, for good.
      expectObservable(
        record(lease.state$).pipe(map(({ state, tick, expires }) => `${state} ${tick} ${expires}`)),
      ).toBe('(el) 0ms f', { e: 'election 0 0', l: 'leader 0 100', f: 'follower 0 9' });
    });
  });
});

describe('rule 14: stopping or disposing lets go of running units; their keys stay pending', () => {
  it('stop: the unit is unsubscribed and aborted, its key is pending and runs again on the next run()', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      const unit = cold('-----r|', { r });
      const { work, contexts } = keeping(() => unit);
      const processing = lease.run();
      lease.try('k', work);
      scheduler.schedule(() => {
        processing.unsubscribe();
        expect(contexts[0].signal.aborted).toBe(true);
        expect(lease.pendingKeys()).toEqual(['k']);
      }, 2);
      scheduler.schedule(() => lease.run(), 4);
      expectSubscriptions(unit.subscriptions).toBe(['^-!', '----^----!']);
      expectObservable(eventsOf(lease, 'let-go').pipe(map(({ reason }) => reason))).toBe('--s', { s: 'stopped' });
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ key }) => key))).toBe('---------k', { k: 'k' });
    });
  });

  it('dispose: returns the keys of the units it let go of, and the try operator then errors', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      const unit = cold('-----r|', { r });
      lease.run();
      lease.try('k', () => unit);
      lease.try('queued', extend);
      scheduler.schedule(() => {
        expect(lease.dispose()).toEqual(['k', 'queued']);
      }, 2);
      expectSubscriptions(unit.subscriptions).toBe('^-!');
      const late = cold('---v|', { v: 'a' }).pipe(
        lease.try(
          (value: string) => value,
          () => extend,
        ),
      );
      // Subscribed at 3, after dispose(): it can neither submit nor learn an outcome, so it says so.
      expectObservable(late, '---^').toBe(
        '---#',
        undefined,
        new LeaseDisposedError({ lease: 'writer-lease', call: 'the try operator' }),
      );
    });
  });
});

describe('rule 15: a unit replaced by a newer submission while it runs is not let go of', () => {
  it('its result applies (rule 3), then the newer submission runs', () => {
    marbles(({ scheduler, cold, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      const first = cold('----r|', { r });
      lease.run();
      lease.try('k', () => first);
      scheduler.schedule(() => lease.try('k', release), 2);
      expectSubscriptions(first.subscriptions).toBe('^---!');
      expectObservable(eventsOf(lease, 'let-go')).toBe('');
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ result }) => result))).toBe('----(er)', {
        e: 'extend',
        r: 'release',
      });
    });
  });
});
