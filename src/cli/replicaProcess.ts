import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { Subject } from 'rxjs';
import type { ReplicaOptions } from './args.js';
import type { ReplicaReport } from './replica.js';
import type { ReplicaHandle } from './replicaHandle.js';

/**
 * Options of {@link spawnReplica}.
 *
 * @example
 * ```ts
 * spawnReplica({ command: [process.execPath, 'bin/rx-writer-lease.js'], store: 'redis://127.0.0.1:6379', name: 'r1', ... });
 * ```
 */
export interface ReplicaProcessOptions extends Omit<ReplicaOptions, 'shards' | 'clientQps'> {
  /** The program and its first arguments; `replica` and the flags are appended. */
  command: readonly string[];
  /** `--shards`. @default 1 */
  shards?: number;
  /** `--client-qps`; undefined: unlimited. */
  clientQps?: number;
}

/** How long a replica may take to stop after SIGTERM before it gets SIGKILL. */
const STOP_TIMEOUT_MS = 5_000;
/** How much of a replica's stderr is kept for the message when it fails. */
const STDERR_KEPT = 4_000;

/** Every replica process still running: none outlives the process that spawned it. */
const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Starts `rx-writer-lease replica ...` as a process of its own and reads its
 * reports, one JSON object per line of its stdout. The child also gets an IPC
 * channel: it stops when the channel closes, so that it does not outlive a
 * demo that was killed; the demo kills every child on its own exit.
 *
 * @example
 * ```ts
 * const handle = spawnReplica({ command: [process.execPath, 'bin/rx-writer-lease.js'], store: url, name: 'r1', ... });
 * await handle.ready(); // rejects with the replica's stderr when it exits first
 * ```
 * @param options The command, the store and the replica's settings.
 * @returns The handle of the running process.
 */
export function spawnReplica(options: ReplicaProcessOptions): ReplicaHandle {
  const {
    command,
    store,
    name,
    leaseDuration,
    retryInterval,
    strategy,
    spread,
    prefix,
    shards = 1,
    clientQps,
  } = options;
  installExitHook();
  const [program, ...firstArgs] = command;
  const child = spawn(
    program,
    [
      ...firstArgs,
      'replica',
      '--store',
      store,
      '--name',
      name,
      '--lease-duration',
      `${leaseDuration}`,
      '--retry-interval',
      `${retryInterval}`,
      '--strategy',
      strategy,
      '--prefix',
      prefix,
      ...(spread ? [] : ['--no-spread']),
      ...(shards === 1 ? [] : ['--shards', `${shards}`]),
      ...(clientQps === undefined ? [] : ['--client-qps', `${clientQps}`]),
    ],
    { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
  );
  children.add(child);

  const reports$ = new Subject<ReplicaReport>();
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-STDERR_KEPT);
  });
  const exited = new Promise<string>((resolve) => {
    child.once('error', (error) => resolve(error.message));
    child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exit code ${code}`));
  }).finally(() => children.delete(child));
  const lines = readline.createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    const report = parseReport(line);
    if (report !== undefined) reports$.next(report);
  });
  // Every line is read before the stream closes: the reports end there.
  const reportsEnded = new Promise<void>((resolve) => lines.once('close', resolve)).then(() => reports$.complete());

  const ready = new Promise<void>((resolve, reject) => {
    const watch = reports$.subscribe({
      next: (report) => {
        if (report.type !== 'synced') return;
        watch.unsubscribe();
        resolve();
      },
    });
    void exited.then(async (how) => {
      await reportsEnded;
      watch.unsubscribe();
      reject(new Error(`replica ${name} exited before it was ready (${how})${stderr ? `:\n${stderr.trimEnd()}` : ''}`));
    });
  });
  ready.catch(() => undefined);

  return {
    name,
    reports$: reports$.asObservable(),
    ready: () => ready,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(killer);
      }
      await reportsEnded;
    },
  };
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of children) child.kill('SIGKILL');
  });
}

function parseReport(line: string): ReplicaReport | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const report = JSON.parse(line) as ReplicaReport;
    return typeof report?.type === 'string' ? report : undefined;
  } catch {
    return undefined;
  }
}
