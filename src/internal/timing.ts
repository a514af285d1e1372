import type { BackoffPolicy } from '../backoff.js';
import { LeaseState, type LeaseSnapshot } from '../types.js';
import {
  cappedBackoff,
  ELECTION_SPREAD_STEPS,
  FOLLOWER_SPREAD_STEPS,
  NO_SPREAD,
  type RuleOptions,
  spreadBound,
  type Spread,
} from './rules.js';

/**
 * The lease's durations, as the rules read them: the backoff policy,
 * guarded and capped at the lease duration, and rule 16's random delays,
 * which it draws and keeps for as long as they hold.
 */
export class LeaseTiming implements RuleOptions {
  readonly #policy: BackoffPolicy;
  /** Rule 16's source of randomness, drawn only with `spread`. */
  readonly #random: () => number;
  readonly #onBackoffError: (tick: number, received: unknown) => void;
  /** The delays drawn for the other writer's lease that runs out at `expires`. */
  #drawn: (Spread & { readonly expires: number }) | undefined;

  /**
   * @param onBackoffError Told when the policy throws or returns something
   *   other than a number >= 0; the lease duration is used instead.
   */
  constructor(
    readonly leaseDuration: number,
    policy: BackoffPolicy,
    readonly spread: boolean,
    random: () => number,
    onBackoffError: (tick: number, received: unknown) => void,
  ) {
    this.#policy = policy;
    this.#random = random;
    this.#onBackoffError = onBackoffError;
  }

  /** The policy's value, capped at the lease duration. */
  backoffDuration(tick: number): number {
    let value: unknown;
    try {
      value = this.#policy(tick);
    } catch (error) {
      value = error;
    }
    const capped = cappedBackoff(value, this.leaseDuration);
    if (capped !== undefined) return capped;
    this.#onBackoffError(tick, value);
    return this.leaseDuration;
  }

  /**
   * Rule 16's delays for `snapshot`: none for a leader or without the
   * spread; else the election's, drawn once, and the follower's, drawn once
   * per renewal of the other lease (each new `expires`), each within
   * {@link spreadBound}. One draw serves every key, so keys keep the order
   * they became due in.
   */
  spreadFor({ state, expires }: LeaseSnapshot): Spread {
    if (!this.spread || state === LeaseState.Leader) return NO_SPREAD;
    const random = this.#random;
    const drawn = this.#drawn;
    if (drawn?.expires === expires) return drawn;
    const step = this.backoffDuration(0);
    const bound = spreadBound(this.leaseDuration);
    this.#drawn = {
      expires,
      electionMs: drawn?.electionMs ?? random() * Math.min(ELECTION_SPREAD_STEPS * step, bound),
      followerMs: random() * Math.min(FOLLOWER_SPREAD_STEPS * step, bound),
    };
    return this.#drawn;
  }
}
