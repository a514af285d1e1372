import { isObservable, map, type Observable } from 'rxjs';
import { WorkResult, type WorkFunc, type WorkReturn } from '../types.js';

/** A unit's return value, read as the lease applies it. */
export interface Settlement {
  readonly result: WorkResult;
  readonly retry: boolean;
}

const RESULTS: ReadonlySet<unknown> = new Set(Object.values(WorkResult));

/** True for the three {@link WorkResult} values. */
export function isWorkResult(value: unknown): value is WorkResult {
  return RESULTS.has(value);
}

/** Reads a {@link WorkReturn}; undefined when `value` is not one. */
export function toSettlement(value: unknown): Settlement | undefined {
  if (isWorkResult(value)) return { result: value, retry: false };
  if (typeof value !== 'object' || value === null) return undefined;
  const { result, retry } = value as { result?: unknown; retry?: unknown };
  if (!isWorkResult(result) || (retry !== undefined && typeof retry !== 'boolean')) return undefined;
  return { result, retry: retry === true };
}

/** What calling a unit gave: a value now, or a source that gives it later. */
export type Called =
  | { readonly now: true; readonly value: unknown }
  | { readonly now: false; readonly later: Observable<unknown> | PromiseLike<unknown> };

/**
 * Calls a unit. A plain value is returned as is, so that a synchronous unit
 * settles without a Promise in between.
 */
export function call(work: WorkFunc): Called {
  const value: unknown = work();
  if (isObservable(value)) return { now: false, later: value };
  // A bare thenable need not return anything from then(); Promise.resolve adopts it by the Promise rules.
  if (isPromiseLike(value)) return { now: false, later: Promise.resolve(value) };
  return { now: true, value };
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
