import { setTimeout as delay } from 'node:timers/promises';
import { Subscription } from 'rxjs';
import {
  LeaseDisposedError,
  LeaseRunningError,
  LeaseState,
  WorkResult,
  WriterLease,
  constantBackoff,
  monotonicScheduler,
  type LeaseSnapshot,
  type WorkReturn,
} from '../src';
import { deferred, eventLog, nextEvent, nextMacrotask, waitFor } from './support/waitFor';
import { leaseFactory } from './support/leases';

const createLease = leaseFactory();

/** Node timers alive now (asyncScheduler's actions are `setInterval`s, listed as 'Timeout'). */
const activeTimers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;

/** Makes the lease a follower with one released unit; resolves with the snapshot. */
async function becomeFollower(lease: WriterLease): Promise<LeaseSnapshot> {
  lease.try('x', async () => WorkResult.Release);
  await expect(lease.wait()).resolves.toBe(false);
  return lease.state;
}

function recordingUnit(ran: string[], label: string, returned: WorkReturn = WorkResult.Extend) {
  return async () => {
    ran.push(label);
    return returned;
  };
}

describe('run()', () => {
  it('returns a Subscription; the lease runs until it is unsubscribed', () => {
    const lease = createLease();
    expect(lease.running).toBe(false);
    const processing = lease.run();
    expect(processing).toBeInstanceOf(Subscription);
    expect(lease.running).toBe(true);
    processing.unsubscribe();
    expect(lease.running).toBe(false);
  });

  it('throws LeaseRunningError when called while running, and the first run() goes on', async () => {
    const lease = createLease({ name: 'twice' });
    lease.run();
    expect(() => lease.run()).toThrow(LeaseRunningError);
    expect(() => lease.run()).toThrow(/"twice".*unsubscribe/);
    expect(lease.running).toBe(true);

    lease.try('a', async () => WorkResult.Extend);
    await expect(lease.wait()).resolves.toBe(true);
  });

  it('may be called again after the earlier run() was unsubscribed', async () => {
    const lease = createLease();
    lease.run().unsubscribe();
    lease.run();
    lease.try('a', async () => WorkResult.Extend);
    await expect(lease.wait()).resolves.toBe(true);
  });
});

describe('stopping (unsubscribing run())', () => {
  it('stops processing, keeps the pending work, lists it in a stopped event; the next run() completes it', async () => {
    const lease = createLease();
    const ran: string[] = [];
    const processing = lease.run();
    await becomeFollower(lease);
    const log = eventLog(lease);
    lease.try('b', recordingUnit(ran, 'b'));
    lease.try('c', recordingUnit(ran, 'c'));
    const due = Math.max(...log.of('submitted').map((e) => e.due));

    processing.unsubscribe();
    expect(log.of('stopped')).toEqual([expect.objectContaining({ pending: ['b', 'c'] })]);
    expect(lease.size).toBe(2);
    expect(lease.pendingKeys()).toEqual(['b', 'c']);

    // Past the moment b and c were due (on the lease's clock), and one more turn for any timer that was due.
    await delay(due + 2 - monotonicScheduler.now());
    await nextMacrotask();
    expect(ran).toEqual([]);
    expect(lease.size).toBe(2);

    lease.run();
    await waitFor(() => lease.size === 0, 'b and c to complete');
    expect(ran).toEqual(['b', 'c']);
    expect(lease.state.state).toBe(LeaseState.Leader);
  });

  it('leaves no timer behind', async () => {
    const before = activeTimers();
    const lease = createLease({ leaseDuration: 10_000, backoff: constantBackoff(1_000) });
    const processing = lease.run();
    await becomeFollower(lease);
    lease.try('k', async () => WorkResult.Extend); // due 2 s from now: the lease holds a timer for it
    await nextMacrotask();
    expect(activeTimers()).toBeGreaterThan(before);

    processing.unsubscribe();
    expect(activeTimers()).toBe(before);
    expect(lease.pendingKeys()).toEqual(['k']);
  });

  it('lets go of a Promise unit still running: its late result changes nothing, and its key runs again on the next run()', async () => {
    const lease = createLease();
    const log = eventLog(lease);
    const calls = [deferred<WorkReturn>(), deferred<WorkReturn>()];
    let call = 0;
    const processing = lease.run();
    const started = nextEvent(lease, 'started');
    lease.try('a', () => calls[call++].promise);
    await started;

    processing.unsubscribe();
    expect(log.of('stopped')).toEqual([expect.objectContaining({ pending: ['a'] })]);

    calls[0].resolve(WorkResult.Release);
    await calls[0].promise;
    await nextMacrotask();
    expect(lease.state.state).toBe(LeaseState.Election);
    expect(log.of('settled')).toEqual([]);
    expect(lease.pendingKeys()).toEqual(['a']);

    lease.run();
    await waitFor(() => call === 2, 'a to run again');
    calls[1].resolve(WorkResult.Extend);
    await expect(lease.wait()).resolves.toBe(true);
    expect(log.of('settled')).toEqual([expect.objectContaining({ key: 'a', result: WorkResult.Extend })]);
    expect(lease.size).toBe(0);
  });

  it('ignores the let-go unit even when it settles while the same key runs again', async () => {
    const lease = createLease();
    const log = eventLog(lease);
    const calls = [deferred<WorkReturn>(), deferred<WorkReturn>()];
    let call = 0;
    const processing = lease.run();
    lease.try('a', () => calls[call++].promise);
    await waitFor(() => call === 1, 'first call');
    processing.unsubscribe();
    lease.run();
    await waitFor(() => call === 2, 'second call');

    calls[0].resolve(WorkResult.Release);
    await calls[0].promise;
    await nextMacrotask();
    expect(lease.state.state).toBe(LeaseState.Election);
    expect(lease.size).toBe(1);

    calls[1].resolve(WorkResult.Extend);
    await expect(lease.wait()).resolves.toBe(true);
    expect(log.of('settled')).toHaveLength(1);
  });
});

describe('stopping from inside processing', () => {
  it('an events$ handler that unsubscribes run() stops processing: no unit starts after the stopped event', async () => {
    const lease = createLease();
    const types: string[] = [];
    const ran: string[] = [];
    lease.events$.subscribe((event) => types.push(event.type));
    const processing = lease.run();
    lease.events$.subscribe((event) => {
      if (event.type === 'settled') processing.unsubscribe();
    });
    for (const key of ['a', 'b', 'c']) {
      lease.try(key, () => {
        ran.push(key);
        return WorkResult.Extend;
      });
    }

    await waitFor(() => types.includes('stopped'), 'the stopped event');
    expect(ran).toEqual(['a']);
    expect(types.slice(types.indexOf('stopped'))).not.toContain('started');
    expect(lease.pendingKeys()).toEqual(['b', 'c']);
  });

  it('a unit that unsubscribes run() is let go, not run again while the lease is stopped', async () => {
    const lease = createLease();
    const log = eventLog(lease);
    let calls = 0;
    const processing = lease.run();
    lease.try('a', () => {
      calls++;
      processing.unsubscribe();
      return WorkResult.Extend;
    });

    await waitFor(() => log.of('stopped').length === 1, 'the stopped event');
    expect(calls).toBe(1);
    expect(log.of('started')).toHaveLength(1);
    expect(lease.state.state).toBe(LeaseState.Election);
    expect(lease.pendingKeys()).toEqual(['a']);
  });
});

describe('dispose()', () => {
  it('returns the keys with pending work, the same ones when called again', () => {
    const lease = createLease();
    lease.try('b', async () => WorkResult.Extend);
    lease.try('c', async () => WorkResult.Extend);
    expect(lease.dispose()).toEqual(['b', 'c']);
    expect(lease.dispose()).toEqual(['b', 'c']);
  });

  it('stops a running lease and completes state$, leader$ and events$ (after a stopped event)', async () => {
    const lease = createLease();
    const held = deferred<WorkReturn>();
    const completed: string[] = [];
    const types: string[] = [];
    lease.state$.subscribe({ complete: () => completed.push('state$') });
    lease.leader$.subscribe({ complete: () => completed.push('leader$') });
    lease.events$.subscribe({ next: (e) => types.push(e.type), complete: () => completed.push('events$') });
    lease.run();
    lease.try('a', () => held.promise);
    await waitFor(() => types.includes('started'), 'a running');

    expect(lease.dispose()).toEqual(['a']);
    expect(lease.running).toBe(false);
    expect(completed.sort()).toEqual(['events$', 'leader$', 'state$']);
    expect(types[types.length - 1]).toBe('stopped');

    held.resolve(WorkResult.Extend);
    await held.promise;
    await nextMacrotask();
    expect(lease.state.state).toBe(LeaseState.Election);
  });

  it('makes every later call throw LeaseDisposedError', () => {
    const lease = createLease({ name: 'gone' });
    lease.dispose();
    expect(() => lease.try('a', () => WorkResult.Extend)).toThrow(LeaseDisposedError);
    expect(() => lease.extend('a')).toThrow(LeaseDisposedError);
    expect(() => lease.remove('a')).toThrow(LeaseDisposedError);
    expect(() => lease.expire()).toThrow(LeaseDisposedError);
    expect(() => lease.run()).toThrow(LeaseDisposedError);
    expect(() => lease.run()).toThrow(/"gone".*run\(\).*dispose/);
    expect(lease.size).toBe(0);
  });

  it('rejects a pending wait(), and a wait() made afterwards, with LeaseDisposedError', async () => {
    const lease = createLease();
    const pending = lease.wait();
    lease.dispose();
    await expect(pending).rejects.toBeInstanceOf(LeaseDisposedError);
    await expect(lease.wait()).rejects.toBeInstanceOf(LeaseDisposedError);
  });
});

describe('states()', () => {
  it('yields the current snapshot, then every change, and ends when the lease is disposed', async () => {
    const lease = createLease();
    const seen: LeaseState[] = [];
    const loop = (async () => {
      for await (const snapshot of lease.states()) seen.push(snapshot.state);
    })();
    await waitFor(() => seen.length === 1, 'the current snapshot');
    expect(seen).toEqual([LeaseState.Election]);

    lease.run();
    lease.try('a', async () => WorkResult.Release);
    await waitFor(() => seen.length === 2, 'follower');
    lease.try('a', async () => WorkResult.Extend);
    await waitFor(() => seen.length === 3, 'leader');

    lease.dispose();
    await loop;
    expect(seen).toEqual([LeaseState.Election, LeaseState.Follower, LeaseState.Leader]);
  });

  it('starts with the snapshot as it is now, not the initial one', async () => {
    const lease = createLease();
    lease.run();
    lease.try('a', async () => WorkResult.Extend);
    await lease.wait();

    const states = lease.states();
    const first = await states.next();
    expect(first.value).toEqual(lease.state);
    expect(first.value.state).toBe(LeaseState.Leader);
    await states.return?.();
  });
});

describe('wait() and waitUntil()', () => {
  it('wait() resolves true as leader and false as follower, also when called after the election', async () => {
    const leader = createLease();
    leader.run();
    leader.try('a', async () => WorkResult.Extend);
    await expect(leader.wait()).resolves.toBe(true);
    await expect(leader.wait()).resolves.toBe(true);

    const follower = createLease();
    follower.run();
    follower.try('a', async () => WorkResult.Release);
    await expect(follower.wait()).resolves.toBe(false);
    await expect(follower.wait()).resolves.toBe(false);
  });

  it('wait() ignores units that settle with none: the election goes on', async () => {
    const lease = createLease();
    let decided: boolean | undefined;
    void lease.wait().then((leader) => (decided = leader));
    lease.run();
    lease.try('a', async () => WorkResult.None);
    await waitFor(() => lease.size === 0, 'a done');
    await nextMacrotask();
    expect(decided).toBeUndefined();
    expect(lease.state.state).toBe(LeaseState.Election);

    lease.try('b', async () => WorkResult.Extend);
    await waitFor(() => decided !== undefined, 'the election');
    expect(decided).toBe(true);
  });

  it('waitUntil(ms) gives { leader: false, ok: false } once ms have passed without a decision', async () => {
    const lease = createLease();
    lease.run();
    lease.try('a', () => deferred<WorkReturn>().promise);
    const t0 = monotonicScheduler.now();
    await expect(lease.waitUntil(30)).resolves.toEqual({ leader: false, ok: false });
    expect(monotonicScheduler.now() - t0).toBeGreaterThanOrEqual(30);
    expect(lease.state.state).toBe(LeaseState.Election);
  });

  it('waitUntil(ms) gives { leader: true, ok: true } as soon as the lease leads, and leaves no timer', async () => {
    const before = activeTimers();
    const lease = createLease();
    const held = deferred<WorkReturn>();
    lease.run();
    const started = nextEvent(lease, 'started');
    lease.try('a', () => held.promise);
    await started;
    const outcome = lease.waitUntil(5_000);
    // Counted for the whole process: a timer of an earlier test may end meanwhile, so compare both ways.
    const during = activeTimers();

    held.resolve(WorkResult.Extend);
    await expect(outcome).resolves.toEqual({ leader: true, ok: true });
    expect(activeTimers()).toBeLessThan(during); // the 5 s timer of waitUntil is gone
    expect(activeTimers()).toBeLessThanOrEqual(before);
  });

  it('waitUntil(ms) gives { leader: false, ok: true } when the election ends as follower', async () => {
    const lease = createLease();
    lease.run();
    lease.try('a', async () => WorkResult.Release);
    await expect(lease.waitUntil(5_000)).resolves.toEqual({ leader: false, ok: true });
    await expect(lease.waitUntil(0)).resolves.toEqual({ leader: false, ok: true });
  });
});
