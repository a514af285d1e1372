import { NEVER, distinctUntilChanged, filter, map } from 'rxjs';
import { LeaseState, WorkResult } from '../src';
import { createLease, eventsOf, extend, labelledUnits, marbles, none, record, release, runs } from './support';

const election = (expires = 0) => ({ state: LeaseState.Election, expires, tick: 0 });
const leader = (expires: number) => ({ state: LeaseState.Leader, expires, tick: 0 });
const follower = (expires: number, tick = 0) => ({ state: LeaseState.Follower, expires, tick });

/** Backoff 5 frames at tick 0, 50 at tick 1, 80 beyond: tells the two sides of rule 1's max apart. */
const steppedBackoff = (tick: number) => [5, 50][tick] ?? 80;

describe('rule 1: try(key, work)', () => {
  it('keeps only the latest submission for a key', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      const { ran$, unit } = labelledUnits();
      lease.run();
      hot('a').subscribe(() => {
        lease.try('k', unit('1'));
        lease.try('k', unit('2'));
      });
      expectObservable(ran$).toBe('2');
    });
  });

  it('gives each submission a new, increasing id and reports the replaced one as superseded', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      hot('a-b-c').subscribe(() => lease.try('k', extend));
      expectObservable(eventsOf(lease, 'submitted').pipe(map(({ id }) => id))).toBe('a-b-c', { a: 1, b: 2, c: 3 });
      expectObservable(eventsOf(lease, 'superseded').pipe(map(({ id, by }) => `${id}>${by}`))).toBe('--a-b', {
        a: '1>2',
        b: '2>3',
      });
    });
  });

  it('queues a key at most once: submissions while it waits run once, at the first due time', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 5
      hot('-k-k-k').subscribe(() => lease.try('k', extend)); // due 11, 13, 15: the key keeps 11
      expectObservable(runs(lease)).toBe('x 10ms k');
    });
  });

  it('as follower, waits 2 × backoff(0) when the lease runs out sooner', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 5
      hot('--k').subscribe(() => lease.try('k', extend)); // 2 + max(5 - 2, 2 × 5) = 12
      expectObservable(runs(lease)).toBe('x 11ms k');
    });
  });

  it('as follower, waits until the lease runs out when that is later than 2 × backoff(0)', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('x', release); // frame 0: follower, tick 0, expires 5
      hot('-e').subscribe(() => {
        lease.try('y', extend);
        lease.extend('y'); // frame 1: tick 1, expires 1 + 50 = 51
      });
      hot('--k').subscribe(() => lease.try('k', extend)); // 2 + max(51 - 2, 10) = 51
      expectObservable(runs(lease)).toBe('x 50ms k');
    });
  });

  it('during the election and as leader, makes the key due at once', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      hot('---a---b').subscribe((key) => lease.try(key, extend)); // a in election, b as leader
      expectObservable(runs(lease)).toBe('---a---b');
      expectObservable(record(lease.state$)).toBe('e--l---m', { e: election(), l: leader(103), m: leader(107) });
    });
  });

  it('takes keys due at the same time in the order they became due', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      for (const key of ['c', 'a', 'b']) lease.try(key, extend);
      expectObservable(runs(lease)).toBe('(cab)');
    });
  });
});

describe('rule 2: processing', () => {
  it('processes one key at a time by default', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      const slow = () => cold('---(r|)', { r: WorkResult.Extend });
      lease.try('a', slow);
      lease.try('b', slow);
      expectObservable(runs(lease)).toBe('a--b');
    });
  });

  it('processes up to `workers` keys at a time', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const lease = createLease(scheduler, { workers: 2 });
      lease.run();
      lease.try('l', extend); // leads at 0: every worker may run (rule 18)
      const slow = () => cold('-----(r|)', { r: WorkResult.Extend });
      for (const key of ['a', 'b', 'c']) lease.try(key, slow);
      expectObservable(runs(lease)).toBe('(lab)c');
    });
  });

  it('takes the earliest due key first, not the first queued', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      let aRuns = 0;
      lease.try('a', () => ({ result: WorkResult.None, retry: aRuns++ === 0 })); // runs at 0, due again at 10
      lease.try('s', () => cold('-'.repeat(30) + '(r|)', { r: WorkResult.None })); // holds the worker 0..30
      hot('-----b').subscribe(() => lease.try('b', none)); // due at 5
      expectObservable(runs(lease)).toBe('(as) 26ms (ba)');
    });
  });

  it('never processes the same key twice at once', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler, { workers: 2 });
      lease.run();
      const slow = () => cold('----------(r|)', { r: WorkResult.Extend });
      lease.try('k', slow);
      hot('--k').subscribe(() => lease.try('k', slow)); // due at 2, while the first runs
      expectObservable(eventsOf(lease, 'started').pipe(map(({ id }) => `${id}`))).toBe('1 9ms 2');
    });
  });

  it('drops a due key that has no pending work any more', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', release); // follower: k is due at 10
      lease.try('k', extend);
      hot('-----r').subscribe(() => lease.remove('k'));
      expectObservable(runs(lease)).toBe('x');
      expectObservable(eventsOf(lease, 'dropped').pipe(map(({ reason }) => reason))).toBe('-----r', { r: 'removed' });
    });
  });

  it('as follower, puts a key that comes due before the lease runs out back, due when it runs out', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 5
      hot('-k').subscribe(() => lease.try('k', extend)); // due at 1 + 10 = 11
      hot('---e').subscribe(() => {
        lease.try('y', extend);
        lease.extend('y'); // frame 3: tick 1, expires 53
      });
      expectObservable(eventsOf(lease, 'deferred').pipe(map(({ until }) => until))).toBe('11ms d', { d: 53 });
      expectObservable(runs(lease)).toBe('x 52ms k');
    });
  });

  it("does not hold a worker while a follower's key waits: other keys run meanwhile", () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 5
      hot('-k').subscribe(() => lease.try('k', none)); // due at 11, then deferred to 53
      hot('---e').subscribe(() => {
        lease.try('y', extend);
        lease.extend('y'); // frame 3: tick 1, expires 53
      });
      hot('-'.repeat(20) + 'g').subscribe(() => {
        lease.expire(); // frame 20: run out
        lease.try('g', none); // due at 30
      });
      expectObservable(runs(lease)).toBe('x 29ms g 22ms k');
    });
  });
});

describe('rule 18: until it leads, one unit at a time', () => {
  it('runs one unit in the election, and every worker once its extend makes it leader', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const lease = createLease(scheduler, { workers: 3 });
      lease.run();
      for (const key of ['a', 'b', 'c', 'd']) lease.try(key, () => cold('----(r|)', { r: WorkResult.Extend }));
      expectObservable(runs(lease)).toBe('a---(bcd)');
    });
  });

  it('loses an election with one unit, not one per worker: the others wait for the other lease', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const lease = createLease(scheduler, { workers: 3 });
      lease.run();
      // a's release at 4 makes it follower until 9; b then runs alone, and its release holds c until 18.
      for (const key of ['a', 'b', 'c']) lease.try(key, () => cold('----(r|)', { r: WorkResult.Release }));
      expectObservable(runs(lease)).toBe('a 8ms b 8ms c');
    });
  });

  it('a follower whose wait ran out tries one unit; every worker once it leads', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler, { workers: 3 });
      lease.run();
      lease.try('x', release); // frame 0: follower until 5
      // Submitted at 1 as a follower: due at 1 + 2 × backoff(0) = 11 (rule 1).
      hot('-s').subscribe(() => {
        for (const key of ['a', 'b', 'c']) lease.try(key, () => cold('----(r|)', { r: WorkResult.Extend }));
      });
      expectObservable(runs(lease)).toBe('x 10ms a 3ms (bc)');
    });
  });

  it('a leader turned follower starts nothing while a unit of its lead still runs: that one decides first', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler, { workers: 3 });
      lease.run();
      lease.try('l', extend); // leads at 0
      lease.try('a', () => cold('--(r|)', { r: WorkResult.Release })); // follower at 2, until 7
      lease.try('b', () => cold('-'.repeat(20) + '(r|)', { r: WorkResult.None })); // runs 0..20
      // Submitted at 3 as a follower: due at 13, held while b runs; c's extend at 24 lets d run.
      hot('---s').subscribe(() => {
        for (const key of ['c', 'd']) lease.try(key, () => cold('----(r|)', { r: WorkResult.Extend }));
      });
      expectObservable(runs(lease)).toBe('(lab) 15ms c 3ms d');
    });
  });
});

describe('rule 3: after the work returns', () => {
  it('retry: keeps the work, due again after retryInterval', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      let calls = 0;
      lease.try('k', () => ({ result: WorkResult.None, retry: ++calls < 3 }));
      expectObservable(runs(lease)).toBe('k 9ms k 9ms k');
      expectObservable(eventsOf(lease, 'retried').pipe(map(({ due }) => due))).toBe('a 9ms b', { a: 10, b: 20 });
    });
  });

  it('no retry: forgets the work that ran', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('k', () => cold('-(r|)', { r: WorkResult.Extend }));
      expectObservable(hot('s-s').pipe(map(() => lease.size))).toBe('a-b', { a: 1, b: 0 });
    });
  });

  it('no retry: keeps a newer submission made while the unit ran, and processes it next', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      const { ran$, unit } = labelledUnits();
      lease.run();
      lease.try('k', () => cold('-----(r|)', { r: WorkResult.Extend }).pipe(map(unit('1'))));
      hot('--k').subscribe(() => lease.try('k', unit('2')));
      expectObservable(ran$).toBe('-----(12)');
    });
  });

  it('retry: a newer submission made while the unit ran takes over; the old one was superseded when replaced', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      const { ran$, unit } = labelledUnits();
      lease.run();
      const retry = { result: WorkResult.None, retry: true };
      lease.try('k', () => cold('-----(r|)', { r: retry }).pipe(map(unit('1', retry))));
      hot('--k').subscribe(() => lease.try('k', unit('2', WorkResult.None)));
      expectObservable(ran$).toBe('-----(12)');
      expectObservable(eventsOf(lease, 'superseded').pipe(map(({ id, by }) => `${id}>${by}`))).toBe('--s', {
        s: '1>2',
      });
    });
  });
});

describe('rule 4: state change by result', () => {
  it('extend: from election becomes leader, expires = now + leaseDuration', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('k', () => cold('---(r|)', { r: WorkResult.Extend }));
      expectObservable(record(lease.state$)).toBe('e--l', { e: election(), l: leader(103) });
      expectObservable(record(lease.leader$)).toBe('f--t', { f: false, t: true });
    });
  });

  it('extend: from follower becomes leader with tick 0; as leader renews expires', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      // r at 0 runs at once; e at 1 waits as follower until 11; e at 21 runs at once as leader
      hot('re 19ms e', { r: release, e: extend }).subscribe((work) => lease.try('k', work));
      expectObservable(record(lease.state$)).toBe('(ab) 7ms c 9ms d', {
        a: election(),
        b: follower(5),
        c: leader(111),
        d: leader(121),
      });
    });
  });

  it('release: from election or leader becomes follower with tick 0; as follower tick += 1', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      // e at 0 and r at 10 run at once; r at 20 waits as follower until 30
      hot('e 9ms r 9ms r', { e: extend, r: release }).subscribe((work) => lease.try('k', work));
      expectObservable(record(lease.state$)).toBe('(ab) 6ms c 19ms d', {
        a: election(),
        b: leader(100),
        c: follower(10 + 5, 0),
        d: follower(30 + 50, 1),
      });
      expectObservable(record(lease.leader$)).toBe('(ft) 6ms f', { f: false, t: true });
    });
  });

  it('release: from election becomes follower with tick 0 and expires = now + backoff(0)', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('k', () => cold('--(r|)', { r: WorkResult.Release }));
      expectObservable(record(lease.state$)).toBe('e-f', { e: election(), f: follower(2 + 5, 0) });
    });
  });

  it('none: changes nothing', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      hot('n-n-n').subscribe(() => lease.try('k', none));
      expectObservable(record(lease.state$)).toBe('e', { e: election() });
      expectObservable(runs(lease)).toBe('k-k-k');
    });
  });
});

describe('rule 5: extend(key)', () => {
  it('as follower, forgets the pending work, tick += 1 and expires = now + backoff(tick)', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 5
      hot('-k').subscribe(() => lease.try('k', extend)); // due at 11
      hot('----e').subscribe(() => lease.extend('k'));
      expectObservable(runs(lease)).toBe('x');
      expectObservable(record(lease.state$)).toBe('(ab)c', {
        a: election(),
        b: follower(5),
        c: follower(4 + 50, 1),
      });
      expectObservable(eventsOf(lease, 'dropped').pipe(map(({ key, reason }) => `${key}:${reason}`))).toBe('----d', {
        d: 'k:extended',
      });
    });
  });

  it('with no pending work for the key, does nothing', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', release);
      hot('---e').subscribe(() => lease.extend('other'));
      expectObservable(record(lease.state$)).toBe('(ab)', { a: election(), b: follower(5) });
      expectObservable(eventsOf(lease, 'dropped')).toBe('');
    });
  });

  it('as leader, forgets the pending work and leaves the state as it is', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', extend); // frame 0: leader
      lease.try('s', () => cold('----------(r|)', { r: WorkResult.None })); // holds the worker 0..10
      hot('--k').subscribe(() => lease.try('k', extend));
      hot('-----e').subscribe(() => lease.extend('k'));
      expectObservable(runs(lease)).toBe('(xs)');
      expectObservable(record(lease.state$)).toBe('(ab)', { a: election(), b: leader(100) });
    });
  });

  it('while the key runs, forgets its work so that a retry it asks for is not made', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('k', () => cold('-----(r|)', { r: { result: WorkResult.None, retry: true } }));
      hot('--e').subscribe(() => lease.extend('k'));
      expectObservable(runs(lease)).toBe('k');
      expectObservable(eventsOf(lease, 'retried')).toBe('');
    });
  });
});

describe('rule 5, extend(key, at): a write found late renews the other lease as of when it was made', () => {
  it('renews from `at`, never shortens, and a renewal already run out renews nothing', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('x', release); // frame 0: follower, tick 0, expires 5
      hot('-abc').subscribe((key) => lease.try(key, extend));
      hot('--a').subscribe(() => lease.extend('a', 0)); // frame 2: tick 1, expires max(0 + 50, 5) = 50
      hot('---b').subscribe(() => lease.extend('b', 1)); // frame 3: tick 2, 1 + 80 = 81
      // frame 60, a write made at -30: -30 + backoff(3) = 50 < 60, that renewal has run out: old news
      hot('-'.repeat(60) + 'c').subscribe(() => lease.extend('c', -30));
      expectObservable(
        eventsOf(lease, 'state').pipe(map(({ snapshot }) => `${snapshot.tick}@${snapshot.expires}`)),
      ).toBe('a-bc', { a: '0@5', b: '1@50', c: '2@81' });
      expectObservable(eventsOf(lease, 'dropped').pipe(map(({ key }) => key))).toBe('--ab 56ms c');
    });
  });

  it('rejects an `at` that is not a finite number, naming it, and changes nothing', () => {
    marbles(({ scheduler }) => {
      const lease = createLease(scheduler);
      lease.try('k', extend);
      expect(() => lease.extend('k', Number.NaN)).toThrow(/extend: at must be a finite number, received NaN/);
      expect(lease.size).toBe(1);
    });
  });
});

describe('rule 6: remove(key)', () => {
  it('forgets the pending work; the state is unchanged', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', release);
      hot('-k').subscribe(() => lease.try('k', extend));
      hot('----r').subscribe(() => lease.remove('k'));
      expectObservable(runs(lease)).toBe('x');
      expectObservable(record(lease.state$)).toBe('(ab)', { a: election(), b: follower(5) });
      expectObservable(hot('---s-s').pipe(map(() => lease.size))).toBe('---a-b', { a: 1, b: 0 });
    });
  });
});

describe('rules 5 and 6 as streams: extend(keys$) and remove(keys$) merge keys into the inputs', () => {
  it('each key of the stream is extend(key): the same rule, at the frame the key comes', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 5
      hot('-ab').subscribe((key) => lease.try(key, extend)); // due at 11 and 12
      lease.extend(hot('----a--b'));
      expectObservable(eventsOf(lease, 'dropped').pipe(map(({ key, reason }) => `${key}:${reason}`))).toBe('----a--b', {
        a: 'a:extended',
        b: 'b:extended',
      });
      expectObservable(record(lease.state$).pipe(map(({ tick }) => tick))).toBe('(00)1--2', { 0: 0, 1: 1, 2: 2 });
    });
  });

  it("remove(keys$) returns the stream's Subscription: unsubscribing it stops that input, nothing else", () => {
    marbles(({ scheduler, hot, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      lease.try('a', extend);
      lease.try('b', extend); // not running: both stay pending
      const keys = hot('--a---b');
      const removing = lease.remove(keys);
      scheduler.schedule(() => removing.unsubscribe(), 4);
      expectSubscriptions(keys.subscriptions).toBe('^---!');
      expectObservable(eventsOf(lease, 'dropped').pipe(map(({ key }) => key))).toBe('--a');
      expectObservable(hot('-------s').pipe(map(() => lease.pendingKeys()))).toBe('-------p', { p: ['b'] });
    });
  });

  it('a bad key ends its stream with an input-error event; the lease and its other inputs go on', () => {
    marbles(({ scheduler, hot, expectObservable, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      lease.try('a', extend);
      lease.try('b', extend);
      const bad = hot<string>('-x-a', { x: '' });
      lease.extend(bad);
      lease.remove(hot('---b'));
      expectSubscriptions(bad.subscriptions).toBe('^!');
      expectObservable(
        eventsOf(lease, 'input-error').pipe(map(({ call, error }) => [call, (error as Error).name])),
      ).toBe('-e', { e: ['extend(keys$)', 'TypeError'] });
      expectObservable(eventsOf(lease, 'dropped').pipe(map(({ key }) => key))).toBe('---b');
    });
  });

  it('dispose() ends every merged stream', () => {
    marbles(({ scheduler, hot, expectSubscriptions }) => {
      const lease = createLease(scheduler);
      const keys = hot<string>('-----a');
      lease.extend(keys);
      scheduler.schedule(() => lease.dispose(), 3);
      expectSubscriptions(keys.subscriptions).toBe('^--!');
    });
  });
});

describe('rule 7: expire()', () => {
  it("makes a waiting follower's key run when it is next checked instead of waiting", () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 5
      hot('-k').subscribe(() => lease.try('k', extend)); // due at 11
      hot('---e').subscribe(() => {
        lease.try('y', extend);
        lease.extend('y'); // frame 3: expires 53
      });
      hot('-----x').subscribe(() => lease.expire()); // frame 5: expires now
      expectObservable(eventsOf(lease, 'state').pipe(map(({ snapshot }) => snapshot.expires))).toBe('a--b-c 5ms d', {
        a: 5,
        b: 53,
        c: 5,
        d: 11 + 100, // k ran at 11 and wrote
      });
      expectObservable(runs(lease)).toBe('x 10ms k'); // not deferred to 53
      expectObservable(eventsOf(lease, 'deferred')).toBe('');
    });
  });
});

describe('rule 8: size', () => {
  it('counts the keys with pending work', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('x', release); // runs and is forgotten at 0
      hot('-a').subscribe(() => {
        lease.try('k', extend);
        lease.try('j', extend);
        lease.try('j', extend); // one key, one pending unit
      });
      hot('---r').subscribe(() => lease.remove('j'));
      expectObservable(hot('--s-s 7ms s').pipe(map(() => lease.size))).toBe('--a-b 7ms c', { a: 2, b: 1, c: 0 });
    });
  });
});

describe('rule 9: wait() and waitUntil(ms)', () => {
  it('wait() resolves with whether we led when the election ended', async () => {
    let decided!: Promise<boolean>;
    marbles(({ scheduler, cold }) => {
      const lease = createLease(scheduler);
      lease.run();
      decided = lease.wait();
      lease.try('a', () => cold('---(r|)', { r: WorkResult.Extend })); // leader at 3
      lease.try('b', release); // follower at 3, right after
    });
    await expect(decided).resolves.toBe(true);
  });

  it('wait() resolves false when the first settled result is release; none does not end the election', async () => {
    let decided!: Promise<boolean>;
    marbles(({ scheduler }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('n', none);
      lease.try('r', release);
      lease.try('e', extend);
      decided = lease.wait();
    });
    await expect(decided).resolves.toBe(false);
  });

  it('waitUntil(ms) gives up after ms on the lease clock, and says it timed out', async () => {
    const results: Promise<{ leader: boolean; ok: boolean }>[] = [];
    marbles(({ scheduler, cold, time }) => {
      const lease = createLease(scheduler);
      lease.run();
      lease.try('k', () => cold('------------------------------(r|)', { r: WorkResult.Extend })); // leader at 30
      results.push(
        lease.waitUntil(time('--------------------|')),
        lease.waitUntil(time('----------------------------------------|')),
      );
    });
    await expect(results[0]).resolves.toEqual({ leader: false, ok: false });
    await expect(results[1]).resolves.toEqual({ leader: true, ok: true });
  });

  it('waitUntil(ms) gives up when only none results settle', async () => {
    let result!: Promise<{ leader: boolean; ok: boolean }>;
    marbles(({ scheduler, hot }) => {
      const lease = createLease(scheduler);
      lease.run();
      hot('n-n-n').subscribe(() => lease.try('k', none));
      result = lease.waitUntil(10);
    });
    await expect(result).resolves.toEqual({ leader: false, ok: false });
  });
});

describe('rule 10: stopping', () => {
  it('stops processing and timers, keeps the pending work, and a later run() resumes it', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      const processing = lease.run();
      lease.try('x', release); // follower at 0
      hot('-k').subscribe(() => lease.try('k', extend)); // due at 11
      hot('-----s').subscribe(() => processing.unsubscribe());
      hot('-'.repeat(20) + 'r').subscribe(() => lease.run());
      expectObservable(runs(lease)).toBe('x 19ms k');
      expectObservable(eventsOf(lease, 'stopped').pipe(map(({ pending }) => pending))).toBe('-----p', { p: ['k'] });
      expectObservable(hot('------s').pipe(map(() => lease.size))).toBe('------n', { n: 1 });
    });
  });

  it('lets go of a running unit: its late result changes nothing, and its key runs again on resume', () => {
    marbles(({ scheduler, cold, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      const processing = lease.run();
      lease.try('k', () => cold('----------(r|)', { r: WorkResult.Extend }));
      hot('-----s').subscribe(() => processing.unsubscribe());
      hot('-'.repeat(20) + 'r').subscribe(() => lease.run());
      expectObservable(runs(lease)).toBe('k 19ms k');
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ at }) => at))).toBe('30ms s', { s: 30 });
      expectObservable(record(lease.state$)).toBe('e 29ms l', { e: election(), l: leader(130) });
    });
  });

  it('schedules nothing while stopped', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.try('k', extend);
      hot('---t').subscribe(() => lease.try('j', extend));
      expectObservable(runs(lease)).toBe('');
      expectObservable(hot('----s').pipe(map(() => lease.size))).toBe('----n', { n: 2 });
    });
  });
});

describe('re-entrancy: a unit that calls the lease while it runs', () => {
  it('try(other) records the key; it runs after the unit returns, never inside it', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler);
      lease.run();
      const order = eventsOf(lease, 'started').pipe(map(({ key }) => key));
      const log = record(lease.events$.pipe(map((event) => `${event.type}${'key' in event ? `:${event.key}` : ''}`)));
      lease.try('a', () => {
        lease.try('b', none);
        return WorkResult.None;
      });
      expectObservable(order).toBe('(ab)');
      expectObservable(log).toBe('(012345)', {
        0: 'submitted:a',
        1: 'started:a',
        2: 'submitted:b',
        3: 'settled:a',
        4: 'started:b',
        5: 'settled:b',
      });
    });
  });

  it('try(sameKey) keeps the new work, which runs next', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createLease(scheduler);
      const { ran$, unit } = labelledUnits();
      lease.run();
      lease.try('k', () => {
        lease.try('k', unit('2', WorkResult.None));
        return unit('1', WorkResult.None)();
      });
      expectObservable(ran$).toBe('(12)');
      expectObservable(hot('-s').pipe(map(() => lease.size))).toBe('-n', { n: 0 });
    });
  });

  it('extend(other) and remove(self) take effect at once; removing its own key lets go of the unit (rule 13)', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, { backoff: steppedBackoff });
      lease.run();
      lease.try('x', release); // follower, expires 5
      scheduler.schedule(() => {
        lease.try('self', () => {
          lease.extend('other'); // tick 1
          lease.remove('self'); // lets go of this very unit
          return { result: WorkResult.Release, retry: true }; // ignored: no tick 2, no retry
        });
        lease.try('other', extend); // due at 11, after self
        lease.expire();
      }, 1);
      expectObservable(runs(lease)).toBe('x 10ms s', { x: 'x', s: 'self' });
      expectObservable(eventsOf(lease, 'retried')).toBe('');
      expectObservable(eventsOf(lease, 'settled').pipe(map(({ key }) => key))).toBe('x');
      expectObservable(eventsOf(lease, 'let-go').pipe(map(({ key, reason }) => `${key}:${reason}`))).toBe('11ms s', {
        s: 'self:removed',
      });
      expectObservable(
        record(lease.state$).pipe(
          map(({ tick }) => tick),
          distinctUntilChanged(),
        ),
      ).toBe('0 10ms 1', { 0: 0, 1: 1 });
    });
  });
});

describe('re-entrancy: an event listener that calls the lease', () => {
  /** The events of key `key`, as `type` or `type:detail`, recorded from now on. */
  const eventsOfKey = (lease: ReturnType<typeof createLease>, key: string) =>
    record(
      lease.events$.pipe(
        filter((event) => 'key' in event && event.key === key),
        map((event) => (event.type === 'let-go' ? `let-go:${event.reason}` : event.type)),
      ),
    );

  it('removing the key on its error event: the unit ends once, its worker is free, its retry is dropped', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, { workers: 1 });
      const a = eventsOfKey(lease, 'a');
      lease.events$.pipe(filter((event) => event.type === 'error')).subscribe(() => lease.remove('a'));
      lease.run();
      lease.try('a', () => {
        throw new Error('boom');
      });
      lease.try('b', () => NEVER); // holds the only worker from then on
      lease.try('c', extend);
      // The listener's remove runs once the failure's events are out: the retry they announce is dropped.
      expectObservable(a).toBe('(012345)', {
        0: 'submitted',
        1: 'started',
        2: 'error',
        3: 'settled',
        4: 'retried',
        5: 'dropped',
      });
      // The failure counts as a release: b waits for the other writer's lease (backoff 5); c never gets the worker.
      expectObservable(runs(lease)).toBe('a 4ms b');
    });
  });

  it('removing the key when its unit times out: one let-go, one error, the worker free for the next key', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler, { workers: 1, workTimeout: 5 });
      const a = eventsOfKey(lease, 'a');
      lease.events$
        .pipe(filter((event) => event.type === 'let-go' && event.reason === 'timeout'))
        .subscribe(() => lease.remove('a'));
      lease.run();
      lease.try('a', () => NEVER);
      lease.try('b', extend);
      // The listener's remove runs once the timeout's events are out: the retry they announce is dropped.
      expectObservable(a).toBe('(01) 1ms (23456)', {
        0: 'submitted',
        1: 'started',
        2: 'let-go:timeout',
        3: 'error',
        4: 'settled',
        5: 'retried',
        6: 'dropped',
      });
      // The timeout counts as a release: b waits for the other writer's lease (backoff 5), from 5 to 10.
      expectObservable(runs(lease)).toBe('a 9ms b');
      expectObservable(eventsOf(lease, 'let-go')).toBe('5ms x', { x: expect.objectContaining({ key: 'a' }) });
    });
  });

  it('removing the key on its started event: the lease lets go of the unit before its work is called', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createLease(scheduler);
      const a = eventsOfKey(lease, 'a');
      lease.events$.pipe(filter((event) => event.type === 'started')).subscribe(({ key }) => lease.remove(key));
      const work = jest.fn(extend);
      lease.run();
      lease.try('a', work);
      expectObservable(a).toBe('(0123)', { 0: 'submitted', 1: 'started', 2: 'dropped', 3: 'let-go:removed' });
      scheduler.schedule(() => expect(work).not.toHaveBeenCalled(), 1);
    });
  });
});
