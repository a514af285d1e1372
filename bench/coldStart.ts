/**
 * What one replica's lease and status writer cost per change, the first
 * time its code runs and once V8 has compiled it: one process, a store
 * that answers every call at once, rounds of changes of every key.
 *
 * ```sh
 * npm run bench:cold                   # leader and follower, 4 rounds of 10,000 keys, a fresh process each
 * node build/bench/coldStart.js leader 10000 4
 * ```
 *
 * A leader's round: every key's spec arrives on the feed (250 a message),
 * then its units write, the store answers each batch at once and the feed
 * brings the statuses back. A follower's round: the specs, then another
 * writer's statuses (64 a message), each letting go of a waiting unit. The
 * CPU is the whole process's (V8 compiles and collects on threads of its
 * own), per change, with the main thread's share.
 */
import { readFileSync } from 'node:fs';
import { Subject } from 'rxjs';
import { ContentionTracker, LeaseState, StatusWriter, WriterLease } from '../src';
import type { CasOutcome, RecordChange, RecordStore, StatusValue } from '../src/stores/store';

type Role = 'leader' | 'follower';

/** A compare-and-set waiting for the round to answer it. */
interface PendingWrite {
  readonly key: string;
  readonly value: StatusValue;
  readonly answer: (outcome: CasOutcome) => void;
}

/** One round's figures: µs of CPU per change. */
export interface ColdRound {
  readonly round: number;
  /** Taking each key's spec from the feed (submitting its unit). */
  readonly specUs: number;
  /** The leader's write cycle, or the follower's hearing another writer's status. */
  readonly statusUs: number;
  /** The main thread's share of the round's CPU. */
  readonly mainThreadShare: number;
}

const SPECS_A_MESSAGE = 250;
const STATUSES_A_MESSAGE = 64;

/**
 * Runs the rounds in this process: run it in a fresh process, or the
 * first round is not cold.
 *
 * @param role Whether the replica leads (writes) or follows another writer.
 * @param keys Keys changed each round.
 * @param rounds How many rounds.
 * @returns Each round's figures.
 */
export async function coldStart(role: Role, keys: number, rounds: number): Promise<ColdRound[]> {
  const changes = new Subject<RecordChange>();
  const writes: PendingWrite[] = [];
  let version = 0;
  const store: RecordStore = {
    url: 'bench://cold-start',
    get: () => Promise.resolve(undefined),
    compareAndSet: (_kind, key, value) =>
      new Promise((answer) => writes.push({ key, value: value as unknown as StatusValue, answer })),
    list: () => Promise.resolve([]),
    put: () => Promise.resolve(0),
    delete: () => Promise.resolve(),
    changes: () => changes.asObservable(),
    close: () => Promise.resolve(),
  };
  // 64 workers, as a demo replica; a lease of a minute: none runs out during the rounds.
  const lease = new WriterLease({ name: 'r1', leaseDuration: 60_000, retryInterval: 100, workers: 64 });
  const writer = new StatusWriter({ store, lease, writer: 'r1', contention: new ContentionTracker() });
  const running = [lease.run(), writer.run(), lease.events$.subscribe(), writer.events$.subscribe()];
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const status = (key: string, generation: number, by: string): RecordChange => ({
    kind: 'status',
    key,
    version: ++version,
    value: { generation, value: `${key}@${generation}`, writer: by, at: Date.now() },
  });
  if (role === 'follower') {
    // Another writer's status of a key this replica knows: it follows that writer from now on.
    changes.next({ kind: 'spec', key: 'seen', version: ++version, value: { generation: 1, value: 'seen@1' } });
    changes.next(status('seen', 1, 'r2'));
  }
  await turn();

  const figures: ColdRound[] = [];
  for (let round = 1; round <= rounds; round++) {
    const generation = round;
    const specStart = cpuNow();
    for (let from = 0; from < keys; from += SPECS_A_MESSAGE) {
      for (let i = from; i < Math.min(keys, from + SPECS_A_MESSAGE); i++) {
        const key = `key-${i}`;
        changes.next({ kind: 'spec', key, version: ++version, value: { generation, value: `${key}@${generation}` } });
      }
      await turn();
    }
    const statusStart = cpuNow();
    if (role === 'follower') {
      for (let from = 0; from < keys; from += STATUSES_A_MESSAGE) {
        for (let i = from; i < Math.min(keys, from + STATUSES_A_MESSAGE); i++)
          changes.next(status(`key-${i}`, generation, 'r2'));
        await turn();
      }
    } else {
      for (let answered = 0; answered < keys;) {
        await turn();
        const batch = writes.splice(0);
        for (const write of batch) write.answer({ ok: true, version: ++version });
        // The statuses come back on the feed after their answers, as a store's change messages do.
        await turn();
        for (const { key, value } of batch) changes.next({ kind: 'status', key, version, value });
        answered += batch.length;
      }
    }
    const end = cpuNow();
    if (lease.state.state !== (role === 'leader' ? LeaseState.Leader : LeaseState.Follower)) {
      throw new Error(`cold start, ${role}: the lease is ${lease.state.state} after round ${round}`);
    }
    figures.push({
      round,
      specUs: round1((statusStart.process - specStart.process) / keys),
      statusUs: round1((end.process - statusStart.process) / keys),
      mainThreadShare: Math.round(((end.main - specStart.main) / (end.process - specStart.process)) * 100) / 100,
    });
  }
  for (const subscription of running) subscription.unsubscribe();
  lease.dispose();
  return figures;
}

/** CPU used so far, µs: the whole process's, and its main thread's (Linux; the process's elsewhere). */
function cpuNow(): { process: number; main: number } {
  const { user, system } = process.cpuUsage();
  return { process: user + system, main: mainThreadCpu() ?? user + system };
}

/** The main thread's user and system time, µs, from /proc (clock ticks of 10 ms: coarse, but a round lasts dozens). */
function mainThreadCpu(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

if (require.main === module) {
  const [role = 'leader', keys = '10000', rounds = '4'] = process.argv.slice(2);
  if (role !== 'leader' && role !== 'follower')
    throw new Error(`role: expected leader or follower, received "${role}"`);
  for (const [name, value] of [
    ['keys', keys],
    ['rounds', rounds],
  ]) {
    if (!/^[1-9][0-9]*$/.test(value)) throw new Error(`${name}: expected an integer >= 1, received "${value}"`);
  }
  coldStart(role, Number(keys), Number(rounds)).then(
    (figures) => {
      for (const { round, specUs, statusUs, mainThreadShare } of figures) {
        console.log(
          `${role} round ${round}: ${specUs} µs a spec, ${statusUs} µs a status, main thread ${mainThreadShare}`,
        );
      }
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
