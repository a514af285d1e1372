/**
 * The clock of the demo's figures: milliseconds since the epoch as of this
 * process's start, then advanced by the monotonic clock. A wall-clock step
 * during a run moves no figure, and two processes of one machine (the demo
 * and its replica processes) read the same scale, to within a millisecond.
 *
 * @example
 * ```ts
 * const started = demoNow();
 * // ... the run ...
 * const elapsedMs = demoNow() - started;
 * ```
 * @returns Milliseconds.
 */
export function demoNow(): number {
  return performance.timeOrigin + performance.now();
}
