import { isObservable, map, type Observable } from 'rxjs';
import { WorkResult, type WorkFunc, type WorkReturn } from '../types.js';

/** A unit's return value, read as the lease applies it. */
export interface Settlement {
  readonly result: WorkResult;
  readonly retry: boolean;
}

/** The settlement of each bare result, made once: most units return one, and this is the hot path. */
const BARE: ReadonlyMap<unknown, Settlement> = new Map(
  Object.values(WorkResult).map((result) => [result, Object.freeze({ result, retry: false })]),
);

/** True for the three {@link WorkResult} values. */
export function isWorkResult(value: unknown): value is WorkResult {
  return BARE.has(value);
}

/** Reads a {@link WorkReturn}; undefined when `value` is not one. */
export function toSettlement(value: unknown): Settlement | undefined {
  const bare = BARE.get(value);
  if (bare !== undefined) return bare;
  if (typeof value !== 'object' || value === null) return undefined;
  const { result, retry } = value as { result?: unknown; retry?: unknown };
  if (!isWorkResult(result) || (retry !== undefined && typeof retry !== 'boolean')) return undefined;
  return { result, retry: retry === true };
}

/**
 * What a unit returned, when it will only give its value later: the
 * Observable, or the thenable adopted as a Promise. Undefined for a plain
 * value, which the lease applies at once, without a Promise in between.
 */
export function later(returned: unknown): Observable<unknown> | Promise<unknown> | undefined {
  if (isObservable(returned)) return returned;
  // A bare thenable need not return anything from then(); Promise.resolve adopts it by the Promise rules.
  if (isPromiseLike(returned)) return Promise.resolve(returned);
  return undefined;
}

/** True for anything with a callable `then`, as the Promise resolution rules say. */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** Applies `fn` to what a unit returns, keeping it synchronous when it was. */
export function mapReturn(returned: ReturnType<WorkFunc>, fn: (value: WorkReturn) => WorkReturn): ReturnType<WorkFunc> {
  if (isObservable(returned)) return returned.pipe(map(fn));
  if (isPromiseLike(returned)) return Promise.resolve(returned).then(fn);
  return fn(returned);
}
