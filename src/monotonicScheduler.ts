import { asyncScheduler, type SchedulerLike } from 'rxjs';
// The one internal of RxJS this package reads: the provider TestScheduler.run() swaps for its
// virtual clock (see below). The path is part of
// rxjs 7's `exports` ("./internal/*"), so Node, bundlers and TypeScript resolve it to the same
// module instance as 'rxjs' itself, and the peer range (^7.8) pins it.
// eslint-disable-next-line rxjs-x/no-internal
import { performanceTimestampProvider } from 'rxjs/internal/scheduler/performanceTimestampProvider';

/**
 * The default clock of the lease, the contention tracker and the status
 * writer: `asyncScheduler`'s timers, read with a **monotonic** clock.
 *
 * - Outside tests, `now()` is `performance.now()`: milliseconds since this
 *   process started, never stepped by NTP, an operator or a VM restored from
 *   a snapshot. `asyncScheduler` alone reads the wall clock (`Date.now`), and one
 *   stepped back an hour held every deadline the lease had computed for that
 *   hour. Timers are relative delays (Node's timers run on a monotonic clock
 *   too), so a step moves neither.
 * - Inside `TestScheduler.run()`, `now()` is the virtual frame:
 *   `TestScheduler.run()` delegates RxJS's performance timestamp provider to
 *   itself, as it delegates `asyncScheduler`'s timers, so a lease built with
 *   no `scheduler` option runs in virtual time there too.
 *
 * Its readings mean nothing to another process: two processes' monotonic
 * clocks start at different origins. Nothing in this package compares a time
 * from another process with this one (docs/lease.md, "Time").
 *
 * @example
 * ```ts
 * const lease = new WriterLease({ leaseDuration: 1_000, retryInterval: 100 }); // uses it
 * monotonicScheduler.now(); // 1234.56: ms since this process started
 * ```
 */
export const monotonicScheduler: SchedulerLike = Object.freeze({
  now: () => performanceTimestampProvider.now(),
  schedule: asyncScheduler.schedule.bind(asyncScheduler),
});
