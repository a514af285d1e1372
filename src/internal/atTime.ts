import { Observable, type SchedulerLike, type Subscription } from 'rxjs';

/** Platform timers fire at once for longer delays, so longer waits are chained. */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * Emits once, then completes, when the scheduler's clock reaches `at`.
 * `Infinity` never emits and holds no timer.
 */
export function atTime(at: number, scheduler: SchedulerLike): Observable<void> {
  return new Observable<void>((subscriber) => {
    if (at === Infinity) return undefined;
    let timer: Subscription | undefined;
    const delayUntilDue = () => Math.min(Math.max(at - scheduler.now(), 0), MAX_DELAY);
    const fire = (): void => {
      // A real timer may fire a little early or stop at MAX_DELAY: wait again for the rest. A fresh
      // action each time, not `this.schedule()`: a virtual scheduler would nest every rescheduled action
      // in the one before, and a long wait (2^40 ms: 512 links) would overflow the stack on unsubscribe.
      if (scheduler.now() < at) {
        timer = scheduler.schedule(fire, delayUntilDue());
        return;
      }
      subscriber.next();
      subscriber.complete();
    };
    timer = scheduler.schedule(fire, delayUntilDue());
    return () => timer?.unsubscribe();
  });
}
