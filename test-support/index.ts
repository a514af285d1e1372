/**
 * What the bench (bench/) and the tests (spec/, marbles/) share to drive
 * replicas: a virtual clock, a driver of spec changes, seeded randomness,
 * severable store links, and the failover bound. The last three are the
 * demo's own pieces, re-exported here so that no test reaches into src/cli.
 */
import { DEFAULT_BACKOFF_STEP_MS } from '../src/backoff';

export { VirtualClock } from './virtualClock';
export { VirtualDriver } from './virtualDriver';
export { seededRandom } from '../src/cli/seededRandom';
export { linkStore, type StoreLink } from '../src/cli/storeLink';

/**
 * The failover bound of docs/replicas.md ("The figures"): the lease runs
 * out, a retry, and one step of the default backoff.
 *
 * @example
 * ```ts
 * failoverBound({ leaseDuration: 1000, retryInterval: 100 }); // 1130
 * ```
 */
export function failoverBound({
  leaseDuration,
  retryInterval,
}: {
  leaseDuration: number;
  retryInterval: number;
}): number {
  return leaseDuration + retryInterval + DEFAULT_BACKOFF_STEP_MS;
}
