import { Subscription, from, take, type SchedulerLike } from 'rxjs';
import { WorkReturnError } from '../errors.js';
import type { WorkContext, WorkFunc } from '../types.js';
import { later, toSettlement, type Settlement } from './outcome.js';
import { describeValue } from './validate.js';

/** The latest work submitted for a key. */
export interface Submission {
  readonly id: number;
  readonly work: WorkFunc;
}

/**
 * Where a unit's outcome goes, with the entry the lease keeps for its key.
 * No call once the unit is over: each call must end the unit (`end()` or
 * `letGo()`), so there is at most one.
 */
export interface UnitListener<Entry> {
  /** The unit gave a `WorkReturn`. */
  settled(entry: Entry, unit: RunningUnit<Entry>, settlement: Settlement): void;
  /**
   * The unit threw, rejected, errored, completed without a value, or gave
   * something that is not a `WorkReturn` (a {@link WorkReturnError}).
   */
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

  /**
   * Calls the unit with itself as context and routes what it gives to
   * `listener`: a plain value at once (no Promise in between, so virtual time
   * sees it in the same frame), a Promise or an Observable's first value
   * later. With `timeout`, a unit still running after `timeout.ms` on
   * `timeout.scheduler` goes to `listener.timedOut`.
   */
  run(listener: UnitListener<Entry>, timeout?: { readonly ms: number; readonly scheduler: SchedulerLike }): void {
    // Let go of before it ran (a listener of the lease's `started` event removed its key): its work is not wanted.
    if (this.#over) return;
    let returned: unknown;
    try {
      returned = this.submission.work(this);
    } catch (error) {
      this.#failed(listener, error);
      return;
    }
    const source = later(returned);
    if (source === undefined) {
      this.#settled(listener, returned);
      return;
    }
    this.#hold(
      from(source)
        .pipe(take(1))
        .subscribe({
          next: (value) => this.#settled(listener, value),
          error: (error: unknown) => this.#failed(listener, error),
          complete: () =>
            this.#failed(
              listener,
              new WorkReturnError(`unit of work for "${this.key}" completed without a value`, {
                key: this.key,
                received: undefined,
              }),
            ),
        }),
    );
    if (timeout !== undefined && !this.#over) {
      this.#hold(
        timeout.scheduler.schedule(() => {
          if (!this.#over) listener.timedOut(this.#entry, this);
        }, timeout.ms),
      );
    }
  }

  /** The unit settled: what it held is released. */
  end(): void {
    this.#over = true;
    const holds = this.#holds;
    this.#holds = undefined;
    holds?.unsubscribe();
  }

  /**
   * Throws what its signal would be aborted with, once the lease let go of
   * the unit, without making the signal: see {@link throwIfLetGo}.
   */
  throwIfLetGo(): void {
    if (this.#letGoBecause !== undefined) throw this.#letGoBecause;
  }

  /** The lease lets go of the unit: it ends, and its signal is aborted with `reason`. */
  letGo(reason: Error): void {
    this.#letGoBecause = reason;
    this.end();
    this.#controller?.abort(reason);
  }

  /** Reads what the unit gave as a `WorkReturn`; anything else fails the unit. */
  #settled(listener: UnitListener<Entry>, value: unknown): void {
    if (this.#over) return;
    const settlement = toSettlement(value);
    if (settlement !== undefined) {
      listener.settled(this.#entry, this, settlement);
      return;
    }
    const { key } = this;
    const error = new WorkReturnError(
      `unit of work for "${key}" returned ${describeValue(value)}; expected a WorkResult or { result, retry }`,
      { key, received: value },
    );
    listener.failed(this.#entry, this, error);
  }

  #failed(listener: UnitListener<Entry>, error: unknown): void {
    if (!this.#over) listener.failed(this.#entry, this, error);
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

/**
 * `context.signal.throwIfAborted()` for a unit's context, without making
 * the signal when the lease runs the unit: an AbortController costs about
 * 10 µs, and a unit that only checks between its steps needs none.
 *
 * @example
 * ```ts
 * const unit: WorkFunc = async (context) => {
 *   const record = await read(key);
 *   throwIfLetGo(context); // timed out, removed or stopped meanwhile: write nothing
 *   return write(record);
 * };
 * ```
 * @param context The context the unit was given (or any object with an optional signal).
 * @throws The reason the lease let go of the unit, once it has.
 */
export function throwIfLetGo(context: { readonly signal?: AbortSignal }): void {
  if (context instanceof RunningUnit) context.throwIfLetGo();
  else context.signal?.throwIfAborted();
}
