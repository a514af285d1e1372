import { VirtualTimeScheduler, asyncScheduler } from 'rxjs';
import { WorkResult, WriterLease, constantBackoff, type WorkFunc } from '../src';

/** One side of a comparison: `setup` makes a fresh state (not timed), `run` is timed on it. */
interface Timed<T> {
  setup: () => T;
  run: (state: T) => void;
}

/** Throughputs of a comparison, in operations per second, and their ratio. */
export interface Compared {
  ours: number;
  baseline: number;
  /** The median, over the rounds, of ours / baseline in that round. */
  ratio: number;
}

/**
 * Times `ours` and `baseline` on `operations` each, in pairs: each round
 * runs both back to back, in alternating order, so that a moment when the
 * machine is slower weighs on both sides of that round's ratio. Throughputs
 * are the medians of the rounds; the ratio is the median of the rounds'
 * ratios.
 */
function comparePaired<A, B>(rounds: number, operations: number, ours: Timed<A>, baseline: Timed<B>): Compared {
  const time = <T>({ setup, run }: Timed<T>): number => {
    const state = setup();
    const started = process.hrtime.bigint();
    run(state);
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  const oursMs: number[] = [];
  const baselineMs: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let a: number;
    let b: number;
    if (round % 2 === 0) {
      a = time(ours);
      b = time(baseline);
    } else {
      b = time(baseline);
      a = time(ours);
    }
    oursMs.push(a);
    baselineMs.push(b);
    ratios.push(b / a);
  }
  return {
    ours: (operations / median(oursMs)) * 1e3,
    baseline: (operations / median(baselineMs)) * 1e3,
    ratio: median(ratios),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The bare baseline of `try`: a Map of pending work and a binary min-heap of due keys. */
class BareQueue {
  readonly pending = new Map<string, { id: number; work: WorkFunc }>();
  readonly heap: { key: string; at: number }[] = [];
  #id = 0;

  add(key: string, work: WorkFunc, at: number): void {
    this.pending.set(key, { id: ++this.#id, work });
    const heap = this.heap;
    let index = heap.length;
    heap.push({ key, at });
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent].at <= at) break;
      [heap[parent], heap[index]] = [heap[index], heap[parent]];
      index = parent;
    }
  }
}

const extend: WorkFunc = () => WorkResult.Extend;
/** What the lease hands a unit; the baseline calls units with the same. */
const CONTEXT = { key: 'key', id: 1, signal: new AbortController().signal };

/** A lease that follows for a long time, so that every `try` only queues. */
function follower(scheduler = new VirtualTimeScheduler()): { lease: WriterLease; scheduler: VirtualTimeScheduler } {
  // No spread: the election's first unit would wait a share of 8 × backoff(0), here 8e12 ms.
  const lease = new WriterLease({
    leaseDuration: 1e12,
    retryInterval: 10,
    backoff: constantBackoff(1e12),
    spread: false,
    scheduler,
  });
  lease.run();
  lease.try('first', () => WorkResult.Release);
  scheduler.flush();
  return { lease, scheduler };
}

export interface MicroFigures {
  keys: number;
  tryOpsPerSec: number;
  tryBaselineOpsPerSec: number;
  tryRatio: number;
  processOpsPerSec: number;
  processBaselineOpsPerSec: number;
  processRatio: number;
  bytesPerPendingKey: Record<string, number>;
  timersAt100k: number;
}

function keysOf(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `route/ns-${i % 97}/name-${i}`);
}

export function tryThroughput(keys: string[], rounds: number): Compared {
  return comparePaired(
    rounds,
    keys.length,
    {
      setup: () => follower().lease,
      run: (lease) => {
        for (const key of keys) lease.try(key, extend);
      },
    },
    {
      setup: () => new BareQueue(),
      run: (queue) => {
        let now = 0;
        for (const key of keys) queue.add(key, extend, now++ + 40);
      },
    },
  );
}

export function processThroughput(keys: string[], rounds: number): Compared {
  return comparePaired(
    rounds,
    keys.length,
    {
      setup: () => {
        const scheduler = new VirtualTimeScheduler();
        const lease = new WriterLease({ leaseDuration: 1e12, retryInterval: 10, scheduler });
        for (const key of keys) lease.try(key, extend);
        return { lease, scheduler };
      },
      run: ({ lease, scheduler }) => {
        lease.run();
        scheduler.flush();
        if (lease.size !== 0) throw new Error(`processing left ${lease.size} keys`);
      },
    },
    {
      setup: () => new Map(keys.map((key) => [key, extend])),
      run: (pending) => {
        for (const [key, work] of pending) {
          work(CONTEXT);
          pending.delete(key);
        }
      },
    },
  );
}

/** Heap bytes per pending key (the keys' own strings not counted: they are the caller's). Needs --expose-gc. */
export function bytesPerPendingKey(count: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('bytesPerPendingKey needs node --expose-gc');
  const keys = keysOf(count);
  gc();
  const before = process.memoryUsage().heapUsed;
  const { lease } = follower();
  for (const key of keys) lease.try(key, extend);
  gc();
  const after = process.memoryUsage().heapUsed;
  if (lease.size !== count) throw new Error(`expected ${count} pending keys, found ${lease.size}`);
  return (after - before) / count;
}

/** Timers the process holds while a real-time lease has `count` keys waiting. */
export function timersWhilePending(count: number): Promise<number> {
  const timeouts = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
  const before = timeouts();
  const lease = new WriterLease({
    leaseDuration: 3_600_000,
    retryInterval: 10,
    backoff: constantBackoff(3_600_000),
    // Rule 16 would hold the election's first unit for a share of 8 × backoff(0): hours here.
    spread: false,
    scheduler: asyncScheduler,
  });
  const processing = lease.run();
  // Follow at once, as a unit that found the record contended would.
  lease.try('first', () => WorkResult.Release);
  const keys = keysOf(count);
  return new Promise<number>((resolve) => {
    const check = () => {
      if (lease.state.state !== 'follower') {
        setImmediate(check);
        return;
      }
      for (const key of keys) lease.try(key, extend);
      const held = timeouts() - before;
      processing.unsubscribe();
      resolve(held);
    };
    check();
  });
}

export async function micro(quick: boolean): Promise<MicroFigures> {
  const count = quick ? 50_000 : 200_000;
  const rounds = quick ? 5 : 9;
  const keys = keysOf(count);
  const tried = tryThroughput(keys, rounds);
  const processed = processThroughput(keys, rounds);
  const sizes = quick ? [100_000] : [100_000, 1_000_000];
  const bytes: Record<string, number> = {};
  for (const size of sizes) bytes[String(size)] = Math.round(bytesPerPendingKey(size));
  return {
    keys: count,
    tryOpsPerSec: Math.round(tried.ours),
    tryBaselineOpsPerSec: Math.round(tried.baseline),
    tryRatio: round2(tried.ratio),
    processOpsPerSec: Math.round(processed.ours),
    processBaselineOpsPerSec: Math.round(processed.baseline),
    processRatio: round2(processed.ratio),
    bytesPerPendingKey: bytes,
    timersAt100k: await timersWhilePending(100_000),
  };
}

const round2 = (value: number) => Math.round(value * 100) / 100;
