/**
 * The clock of the demo's figures: the machine's monotonic clock
 * (`CLOCK_MONOTONIC` on Linux, which libuv reads for `process.hrtime`), in
 * milliseconds since an unspecified start (the boot, on Linux). Every
 * process of one machine (the demo, its replica processes, the bench) reads
 * the same clock, and no wall-clock step moves it.
 *
 * Not the wall clock as of each process's start (`performance.timeOrigin +
 * performance.now()`): a step of the wall clock between two processes'
 * starts puts them that far apart. A bench run on a virtual machine
 * measured every status of its later runs about 8.15 s late (p50 and p99
 * alike): its replica processes had started after such a step, the bench's
 * own process before it.
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
