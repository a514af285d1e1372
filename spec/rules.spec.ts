import {
  afterExpire,
  afterExtend,
  afterResult,
  cappedBackoff,
  deferredUntil,
  dueTimeOfNewWork,
  workersFor,
  type RuleOptions,
} from '../src/internal/rules';
import { LeaseState, WorkResult, type LeaseSnapshot } from '../src';

/** The rules as tables: (snapshot, input, now, options) → what the lease must do. */

const { Election, Leader, Follower } = LeaseState;
/** A lease of 100 ms whose backoff is 10 × (tick + 1) ms. */
const rules: RuleOptions = { leaseDuration: 100, backoffDuration: (tick) => 10 * (tick + 1), spread: false };
const snap = (state: LeaseState, expires: number, tick = 0): LeaseSnapshot => ({ state, expires, tick });

describe('rule 1: the due time of new work', () => {
  it.each([
    ['election', snap(Election, 0), 50, 50],
    ['leader', snap(Leader, 150), 50, 50],
    ['follower, lease longer than 2 × backoff(0)', snap(Follower, 90, 3), 50, 90],
    ['follower, lease shorter than 2 × backoff(0)', snap(Follower, 55, 3), 50, 70],
    ['follower, lease already run out', snap(Follower, 10, 3), 50, 70],
  ])('%s', (_, snapshot, now, due) => {
    expect(dueTimeOfNewWork(snapshot, now, rules)).toBe(due);
  });
});

describe('rule 2: a due key waits while a follower and the other lease holds', () => {
  it.each([
    ['follower before expires', snap(Follower, 90), 50, 90],
    ['follower at expires', snap(Follower, 50), 50, undefined],
    ['leader before expires', snap(Leader, 90), 50, undefined],
    ['election', snap(Election, 90), 50, undefined],
  ])('%s', (_, snapshot, now, until) => {
    expect(deferredUntil(snapshot, now)).toBe(until);
  });
});

describe('rule 18: how many units may run', () => {
  it.each([
    ['election', snap(Election, 0), 4, 1],
    ['follower', snap(Follower, 90), 4, 1],
    ['follower whose wait ran out', snap(Follower, 10), 4, 1],
    ['leader', snap(Leader, 150), 4, 4],
    ['leader, one worker', snap(Leader, 150), 1, 1],
  ])('%s, workers %d', (_, snapshot, workers, now) => {
    expect(workersFor(snapshot, workers)).toBe(now);
  });
});

describe('rule 4: the state change by result', () => {
  it.each([
    ['extend from election', snap(Election, 0), WorkResult.Extend, snap(Leader, 150)],
    ['extend from follower', snap(Follower, 70, 4), WorkResult.Extend, snap(Leader, 150)],
    ['extend from leader', snap(Leader, 120), WorkResult.Extend, snap(Leader, 150)],
    ['release from election', snap(Election, 0), WorkResult.Release, snap(Follower, 60, 0)],
    ['release from leader', snap(Leader, 120), WorkResult.Release, snap(Follower, 60, 0)],
    ['release from follower', snap(Follower, 70, 2), WorkResult.Release, snap(Follower, 90, 3)],
    ['none', snap(Follower, 70, 2), WorkResult.None, snap(Follower, 70, 2)],
  ])('%s', (_, snapshot, result, after) => {
    expect(afterResult(snapshot, result, 50, rules)).toEqual(after);
  });
});

describe('rules 5 and 13: extend(key) of a key with pending work', () => {
  it.each([
    ['follower: tick + 1, renewed from now', snap(Follower, 60, 1), {}, snap(Follower, 80, 2)],
    ['leader, key not running: unchanged', snap(Leader, 120), {}, snap(Leader, 120)],
    ['election, key not running: unchanged', snap(Election, 0), {}, snap(Election, 0)],
    ['leader, its unit let go of: a release', snap(Leader, 120), { letGo: true }, snap(Follower, 60, 0)],
    ['follower, its unit let go of: tick + 1 as usual', snap(Follower, 60, 1), { letGo: true }, snap(Follower, 80, 2)],
    ['a write found late renews as of `at`', snap(Follower, 45, 1), { at: 40 }, snap(Follower, 70, 2)],
    ['never shortened', snap(Follower, 95, 1), { at: 40 }, snap(Follower, 95, 2)],
    ['a renewal already run out renews nothing', snap(Follower, 45, 1), { at: 10 }, snap(Follower, 45, 1)],
    ['`at` in the future counts as now', snap(Follower, 60, 1), { at: 70 }, snap(Follower, 80, 2)],
  ])('%s', (_, snapshot, input, after) => {
    expect(afterExtend(snapshot, 50, rules, input)).toEqual(after);
  });
});

describe('rule 16: the spread of attempts', () => {
  const spreading: RuleOptions = { ...rules, spread: true };
  const drawn = { electionMs: 7, followerMs: 3 };
  it.each([
    ['election: its delay', snap(Election, 0), 50, 57],
    ['leader: at once', snap(Leader, 150), 50, 50],
    ['follower, lease longer: its delay after the lease runs out', snap(Follower, 90, 3), 50, 93],
    ['follower, lease shorter: its delay after 2 × backoff(0)', snap(Follower, 55, 3), 50, 73],
  ])('rule 1, %s', (_, snapshot, now, due) => {
    expect(dueTimeOfNewWork(snapshot, now, spreading, drawn)).toBe(due);
  });

  it("rule 2: a follower defers to its delay after the other writer's lease runs out", () => {
    expect(deferredUntil(snap(Follower, 90), 50, drawn)).toBe(93);
    expect(deferredUntil(snap(Follower, 50), 50, drawn)).toBeUndefined();
  });

  it.each([
    ['election: another writer ends it, as a release', snap(Election, 0), snap(Follower, 60, 0)],
    ['leader, key not running: unchanged', snap(Leader, 120), snap(Leader, 120)],
    ['follower: tick + 1 as usual', snap(Follower, 60, 1), snap(Follower, 80, 2)],
  ])('extend, %s', (_, snapshot, after) => {
    expect(afterExtend(snapshot, 50, spreading)).toEqual(after);
  });
});

describe('rule 7: expire()', () => {
  it.each([
    ['a lease that holds runs out now', snap(Follower, 90, 2), snap(Follower, 50, 2)],
    ['a lease already run out is unchanged', snap(Follower, 30, 2), snap(Follower, 30, 2)],
  ])('%s', (_, snapshot, after) => {
    expect(afterExpire(snapshot, 50)).toEqual(after);
  });
});

describe('the backoff cap', () => {
  it.each([
    [20, 20],
    [100, 100],
    [250, 100],
    [0, 0],
    [-1, undefined],
    [Number.NaN, undefined],
    ['20', undefined],
    [undefined, undefined],
  ])('a policy value of %p is %p', (value, capped) => {
    expect(cappedBackoff(value, 100)).toBe(capped);
  });
});
