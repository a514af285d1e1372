import type { HealthServer } from '../health.js';
import { openStore } from '../stores/openStore.js';
import type { ReplicaOptions } from './args.js';
import { Replica } from './replica.js';

/** Where the replica command writes: its reports on `stdout`, one JSON object a line. */
export interface ReplicaCommandIO {
  readonly stdout: NodeJS.WritableStream;
}

/**
 * `rx-writer-lease replica`: one replica on a real store, until SIGTERM or
 * SIGINT (or, when the demo spawned it, until the demo goes away). Run it on
 * as many machines as you like against the same store. With `--listen`, it
 * serves its health and metrics over HTTP meanwhile (docs/observability.md).
 *
 * @example
 * ```ts
 * await runReplicaCommand({ store: 'redis://10.0.0.5:6379', name: 'eu-1', ... });
 * // {"type":"ready","replica":"eu-1","pid":4242,"at":52934000000}
 * // ...
 * ```
 * @param options The parsed flags.
 * @param io Where reports go.
 * @returns The exit code, 0 once stopped cleanly.
 * @throws StoreUrlError, StoreUnreachableError or StoreClientMissingError when the store cannot be opened.
 * @throws Error naming `--listen` when it cannot listen there.
 */
export async function runReplicaCommand(options: ReplicaOptions, io: ReplicaCommandIO = process): Promise<number> {
  const { store: url, prefix, listen, ...config } = options;
  const store = await openStore(url, { prefix });
  const replica = new Replica({ ...config, store });
  let health: HealthServer | undefined;
  if (listen !== undefined) {
    try {
      health = await replica.serveHealth(listen);
    } catch (error) {
      await store.close();
      throw new Error(`--listen: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  }
  const done = new Promise<void>((resolve) => replica.reports$.subscribe({ complete: resolve }));
  replica.reports$.subscribe(reportLines(io.stdout));

  const stop = (): void => void replica.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Spawned by the demo with an IPC channel: it closes when the demo exits, however it exits.
  if (process.send !== undefined) process.once('disconnect', stop);

  replica.start();
  await done;
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  process.off('disconnect', stop);
  await health?.close();
  await store.close();
  return 0;
}

/**
 * Writes each report as a JSON line, the lines of one turn of the event loop
 * in one write: a burst of thousands of writes would otherwise cost a
 * system call each.
 *
 * @example
 * ```ts
 * const out = reportLines(process.stdout);
 * out.next({ type: 'ready', replica: 'r1' }); // written at the end of this turn
 * out.complete(); // writes what is left now
 * ```
 * @param stdout Where the lines go.
 * @returns `next` for a report, `complete` to write the lines not yet written.
 */
export function reportLines(stdout: NodeJS.WritableStream): { next: (report: unknown) => void; complete: () => void } {
  let lines = '';
  const flush = (): void => {
    if (lines.length > 0) stdout.write(lines);
    lines = '';
  };
  return {
    next(report) {
      if (lines.length === 0) setImmediate(flush);
      lines += `${JSON.stringify(report)}\n`;
    },
    complete: flush,
  };
}
