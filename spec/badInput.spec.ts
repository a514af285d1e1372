import { from, lastValueFrom } from 'rxjs';
import {
  WorkResult,
  WriterLease,
  constantBackoff,
  exponentialBackoff,
  limitRetries,
  type LeaseEvent,
  type WriterLeaseOptions,
} from '../src';
import { workContext } from './support/workContext';

const work = () => WorkResult.Extend;
const valid: WriterLeaseOptions = { leaseDuration: 50, retryInterval: 5 };

type ErrorClass = typeof RangeError | typeof TypeError;

/** Asserts `call` throws, synchronously, an error of `errorClass` whose message matches `message`. */
function expectThrow(call: () => unknown, errorClass: ErrorClass, message: RegExp): void {
  let thrown: unknown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(errorClass);
  expect((thrown as Error).message).toMatch(message);
}

/** A lease with one pending key, and everything that would show a change. */
function leaseWithPendingWork() {
  const lease = new WriterLease(valid);
  lease.try('p', work);
  const events: LeaseEvent[] = [];
  lease.events$.subscribe((event) => events.push(event));
  const snapshot = lease.state;
  const unchanged = () => {
    expect(lease.size).toBe(1);
    expect(lease.pendingKeys()).toEqual(['p']);
    expect(lease.state).toBe(snapshot);
    expect(events).toEqual([]);
  };
  return { lease, events, unchanged };
}

const activeTimers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;

describe('new WriterLease(options)', () => {
  it.each<[string, unknown, RegExp]>([
    ['leaseDuration', -1, /options\.leaseDuration.*received -1/],
    ['leaseDuration', NaN, /options\.leaseDuration.*received NaN/],
    ['leaseDuration', Infinity, /options\.leaseDuration.*received Infinity/],
    ['leaseDuration', '50', /options\.leaseDuration.*received "50"/],
    ['leaseDuration', undefined, /options\.leaseDuration.*received undefined/],
    ['retryInterval', -0.5, /options\.retryInterval.*received -0\.5/],
    ['retryInterval', NaN, /options\.retryInterval.*received NaN/],
    ['retryInterval', -Infinity, /options\.retryInterval.*received -Infinity/],
    ['retryInterval', null, /options\.retryInterval.*received null/],
    ['workers', 0, /options\.workers.*received 0/],
    ['workers', -1, /options\.workers.*received -1/],
    ['workers', 1.5, /options\.workers.*received 1\.5/],
    ['workers', NaN, /options\.workers.*received NaN/],
    ['workers', Infinity, /options\.workers.*received Infinity/],
    ['workers', '2', /options\.workers.*received "2"/],
    ['workTimeout', -1, /options\.workTimeout must be a finite number >= 0, received -1/],
    ['workTimeout', NaN, /options\.workTimeout.*received NaN/],
    ['workTimeout', Infinity, /options\.workTimeout.*received Infinity/],
    ['workTimeout', '5s', /options\.workTimeout.*received "5s"/],
  ])('throws RangeError for %s = %p', (name, value, message) => {
    expectThrow(() => new WriterLease({ ...valid, [name]: value }), RangeError, message);
  });

  it.each<[unknown, RegExp]>([
    [5, /options\.backoff.*received 5/],
    ['exponential', /options\.backoff.*received "exponential"/],
    [null, /options\.backoff.*received null/],
    [{}, /options\.backoff.*received an object/],
  ])('throws TypeError for backoff = %p', (backoff, message) => {
    expectThrow(() => new WriterLease({ ...valid, backoff: backoff as any }), TypeError, message);
  });

  it.each<[string, unknown, RegExp]>([
    ['spread', 'yes', /options\.spread must be a boolean, received "yes"/],
    ['spread', 1, /options\.spread must be a boolean, received 1/],
    ['random', 0.5, /options\.random must be a function, received 0\.5/],
  ])('throws TypeError for %s = %p', (name, value, message) => {
    expectThrow(() => new WriterLease({ ...valid, [name]: value }), TypeError, message);
  });

  it.each<[unknown, RegExp]>([
    [undefined, /options.*received undefined/],
    [null, /options.*received null/],
    ['fast', /options.*received "fast"/],
  ])('throws TypeError for options = %p', (options, message) => {
    expectThrow(() => new WriterLease(options as any), TypeError, message);
  });

  it('accepts the edges: durations 0 and one worker', () => {
    expect(() => new WriterLease({ leaseDuration: 0, retryInterval: 0, workers: 1 }).dispose()).not.toThrow();
  });
});

describe('lease.try(key, work)', () => {
  it.each<[unknown, RegExp]>([
    ['', /key.*received ""/],
    [5, /key.*received 5/],
    [undefined, /key.*received undefined/],
    [null, /key.*received null/],
    [{}, /key.*received an object/],
  ])('throws TypeError for key = %p and changes nothing', (key, message) => {
    const { lease, unchanged } = leaseWithPendingWork();
    expectThrow(() => lease.try(key as any, work), TypeError, message);
    unchanged();
  });

  it.each<[unknown, RegExp]>([
    [undefined, /work.*received undefined/],
    ['write', /work.*received "write"/],
    [{}, /work.*received an object/],
    [WorkResult.Extend, /work.*received "extend"/],
  ])('throws TypeError for work = %p and changes nothing', (badWork, message) => {
    const { lease, unchanged } = leaseWithPendingWork();
    expectThrow(() => lease.try('k', badWork as any), TypeError, message);
    unchanged();
  });

  it('uses no submission id for a call it rejected', () => {
    const { lease, events } = leaseWithPendingWork();
    expect(() => lease.try('k', 'write' as any)).toThrow(TypeError);
    lease.try('k', work);
    expect(events).toEqual([expect.objectContaining({ type: 'submitted', key: 'k', id: 2 })]);
  });

  it('throws TypeError when the operator’s workOf is not a function', () => {
    const { lease, unchanged } = leaseWithPendingWork();
    expectThrow(() => lease.try((v: string) => v, 'write' as any), TypeError, /workOf.*received "write"/);
    unchanged();
  });

  it('errors the operator’s output with a TypeError when keyOf gives a bad key, and submits nothing', async () => {
    const { lease, unchanged } = leaseWithPendingWork();
    const output = lastValueFrom(
      from(['']).pipe(
        lease.try(
          (v: string) => v,
          () => work,
        ),
      ),
    );
    await expect(output).rejects.toThrow(TypeError);
    await expect(output).rejects.toThrow(/key.*received ""/);
    unchanged();
  });
});

describe('lease.waitUntil(ms), extend(key), remove(key)', () => {
  it.each<[unknown, RegExp]>([
    [-1, /ms.*received -1/],
    [NaN, /ms.*received NaN/],
    [Infinity, /ms.*received Infinity/],
    ['10', /ms.*received "10"/],
  ])('waitUntil(%p) throws RangeError at once, without starting a timer', (ms, message) => {
    const { lease, unchanged } = leaseWithPendingWork();
    const before = activeTimers();
    expectThrow(() => lease.waitUntil(ms as any), RangeError, message);
    expect(activeTimers()).toBe(before);
    unchanged();
  });

  it.each<['extend' | 'remove', unknown, RegExp]>([
    ['extend', '', /extend.*key.*received ""/],
    ['extend', undefined, /extend.*key.*received undefined/],
    ['remove', 5, /remove.*key.*received 5/],
    ['remove', '', /remove.*key.*received ""/],
  ])('%s(%p) throws TypeError and changes nothing', (method, key, message) => {
    const { lease, unchanged } = leaseWithPendingWork();
    expectThrow(() => lease[method](key as any), TypeError, message);
    unchanged();
  });
});

describe('exponentialBackoff(options)', () => {
  it.each<[string, unknown, RegExp]>([
    ['initial', -1, /options\.initial.*received -1/],
    ['initial', Infinity, /options\.initial.*received Infinity/],
    ['factor', -4, /options\.factor.*received -4/],
    ['factor', NaN, /options\.factor.*received NaN/],
    ['steps', -1, /options\.steps.*received -1/],
    ['steps', Infinity, /options\.steps.*received Infinity/],
    ['jitter', -1, /options\.jitter.*received -1/],
    ['jitter', NaN, /options\.jitter.*received NaN/],
  ])('throws RangeError for %s = %p', (name, value, message) => {
    expectThrow(() => exponentialBackoff({ [name]: value }), RangeError, message);
  });

  it('throws TypeError when random is not a function', () => {
    expectThrow(() => exponentialBackoff({ random: 0.5 as any }), TypeError, /options\.random.*received 0\.5/);
  });

  it('accepts zeros and the defaults', () => {
    expect(exponentialBackoff({ initial: 0, factor: 0, steps: 0, jitter: 0 })(0)).toBe(0);
    expect(exponentialBackoff({ jitter: 0 })(1)).toBe(80);
  });
});

describe('limitRetries(retries, work) and constantBackoff(ms)', () => {
  it.each<[unknown, RegExp]>([
    [1.5, /retries.*received 1\.5/],
    [-1, /retries.*received -1/],
    [NaN, /retries.*received NaN/],
    [Infinity, /retries.*received Infinity/],
    ['2', /retries.*received "2"/],
  ])('limitRetries(%p, work) throws RangeError', (retries, message) => {
    expectThrow(() => limitRetries(retries as any, work), RangeError, message);
  });

  it('limitRetries(1, work) throws TypeError when work is not a function', () => {
    expectThrow(() => limitRetries(1, 'write' as any), TypeError, /work.*received "write"/);
  });

  it.each<[unknown, RegExp]>([
    [NaN, /ms.*received NaN/],
    [-1, /ms.*received -1/],
    [Infinity, /ms.*received Infinity/],
    ['250', /ms.*received "250"/],
  ])('constantBackoff(%p) throws RangeError', (ms, message) => {
    expectThrow(() => constantBackoff(ms as any), RangeError, message);
  });

  it('accepts the edges: limitRetries(0, work) and constantBackoff(0)', () => {
    expect(limitRetries(0, () => ({ result: WorkResult.Release, retry: true }))(workContext())).toEqual({
      result: WorkResult.Release,
      retry: false,
    });
    expect(constantBackoff(0)(3)).toBe(0);
  });
});
