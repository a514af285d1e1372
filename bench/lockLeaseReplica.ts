import type { Subscription } from 'rxjs';
import { LeaseState, StatusWriter, WriterLease, monotonicScheduler, type StatusWriterEvent } from '../src';
import { parseReplicaArgs } from '../src/cli/args';
import { demoNow } from '../src/cli/demoClock';
import type { ReplicaReport } from '../src/cli/replica';
import { reportLines } from '../src/cli/replicaCommand';
import { openStore } from '../src/stores/openStore';
import { LockElector } from './lockElector';

/**
 * The lock record of the lock-lease replicas on a real store: a `status`
 * record, as in the macro runs, so that the demo counts its renewals among
 * the idle writes.
 */
export const LOCK_LEASE_KEY = 'leader-election';

/** client-go's durations, as the macro runs use them. */
const LOCK = { leaseDuration: 15_000, renewDeadline: 10_000, retryPeriod: 2_000 } as const;
/** As many units at once as a writer-lease replica of the demo runs (`src/cli/replica.ts`). */
const WORKERS = 64;
/** How long a replica waits for some candidate to hold the lock before it says it is ready. */
const ELECTED_WITHIN_MS = 10_000;

/**
 * A lock-lease replica process that speaks the demo's replica protocol
 * (`rx-writer-lease replica`: the same flags, one JSON report a line on
 * stdout), so that `runDemo` runs a fleet of them through its
 * `replicaCommand` option and measures them as it measures its own:
 *
 * ```sh
 * node build/bench/lockLeaseReplica.js replica --store redis://127.0.0.1:6379 --name r1 --prefix wl
 * ```
 *
 * A client-go style controller (`bench/lockElector.ts`, the macro runs'
 * `lock-lease`): only the holder of the lock record writes statuses, with
 * the demo replica's unit of work (`StatusWriter`, `coordinate: false`) on a
 * plain work queue of 64 workers; on taking the lock it lists every record,
 * as a controller's informer does. `--strategy`, `--shards` and
 * `--client-qps` are read and ignored. On SIGTERM (or when the demo goes
 * away) it stops its work and releases the lock (client-go's
 * `ReleaseOnCancel`), then reports its totals.
 */
async function main(argv: readonly string[]): Promise<number> {
  const args = argv[0] === 'replica' ? argv.slice(1) : argv;
  const { store: url, prefix, name, retryInterval } = parseReplicaArgs(args);
  const store = await openStore(url, { prefix });
  const scheduler = monotonicScheduler;
  const queue = new WriterLease({
    leaseDuration: LOCK.leaseDuration,
    retryInterval,
    workers: WORKERS,
    workTimeout: LOCK.leaseDuration,
    spread: false,
    scheduler,
    name,
  });
  const writer = new StatusWriter({ store, lease: queue, writer: name, coordinate: false, scheduler });
  const out = reportLines(process.stdout);
  const send = (report: ReplicaReport) => out.next(report);
  let writes = 0;
  let conflicts = 0;
  const counting = writer.events$.subscribe((event: StatusWriterEvent) => {
    const at = demoNow();
    if (event.type === 'written') {
      writes++;
      send({ type: 'written', replica: name, key: event.key, generation: event.generation, at });
    } else if (event.type === 'conflict') {
      conflicts++;
      send({ type: 'conflict', replica: name, key: event.key, generation: event.generation, at });
    } else if (event.type === 'error') {
      send({ type: 'error', replica: name, key: event.key, message: String(event.error), at });
    }
  });
  const leading: Subscription[] = [];
  const stopLeading = () => {
    for (const subscription of leading.splice(0)) subscription.unsubscribe();
  };
  const elector = new LockElector({
    store,
    lockKey: LOCK_LEASE_KEY,
    identity: name,
    scheduler,
    random: Math.random,
    ...LOCK,
    onStartedLeading() {
      // The writer first: its run() lists the store and submits every record whose status is behind.
      leading.push(writer.run(), queue.run());
      send({ type: 'state', replica: name, state: LeaseState.Leader, at: demoNow() });
    },
    onStoppedLeading() {
      stopLeading();
      send({ type: 'state', replica: name, state: LeaseState.Follower, at: demoNow() });
    },
  });

  elector.run();
  // Ready once some candidate holds the lock: the driver's first change then has a writer.
  const deadline = demoNow() + ELECTED_WITHIN_MS;
  while (demoNow() < deadline) {
    const lock = await store
      .get<{ generation: number; holder?: string }>('status', LOCK_LEASE_KEY)
      .catch(() => undefined);
    if (lock?.value.holder) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  send({ type: 'ready', replica: name, pid: process.pid, at: demoNow() });
  // No cache to fill before it holds the lock (the holder lists the store then): synced with ready.
  send({ type: 'synced', replica: name, at: demoNow() });
  if (!elector.leading) send({ type: 'state', replica: name, state: LeaseState.Follower, at: demoNow() });

  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
    if (process.send !== undefined) process.once('disconnect', resolve);
  });
  // client-go: the controller's work stops, then the lock is released.
  stopLeading();
  // The units in flight settle (a drained lease is disposed).
  await queue.drain(5_000).catch(() => []);
  await elector.release();
  counting.unsubscribe();
  send({ type: 'stopped', replica: name, writes, conflicts, at: demoNow() });
  out.complete();
  await store.close();
  return 0;
}

// Run as a process (the demo spawns it); imported, it only lends its constants.
if (require.main === module) start();

function start(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Timers of the store client may linger: the demo waits for this process to exit.
      setTimeout(() => process.exit(code), 100).unref();
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
