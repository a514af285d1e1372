import { map, of, throwError, timer } from 'rxjs';
import { LeaseState, WorkResult, WorkReturnError, type WorkFunc, type WriterLeaseOptions } from '../src';
import { eventLog, nextEvent } from './support/waitFor';
import { leaseFactory } from './support/leases';

const makeLease = leaseFactory();
/** retryInterval 20 > 2 × backoff(0) = 10: a follower's new work runs before the failed unit's retry. */
const createLease = (options: Partial<WriterLeaseOptions> = {}) => makeLease({ retryInterval: 20, ...options });

const failure = new Error('store unreachable');

/** Units that fail; the error event must carry what they threw. */
const failing: [string, WorkFunc, unknown][] = [
  [
    'throws',
    () => {
      throw failure;
    },
    failure,
  ],
  [
    'throws a non-Error value',
    () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what a careless unit does
      throw 'no connection';
    },
    'no connection',
  ],
  ['rejects', () => Promise.reject(failure), failure],
  [
    'throws in an async function',
    async () => {
      throw failure;
    },
    failure,
  ],
  ['errors (Observable, at once)', () => throwError(() => failure), failure],
  [
    'errors (Observable, later)',
    () =>
      timer(2).pipe(
        map(() => {
          throw failure;
        }),
      ),
    failure,
  ],
];

/** Units that return something that is not a WorkReturn; the error is a WorkReturnError with `info.received`. */
const garbage: [string, WorkFunc, unknown][] = [
  ["'ok'", () => 'ok' as never, 'ok'],
  ["{ result: 'bogus' }", () => ({ result: 'bogus' }) as never, { result: 'bogus' }],
  [
    "{ result: Extend, retry: 'yes' }",
    () => ({ result: WorkResult.Extend, retry: 'yes' }) as never,
    { result: WorkResult.Extend, retry: 'yes' },
  ],
  ['undefined', () => undefined as never, undefined],
  ['null', () => null as never, null],
  ['42', () => 42 as never, 42],
  ["a Promise of 'ok'", async () => 'ok' as never, 'ok'],
  ["an Observable of { result: 'bogus' }", () => of({ result: 'bogus' }) as never, { result: 'bogus' }],
];

/**
 * Runs `unit` as key 'bad' and checks what every failure must give: an
 * error event, release with retry, follower; then that another key still
 * runs and the failed unit runs again. Returns the error event's `error`.
 */
async function failOnce(unit: WorkFunc): Promise<unknown> {
  const lease = createLease();
  const log = eventLog(lease);
  lease.run();
  const errored = nextEvent(lease, 'error');
  lease.try('bad', unit);

  const { key, id, error } = await errored;
  expect({ key, id }).toEqual({ key: 'bad', id: 1 });
  const settled = log.of('settled');
  expect(settled).toEqual([expect.objectContaining({ key: 'bad', result: WorkResult.Release, retry: true })]);
  expect(lease.state).toEqual({ state: LeaseState.Follower, expires: settled[0].at + 5, tick: 0 });
  expect(log.of('retried')).toEqual([expect.objectContaining({ key: 'bad', id: 1, due: settled[0].at + 20 })]);
  expect(lease.pendingKeys()).toEqual(['bad']);

  // The lease keeps working: another key runs and wins the lease back...
  const goodSettled = nextEvent(lease, 'settled', (e) => e.key === 'good');
  const badAgain = nextEvent(lease, 'started', (e) => e.key === 'bad');
  lease.try('good', async () => WorkResult.Extend);
  const good = await goodSettled;
  expect(good.result).toBe(WorkResult.Extend);
  const stateAfterGood = log.all[log.all.indexOf(good) + 1];
  expect(stateAfterGood).toMatchObject({ type: 'state', snapshot: { state: LeaseState.Leader } });
  // ...and the failed unit is retried.
  expect((await badAgain).id).toBe(1);
  lease.remove('bad');
  return error;
}

describe('a unit of work that fails', () => {
  it.each(failing)('%s: error event with the error, release with retry, the lease goes on', async (_, unit, thrown) => {
    const error = await failOnce(unit);
    expect(error).toBe(thrown);
  });
});

describe('a unit of work that returns something that is not a WorkReturn', () => {
  it.each(garbage)(
    '%s: WorkReturnError with info.received, release with retry, the lease goes on',
    async (_, unit, received) => {
      const error = await failOnce(unit);
      expect(error).toBeInstanceOf(WorkReturnError);
      expect(error).toBeInstanceOf(TypeError);
      const { info, message } = error as WorkReturnError;
      expect(info.key).toBe('bad');
      expect(info.received).toEqual(received);
      expect(message).toMatch(/"bad"/);
    },
  );
});

describe('a failure while leader', () => {
  it('makes the lease follower with tick 0, like any release', async () => {
    const lease = createLease();
    lease.run();
    lease.try('a', async () => WorkResult.Extend);
    await expect(lease.wait()).resolves.toBe(true);

    const errored = nextEvent(lease, 'error');
    lease.try('b', () => Promise.reject(failure));
    expect((await errored).error).toBe(failure);
    expect(lease.state).toMatchObject({ state: LeaseState.Follower, tick: 0 });
  });
});
