/**
 * The clock of the demo's figures: the machine's monotonic clock
 * (`CLOCK_MONOTONIC` on Linux, which libuv reads for `process.hrtime`), in
 * milliseconds since an unspecified start (the boot, on Linux). Every
 * process of one machine (the demo, its replica processes, the bench) reads
 * the same clock, and no wall-clock step moves it.
 *
 * Not the wall clock as of each process's start (`performance.timeOrigin +
 * performance.now()`): a step of the wall clock between two processes'
 * starts put them that far apart. A bench run on a virtual machine whose
 * clock was set 8 s forward mid-run measured every later status 8.15 s
 * late, from replica processes started after the step.
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
  return Number(process.hrtime.bigint()) / 1e6;
}
