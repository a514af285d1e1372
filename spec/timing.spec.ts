import { LeaseTiming } from '../src/internal/timing';
import { ELECTION_SPREAD_STEPS, FOLLOWER_SPREAD_STEPS } from '../src/internal/rules';
import { LeaseState } from '../src/types';

/**
 * A timing with a lease of `leaseDuration`, backoff `step` at every tick, and
 * draws 0.5, 0.25, 0.75, ... from `draws`.
 */
function timing(spread: boolean, { draws = [0.5, 0.25, 0.75, 0.1], leaseDuration = 1_000, step = 10 } = {}) {
  const errors: [number, unknown][] = [];
  let next = 0;
  const random = jest.fn(() => draws[next++ % draws.length]);
  const value = new LeaseTiming(
    leaseDuration,
    () => step,
    spread,
    random,
    (tick, received) => errors.push([tick, received]),
  );
  return { timing: value, random, errors };
}

const election = (expires: number) => ({ state: LeaseState.Election, expires, tick: 0 });
const follower = (expires: number) => ({ state: LeaseState.Follower, expires, tick: 1 });
const leader = (expires: number) => ({ state: LeaseState.Leader, expires, tick: 0 });

describe('LeaseTiming', () => {
  it('caps the policy at the lease duration and reports a value that is not a number >= 0', () => {
    const policies: [(tick: number) => unknown, number][] = [
      [() => 250, 100],
      [() => 40, 40],
      [() => -1, 100],
      [() => Number.NaN, 100],
      [() => '5', 100],
      [
        () => {
          throw new Error('no');
        },
        100,
      ],
    ];
    const errors: unknown[] = [];
    for (const [policy, expected] of policies) {
      const timing = new LeaseTiming(100, policy as (tick: number) => number, false, Math.random, (_, received) =>
        errors.push(received),
      );
      expect(timing.backoffDuration(3)).toBe(expected);
    }
    expect(errors).toHaveLength(4);
  });

  it('draws the election delay once and the follower delay once per renewal of the other lease', () => {
    const { timing: t, random } = timing(true);
    const first = t.spreadFor(election(0));
    expect(first).toMatchObject({
      electionMs: 0.5 * ELECTION_SPREAD_STEPS * 10,
      followerMs: 0.25 * FOLLOWER_SPREAD_STEPS * 10,
    });
    expect(t.spreadFor(election(0))).toBe(first);
    const renewed = t.spreadFor(follower(50));
    expect(renewed).toMatchObject({ electionMs: first.electionMs, followerMs: 0.75 * FOLLOWER_SPREAD_STEPS * 10 });
    expect(t.spreadFor(follower(50))).toBe(renewed);
    expect(random).toHaveBeenCalledTimes(3);
  });

  it.each([
    // [lease, backoff(0), bound]: a quarter of the lease, and never more than a second
    [100, 10, 25],
    [400, 100, 100],
    [60_000, 60_000, 1_000],
  ])('bounds each delay by min(lease / 4, 1 s): lease %d, backoff(0) %d', (leaseDuration, step, bound) => {
    const { timing: t } = timing(true, { draws: [0.999], leaseDuration, step });
    const { electionMs, followerMs } = t.spreadFor(election(0));
    expect(electionMs).toBeCloseTo(0.999 * Math.min(ELECTION_SPREAD_STEPS * step, bound));
    expect(followerMs).toBeCloseTo(0.999 * Math.min(FOLLOWER_SPREAD_STEPS * step, bound));
    expect(Math.max(electionMs, followerMs)).toBeLessThanOrEqual(bound);
  });

  it('has no spread for a leader, nor with spread off', () => {
    const on = timing(true);
    expect(on.timing.spreadFor(leader(100))).toEqual({ electionMs: 0, followerMs: 0 });
    const off = timing(false);
    expect(off.timing.spreadFor(election(0))).toEqual({ electionMs: 0, followerMs: 0 });
    expect(off.timing.spreadFor(follower(50))).toEqual({ electionMs: 0, followerMs: 0 });
    expect(on.random).not.toHaveBeenCalled();
    expect(off.random).not.toHaveBeenCalled();
  });
});
