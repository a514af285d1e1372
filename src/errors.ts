/**
 * A unit of work returned something that is not a `WorkReturn`, or an
 * Observable unit completed without a value. The lease counts it as
 * `release` with retry and reports it in an `error` event.
 *
 * @example
 * ```ts
 * lease.events$.pipe(filter((e) => e.type === 'error')).subscribe((e) => {
 *   if (e.error instanceof WorkReturnError) console.log(e.error.info.received); // 'ok?'
 * });
 * ```
 */
export class WorkReturnError extends TypeError {
  override readonly name = 'WorkReturnError';

  constructor(
    message: string,
    readonly info: { readonly key: string; readonly received: unknown },
  ) {
    super(message);
  }
}

/**
 * `run()` was called on a lease that is already running.
 *
 * @example
 * ```ts
 * lease.run();
 * lease.run(); // throws LeaseRunningError
 * ```
 */
export class LeaseRunningError extends Error {
  override readonly name = 'LeaseRunningError';

  constructor(readonly info: { readonly lease: string }) {
    super(
      `WriterLease "${info.lease}": run() was called while the lease is running; ` +
        'unsubscribe the Subscription of the earlier run() first',
    );
  }
}

/**
 * The lease was disposed: it takes no more work, and a `wait()` still
 * pending when it was disposed rejects with this error.
 *
 * @example
 * ```ts
 * lease.dispose();
 * lease.try('a', work); // throws LeaseDisposedError
 * ```
 */
export class LeaseDisposedError extends Error {
  override readonly name = 'LeaseDisposedError';

  constructor(readonly info: { readonly lease: string; readonly call: string }) {
    super(`WriterLease "${info.lease}": ${info.call} was called after dispose()`);
  }
}

/**
 * A unit of work did not settle within the lease's `workTimeout`. The lease
 * let go of it (aborted its signal with this error, freed its worker) and
 * counts it as `release` with retry; the `error` event carries this error.
 *
 * @example
 * ```ts
 * lease.events$.pipe(filter((e) => e.type === 'error')).subscribe((e) => {
 *   if (e.error instanceof WorkTimeoutError) console.log(e.error.info); // { key: 'route/a', id: 3, timeout: 5000 }
 * });
 * ```
 */
export class WorkTimeoutError extends Error {
  override readonly name = 'WorkTimeoutError';

  constructor(readonly info: { readonly key: string; readonly id: number; readonly timeout: number }) {
    super(`unit of work for "${info.key}" (submission ${info.id}) did not settle within ${info.timeout} ms`);
  }
}
