import { Observable, type SchedulerAction, type SchedulerLike } from 'rxjs';

/** Platform timers fire at once for longer delays, so longer waits are chained. */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * Emits once, then completes, when the scheduler's clock reaches `at`.
 * `Infinity` never emits and holds no timer.
 */
export function atTime(at: number, scheduler: SchedulerLike): Observable<void> {
  return new Observable<void>((subscriber) => {
    if (at === Infinity) return undefined;
    const delayUntilDue = () => Math.min(Math.max(at - scheduler.now(), 0), MAX_DELAY);
    return scheduler.schedule(function (this: SchedulerAction<undefined>) {
      // A real timer may fire a little early or stop at MAX_DELAY: wait again for the rest.
      if (scheduler.now() < at) {
        this.schedule(undefined, delayUntilDue());
        return;
      }
      subscriber.next();
      subscriber.complete();
    }, delayUntilDue());
  });
}
