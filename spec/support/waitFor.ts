import { filter, firstValueFrom, throwError, timeout } from 'rxjs';
import type { LeaseEvent, WriterLease } from '../../src';

/** Long enough for any condition of these tests; short enough to fail fast. */
const DEFAULT_TIMEOUT = 2_000;

/**
 * Yields one macrotask: every pending microtask runs first, and every timer
 * already due gets its turn (the timers phase comes before `setImmediate`'s).
 */
export function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Resolves once `condition()` holds, checking it now and after each
 * macrotask. Rejects after `timeoutMs`; the deadline is read from the monotonic clock,
 * so no timer is left behind to disturb a test that counts timers.
 */
export async function waitFor(
  condition: () => boolean,
  what = 'the condition',
  timeoutMs = DEFAULT_TIMEOUT,
): Promise<void> {
  // Monotonic: a test that moves Date.now() must not move this deadline.
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`waitFor: gave up after ${timeoutMs} ms waiting for ${what}`);
    await nextMacrotask();
  }
}

type EventOf<T extends LeaseEvent['type']> = Extract<LeaseEvent, { type: T }>;

/**
 * The next event of `type` (matching `where`) on `lease.events$`. It listens
 * from this call on, so call it before the action that causes the event.
 */
export function nextEvent<T extends LeaseEvent['type']>(
  lease: WriterLease,
  type: T,
  where: (event: EventOf<T>) => boolean = () => true,
  timeoutMs = DEFAULT_TIMEOUT,
): Promise<EventOf<T>> {
  return firstValueFrom(
    lease.events$.pipe(
      filter((event): event is EventOf<T> => event.type === type && where(event as EventOf<T>)),
      timeout({
        first: timeoutMs,
        with: () => throwError(() => new Error(`nextEvent: no '${type}' event within ${timeoutMs} ms`)),
      }),
    ),
  );
}

/** Every event of `lease` from now on, with a filter by type. */
export interface EventLog {
  readonly all: LeaseEvent[];
  of<T extends LeaseEvent['type']>(type: T): EventOf<T>[];
}

export function eventLog(lease: WriterLease): EventLog {
  const all: LeaseEvent[] = [];
  lease.events$.subscribe((event) => all.push(event));
  return {
    all,
    of: <T extends LeaseEvent['type']>(type: T) => all.filter((event): event is EventOf<T> => event.type === type),
  };
}

/** A Promise settled by hand, to hold a unit of work open for as long as a test needs. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
