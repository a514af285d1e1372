import { Subject, defer, filter, finalize, from, observeOn, of, take, type Observable, type SchedulerLike } from 'rxjs';
import type { WorkFunc, WorkReturn } from '../types.js';
import { later } from './outcome.js';

/**
 * The work a replica has started and that has not settled yet, in the order
 * it started: what a {@link ShardedWriterLease} waits on before it takes its
 * turn at another replica's shard.
 *
 * Why: a turn counted on the clock alone assumes the store answers within a
 * step. Under a burst it does not: the store queues every replica's calls
 * for hundreds of milliseconds, and the preferred writer's write, sent in
 * time, is seen late. Calls this replica made before its turn came went
 * into the same queue as the preferred writer's; once they have all been
 * answered, the store has had the time to take (and show) the preferred
 * writer's write too. So the turn is counted in the store's time as well as
 * the clock's.
 *
 * Work that returns a plain value settles as it is called: it is never
 * waited on, and stays synchronous.
 */
export class WorkInFlight {
  readonly #scheduler: SchedulerLike;
  #next = 0;
  /** The numbers of the work not settled, in the order it started (a Set keeps insertion order). */
  readonly #open = new Set<number>();
  readonly #settled = new Subject<void>();

  constructor(scheduler: SchedulerLike) {
    this.#scheduler = scheduler;
  }

  /**
   * Counts `returned` as in flight until it settles, or until the lease
   * lets go of it (unsubscribes).
   *
   * @param returned What a unit's work returned.
   * @returns The same value when it is plain; else an Observable of it.
   */
  track(returned: ReturnType<WorkFunc>): WorkReturn | Observable<WorkReturn> {
    const pending = later(returned);
    if (pending === undefined) return returned as WorkReturn;
    const id = this.#next++;
    this.#open.add(id);
    return (from(pending) as Observable<WorkReturn>).pipe(
      finalize(() => {
        this.#open.delete(id);
        this.#settled.next();
      }),
    );
  }

  /**
   * Emits once, then completes, when every call of work started before the
   * subscription has settled: at once (synchronously) when none is left;
   * else on the scheduler, never inside another unit's settlement.
   */
  readonly answered$: Observable<void> = defer(() => {
    const mark = this.#next;
    const done = (): boolean => {
      const oldest = this.#open.values().next();
      return oldest.done === true || oldest.value >= mark;
    };
    if (done()) return of(undefined);
    // Another unit is settling when this emits: go on after it on the scheduler, not inside it.
    return this.#settled.pipe(filter(done), take(1), observeOn(this.#scheduler));
  });
}
