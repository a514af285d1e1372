import { Observable, type OperatorFunction } from 'rxjs';
import type { LeaseEvent } from '../events.js';
import type { TryOutcome, TryStatus, WorkResult } from '../types.js';

/** How one submission ended, read off the lease's events. */
interface Ending {
  readonly id: number;
  readonly status: TryStatus;
  readonly result?: WorkResult;
}

/** The events that end a submission; undefined for every other event. */
function endingOf(event: LeaseEvent): Ending | undefined {
  switch (event.type) {
    case 'settled':
      return event.retry ? undefined : { id: event.id, status: 'done', result: event.result };
    case 'superseded':
      return { id: event.id, status: 'superseded' };
    case 'dropped':
      return { id: event.id, status: event.reason };
    default:
      return undefined;
  }
}

/** What the operator needs from the lease. */
export interface TryOutcomesLink<T> {
  readonly events$: Observable<LeaseEvent>;
  /** Submits the work for a source value; returns its key and submission id. */
  readonly submit: (value: T) => { key: string; id: number };
  /** Removes the submission if it is still the pending one for its key. */
  readonly withdraw: (key: string, id: number) => void;
}

/**
 * The `lease.try(keyOf, workOf)` operator: one outcome per source value, in
 * the order the submissions end.
 */
export function tryOutcomes<T>({ events$, submit, withdraw }: TryOutcomesLink<T>): OperatorFunction<T, TryOutcome<T>> {
  return (source) =>
    new Observable<TryOutcome<T>>((subscriber) => {
      const waiting = new Map<number, { key: string; value: T }>();
      let sourceDone = false;
      const completeWhenSettled = () => {
        if (sourceDone && waiting.size === 0) subscriber.complete();
      };
      const end = ({ id, status, result }: Ending) => {
        const submitted = waiting.get(id);
        if (submitted === undefined) return;
        waiting.delete(id);
        const outcome: TryOutcome<T> = { key: submitted.key, value: submitted.value, status };
        if (result !== undefined) outcome.result = result;
        subscriber.next(outcome);
      };

      const stopAll = () => {
        for (const id of [...waiting.keys()]) end({ id, status: 'stopped' });
      };

      // Listen before the first submission, so that no ending can be missed.
      const endings = events$.subscribe({
        next: (event) => {
          if (event.type === 'stopped') {
            stopAll();
          } else {
            const ending = endingOf(event);
            if (ending === undefined) return;
            end(ending);
          }
          completeWhenSettled();
        },
        // The lease was disposed: nothing pending will end any more, and nothing more can be submitted.
        complete: () => {
          stopAll();
          subscriber.complete();
        },
      });
      const submissions = source.subscribe({
        next: (value) => {
          // A synchronous source goes on emitting after the output has errored.
          if (subscriber.closed) return;
          let submitted: { key: string; id: number };
          try {
            submitted = submit(value);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          waiting.set(submitted.id, { key: submitted.key, value });
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          sourceDone = true;
          completeWhenSettled();
        },
      });

      return () => {
        submissions.unsubscribe();
        endings.unsubscribe();
        for (const [id, { key }] of waiting) withdraw(key, id);
      };
    });
}
