import { mapReturn } from './internal/outcome.js';
import { assertFunction, assertInteger } from './internal/validate.js';
import type { WorkFunc, WorkReturn } from './types.js';

/**
 * Wraps a unit of work so that its retry requests are honoured at most
 * `retries` times in all; after that the unit's result stands and it is not
 * retried. The count is kept by the returned function, so submit the same
 * wrapped function again to keep counting.
 *
 * A unit that throws or rejects is retried by the lease as usual (the error
 * is reported, never swallowed); only retries the unit *asks for* are limited.
 *
 * @example
 * ```ts
 * const write = limitRetries(2, () => ({ result: WorkResult.Release, retry: true }));
 * write(); // { result: 'release', retry: true }
 * write(); // { result: 'release', retry: true }
 * write(); // { result: 'release', retry: false }
 * ```
 * @param retries How many retry requests to honour, an integer >= 0.
 * @param work The unit to wrap: synchronous, Promise or Observable.
 * @returns A unit with the same result, synchronous when `work` is.
 * @throws RangeError when `retries` is not an integer >= 0.
 * @throws TypeError when `work` is not a function.
 */
export function limitRetries(retries: number, work: WorkFunc): WorkFunc {
  assertInteger('limitRetries', 'retries', retries, 0);
  assertFunction('limitRetries', 'work', work);
  let honoured = 0;

  const limit = (returned: WorkReturn): WorkReturn => {
    if (typeof returned !== 'object' || returned === null || returned.retry !== true) return returned;
    if (honoured < retries) {
      honoured++;
      return returned;
    }
    return { ...returned, retry: false };
  };

  return (context) => mapReturn(work(context), limit);
}
