import { assertDuration, assertFunction, assertInteger } from './internal/validate.js';

/**
 * Milliseconds a follower waits after `tick` renewals of someone else's lease
 * in a row. A plain function, so a custom policy is tested by calling it, or
 * by driving a lease with it in virtual time.
 *
 * The lease caps every value at its `leaseDuration`, so a policy may return
 * `Infinity` to mean "as long as a lease lasts".
 *
 * @example
 * ```ts
 * const linear: BackoffPolicy = (tick) => 100 * (tick + 1);
 * linear(2); // 300
 * ```
 */
export type BackoffPolicy = (tick: number) => number;

/**
 * Options of {@link exponentialBackoff}.
 *
 * @example
 * ```ts
 * exponentialBackoff({ initial: 50, factor: 2, steps: 3, jitter: 0 })(2); // 200
 * ```
 */
export interface ExponentialBackoffOptions {
  /**
   * Milliseconds for tick 0. A follower also waits twice this before it runs new work.
   * @default 20
   */
  initial?: number;
  /**
   * Multiplier applied at each tick.
   * @default 4
   */
  factor?: number;
  /**
   * Ticks that grow the duration; beyond them the policy returns `cap`.
   * @default 5
   */
  steps?: number;
  /**
   * Each step first adds up to `jitter × d` at random, so that followers spread out.
   * `0` turns jitter off.
   * @default 0.5
   */
  jitter?: number;
  /**
   * The source of randomness in [0, 1); inject it for determinism.
   * @default Math.random
   */
  random?: () => number;
  /**
   * Largest value returned, checked at every step as the reference policy
   * (docs/lease.md, "Backoff") checks `leaseDuration`: a step that exceeds
   * it returns `cap` at once, even where a `factor` below 1 would have
   * shrunk it again. The lease
   * caps only the value a policy returns, so pass the lease duration here to
   * get the reference policy exactly (the lease's default policy does).
   * @default Infinity
   */
  cap?: number;
}

const OWNER = 'exponentialBackoff';

/** The reference defaults (docs/lease.md, "Backoff"). */
const DEFAULTS = { initial: 20, factor: 4, steps: 5, jitter: 0.5 } as const;

/**
 * The longest first backoff step of the default policy: `initial` with its
 * whole jitter, 30 ms. It is the "one backoff step" of the failover bound
 * (leaseDuration + retryInterval + one backoff step) that the demo, the
 * bench and the fault runs check. Internal: not exported from the package.
 */
export const DEFAULT_BACKOFF_STEP_MS = DEFAULTS.initial * (1 + DEFAULTS.jitter);

/**
 * The reference policy: exponential growth with jitter, ported from the Go
 * `writerlease` package.
 *
 * For `tick > steps` it returns `cap`. Otherwise it starts with
 * `d = initial` and repeats `tick` times `d = (d + random() × jitter × d) × factor`,
 * returning `cap` as soon as `d` exceeds it; then it returns `d`, at most `cap`
 * (docs/lease.md, "Backoff", with `cap` for `leaseDuration`).
 *
 * @example
 * ```ts
 * const backoff = exponentialBackoff({ jitter: 0 });
 * [0, 1, 2, 3].map(backoff); // [20, 80, 320, 1280]
 * backoff(6); // Infinity: the lease caps it at leaseDuration
 * ```
 * @param options Growth, jitter and randomness; every number finite and >= 0.
 * @returns A {@link BackoffPolicy}.
 * @throws RangeError for a negative or non-finite number, or `steps` not an integer.
 * @throws TypeError when `random` is not a function.
 */
export function exponentialBackoff(options: ExponentialBackoffOptions = {}): BackoffPolicy {
  const {
    initial = DEFAULTS.initial,
    factor = DEFAULTS.factor,
    steps = DEFAULTS.steps,
    jitter = DEFAULTS.jitter,
    random = Math.random,
    cap = Infinity,
  } = options;
  assertDuration(OWNER, 'options.initial', initial);
  assertDuration(OWNER, 'options.factor', factor);
  assertInteger(OWNER, 'options.steps', steps, 0);
  assertDuration(OWNER, 'options.jitter', jitter);
  assertFunction(OWNER, 'options.random', random);
  if (typeof cap !== 'number' || Number.isNaN(cap) || cap < 0) {
    throw new RangeError(`${OWNER}: options.cap must be a number >= 0 (Infinity allowed), received ${String(cap)}`);
  }

  const jittered = jitter > 0 ? (d: number) => d + random() * jitter * d : (d: number) => d;

  return (tick) => {
    if (tick > steps) return cap;
    let d = initial;
    for (let i = 0; i < tick; i++) {
      d = jittered(d) * factor;
      if (d > cap) return cap;
    }
    // Only tick 0 can be above the cap here: an `initial` above it.
    return Math.min(d, cap);
  };
}

/**
 * A policy that always waits the same time.
 *
 * @example
 * ```ts
 * constantBackoff(250)(7); // 250
 * ```
 * @param ms Milliseconds, finite and >= 0.
 * @returns A {@link BackoffPolicy}.
 * @throws RangeError when `ms` is negative or not finite.
 */
export function constantBackoff(ms: number): BackoffPolicy {
  assertDuration('constantBackoff', 'ms', ms);
  return () => ms;
}
