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

function tracker(options: ContentionTrackerOptions): ContentionTracker {
  return new ContentionTracker({ scheduler: testScheduler, ...options });
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

describe('below the threshold, a key is not contended', () => {
  it('two changes by another writer, threshold 3: never contended', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = new ContentionTracker({ scheduler: testScheduler });
      const changes = cold('xyz', theirs);
      const states = 'n-a 59999ms n';

      changes.subscribe((value) => contention.changed('route/a', value, 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, a: snapshot(['route/a']) });
    });
  });

  it('the window slides: the last three changes count, wherever they fall', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
      const contention = tracker({ window: time('----------|'), threshold: 1, maxContentions: 1 });
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
      const contention = tracker({ window: time('----------|'), threshold: 1, maxContentions: 2 });
      const changes = cold('-a-b-c', keys);
      const asked = '----p-p';
      const answers = '----f-t';

      changes.subscribe((key) => contention.changed(key, 'theirs', 'ours'));
      expectObservable(ask(asked, contention, 'route/z')).toBe(answers, bool);
    });
  });

  it('maxContentions 0: a single contended key contends every key', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = tracker({ window: time('----------|'), threshold: 1, maxContentions: 0 });
      const changes = cold('-a', keys);
      const states = 'nA---------n';

      changes.subscribe((key) => contention.changed(key, 'theirs', 'ours'));
      expectObservable(contention.contended$).toBe(states, { n, A: snapshot(['route/a'], true) });
    });
  });

  it('default maxContentions is 5: five contended keys (f) are fine, a sixth (s) contends every key', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const contention = tracker({ threshold: 1 });
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
      const contention = tracker({ window: time('----------|'), threshold: 1, maxContentions: 1 });
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
      const contention = tracker({ window: time('----------|'), threshold: 3, scheduler: spy.scheduler });
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
      contention = tracker({ window: time('----------|'), threshold: 3, scheduler: spy.scheduler });
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
      const contention = tracker({ window: time('----------|'), threshold: 1 });
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

  it('a scheduler without now() and schedule(): TypeError', () => {
    expect(() => new ContentionTracker({ scheduler: {} as SchedulerLike })).toThrow(TypeError);
    expect(() => new ContentionTracker({ scheduler: {} as SchedulerLike })).toThrow(/options\.scheduler/);
  });

  it('a key that is not a non-empty string: TypeError naming the call', () => {
    const contention = tracker({});
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

  it('a value that is not a string: TypeError', () => {
    const contention = tracker({});
    expect(() => contention.changed('route/a', 7 as unknown as string, 'ours')).toThrow(
      new TypeError('ContentionTracker: changed: value must be a string, received 7'),
    );
    expect(() => contention.changed('route/a', 'theirs', undefined as unknown as string)).toThrow(
      new TypeError('ContentionTracker: changed: ours must be a string, received undefined'),
    );
  });

  it('a rejected change (b) is not counted', () => {
    testScheduler.run(({ cold, expectObservable, time }) => {
      const contention = tracker({ window: time('----------|'), threshold: 3 });
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
