import type { SchedulerLike } from 'rxjs';

/**
 * Fail-fast checks for user input. Every message names the argument, the
 * expected value and the value received, so that a wrong call is fixed from
 * the message alone.
 */

/** Renders a received value for an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'function') return `a function (${value.name || 'anonymous'})`;
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
}

/** Throws a RangeError unless `value` is a finite number >= 0. */
export function assertDuration(owner: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`${owner}: ${name} must be a finite number >= 0, received ${describeValue(value)}`);
  }
}

/** Throws a RangeError unless `value` is an integer >= `min`. */
export function assertInteger(owner: string, name: string, value: unknown, min: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${owner}: ${name} must be an integer >= ${min}, received ${describeValue(value)}`);
  }
}

/** Throws a TypeError unless `value` is a function. */
export function assertFunction(
  owner: string,
  name: string,
  value: unknown,
): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') {
    throw new TypeError(`${owner}: ${name} must be a function, received ${describeValue(value)}`);
  }
}

/** Throws a TypeError unless `value` is a non-empty string. */
export function assertKey(owner: string, name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${owner}: ${name} must be a non-empty string, received ${describeValue(value)}`);
  }
}

/** Throws a TypeError unless `value` looks like an RxJS scheduler (`now()` and `schedule()`). */
export function assertScheduler(owner: string, name: string, value: unknown): asserts value is SchedulerLike {
  const scheduler = value as Partial<SchedulerLike> | null | undefined;
  if (typeof scheduler?.now !== 'function' || typeof scheduler.schedule !== 'function') {
    throw new TypeError(
      `${owner}: ${name} must be an RxJS scheduler (with now() and schedule()), received ${describeValue(value)}`,
    );
  }
}
