import { VirtualTimeScheduler } from 'rxjs';

/**
 * Drives a `VirtualTimeScheduler` from instant to instant, letting the
 * Promise chains of each instant settle before the clock moves on.
 *
 * The memory store answers within microtasks, so a unit of work started at
 * an instant reads and writes at that same instant: store calls take zero
 * virtual time. Every figure is therefore exact and repeatable, and every
 * race between replicas is the race of one instant (who runs first), not of
 * a network round trip.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock();
 * lease = new WriterLease({ leaseDuration: 1000, retryInterval: 100, scheduler: clock.scheduler });
 * await clock.runUntil(60_000); // one virtual minute, in milliseconds of real time
 * ```
 */
export class VirtualClock {
  /** Pass it as `scheduler` to every lease, tracker, writer and elector of the run. */
  readonly scheduler = new VirtualTimeScheduler();

  /** The virtual time, in ms since the start of the run. */
  get now(): number {
    return this.scheduler.now();
  }

  /**
   * Runs every action due up to `end`, one instant at a time, draining the
   * Promise chains after each instant. With `until`, stops after the first
   * instant at which it holds.
   *
   * @param end The virtual time to reach.
   * @param until Checked before each instant, once its Promise chains settled.
   * @returns True when `until` held (the clock stays at that instant); false
   *   when `end` was reached (the clock is then at `end`).
   */
  async runUntil(end: number, until?: () => boolean): Promise<boolean> {
    const { scheduler } = this;
    for (;;) {
      await settlePromises();
      if (until?.() === true) return true;
      const next = scheduler.actions[0]?.delay;
      if (next === undefined || next > end) break;
      scheduler.maxFrames = next;
      scheduler.flush();
    }
    if (scheduler.frame < end) scheduler.frame = end;
    return false;
  }
}

/** Every microtask queued so far, and those they queue, run before a `setImmediate` callback. */
function settlePromises(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
