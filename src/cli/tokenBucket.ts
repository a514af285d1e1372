import type { RecordStore } from '../stores/store.js';
import { demoNow } from './demoClock.js';

/**
 * Options of {@link TokenBucket}.
 *
 * @example
 * ```ts
 * new TokenBucket({ rate: 500 }); // 500 calls a second, 500 at once after a quiet second
 * ```
 */
export interface TokenBucketOptions {
  /** Tokens added per second, a number > 0. */
  rate: number;
  /**
   * The most tokens the bucket holds: how many calls may go at once after a
   * quiet spell. It starts full.
   * @default rate
   */
  burst?: number;
  /**
   * The clock, in milliseconds.
   * @default demoNow
   */
  now?: () => number;
}

/**
 * A token bucket, as a client-side rate limiter of a Kubernetes client
 * (client-go's `--kube-api-qps` / `--kube-api-burst`): `rate` tokens a
 * second, at most `burst` held; each call takes one, and waits for it when
 * none is left. Waiters are served in order, with one timer for the first.
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket({ rate: 2, burst: 1 });
 * await bucket.take(); // at once
 * await bucket.take(); // 500 ms later
 * ```
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #refilledAt: number;
  readonly #waiting: (() => void)[] = [];
  /** The timer that serves the first waiter, when one waits. */
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param options The rate and the burst.
   * @throws RangeError when `rate` or `burst` is not a finite number > 0 (`burst` >= 1).
   */
  constructor(options: TokenBucketOptions) {
    const { rate, burst = rate, now = demoNow } = options;
    if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) {
      throw new RangeError(`TokenBucket: options.rate must be a finite number > 0, received ${String(rate)}`);
    }
    if (typeof burst !== 'number' || !Number.isFinite(burst) || burst < 1) {
      throw new RangeError(`TokenBucket: options.burst must be a finite number >= 1, received ${String(burst)}`);
    }
    this.#rate = rate;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#refilledAt = now();
  }

  /** Calls waiting for a token. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Takes a token: at once when one is left, else once one is added (after
   * the calls that were waiting before). A call whose `signal` aborts while
   * it waits leaves the line without a token (a unit the lease let go of).
   *
   * @param signal Aborts the wait.
   * @returns Resolves when the call may go; rejects with the signal's reason when it aborts first.
   */
  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    this.#refill();
    if (this.#waiting.length === 0 && this.#tokens >= 1) {
      this.#tokens--;
      return Promise.resolve();
    }
    const taken = new Promise<void>((resolve, reject) => {
      const go = (): void => {
        signal?.removeEventListener('abort', abort);
        resolve();
      };
      const abort = (): void => {
        const at = this.#waiting.indexOf(go);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(abortReason(signal!));
      };
      signal?.addEventListener('abort', abort, { once: true });
      this.#waiting.push(go);
    });
    this.#serveLater();
    return taken;
  }

  /** Stops the timer; the calls still waiting never go. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#waiting.length = 0;
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#refilledAt) * this.#rate) / 1000);
    this.#refilledAt = now;
  }

  #serveLater(): void {
    if (this.#timer !== undefined) return;
    const ms = Math.max(0, ((1 - this.#tokens) * 1000) / this.#rate);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#refill();
      while (this.#waiting.length > 0 && this.#tokens >= 1) {
        this.#tokens--;
        this.#waiting.shift()!();
      }
      if (this.#waiting.length > 0) this.#serveLater();
    }, Math.ceil(ms));
  }
}

/**
 * The store as a rate-limited client sees it: `get`, `compareAndSet`, `put`,
 * `delete` and `list` each wait for a token of `bucket` first. The change
 * feed and the handover channel are not limited (a watch is one call).
 *
 * @example
 * ```ts
 * const limited = throttledStore(store, new TokenBucket({ rate: 500 }));
 * await limited.get('spec', 'key-0'); // after a token
 * ```
 * @param store The store to limit.
 * @param bucket Where the tokens come from.
 * @returns A store with the same records, whose calls wait their turn.
 */
export function throttledStore(store: RecordStore, bucket: TokenBucket): RecordStore {
  const limited: RecordStore = {
    url: store.url,
    versioning: store.versioning,
    get: (kind, key, options) => bucket.take(options?.signal).then(() => store.get(kind, key, options)),
    compareAndSet: (kind, key, value, expected, options) =>
      bucket.take(options?.signal).then(() => store.compareAndSet(kind, key, value, expected, options)),
    put: (kind, key, value) => bucket.take().then(() => store.put(kind, key, value)),
    delete: (kind, key) => bucket.take().then(() => store.delete(kind, key)),
    changes: () => store.changes(),
    close: () => {
      bucket.close();
      return store.close();
    },
  };
  if (store.list !== undefined) {
    limited.list = (options) => bucket.take(options?.signal).then(() => store.list!(options));
  }
  if (store.handOver !== undefined) limited.handOver = (writer) => store.handOver!(writer);
  if (store.handovers !== undefined) limited.handovers = () => store.handovers!();
  return limited;
}

/** What the signal was aborted with, as an Error (an `AbortSignal` may carry anything). */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}
