import { Subscription, from, take, type SchedulerLike } from 'rxjs';
import { WorkReturnError } from '../errors.js';
import type { WorkContext, WorkFunc } from '../types.js';
import { later } from './outcome.js';

/** The latest work submitted for a key. */
export interface Submission {
  readonly id: number;
  readonly work: WorkFunc;
}

/**
 * Where a unit's outcome goes, with the entry the lease keeps for its key.
 * At most one call per unit, and none once the unit is over.
 */
export interface UnitListener<Entry> {
  /** The unit gave a value (not yet read as a `WorkReturn`). */
  settled(entry: Entry, unit: RunningUnit<Entry>, value: unknown): void;
  /** The unit threw, rejected, errored, or completed without a value. */
  failed(entry: Entry, unit: RunningUnit<Entry>, error: unknown): void;
  /** The unit was still running when its timeout ran out. */
  timedOut(entry: Entry, unit: RunningUnit<Entry>): void;
}

/**
 * One run of a submission: the {@link WorkContext} the unit is given, and
 * what the lease holds to let go of it (an Observable unit's subscription,
 * its timeout timer). Over once it settles or is let go of; from then on
 * nothing it returns reaches the lease.
 */
export class RunningUnit<Entry> implements WorkContext {
  readonly key: string;
  readonly id: number;
  /** When it started, on the lease's clock. */
  readonly started: number;
  readonly submission: Submission;
  /** Private, so that a unit that logs its context does not print the lease's bookkeeping. */
  readonly #entry: Entry;
  /** Made on first read of `signal`: most units never read it, and this is the hot path. */
  #controller: AbortController | undefined;
  #holds: Subscription | undefined;
  #over = false;
  #letGoBecause: Error | undefined;

  constructor(entry: Entry, key: string, submission: Submission, started: number) {
    this.#entry = entry;
    this.key = key;
    this.id = submission.id;
    this.submission = submission;
    this.started = started;
  }

  /** Aborted, with the reason, once the lease lets go of the unit. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#letGoBecause !== undefined) this.#controller.abort(this.#letGoBecause);
    }
    return this.#controller.signal;
  }

  /** True once the unit settled or was let go of. */
  get over(): boolean {
    return this.#over;
  }

  /**
   * Calls the unit with itself as context and routes what it gives to
   * `listener`: a plain value at once (no Promise in between, so virtual time
   * sees it in the same frame), a Promise or an Observable's first value
   * later. With `timeout`, a unit still running after `timeout.ms` on
   * `timeout.scheduler` goes to `listener.timedOut`.
   */
  run(listener: UnitListener<Entry>, timeout?: { readonly ms: number; readonly scheduler: SchedulerLike }): void {
    const entry = this.#entry;
    let returned: unknown;
    try {
      returned = this.submission.work(this);
    } catch (error) {
      listener.failed(entry, this, error);
      return;
    }
    const source = later(returned);
    if (source === undefined) {
      listener.settled(entry, this, returned);
      return;
    }
    this.#hold(
      from(source)
        .pipe(take(1))
        .subscribe({
          next: (value) => listener.settled(entry, this, value),
          error: (error: unknown) => listener.failed(entry, this, error),
          complete: () =>
            listener.failed(
              entry,
              this,
              new WorkReturnError(`unit of work for "${this.key}" completed without a value`, {
                key: this.key,
                received: undefined,
              }),
            ),
        }),
    );
    if (timeout !== undefined && !this.#over) {
      this.#hold(timeout.scheduler.schedule(() => listener.timedOut(entry, this), timeout.ms));
    }
  }

  /** The unit settled: what it held is released. */
  end(): void {
    this.#over = true;
    const holds = this.#holds;
    this.#holds = undefined;
    holds?.unsubscribe();
  }

  /** The lease lets go of the unit: it ends, and its signal is aborted with `reason`. */
  letGo(reason: Error): void {
    this.#letGoBecause = reason;
    this.end();
    this.#controller?.abort(reason);
  }

  /** Keeps `teardown` until the unit is over; ends it at once if it already is. */
  #hold(teardown: Subscription): void {
    if (this.#over) teardown.unsubscribe();
    else (this.#holds ??= new Subscription()).add(teardown);
  }
}

/** The reason a unit's signal is aborted with when the lease lets go of it for anything but a timeout. */
export function letGoError(key: string, why: string): Error {
  return new DOMException(`the writer lease let go of the unit of work for "${key}": ${why}`, 'AbortError');
}
