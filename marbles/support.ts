import { filter, map, ReplaySubject, Subject, type Observable } from 'rxjs';
import { TestScheduler, type RunHelpers } from 'rxjs/testing';
import {
  constantBackoff,
  WorkResult,
  WriterLease,
  type LeaseEvent,
  type WorkReturn,
  type WriterLeaseOptions,
} from '../src';

/** Runs `body` in virtual time on a fresh TestScheduler (1 frame = 1 ms). */
export function marbles(body: (helpers: RunHelpers & { scheduler: TestScheduler }) => void): void {
  const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  scheduler.run((helpers) => body({ ...helpers, scheduler }));
}

/**
 * A lease on `scheduler` with short, readable durations: a write holds the
 * lease 100 frames, a retry comes 10 frames later, every backoff is 5 frames
 * (so a follower's new work waits at least 10). It follows the reference
 * rules exactly (`spread: false`); rule 16's tests turn the spread on.
 */
export function createLease(scheduler: TestScheduler, options: Partial<WriterLeaseOptions> = {}): WriterLease {
  return new WriterLease({
    leaseDuration: 100,
    retryInterval: 10,
    backoff: constantBackoff(5),
    scheduler,
    ...options,
  });
}

/**
 * Subscribes to `source` now and replays what it saw. The lease's streams are
 * hot, and work submitted during setup runs at frame 0 before
 * `expectObservable` subscribes; recording from setup on keeps those values,
 * and replays them at frame 0, where they happened.
 */
export function record<T>(source: Observable<T>): Observable<T> {
  const recorded = new ReplaySubject<T>();
  source.subscribe(recorded);
  return recorded.asObservable();
}

/** The lease's events of one type, recorded from now on. */
export function eventsOf<T extends LeaseEvent['type']>(
  lease: WriterLease,
  type: T,
): Observable<Extract<LeaseEvent, { type: T }>> {
  return record(lease.events$.pipe(filter((event): event is Extract<LeaseEvent, { type: T }> => event.type === type)));
}

/** The key of every unit that starts. */
export function runs(lease: WriterLease): Observable<string> {
  return eventsOf(lease, 'started').pipe(map(({ key }) => key));
}

/**
 * Units that say which of them ran: `ran$` emits a unit's label when it is
 * called, so that two submissions of one key can be told apart.
 */
export function labelledUnits() {
  const ran = new Subject<string>();
  const ran$ = record(ran);
  const unit =
    (label: string, returned: WorkReturn = WorkResult.Extend) =>
    () => {
      ran.next(label);
      return returned;
    };
  return { ran$, unit };
}

export const extend = () => WorkResult.Extend;
export const release = () => WorkResult.Release;
export const none = () => WorkResult.None;
