import { map, type Observable, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { ContentionTracker, type ContentionSnapshot, type ContentionTrackerOptions } from '../src/contentionTracker';

// Values the other writer puts in 'route/a' while we want 'ours'.
const theirs = { x: 'theirs-1', y: 'theirs-2', z: 'theirs-3', o: 'ours' };
const keys = { a: 'route/a', b: 'route/b', c: 'route/c' };
const bool = { t: true, f: false };

/** The snapshot with `contended` keys; `all` when the cap is exceeded. */
function snapshot(contended: string[], all = false): ContentionSnapshot {
  return { keys: new Set(contended), all };
}

const n = snapshot([]);

let testScheduler: TestScheduler;

beforeEach(() => {
  testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
});

/** A tracker on the router rule (the default), in virtual time. */
function routerTracker(options: ContentionTrackerOptions): ContentionTracker {
  return new ContentionTracker({ scheduler: testScheduler, ...options });
}

/** A tracker on the sliding-window rule, in virtual time. */
function windowTracker(options: ContentionTrackerOptions): ContentionTracker {
  return new ContentionTracker({ rule: 'window', scheduler: testScheduler, ...options });
}

/** Asks `isContended(key)` at each frame of `marbles` that holds a value. */
function ask(marbles: string, contention: ContentionTracker, key: string): Observable<boolean> {
  return testScheduler.createColdObservable(marbles).pipe(map(() => contention.isContended(key)));
}

/** Reads `size` at each frame of `marbles` that holds a value. */
function readSize(marbles: string, contention: ContentionTracker): Observable<number> {
  return testScheduler.createColdObservable(marbles).pipe(map(() => contention.size));
}

/**
 * The test scheduler, seen by the tracker: it records every timer the tracker
 * sets and when each one ran.
 */
function timerSpy(): { scheduler: SchedulerLike; pendingTimers: () => number; ranAt: number[] } {
  const timers: Subscription[] = [];
  const ranAt: number[] = [];
  const scheduler: SchedulerLike = {
    now: () => testScheduler.now(),
    schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay?: number, state?: T): Subscription {
      const timer = testScheduler.schedule<T>(
        function (this: SchedulerAction<T>, value?: T) {
          ranAt.push(testScheduler.now());
          work.call(this, value);
        },
        delay,
        state,
      );
      timers.push(timer);
      return timer;
    },
  };
  return { scheduler, pendingTimers: () => timers.filter((timer) => !timer.closed).length, ranAt };
}

// ---- the router rule (the default) ------------------------------------------
//
// Window 10 frames throughout: a contention lasts 10 frames, and the flush runs
// every 20 frames from the tracker's creation (at 20, 40, ...).

/** Changes of several keys: each value is [key, value], all of them other than 'ours'. */
const byKey = {
  a: ['route/a', 'theirs-1'],
  A: ['route/a', 'theirs-2'],
  á: ['route/a', 'theirs-3'],
  b: ['route/b', 'theirs-1'],
  B: ['route/b', 'theirs-2'],
  c: ['route/c', 'theirs-1'],
  C: ['route/c', 'theirs-2'],
} satisfies Record<string, [string, string]>;

describe('router rule: the first change away from the value last seen makes a key contended', () => {
  it('a key seen for the first time is a candidate, not contended', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('x', theirs);
      const asked = '-p';
      const answers = '-f';
      const sizes = '-1';
      const states = 'n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      expectObservable(readSize(asked, contention)).toBe(sizes, { 1: 1 });
    });
  });

  it('the next different value makes it contended at once, for that key only', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('x--y', theirs);
      const asked = '--pp';
      const answers = '--ft';
      const otherKey = '--ff';
      const states = 'n--a---------n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      expectObservable(ask(asked, contention, 'route/b')).toBe(otherKey, bool);
    });
  });

  it('the same value seen again changes nothing, however often', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('x-x-x-x', theirs);
      const asked = '------p';
      const answers = '------f';
      const states = 'n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });

  it('defaults: the contention lasts 60 000 ms', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const contention = new ContentionTracker({ scheduler: testScheduler });
      const changes = cold('xy', theirs);
      const states = 'na 59999ms n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
    });
  });
});

describe("router rule: written(key, value) is the router's Clear, back to candidate with our value", () => {
  it('after our write (w), the first change away from our value makes the key contended', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      // Without the write, the second x would be the value last seen: nothing.
      const changes = cold('x---x', theirs);
      const writes = cold('--w');
      const asked = '---pp';
      const answers = '---ft';
      const states = 'n---a---------n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      writes.subscribe(() => contention.written('route/a', 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });

  it('a write ends a contention at once', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('xy', theirs);
      const writes = cold('-----w');
      const asked = '-p--pp';
      const answers = '-t--tf';
      const states = 'na---n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      writes.subscribe(() => contention.written('route/a', 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });

  it('a write to a key with no record changes nothing: the change after it only makes a candidate', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const writes = cold('w');
      const changes = cold('--x', theirs);
      const asked = '-p-p';
      const answers = '-f-f';
      const sizes = '-0-1';

      writes.subscribe(() => contention.written('route/a', 'ours'));
      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      expectObservable(readSize(asked, contention)).toBe(sizes, { 0: 0, 1: 1 });
    });
  });

  it('after our write, a change back to the value seen before it contends the key too', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      // x is seen, we write ours, x again: a fight in its second round.
      const changes = cold('x-----x', theirs);
      const writes = cold('---w');
      const asked = '-----pp';
      const answers = '-----ft';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      writes.subscribe(() => contention.written('route/a', 'ours'));
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });
});

describe('router rule: a change to our own value (o) confirms it, as our write does', () => {
  it('theirs, ours by another writer, theirs again: contended on the third change only', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('x-o-x', theirs);
      const asked = '--p-p';
      const answers = '--f-t';
      const states = 'n---a---------n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });
});

describe('router rule: a contention lasts one window; the flush every two windows forgets what has passed', () => {
  it('contended at 3: contended through 12, not at 13', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('x--y', theirs);
      const asked = '---p--------pp';
      const answers = '---t--------tf';
      const states = 'n--a---------n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });

  it('changes while contended do not extend the contention', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('xy--z--x', theirs);
      const asked = '----------pp';
      const answers = '----------tf';
      const states = 'na---------n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });

  it('until the flush at 20, an ended contention is no candidate: a new value does not contend it again', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      // z at 13 is ignored (the record is still contended); the flush at 20 drops the record,
      // so x at 22 is a first sight and y at 24 contends it.
      const changes = cold('xy 11ms z 8ms x-y', theirs);
      const asked = '------------- p 10ms p';
      const answers = '------------- f 10ms t';
      const states = 'na 9ms n 12ms a 9ms n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });

  it('a candidate is kept three windows from its first sight: the flush at 40 drops it, not the one at 20', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('x', theirs);
      const asked = '-p 17ms pp 18ms pp';
      const sizes = '-1 17ms 11 18ms 10';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(readSize(asked, contention)).toBe(sizes, { 0: 0, 1: 1 });
    });
  });

  it('the flush keeps its cadence from the tracker’s creation; one timer at a time, none while nothing is tracked', () => {
    const spy = timerSpy();
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|'), scheduler: spy.scheduler });
      // Contended at 26: its window ends at 36, and the flush at 40 (not at 26 + 20) drops the record.
      const changes = cold('24ms -xy', theirs);
      const asked = '24ms p-p 10ms p-pp';
      const sizes = '24ms 0-2 10ms 2-20';
      const timersAsked = '24ms p-p 10ms p-p-p';
      const timers = '24ms 0-1 10ms 1-1-0';

      changes.subscribe((value) => {
        contention.changed('route/a', value, 'ours');
        contention.changed('route/b', value, 'ours');
      });
      expectObservable(readSize(asked, contention)).toBe(sizes, { 0: 0, 1: 1, 2: 2 });
      expectObservable(cold(timersAsked).pipe(map(() => spy.pendingTimers()))).toBe(timers, { 0: 0, 1: 1 });
    });
    expect(spy.ranAt).toEqual([36, 40]);
  });
});

describe('router rule: more than maxContentions contentions contend every key until a flush counts no more', () => {
  it('maxContentions 1: the second contention contends every key, until the flush at 20 recounts', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|'), maxContentions: 1 });
      const changes = cold('aAbB', byKey);
      const asked = '--pp 15ms pp';
      const answers = '--ft 15ms tf';
      const states = 'nA-B 7ms C-D 6ms n';

      changes.subscribe(([key, value]) => contention.changed(key, value, 'ours'));
      expectObservable(contention.contended$).toBe(states, {
        n,
        A: snapshot(['route/a']),
        B: snapshot(['route/a', 'route/b'], true),
        C: snapshot(['route/b'], true),
        D: snapshot([], true),
      });
      expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
    });
  });

  it('a contended key changed again counts toward the cap', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|'), maxContentions: 1 });
      const changes = cold('aAá', byKey);
      const asked = '-pp';
      const answers = '-ft';

      changes.subscribe(([key, value]) => contention.changed(key, value, 'ours'));
      expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
    });
  });

  it('over the cap, changes are not tracked: b seen at 2 is unknown after the flush, so B at 22 is a first sight', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|'), maxContentions: 0 });
      const changes = cold('aAb 18ms -B', byKey);
      const asked = '-p-p 18ms -p';
      const answers = '-t-t 18ms -f';
      const sizes = '-1-1 18ms -1';

      changes.subscribe(([key, value]) => contention.changed(key, value, 'ours'));
      expectObservable(ask(asked, contention, 'route/b')).toBe(answers, bool);
      expectObservable(readSize(asked, contention)).toBe(sizes, { 1: 1 });
    });
  });

  it('the flush recounts the keys still contended: the cap holds through the flush at 20, and ends at 40', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|'), maxContentions: 1 });
      // a contended at 15, b at 17: both still in their window at 20.
      const changes = cold('14ms aAbB', byKey);
      const asked = '14ms -p-p--p 18ms pp';
      const answers = '14ms -f-t--t 18ms tf';

      changes.subscribe(([key, value]) => contention.changed(key, value, 'ours'));
      expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
    });
  });

  it('the flush recounts contentions as the keys still contended: a cap raised by one key changing again ends at 20', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|'), maxContentions: 1 });
      // a is contended at 15 and changed again at 16: two contentions, over the cap; at 20 it is one key.
      const changes = cold('14ms aAá', byKey);
      const asked = '14ms --p--pp';
      const answers = '14ms --t--tf';
      const stillA = '14ms --t--tt';

      changes.subscribe(([key, value]) => contention.changed(key, value, 'ours'));
      expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
      expectObservable(ask(asked, contention, 'route/a')).toBe(stillA, bool);
    });
  });

  it('default maxContentions is 5: five contended keys (f) are fine, a sixth (s) contends every key', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const contention = routerTracker({});
      const changes = cold('-f-s');
      const asked = '--p-p';
      const answers = '--f-t';

      changes.subscribe((step) => {
        const names = step === 'f' ? ['1', '2', '3', '4', '5'] : ['6'];
        for (const name of names) {
          contention.changed(`route/${name}`, 'theirs-1', 'ours');
          contention.changed(`route/${name}`, 'theirs-2', 'ours');
        }
      });
      expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
    });
  });

  it('neither written() (w) nor clear() (c) lifts the cap', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|'), maxContentions: 0 });
      const changes = cold('aA', byKey);
      const calls = cold('--wc');
      const asked = '----p';
      const answers = '----t';

      changes.subscribe(([key, value]) => contention.changed(key, value, 'ours'));
      calls.subscribe((call) => (call === 'w' ? contention.written('route/a', 'ours') : contention.clear('route/a')));
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });
});

describe('router rule: clear(key) forgets the key', () => {
  it('ends a contention at once, and the next change is a first sight', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const changes = cold('xy---z', theirs);
      const clears = cold('---c');
      const asked = '--pp-p';
      const answers = '--tf-f';
      const states = 'na-n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      clears.subscribe(() => contention.clear('route/a'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });
});

describe('router rule: dispose() stops the timer', () => {
  it('completes contended$, leaves no timer set, and later calls change nothing', () => {
    const spy = timerSpy();
    let pendingAfterDispose: number | undefined;

    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|'), scheduler: spy.scheduler });
      const changes = cold('xy---xy', theirs);
      const calls = cold('---d--w');
      const asked = '-p---p-p';
      const answers = '-t---f-f';
      const states = 'na-|';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      calls.subscribe((call) => {
        if (call === 'w') {
          contention.written('route/a', 'ours');
          return;
        }
        contention.dispose();
        pendingAfterDispose = spy.pendingTimers();
      });
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });

    expect(pendingAfterDispose).toBe(0);
    expect(spy.ranAt.filter((frame) => frame >= 3)).toEqual([]);
  });
});

// ---- the router's own cases --------------------------------------------------

describe("the router's own cases (its status_test.go), in virtual time", () => {
  // One minute there is one window (10 frames) here.
  const hosts = {
    a: 'route1.test.local',
    b: 'route2.test.local',
    c: 'route3.test.local',
    d: 'route4.test.local',
    e: 'route5.test.local',
    f: 'route6.test.local',
    o: 'route1.other.local',
    1: 'route1.other1.local',
    2: 'route1.other2.local',
    3: 'route1.other3.local',
  };
  const passResults = { w: 'w', n: 'n', s: 's' }; // wrote, nothing to write, stood down

  it('TestRouterContention: a single change is let through, the second round contends, a flush keeps it, it is over after the window', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      const key = 'route/a';
      let record: string | undefined;
      let wanted = hosts.a;

      // Another writer's writes: those the tracker hears of, and two it has not heard of yet.
      const heard = cold('----1 9ms 2-3', hosts);
      const unheard = cold('--o 40ms o', hosts);
      // Our own writes heard back on the feed (e).
      const echoes = cold('------e 40ms e-e-(ee)');
      // Our passes, each with the host we want: write unless it is there already or the key is contended.
      const passes = cold('aa-a-a-a 7ms a 5ms a 22ms abc-d-e-f', hosts);
      const results = '   wn-w-w-n 7ms s 5ms s 22ms www-w-w-w';
      const asked = '     ----p-p 7ms p-p----p';
      const answers = '    ----f-f 7ms t-t----t';
      const states = '     n 13ms a 9ms n';

      unheard.subscribe((value) => (record = value));
      heard.subscribe((value) => {
        record = value;
        contention.changed(key, value, hosts.a);
      });
      echoes.subscribe(() => contention.changed(key, record as string, wanted));
      const pass$ = passes.pipe(
        map((want) => {
          wanted = want;
          if (record === want) return 'n';
          if (contention.isContended(key)) return 's';
          record = want;
          contention.written(key, want);
          return 'w';
        }),
      );
      expectObservable(pass$).toBe(results, passResults);
      expectObservable(ask(asked, contention, key)).toBe(answers, bool);
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot([key]) });
    });
  });

  /** A route ingress condition, as the router keeps it. */
  interface Condition {
    type: string;
    status: string;
    reason?: string;
    message?: string;
    lastTransitionTime: string;
  }

  /**
   * What writers would disagree on, as one string: the conditions without
   * their transition times, in one order. Equality of values is the caller's
   * to define; this is the router's.
   */
  function ingressValue(conditions: Condition[]): string {
    return conditions
      .map(({ type, status, reason = '', message = '' }) => [type, status, reason, message].join('|'))
      .sort()
      .join('\n');
  }

  const now = 'now';
  const later = 'three minutes later';
  const unservable = (changes: Partial<Condition> = {}): Condition => ({
    type: 'UnservableInFutureVersions',
    status: 'True',
    reason: 'foo',
    message: 'foo',
    lastTransitionTime: now,
    ...changes,
  });

  it.each<[string, Condition[], Condition[], boolean]>([
    ['no change to condition does not cause contention', [unservable()], [unservable()], false],
    ['adding condition causes contention', [], [unservable()], true],
    ['removing condition causes contention', [unservable()], [], true],
    ['changing condition type causes contention', [unservable()], [unservable({ type: 'NewConditionType' })], true],
    ['changing condition status causes contention', [unservable()], [unservable({ status: 'False' })], true],
    [
      'changing condition status with empty reason and message causes contention',
      [{ type: 'Admitted', status: 'True', lastTransitionTime: later }],
      [{ type: 'Admitted', status: 'False', reason: 'foo', message: 'foo', lastTransitionTime: now }],
      true,
    ],
    ['changing condition reason causes contention', [unservable()], [unservable({ reason: 'bar' })], true],
    ['changing condition message causes contention', [unservable()], [unservable({ message: 'bar' })], true],
    [
      'changing condition transition time does not cause contention',
      [unservable()],
      [unservable({ lastTransitionTime: later })],
      false,
    ],
    [
      'same conditions, but different order does not cause contention',
      [unservable(), unservable({ type: 'ConditionTest', reason: 'bar', message: 'bar' })],
      [unservable({ type: 'ConditionTest', reason: 'bar', message: 'bar' }), unservable()],
      false,
    ],
  ])('TestRouterContentionOnCondition: %s', (_, conditions, updated, contends) => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = routerTracker({ window: time('----------|') });
      // The first change is a first sight, never contended; the second contends when the value differs.
      const changes = cold('ab', { a: ingressValue(conditions), b: ingressValue(updated) });
      const asked = 'pp';
      const answers = contends ? 'ft' : 'ff';

      changes.subscribe((value) => contention.changed('route/a', value, 'a value of ours'));
      expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
    });
  });
});

// ---- the window rule (rule: 'window') ----------------------------------------

describe("window rule (rule: 'window')", () => {
  describe('below the threshold, a key is not contended', () => {
    it('two changes by another writer, threshold 3: never contended', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        const changes = cold('x--y', theirs);
        const asked = '---p-----p';
        const answers = '---f-----f';
        const states = 'n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n });
        expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      });
    });
  });

  describe('threshold changes within one window make a key contended', () => {
    it('three changes in six frames, window 10: contended from the third, for that key only', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        const changes = cold('x--y--z', theirs);
        const asked = '-----pp';
        const answers = '-----ft';
        const otherKey = '-----ff';
        const states = 'n-----a---------n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
        expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
        expectObservable(ask(asked, contention, 'route/b')).toBe(otherKey, bool);
      });
    });

    it('defaults: threshold 3, and the contention lasts 60 000 ms', () => {
      testScheduler.run(({ cold, expectObservable }) => {
        const contention = new ContentionTracker({ rule: 'window', scheduler: testScheduler });
        const changes = cold('xyz', theirs);
        const states = 'n-a 59999ms n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      });
    });

    it('the window slides: the last three changes count, wherever they fall', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        // At 10 the change at 0 has left the window; at 14 the changes at 5, 10 and 14 are in it.
        const changes = cold('x----y----z---x', theirs);
        const states = 'n-------------a---------n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      });
    });
  });

  describe('changes spread wider than the window do not make a key contended', () => {
    it('three changes exactly one window from first to last: not contended', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        const changes = cold('x----y----z', theirs);
        const asked = '----------p';
        const answers = '----------f';
        const states = 'n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n });
        expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      });
    });

    it('the same three changes one frame closer: contended', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        const changes = cold('x----y---z', theirs);
        const states = 'n--------a---------n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
      });
    });
  });

  describe('a contention lasts one window, then clears', () => {
    it('contended at 2, window 10: contended until 11, clear at 12', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        const changes = cold('xyz', theirs);
        const asked = '--p--------pp';
        const answers = '--t--------tf';
        const states = 'n-a---------n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
        expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      });
    });

    it('changes while contended neither extend it nor count toward the next one', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        // Counted, the changes at 4, 6 and 8 would keep it contended past 12 or make it so again at 13.
        const changes = cold('xyz-x-y-z----xy', theirs);
        const asked = '------------p-p';
        const answers = '------------f-f';
        const states = 'n-a---------n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
        expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      });
    });
  });

  describe('a change to our own value does not count', () => {
    it('agreement (o) neither counts nor resets the count', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        // Counted, the agreements would make it contended at 4; resetting, never.
        const changes = cold('x-o-y-o-z', theirs);
        const asked = '----p-p-p';
        const answers = '----f-f-t';
        const states = 'n-------a---------n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
        expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      });
    });
  });

  describe('clear(key) forgets the key', () => {
    it('ends a contention at once', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        const changes = cold('xyz', theirs);
        const clears = cold('-----c');
        const asked = '----pp';
        const answers = '----tf';
        const states = 'n-a--n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        clears.subscribe(() => contention.clear('route/a'));
        expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
        expectObservable(ask(asked, contention, 'route/a')).toBe(answers, bool);
      });
    });

    it('forgets the changes counted so far', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 3 });
        const changes = cold('xy-z', theirs);
        const clears = cold('--c');
        const states = 'n';

        changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
        clears.subscribe(() => contention.clear('route/a'));
        expectObservable(contention.contended$).toBe(states, { n });
      });
    });
  });

  describe('global cap: more than maxContentions contended keys make every key contended', () => {
    it('maxContentions 1: the second contended key contends every key for one window', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 1, maxContentions: 1 });
        // The change to route/c at 5 falls while every key is contended, so it is not counted.
        const changes = cold('-a-b-c', keys);
        const asked = '--p-p-------pp';
        const answers = '--f-t-------tf';
        const askedC = '--------------p';
        const answerC = '--------------f';
        const states = 'nA-B-------C-n';

        changes.subscribe((key) => contention.changed(key, 'theirs', 'ours'));
        expectObservable(contention.contended$).toBe(states, {
          n,
          A: snapshot(['route/a']),
          B: snapshot(['route/a', 'route/b'], true),
          C: snapshot(['route/b'], true),
        });
        expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
        expectObservable(ask(askedC, contention, 'route/c')).toBe(answerC, bool);
      });
    });

    it('exactly maxContentions contended keys is not above the cap', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 1, maxContentions: 2 });
        const changes = cold('-a-b-c', keys);
        const asked = '----p-p';
        const answers = '----f-t';

        changes.subscribe((key) => contention.changed(key, 'theirs', 'ours'));
        expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
      });
    });

    it('maxContentions 0: a single contended key contends every key', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 1, maxContentions: 0 });
        const changes = cold('-a', keys);
        const states = 'nA---------n';

        changes.subscribe((key) => contention.changed(key, 'theirs', 'ours'));
        expectObservable(contention.contended$).toBe(states, { n, A: snapshot(['route/a'], true) });
      });
    });

    it('default maxContentions is 5: five contended keys (f) are fine, a sixth (s) contends every key', () => {
      testScheduler.run(({ cold, expectObservable }) => {
        const contention = windowTracker({ threshold: 1 });
        const changes = cold('-f-s');
        const asked = '--p-p';
        const answers = '--f-t';

        changes.subscribe((step) => {
          const names = step === 'f' ? ['1', '2', '3', '4', '5'] : ['6'];
          for (const name of names) contention.changed(`route/${name}`, 'theirs', 'ours');
        });
        expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
      });
    });

    it('clear(key) does not lift the cap', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 1, maxContentions: 1 });
        const changes = cold('-ab', keys);
        const clears = cold('----c');
        const asked = '-----p';
        const answers = '-----t';

        changes.subscribe((key) => contention.changed(key, 'theirs', 'ours'));
        clears.subscribe(() => contention.clear('route/b'));
        expectObservable(ask(asked, contention, 'route/b')).toBe(answers, bool);
      });
    });
  });

  describe('records expire: nothing outlives its window, one timer serves every key', () => {
    it('each record is dropped when its last change leaves the window, with at most one timer set', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const spy = timerSpy();
        const contention = windowTracker({ window: time('----------|'), threshold: 3, scheduler: spy.scheduler });
        // Changes to a at 0 and 2, b at 1, c at 3: they leave the window at 10, 12, 11 and 13.
        const changes = cold('abac', keys);
        const asked = '----p-----pppp-p';
        const sizes = '----3-----3210-0';
        const timers = '----1-----1111-0';

        changes.subscribe((key) => contention.changed(key, 'theirs', 'ours'));
        expectObservable(readSize(asked, contention)).toBe(sizes, { 3: 3, 2: 2, 1: 1, 0: 0 });
        expectObservable(cold(asked).pipe(map(() => spy.pendingTimers()))).toBe(timers, { 1: 1, 0: 0 });
      });
    });
  });

  describe('dispose() stops the timer', () => {
    it('completes contended$, leaves no timer set, and later calls change nothing', () => {
      const spy = timerSpy();
      let contention: ContentionTracker | undefined;
      let pendingAfterDispose: number | undefined;

      testScheduler.run(({ cold, expectObservable, time }) => {
        contention = windowTracker({ window: time('----------|'), threshold: 3, scheduler: spy.scheduler });
        const tracked = contention;
        const changes = cold('xyz-----x', theirs);
        const disposes = cold('-----d');
        const asked = '------p';
        const answers = '------f';
        const states = 'n-a--|';

        changes.subscribe((value) => tracked.changed('route/a', value, 'ours'));
        disposes.subscribe(() => {
          tracked.dispose();
          pendingAfterDispose = spy.pendingTimers();
        });
        expectObservable(tracked.contended$).toBe(states, { n, a: snapshot(['route/a']) });
        expectObservable(ask(asked, tracked, 'route/a')).toBe(answers, bool);
      });

      expect(pendingAfterDispose).toBe(0);
      expect(spy.ranAt.filter((frame) => frame >= 5)).toEqual([]);
      expect(contention?.size).toBe(0);
    });
  });

  describe('subscribers that call back in see snapshots in order', () => {
    it('a change made from inside next() reaches every subscriber after the current snapshot', () => {
      testScheduler.run(({ cold, expectObservable, time }) => {
        const contention = windowTracker({ window: time('----------|'), threshold: 1 });
        const changes = cold('-a', keys);
        const states = 'n(AB)------n';

        contention.contended$.subscribe(({ keys: contended }) => {
          if (contended.has('route/a') && !contended.has('route/b')) contention.changed('route/b', 'theirs', 'ours');
        });
        changes.subscribe((key) => contention.changed(key, 'theirs', 'ours'));
        expectObservable(contention.contended$).toBe(states, {
          n,
          A: snapshot(['route/a']),
          B: snapshot(['route/a', 'route/b']),
        });
      });
    });
  });
});

describe('bad input throws at once and changes nothing', () => {
  it.each<[string, ContentionTrackerOptions, string]>([
    ['window -1', { window: -1 }, 'ContentionTracker: options.window must be a finite number >= 0, received -1'],
    ['window NaN', { window: NaN }, 'ContentionTracker: options.window must be a finite number >= 0, received NaN'],
    [
      'window Infinity',
      { window: Infinity },
      'ContentionTracker: options.window must be a finite number >= 0, received Infinity',
    ],
    [
      'window as a string',
      { window: '10' as unknown as number },
      'ContentionTracker: options.window must be a finite number >= 0, received "10"',
    ],
    ['threshold 0', { threshold: 0 }, 'ContentionTracker: options.threshold must be an integer >= 1, received 0'],
    ['threshold 1.5', { threshold: 1.5 }, 'ContentionTracker: options.threshold must be an integer >= 1, received 1.5'],
    [
      'maxContentions -1',
      { maxContentions: -1 },
      'ContentionTracker: options.maxContentions must be an integer >= 0, received -1',
    ],
    [
      'maxContentions 0.5',
      { maxContentions: 0.5 },
      'ContentionTracker: options.maxContentions must be an integer >= 0, received 0.5',
    ],
  ])('%s: RangeError', (_, options, message) => {
    expect(() => new ContentionTracker(options)).toThrow(new RangeError(message));
    expect(() => new ContentionTracker(options)).toThrow(RangeError);
  });

  it.each<[string, unknown]>([
    ['a misspelt rule', 'routers'],
    ['a rule that is not a string', 1],
  ])('%s: RangeError', (_, rule) => {
    expect(() => new ContentionTracker({ rule } as ContentionTrackerOptions)).toThrow(
      new RangeError(
        `ContentionTracker: options.rule must be 'router' or 'window', received ${typeof rule === 'string' ? `"${rule}"` : String(rule)}`,
      ),
    );
  });

  it('a scheduler without now() and schedule(): TypeError', () => {
    expect(() => new ContentionTracker({ scheduler: {} as SchedulerLike })).toThrow(TypeError);
    expect(() => new ContentionTracker({ scheduler: {} as SchedulerLike })).toThrow(/options\.scheduler/);
  });

  it('a key that is not a non-empty string: TypeError naming the call', () => {
    const contention = routerTracker({});
    expect(() => contention.changed(42 as unknown as string, 'theirs', 'ours')).toThrow(
      new TypeError('ContentionTracker: changed: key must be a non-empty string, received 42'),
    );
    expect(() => contention.changed('', 'theirs', 'ours')).toThrow(TypeError);
    expect(() => contention.isContended(undefined as unknown as string)).toThrow(
      new TypeError('ContentionTracker: isContended: key must be a non-empty string, received undefined'),
    );
    expect(() => contention.clear(null as unknown as string)).toThrow(
      new TypeError('ContentionTracker: clear: key must be a non-empty string, received null'),
    );
  });

  it('written(): a key that is not a non-empty string, or a value that is not a string: TypeError', () => {
    const contention = routerTracker({});
    expect(() => contention.written('', 'ours')).toThrow(
      new TypeError('ContentionTracker: written: key must be a non-empty string, received ""'),
    );
    expect(() => contention.written('route/a', null as unknown as string)).toThrow(
      new TypeError('ContentionTracker: written: value must be a string, received null'),
    );
  });

  it('a value that is not a string: TypeError', () => {
    const contention = routerTracker({});
    expect(() => contention.changed('route/a', 7 as unknown as string, 'ours')).toThrow(
      new TypeError('ContentionTracker: changed: value must be a string, received 7'),
    );
    expect(() => contention.changed('route/a', 'theirs', undefined as unknown as string)).toThrow(
      new TypeError('ContentionTracker: changed: ours must be a string, received undefined'),
    );
  });

  it('a rejected change (b) is not counted', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = windowTracker({ window: time('----------|'), threshold: 3 });
      const changes = cold('xy-z', theirs);
      const rejected = cold('--b');
      const states = 'n--a---------n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      rejected.subscribe(() => {
        expect(() => contention.changed('route/a', 3 as unknown as string, 'ours')).toThrow(TypeError);
      });
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
    });
  });
});
