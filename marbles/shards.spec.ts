/**
 * Issue 20 (docs/lease.md, "Shards"): a writer lease per shard, each shard
 * preferring one replica, the others deferring by rank. The rules in virtual
 * time first, then three replicas on a memory store (the `Cluster` harness
 * at the bottom: StatusWriter's units, made synchronous so that the whole
 * run is one TestScheduler flush), then a property over random clusters.
 */
import fc from 'fast-check';
import { delay, filter, map, Subject, Subscription, type Observable } from 'rxjs';
import { TestScheduler, type RunHelpers } from 'rxjs/testing';
import {
  constantBackoff,
  exponentialBackoff,
  LeaseState,
  MemoryStore,
  WorkResult,
  WriterLease,
  type LeaseEvent,
  type RecordChange,
  type SpecValue,
  type StatusValue,
  type WorkFunc,
  type WorkReturn,
} from '../src';
import { assignShards, preferenceOrder, rendezvousRanking } from '../src/internal/rendezvous';
import { fnv1a32 } from '../src/internal/shardOf';
import { ShardedWriterLease, type ShardedWriterLeaseOptions } from '../src/shardedWriterLease';
import { failoverBound, seededRandom } from '../test-support';
import { PROPERTY_REPLAY as REPLAY, PROPERTY_RUNS as RUNS } from '../test-support/properties';
import { extend, marbles, record, release } from './support';

jest.setTimeout(60_000);

/** The durations of `createLease` in support.ts, and a rank step of 20 frames (above 2 × backoff(0) = 10). */
function createSharded(scheduler: TestScheduler, options: Partial<ShardedWriterLeaseOptions> = {}): ShardedWriterLease {
  return new ShardedWriterLease({
    name: 'a',
    leaseDuration: 100,
    retryInterval: 10,
    backoff: constantBackoff(5),
    rankStep: 20,
    scheduler,
    ...options,
  });
}

/** The key of every unit that starts. */
function runs(lease: { events$: Observable<LeaseEvent> }): Observable<string> {
  return record(lease.events$).pipe(
    filter((event): event is Extract<LeaseEvent, { type: 'started' }> => event.type === 'started'),
    map(({ key }) => key),
  );
}

/** The first `count` keys `k0`, `k1`... that fall in `shard`. */
function keysIn(lease: ShardedWriterLease, shard: number, count = 1): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if (lease.shardOf(`k${i}`) === shard) keys.push(`k${i}`);
  return keys;
}

/** Units that report their label on `called$` when their work is called (after any wait for their turn). */
function calls() {
  const called = new Subject<string>();
  const called$ = record(called);
  const unit =
    (label: string, returned: WorkReturn = WorkResult.Extend): WorkFunc =>
    () => {
      called.next(label);
      return returned;
    };
  return { called$, unit };
}

const follower = (expires: number, tick = 0) => ({ state: LeaseState.Follower, expires, tick });

/** Replica names for `shards` = 1, in the order shard 0 gives them turns. */
function inTurnOrder(...names: string[]): string[] {
  const sorted = [...names].sort();
  return preferenceOrder(0, sorted, assignShards(1, sorted)[0]);
}

describe('shardOf: keys map to shards stably', () => {
  it('hashes with FNV-1a over UTF-8, as Go hash/fnv New32a does', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    const utf8 = (text: string) => {
      let hash = 0x811c9dc5;
      for (const byte of new TextEncoder().encode(text)) hash = Math.imul(hash ^ byte, 0x01000193);
      return hash >>> 0;
    };
    for (const text of ['é', 'route/ü', '😀', 'a\ud800b', 'x'.repeat(300)]) expect(fnv1a32(text)).toBe(utf8(text));
  });

  it('gives a key the same shard in every lease of the same size, and every shard some of 300 keys', () => {
    marbles(({ scheduler }) => {
      const a = createSharded(scheduler, { shards: 30 });
      const b = createSharded(scheduler, { shards: 30, name: 'b' });
      const counts = new Array<number>(30).fill(0);
      for (let i = 0; i < 300; i++) {
        const shard = a.shardOf(`route/${i}`);
        expect(b.shardOf(`route/${i}`)).toBe(shard);
        counts[shard]++;
      }
      expect(Math.min(...counts)).toBeGreaterThan(0);
      expect(a.shardOf('route/1')).toBe(a.shardOf('route/1'));
      expect(createSharded(scheduler).shardOf('route/1')).toBe(0);
    });
  });

  it('rejects a bad key, naming it', () => {
    marbles(({ scheduler }) => {
      const lease = createSharded(scheduler, { shards: 4 });
      expect(() => lease.shardOf('')).toThrow(
        'ShardedWriterLease: shardOf: key must be a non-empty string, received ""',
      );
      expect(() => lease.try(3 as any, extend)).toThrow(/try: key must be a non-empty string, received 3/);
    });
  });
});

describe('rendezvous: each shard prefers one replica', () => {
  const three = ['replica-1', 'replica-2', 'replica-3'];

  it('gives 30 shards to 3 replicas 10 each, whatever order the names are known in', () => {
    const preferred = assignShards(30, three);
    for (const name of three) expect(preferred.filter((writer) => writer === name)).toHaveLength(10);
    expect(assignShards(30, [...three].reverse())).toEqual(preferred);
  });

  it('keeps loads within one of each other for any number of replicas', () => {
    for (let members = 1; members <= 7; members++) {
      const names = Array.from({ length: members }, (_, i) => `pod-${i}`);
      const loads = names.map((name) => assignShards(30, names).filter((writer) => writer === name).length);
      expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(1);
    }
  });

  it('orders turns: the preferred writer first, then by rendezvous score', () => {
    const order = preferenceOrder(4, three, 'replica-2');
    expect(order[0]).toBe('replica-2');
    expect(order.slice(1)).toEqual(rendezvousRanking(4, three).filter((name) => name !== 'replica-2'));
  });
});

describe('shards: 1 is a WriterLease', () => {
  type Lease = Pick<WriterLease, 'run' | 'expire' | 'events$'> & {
    try(key: string, work: WorkFunc): void;
    extend(key: string, at?: number): void;
    remove(key: string): void;
  };
  type Scenario = (lease: Lease, helpers: { scheduler: TestScheduler; cold: RunHelpers['cold'] }) => void;

  /** Backoff 5 frames at tick 0, 50 at tick 1, 80 beyond, as in writerLease.spec.ts. */
  const steppedBackoff = (tick: number) => [5, 50][tick] ?? 80;

  const scenarios: Record<string, [Scenario, Partial<ShardedWriterLeaseOptions>?]> = {
    'rule 1: the latest submission wins; a follower waits max(expires - now, 2 × backoff(0))': [
      (lease, { scheduler }) => {
        lease.try('x', release);
        scheduler.schedule(() => lease.try('k', extend), 2);
        scheduler.schedule(() => lease.try('k', extend), 4);
      },
    ],
    'rule 2: up to `workers` keys at a time, earliest due first': [
      (lease, { cold }) => {
        const slow = () => cold('----(r|)', { r: WorkResult.Extend });
        for (const key of ['a', 'b', 'c']) lease.try(key, slow);
      },
      { workers: 2 },
    ],
    'rule 3: retry after retryInterval': [
      (lease) => {
        let calls = 0;
        lease.try('k', () => ({ result: WorkResult.None, retry: ++calls < 3 }));
      },
    ],
    'rule 5: extend as follower renews the other lease': [
      (lease, { scheduler }) => {
        lease.try('x', release);
        scheduler.schedule(() => {
          lease.try('y', extend);
          lease.extend('y');
        }, 1);
        scheduler.schedule(() => lease.try('k', extend), 2);
      },
      { backoff: steppedBackoff },
    ],
    'rule 13: extend while the unit runs lets go of it: a release': [
      (lease, { scheduler, cold }) => {
        lease.try('k', () => cold('-----(r|)', { r: WorkResult.Extend }));
        scheduler.schedule(() => lease.extend('k'), 2);
        scheduler.schedule(() => lease.try('m', extend), 3);
      },
    ],
    'rule 17: expire({ wake: true }) makes the waiting keys due now': [
      (lease, { scheduler }) => {
        lease.try('x', release);
        scheduler.schedule(() => {
          lease.try('a', extend);
          lease.try('b', extend);
        }, 1);
        scheduler.schedule(() => lease.expire({ wake: true }), 20);
        scheduler.schedule(() => lease.remove('b'), 20);
      },
      { backoff: constantBackoff(50) },
    ],
  };

  for (const [name, [scenario, options = {}]] of Object.entries(scenarios)) {
    it(`${name}: the same events, in the same frames`, () => {
      marbles(({ scheduler, cold }) => {
        const { backoff = constantBackoff(5), workers } = options;
        const reference = new WriterLease({ leaseDuration: 100, retryInterval: 10, backoff, workers, scheduler });
        const sharded = createSharded(scheduler, { backoff, workers, shards: 1 });
        const seen = new Map<Lease, unknown[]>();
        for (const lease of [reference, sharded] as Lease[]) {
          const events: unknown[] = [];
          seen.set(lease, events);
          lease.events$.subscribe(({ lease: _name, ...event }) => events.push(event));
          lease.run();
          scenario(lease, { scheduler, cold });
        }
        scheduler.flush();
        expect(seen.get(sharded)).toEqual(seen.get(reference));
        expect(seen.get(reference)!.length).toBeGreaterThan(3);
      });
    });
  }

  it('rule 1 as a marble: a follower waits 2 × backoff(0) when the lease runs out sooner', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createSharded(scheduler);
      lease.run();
      lease.try('x', release); // frame 0: follower, expires 5
      hot('--k').subscribe(() => lease.try('k', extend)); // 2 + max(5 - 2, 2 × 5) = 12
      expectObservable(runs(lease)).toBe('x 11ms k');
      expectObservable(record(lease.leading$.pipe(map((shards) => String(shards.size))))).toBe('0 11ms 1');
    });
  });

  it('rule 9: wait() resolves with whether we led when the election ended', async () => {
    let decided!: Promise<boolean>;
    marbles(({ scheduler, cold }) => {
      const lease = createSharded(scheduler);
      lease.run();
      decided = lease.wait();
      lease.try('a', () => cold('---(r|)', { r: WorkResult.Extend }));
      lease.try('b', release);
    });
    await expect(decided).resolves.toBe(true);
  });
});

describe('per-shard state: each shard has its own lease', () => {
  it('a release on shard A makes A follow and leaves shard B in its election', () => {
    marbles(({ scheduler, hot, expectObservable }) => {
      const lease = createSharded(scheduler, { shards: 2 });
      const [a1, a2] = keysIn(lease, 0, 2);
      const [b1] = keysIn(lease, 1);
      lease.run();
      lease.try(a1, release); // frame 0: shard 0 follows, expires 5
      hot('-k').subscribe(() => {
        lease.try(a2, extend); // shard 0: due at 1 + 10
        lease.try(b1, extend); // shard 1: due at once
      });
      expectObservable(runs(lease)).toBe('ab 9ms c', { a: a1, b: b1, c: a2 });
      expectObservable(record(lease.leading$.pipe(map((shards) => [...shards].sort().join()))), '^ 12ms !').toBe(
        'xy 9ms z',
        {
          x: '',
          y: '1',
          z: '0,1',
        },
      );
    });
  });

  it('state: leader while leading a shard, election while every shard is in its election', () => {
    marbles(({ scheduler }) => {
      const lease = createSharded(scheduler, { shards: 3 });
      expect(lease.state.state).toBe(LeaseState.Election);
      lease.run();
      lease.try(keysIn(lease, 2)[0], release);
      scheduler.flush();
      expect(lease.state).toMatchObject({ state: LeaseState.Follower, leading: new Set(), members: ['a'] });
      lease.try(keysIn(lease, 1)[0], extend);
      scheduler.flush();
      expect(lease.state.state).toBe(LeaseState.Leader);
      expect(lease.state.shards.map(({ state }) => state)).toEqual([
        LeaseState.Election,
        LeaseState.Leader,
        LeaseState.Follower,
      ]);
    });
  });
});

describe('deference: a replica that is not preferred waits its turn', () => {
  it('in the election, the preferred writer writes at once and the next one a rank step later', () => {
    marbles(({ scheduler, expectObservable }) => {
      const [p, q] = inTurnOrder('p', 'q');
      const { called$, unit } = calls();
      for (const name of [p, q]) {
        const lease = createSharded(scheduler, { name, members: [p, q] });
        lease.run();
        lease.try('k', unit(name));
      }
      expectObservable(called$).toBe('p 19ms q', { p, q });
    });
  });

  it("the preferred writer's write, seen while the next one waits, lets go of its unit: it follows", () => {
    marbles(({ scheduler, expectObservable }) => {
      const [p, q] = inTurnOrder('p', 'q');
      const lease = createSharded(scheduler, { name: q, members: [p] });
      const { called$, unit } = calls();
      lease.run();
      lease.try('k', unit(q));
      scheduler.schedule(() => {
        lease.saw(p, 'k');
        lease.extend('k'); // p's write, seen at frame 5: q's unit waits until 20
      }, 5);
      const letGo = record(lease.events$).pipe(
        filter((event): event is Extract<LeaseEvent, { type: 'let-go' }> => event.type === 'let-go'),
        map(({ reason }) => reason),
      );
      expectObservable(letGo).toBe('     -----e', { e: 'extended' });
      expectObservable(called$).toBe('   ');
      scheduler.schedule(() => expect(lease.state.shards[0]).toEqual(follower(10)), 50);
    });
  });

  it('in a failover, the rank is taken without the writer that ran out: the next by rank at once, the one after a step later', () => {
    marbles(({ scheduler, expectObservable }) => {
      const [p, x, y] = inTurnOrder('p', 'x', 'y');
      const { called$, unit } = calls();
      for (const name of [x, y]) {
        // A backoff of nearly a whole lease: p, silent since 1, is no longer waited for when the follower writes.
        const lease = createSharded(scheduler, { name, members: [p, x, y], backoff: constantBackoff(98) });
        lease.run();
        lease.try('k0', unit('never'));
        scheduler.schedule(() => {
          lease.saw(p, 'k0');
          lease.extend('k0'); // p wrote: follower, expires 1 + 98
        }, 1);
        scheduler.schedule(() => lease.try('k1', unit(name)), 2); // due at 2 + max(99 − 2, 2 × 98); p writes nothing more
      }
      expectObservable(called$).toBe('198ms x 19ms y', { x, y });
    });
  });

  /**
   * `x` follows `p` (p wrote k0 at 1; expires 1 + 5); k1 is tried at `triedAt` and is due
   * `max(expires − now, 2 × backoff(0))` later; p writes k1 at `writtenAt`, if given.
   */
  function followingALiveHolder(scheduler: TestScheduler, triedAt: number, writtenAt?: number) {
    const [p, x] = inTurnOrder('p', 'x');
    const lease = createSharded(scheduler, { name: x, members: [p] });
    const { called$, unit } = calls();
    lease.run();
    lease.try('k0', unit('never'));
    scheduler.schedule(() => {
      lease.saw(p, 'k0');
      lease.extend('k0');
    }, 1);
    scheduler.schedule(() => lease.try('k1', unit('x')), triedAt);
    if (writtenAt !== undefined) {
      scheduler.schedule(() => {
        lease.saw(p, 'k1');
        lease.extend('k1');
      }, writtenAt);
    }
    return called$;
  }

  it('a follower leaves a key changed less than a step ago to a holder heard within the lease: it writes a step after the change', () => {
    marbles(({ scheduler, expectObservable }) => {
      // Due at 2 + 10 = 12, next by rank after p: it would write at once; p, heard at 1, is alive: 2 + 20.
      expectObservable(followingALiveHolder(scheduler, 2)).toBe('22ms x');
    });
  });

  it("the holder's write of the key, seen within that step, lets go of the follower's waiting unit: no write, no race", () => {
    marbles(({ scheduler, expectObservable }) => {
      expectObservable(followingALiveHolder(scheduler, 2, 15)).toBe('');
    });
  });

  it('a holder silent for a lease is waited for no longer, however recent the change', () => {
    marbles(({ scheduler, expectObservable }) => {
      // Tried at 95, due at 105; a step after the change would be 115, but p, heard at 1, ran out at 101.
      expectObservable(followingALiveHolder(scheduler, 95)).toBe('105ms x');
    });
  });

  it('a newcomer in its election gives the writer it knows holds the shard one step to yield, even where it is preferred', () => {
    marbles(({ scheduler, expectObservable }) => {
      const [p, x] = inTurnOrder('p', 'x');
      const lease = createSharded(scheduler, { name: p, members: [x] });
      const { called$, unit } = calls();
      lease.run();
      lease.saw(x, 'k0'); // found in the store: x wrote k0
      lease.try('k1', unit('k'));
      expectObservable(called$).toBe('20ms k');
    });
  });

  it('a turn also waits for the work this replica started before it came: the store answers in its own time', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const [p, q] = inTurnOrder('p', 'q');
      const lease = createSharded(scheduler, { name: q, members: [p], shards: 2, workers: 2 });
      const own = lease.preferredWriter(0) === q ? 0 : 1;
      const [mine1, mine2] = keysIn(lease, own, 2);
      const [theirs] = keysIn(lease, 1 - own);
      const { called$, unit } = calls();
      const slow = (frames: number) => () => cold(`${frames}ms (r|)`, { r: WorkResult.Extend });
      lease.run();
      lease.try(mine1, slow(30)); // frame 0: q's own shard, at once; answered at 30
      lease.try(theirs, unit('t')); // p's shard: q's turn comes at 20
      scheduler.schedule(() => lease.try(mine2, slow(100)), 25); // started after the turn came: not waited on
      // Due at 20 by the clock; the store had not answered what q asked at 0 until 30, then on the scheduler.
      expectObservable(called$).toBe('30ms t');
    });
  });

  it('without work in flight the turn comes on the clock alone, and rule 16 does not move it', () => {
    marbles(({ scheduler, expectObservable }) => {
      const [p, q] = inTurnOrder('p', 'q');
      const { called$, unit } = calls();
      for (const name of [p, q]) {
        // A spread that would delay the election's first unit by its whole window (40 frames here).
        const lease = createSharded(scheduler, { name, members: [p, q], spread: true, random: () => 0.999 });
        lease.run();
        lease.try('k', unit(name));
      }
      expectObservable(called$).toBe('p 19ms q', { p, q });
    });
  });

  it('with rankStep 0, nobody waits', () => {
    marbles(({ scheduler, expectObservable }) => {
      const lease = createSharded(scheduler, { name: inTurnOrder('p', 'q')[1], members: ['p', 'q'], rankStep: 0 });
      const { called$, unit } = calls();
      lease.run();
      lease.try('k', unit('k'));
      expectObservable(called$).toBe('k');
      expectObservable(record(lease.leading$.pipe(map((shards) => String(shards.size))))).toBe('(01)');
    });
  });
});

describe('handover: a leader yields the shards a newcomer prefers', () => {
  /** `a` and a name that shard 0 prefers to `a` when both are known. */
  function outranking(): [string, string] {
    for (let i = 0; ; i++) if (inTurnOrder('a', `b${i}`)[0] === `b${i}`) return ['a', `b${i}`];
  }

  /**
   * `a` leads shard 0 (k0 at frame 0), `b` joins at 5 and `a` yields; `a`'s unit of k1, submitted at 10, waits
   * (1 + 1) × 20: its turn comes at 50.
   */
  function yieldingWithAUnitWaiting(scheduler: TestScheduler) {
    const [a, b] = outranking();
    const lease = createSharded(scheduler, { name: a });
    const said = record(lease.announcements$);
    const { called$, unit } = calls();
    lease.run(); // announces a
    lease.try('k0', unit('0')); // alone: leads shard 0 at frame 0
    scheduler.schedule(() => lease.joined(b), 5);
    scheduler.schedule(() => lease.try('k1', unit('1')), 10);
    return { lease, a, b, said, called$, unit };
  }

  it('answers the join, announces the yield, and waits a turn more; the joiner writing first takes the shard', () => {
    marbles(({ scheduler, expectObservable }) => {
      const { lease, a, b, said, called$ } = yieldingWithAUnitWaiting(scheduler);
      scheduler.schedule(() => {
        lease.saw(b, 'k1');
        lease.extend('k1'); // b wrote k1 at its turn, first
      }, 15);
      expectObservable(said).toBe('a----(hy)', {
        a: JSON.stringify({ join: a }),
        h: JSON.stringify({ here: a }),
        y: JSON.stringify({ yield: a, shards: [0] }),
      });
      expectObservable(record(lease.leading$.pipe(map((shards) => String(shards.size)))), '^ 20ms !').toBe(
        '(01) 11ms 0',
      );
      expectObservable(called$).toBe('0'); // k1's unit was let go of before its turn came, at 50
    });
  });

  it('a yield is announced once the writes on their way have been answered: the joiner cannot meet one of them', () => {
    marbles(({ scheduler, cold, expectObservable }) => {
      const [a, b] = outranking();
      const lease = createSharded(scheduler, { name: a });
      const said = record(lease.announcements$);
      lease.run(); // announces a
      lease.try('k0', () => WorkResult.Extend); // alone: leads shard 0 at frame 0
      scheduler.schedule(() => lease.try('k1', () => cold('30ms (r|)', { r: WorkResult.Extend })), 2); // lands at 32
      scheduler.schedule(() => lease.joined(b), 5);
      // Answered at once; the yield once k1's write has landed (announced at 5, b could write k1 at 6 and meet it).
      expectObservable(said).toBe('a----h 26ms y', {
        a: JSON.stringify({ join: a }),
        h: JSON.stringify({ here: a }),
        y: JSON.stringify({ yield: a, shards: [0] }),
      });
    });
  });

  it('a yield taken while a unit waits its turn: that unit writes nothing, the lease follows, its key stays to do', () => {
    marbles(({ scheduler, expectObservable }) => {
      const { lease, b, called$ } = yieldingWithAUnitWaiting(scheduler);
      scheduler.schedule(() => {
        lease.saw(b, 'k2');
        lease.extend('k2'); // b took the shard, writing another key
      }, 15);
      scheduler.schedule(() => {
        expect(lease.state.shards[0].state).toBe(LeaseState.Follower);
        expect(lease.pendingKeys()).toEqual(['k1']); // to retry when b's lease runs out, unless b writes it
      }, 51);
      scheduler.schedule(() => {
        lease.saw(b, 'k1');
        lease.extend('k1');
      }, 53);
      // Before, k1's work was called at 50, racing b for k1.
      expectObservable(called$).toBe('0');
      scheduler.schedule(() => expect(lease.pendingKeys()).toEqual([]), 100);
    });
  });

  it('a yield nobody takes within the turn: the leader writes and keeps the shard, at once from then on', () => {
    marbles(({ scheduler, expectObservable }) => {
      const { lease, called$, unit } = yieldingWithAUnitWaiting(scheduler);
      scheduler.schedule(() => lease.try('k2', unit('2')), 60);
      expectObservable(called$).toBe('0 49ms 1 9ms 2');
      scheduler.schedule(() => expect(lease.state.leading).toEqual(new Set([0])), 100);
    });
  });

  /** `a` leads shard 0, which `b` prefers: b was silent through a's turn at the election (a writes k0 at 20). */
  function wonWhileSilent(scheduler: TestScheduler) {
    const [a, b] = outranking();
    const lease = createSharded(scheduler, { name: a, members: [b] });
    const said = record(lease.announcements$);
    const { called$, unit } = calls();
    lease.run();
    lease.try('k0', unit('0'));
    return { lease, a, b, said, called$, unit };
  }

  it('a shard won while its preferred writer was slow is offered back once that writer is heard: it takes it', () => {
    marbles(({ scheduler, expectObservable }) => {
      const { lease, a, b, said, called$, unit } = wonWhileSilent(scheduler);
      scheduler.schedule(() => lease.saw(b), 30); // b heard (an answer, or a write of another shard): alive
      scheduler.schedule(() => lease.try('k1', unit('1')), 40); // offered back: waits (1 + 1) × 20
      scheduler.schedule(() => {
        lease.saw(b, 'k1');
        lease.extend('k1'); // b, woken by the offer, wrote first
      }, 50);
      expectObservable(said).toBe('a 39ms y', {
        a: JSON.stringify({ join: a }),
        y: JSON.stringify({ yield: a, shards: [0] }),
      });
      expectObservable(called$).toBe('20ms 0');
      expectObservable(record(lease.leading$.pipe(map((shards) => String(shards.size)))), '^ 60ms !').toBe(
        '0 19ms 1 29ms 0',
      );
      scheduler.schedule(() => expect(lease.state.shards[0].state).toBe(LeaseState.Follower), 60);
    });
  });

  it('an offer nobody takes: the shard is kept, and not offered again within a lease', () => {
    marbles(({ scheduler, expectObservable }) => {
      const { lease, a, b, said, called$, unit } = wonWhileSilent(scheduler);
      scheduler.schedule(() => lease.saw(b), 30);
      scheduler.schedule(() => lease.try('k1', unit('1')), 40); // offered at 40, kept at 80
      scheduler.schedule(() => lease.try('k2', unit('2')), 90); // within the lease of the offer: at once
      scheduler.schedule(() => lease.saw(b), 145);
      scheduler.schedule(() => lease.try('k3', unit('3')), 150); // a lease later, b heard again: offered again
      const y = JSON.stringify({ yield: a, shards: [0] });
      expectObservable(said).toBe('a 39ms y 109ms y', { a: JSON.stringify({ join: a }), y });
      expectObservable(called$).toBe('20ms 0 59ms 1 9ms 2 99ms 3');
    });
  });

  it('a replica that sees another write a shard it prefers says it is here, once per lease: the holder can offer it back', () => {
    marbles(({ scheduler, expectObservable }) => {
      const [a, b] = outranking(); // shard 0 prefers b
      const lease = createSharded(scheduler, { name: b, members: [a] });
      const said = record(lease.announcements$);
      lease.run();
      scheduler.schedule(() => lease.saw(a, 'k0'), 10); // a wrote b's shard: b lost the race
      scheduler.schedule(() => lease.saw(a, 'k1'), 50); // within the lease: nothing more
      scheduler.schedule(() => lease.saw(a, 'k2'), 110); // a lease later, a still writes it: said again
      const here = JSON.stringify({ here: b });
      expectObservable(said).toBe('j 9ms h 99ms h', { j: JSON.stringify({ join: b }), h: here });
    });
  });

  it('nothing is said while the shares are even: another writer writing the shards that writer prefers', () => {
    marbles(({ scheduler, expectObservable }) => {
      const [a, b] = outranking(); // shard 0 prefers b, not a
      const lease = createSharded(scheduler, { name: a, members: [b] });
      const said = record(lease.announcements$);
      lease.run();
      scheduler.schedule(() => lease.saw(b, 'k0'), 10);
      expectObservable(said).toBe('j', { j: JSON.stringify({ join: a }) });
    });
  });

  it('a shard taken in a failover is not offered to the writer whose lease ran out, while it stays silent', () => {
    marbles(({ scheduler, expectObservable }) => {
      const [a, b] = outranking();
      const lease = createSharded(scheduler, { name: a, members: [b], backoff: constantBackoff(98) });
      const said = record(lease.announcements$);
      const { called$, unit } = calls();
      lease.run();
      lease.try('k0', unit('never'));
      scheduler.schedule(() => {
        lease.saw(b, 'k0');
        lease.extend('k0'); // b writes k0 at 1, then dies: a follows until 1 + 98
      }, 1);
      scheduler.schedule(() => lease.try('k1', unit('1')), 2); // due at 2 + max(99 − 2, 2 × 98), first among the others than b
      scheduler.schedule(() => lease.try('k2', unit('2')), 220); // a leads since 198; b unheard since 1: at once
      expectObservable(said).toBe('a', { a: JSON.stringify({ join: a }) });
      expectObservable(called$).toBe('198ms 1 21ms 2');
    });
  });

  /**
   * Two shards that follow (frame 0: a release each, expiring at 50); at frame 1, `holders[i]` is seen
   * writing shard i, and a key of each shard is submitted (due at 1 + 100). `at` records when each ran.
   */
  function twoShardsHeld(scheduler: TestScheduler, holders: readonly [string, string]) {
    const lease = createSharded(scheduler, { shards: 2, backoff: constantBackoff(50) });
    const [x0, k0] = keysIn(lease, 0, 2);
    const [x1, k1] = keysIn(lease, 1, 2);
    const at: Record<string, number> = {};
    const unit = (key: string) => () => {
      at[key] = scheduler.now();
      return WorkResult.Extend;
    };
    lease.run();
    lease.try(x0, release);
    lease.try(x1, release);
    scheduler.schedule(() => {
      lease.saw(holders[0], x0);
      lease.saw(holders[1], x1);
      lease.try(k0, unit(k0));
      lease.try(k1, unit(k1));
    }, 1);
    return { lease, k0, k1, at };
  }

  it('left(writer) wakes the shards that writer held: the waiting keys run now, this replica first by rank', () => {
    marbles(({ scheduler }) => {
      const { lease, k0, k1, at } = twoShardsHeld(scheduler, ['b', 'c']); // b holds shard 0, c shard 1
      scheduler.schedule(() => lease.left('b'), 20);
      scheduler.flush();
      // Shard 0 at once, in its turn among a and c; shard 1 when c's lease runs out, first among the others than c.
      expect(at).toEqual({ [k0]: 20 + rankOf(lease, 0) * 20, [k1]: 101 });
      expect(lease.members).toEqual(['a', 'c']);
    });
  });

  it('left(writer, shards) wakes the yielded shards this replica prefers, and keeps the writer in the view', () => {
    marbles(({ scheduler }) => {
      const { lease, k0, k1, at } = twoShardsHeld(scheduler, ['b', 'b']);
      const mine = assignShards(2, ['a', 'b'])[0] === 'a' ? 0 : 1; // a and b prefer one shard each
      scheduler.schedule(() => lease.heard(JSON.stringify({ yield: 'b', shards: [0, 1] })), 20);
      scheduler.flush();
      // The shard a prefers runs a step after the yield (b's units under way land first); b's own shard,
      // yielded to nobody here, waits b's lease out.
      expect(at[mine === 0 ? k0 : k1]).toBe(20 + 20);
      expect(at[mine === 0 ? k1 : k0]).toBe(101);
      expect(lease.members).toEqual(['a', 'b']);
    });
  });

  it('a yield is for the replica that prefers the shard: a third one keeps following the yielder, no race', () => {
    marbles(({ scheduler }) => {
      // A third name, c, that shard 0 prefers to a and b.
      let c = 'c0';
      for (let i = 0; assignShards(1, ['a', 'b', c].sort())[0] !== c; i++) c = `c${i}`;
      const lease = createSharded(scheduler, { backoff: constantBackoff(50) });
      const at: Record<string, number> = {};
      lease.run();
      lease.try('x', release); // frame 0, alone: follows, expires 50
      scheduler.schedule(() => {
        lease.saw('b', 'x'); // b holds the shard
        lease.saw(c);
        lease.try('k', () => ((at.k = scheduler.now()), WorkResult.Extend)); // due at 1 + 100, then its turn
      }, 1);
      scheduler.schedule(() => lease.heard(JSON.stringify({ yield: 'b', shards: [0] })), 20); // for c, not a
      scheduler.flush();
      // Not woken (it would have run at 20 + its rank × 20): it waits b's lease out, as if no yield was heard.
      expect(at.k).toBeGreaterThanOrEqual(101);
    });
  });

  it('a third replica that follows the yielder waits out every turn the yield gives before it takes the shard', () => {
    marbles(({ scheduler }) => {
      let c = 'c0';
      for (let i = 0; assignShards(1, ['a', 'b', c].sort())[0] !== c; i++) c = `c${i}`;
      const at: Record<string, number> = {};
      for (const hearsTheYield of [false, true]) {
        const lease = createSharded(scheduler, { backoff: constantBackoff(50) });
        const label = hearsTheYield ? 'yielded' : 'not yielded';
        lease.run();
        lease.try('x', release); // frame 0, alone: follows, expires 50
        scheduler.schedule(() => {
          lease.saw('b', 'x'); // b holds the shard
          lease.saw(c);
          lease.try('k', () => ((at[label] = scheduler.now()), WorkResult.Extend)); // due at 1 + 100
        }, 1);
        if (hearsTheYield) scheduler.schedule(() => lease.heard(JSON.stringify({ yield: 'b', shards: [0] })), 20);
      }
      scheduler.flush();
      // Without a yield: its rank among the others than b, 1 (after c), a step. Yielded to c, who wrote
      // nothing: after c's turn and b's own (1 + its rank, 2 at most): 3 members + 1 = 4 steps.
      expect(at).toEqual({ 'not yielded': 101 + 20, yielded: 101 + 4 * 20 });
    });
  });

  it('heard(message): a join is answered, an answer adds a member, a plain name is a writer that stopped', () => {
    marbles(({ scheduler }) => {
      const lease = createSharded(scheduler);
      const said: string[] = [];
      lease.announcements$.subscribe((message) => said.push(message));
      lease.heard(JSON.stringify({ join: 'b' }));
      lease.heard(JSON.stringify({ here: 'c' }));
      lease.heard(JSON.stringify({ join: 'a' })); // its own: nothing
      expect(lease.members).toEqual(['a', 'b', 'c']);
      expect(said).toEqual([JSON.stringify({ here: 'a' })]);
      lease.heard('b');
      lease.heard('{not json');
      expect(lease.members).toEqual(['a', 'c']);
    });
  });
});

describe('options and arguments are checked, naming what was expected and received', () => {
  it.each([
    [{ shards: 0 }, 'ShardedWriterLease: options.shards must be an integer >= 1, received 0'],
    [{ shards: 1.5 }, 'options.shards must be an integer >= 1, received 1.5'],
    [{ name: '' }, 'ShardedWriterLease: options.name must be a non-empty string, received ""'],
    [{ name: 7 }, 'options.name must be a non-empty string, received 7'],
    [{ rankStep: -1 }, 'options.rankStep must be a finite number >= 0, received -1'],
    [{ members: [7] }, 'options.members[0] must be a non-empty string, received 7'],
    [{ members: [''] }, 'options.members[0] must be a non-empty string, received ""'],
    [{ members: 3 }, 'options.members must be an iterable of names, received 3'],
    [{ leaseDuration: NaN }, 'options.leaseDuration must be a finite number >= 0, received NaN'],
  ])('%j: %s', (options, message) => {
    marbles(({ scheduler }) => {
      expect(() => createSharded(scheduler, options as any)).toThrow(message);
    });
  });

  it('rejects a shard out of range, and calls after dispose()', () => {
    marbles(({ scheduler }) => {
      const lease = createSharded(scheduler, { shards: 3 });
      expect(() => lease.expire({ shard: 3 })).toThrow(
        'expire: options.shard must be an integer from 0 to 2, received 3',
      );
      expect(() => lease.left('b', [1, -1])).toThrow('left: shards[1] must be an integer from 0 to 2, received -1');
      expect(() => lease.saw('')).toThrow('saw: writer must be a non-empty string, received ""');
      lease.dispose();
      expect(() => lease.try('k', extend)).toThrow('WriterLease "a": try() was called after dispose()');
      expect(() => lease.run()).toThrow('run() was called after dispose()');
    });
  });
});

// ---- three replicas on a memory store -----------------------------------------

/** The durations of the replica runs: the demo's (docs/replicas.md), and the default backoff, seeded. */
const RUN = { leaseDuration: 1_000, retryInterval: 100, rankStep: 100 } as const;
const FAILOVER_BOUND = failoverBound(RUN);

describe('three replicas, 30 shards, on a memory store', () => {
  it('after the election each replica leads 10 shards, one writer per shard, no conflict', () => {
    marbles(({ scheduler }) => {
      const cluster = new Cluster(scheduler, { shards: 30, keys: 300 });
      for (const [name, latency] of REPLICAS) cluster.start(name, latency);
      cluster.drive(20, 3_000);
      scheduler.flush();
      const led = cluster.ledByEach(1_500, 3_000);
      for (const [name] of REPLICAS) expect(led.get(name)).toHaveLength(10);
      expect(cluster.writersPerShard(1_500, 3_000).every((writers) => writers.size === 1)).toBe(true);
      expect(cluster.conflicts).toEqual([]);
      expect(cluster.writes.length).toBeLessThanOrEqual(cluster.changes); // no write without a change: no heartbeat
      for (const [name] of REPLICAS) expect(cluster.replica(name).lease.state.leading.size).toBe(10);
      expect(cluster.everyKeyWritten()).toBe(true);
    });
  });

  it('killing the replica that leads the most shards moves only its shards, each to the next by rank within the failover bound', () => {
    marbles(({ scheduler }) => {
      const cluster = new Cluster(scheduler, { shards: 30, keys: 300 });
      for (const [name, latency] of REPLICAS) cluster.start(name, latency);
      cluster.drive(20, 6_000);
      let victim = '';
      let before = new Map<number, string>();
      scheduler.schedule(() => {
        before = cluster.writerOfEachShard(2_000, 3_000);
        const led = cluster.ledByEach(2_000, 3_000);
        victim = [...led].sort(([, a], [, b]) => b.length - a.length)[0][0];
        cluster.replica(victim).kill();
      }, 3_000);
      scheduler.flush();
      const after = cluster.writerOfEachShard(4_500, 6_000);
      const others = REPLICAS.map(([name]) => name).filter((name) => name !== victim);
      const moved = [...before].filter(([, writer]) => writer === victim).map(([shard]) => shard);
      expect(moved).toHaveLength(10);
      for (const [shard, writer] of before) {
        if (writer !== victim) expect(after.get(shard)).toBe(writer);
        else expect(after.get(shard)).toBe(rendezvousRanking(shard, others)[0]);
      }
      const failovers = moved.map((shard) => cluster.takeoverMs(shard, 3_000, victim));
      expect(Math.max(...failovers)).toBeLessThanOrEqual(FAILOVER_BOUND);
      expect(cluster.conflicts.length).toBeLessThanOrEqual(3);
      expect(cluster.writersPerShard(4_500, 6_000).every((writers) => writers.size === 1)).toBe(true);
      expect(cluster.everyKeyWritten()).toBe(true);
      FIGURES.failover = {
        victim,
        moved: moved.length,
        maxMs: Math.max(...failovers),
        conflicts: cluster.conflicts.length,
      };
    });
  });

  it('a replica that joins takes its share by handover within 1 s, with no conflict', () => {
    marbles(({ scheduler }) => {
      const cluster = new Cluster(scheduler, { shards: 30, keys: 300 });
      for (const [name, latency] of REPLICAS) cluster.start(name, latency);
      cluster.drive(20, 6_000);
      const joiner = 'replica-4';
      const view = [...REPLICAS.map(([name]) => name), joiner].sort();
      const preferred = assignShards(30, view);
      let before = new Map<number, string>();
      scheduler.schedule(() => {
        before = cluster.writerOfEachShard(2_000, 3_000);
        cluster.start(joiner, 2, { list: true });
      }, 3_000);
      scheduler.flush();
      const after = cluster.writerOfEachShard(4_000, 6_000);
      const share = preferred.flatMap((writer, shard) => (writer === joiner ? [shard] : []));
      expect(share.length).toBeGreaterThanOrEqual(7);
      for (let shard = 0; shard < 30; shard++) expect(after.get(shard)).toBe(preferred[shard]);
      const takeovers = share.map((shard) => cluster.takeoverMs(shard, 3_000, before.get(shard)!));
      expect(Math.max(...takeovers)).toBeLessThanOrEqual(1_000);
      expect(cluster.conflicts).toEqual([]);
      expect(cluster.writersPerShard(4_000, 6_000).every((writers) => writers.size === 1)).toBe(true);
      const movedAmongOld = [...after].filter(([shard, writer]) => writer !== joiner && before.get(shard) !== writer);
      FIGURES.join = {
        share: share.length,
        maxMs: Math.max(...takeovers),
        movedAmongOthers: movedAmongOld.length,
        conflicts: cluster.conflicts.length,
      };
    });
  });

  it('a graceful stop hands over each shard it led, with no conflict', () => {
    marbles(({ scheduler }) => {
      const cluster = new Cluster(scheduler, { shards: 30, keys: 300 });
      for (const [name, latency] of REPLICAS) cluster.start(name, latency);
      cluster.drive(20, 6_000);
      const leaving = 'replica-2';
      let before = new Map<number, string>();
      scheduler.schedule(() => {
        before = cluster.writerOfEachShard(2_000, 3_000);
        cluster.replica(leaving).stop();
      }, 3_000);
      scheduler.flush();
      const stayed = REPLICAS.map(([name]) => name).filter((name) => name !== leaving);
      const preferred = assignShards(30, stayed);
      const after = cluster.writerOfEachShard(4_000, 6_000);
      const handed = [...before].filter(([, writer]) => writer === leaving).map(([shard]) => shard);
      for (let shard = 0; shard < 30; shard++) expect(after.get(shard)).toBe(preferred[shard]);
      const takeovers = handed.map((shard) => cluster.takeoverMs(shard, 3_000, leaving));
      expect(Math.max(...takeovers)).toBeLessThanOrEqual(2 * 30 + 10);
      expect(cluster.conflicts).toEqual([]);
      FIGURES.stop = { handed: handed.length, maxMs: Math.max(...takeovers), conflicts: cluster.conflicts.length };
    });
  });

  afterAll(() => {
    if (process.env.SHARD_FIGURES) console.log(JSON.stringify(FIGURES));
  });
});

describe('property: any cluster settles with one writer per shard, and every key written', () => {
  it('2 to 4 replicas, 1 to 12 shards, feed delays of 1 to 8 ms, starts spread over 15 ms', () => {
    const clusterArb = fc.record({
      shards: fc.integer({ min: 1, max: 12 }),
      replicas: fc.array(
        fc.record({ latency: fc.integer({ min: 1, max: 8 }), start: fc.integer({ min: 0, max: 15 }) }),
        {
          minLength: 2,
          maxLength: 4,
        },
      ),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(clusterArb, ({ shards, replicas, seed }) => {
        const scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
        let settled = false;
        scheduler.run(() => {
          const cluster = new Cluster(scheduler, { shards, keys: 5 * shards, seed });
          replicas.forEach(({ latency, start }, i) =>
            scheduler.schedule(() => cluster.start(`replica-${i}`, latency), start),
          );
          cluster.drive(20, 2_000, 10);
          scheduler.flush();
          const atRest = cluster.writersPerShard(1_200, 2_000).every((writers) => writers.size <= 1);
          settled = atRest && cluster.everyKeyWritten();
        });
        return settled;
      }),
      // A run is a whole cluster for two virtual seconds (about 0.1 s of real time): a tenth of the house's runs.
      { numRuns: Math.ceil(RUNS / 10), ...REPLAY },
    );
  });
});

// ---- the harness ------------------------------------------------------------------

const REPLICAS: readonly (readonly [string, number])[] = [
  ['replica-1', 1],
  ['replica-2', 2],
  ['replica-3', 3],
];

const FIGURES: Record<string, unknown> = {};

function rankOf(lease: ShardedWriterLease, shard: number): number {
  return preferenceOrder(shard, lease.members, lease.preferredWriter(shard)).indexOf(lease.name);
}

interface Part<T> {
  readonly value: T;
  readonly version: number;
}

interface Write {
  readonly at: number;
  readonly key: string;
  readonly shard: number;
  readonly writer: string;
}

/**
 * Replicas on one MemoryStore, in virtual time. The memory store applies a
 * write, and sends its change, inside the call (its Promise only reports
 * it); `truth` follows the feed synchronously, so that a unit knows at once
 * whether its compare-and-set went through. Each replica sees the feed and
 * the handover channel `latency` frames late, and decides from what it saw,
 * as StatusWriter does from its cache: a write made on a stale view is
 * refused, a conflict.
 */
class Cluster {
  readonly store = new MemoryStore();
  readonly writes: Write[] = [];
  readonly conflicts: Write[] = [];
  /** Spec changes, by shard: when each was made. */
  readonly #changes = new Map<number, number[]>();
  readonly #truth = new Map<string, { spec?: Part<SpecValue>; status?: Part<StatusValue> }>();
  readonly #replicas = new Map<string, Replica>();
  readonly #keys: string[];
  readonly #shardOf: (key: string) => number;

  constructor(
    readonly scheduler: TestScheduler,
    readonly options: { readonly shards: number; readonly keys: number; readonly seed?: number },
  ) {
    this.#keys = Array.from({ length: options.keys }, (_, i) => `route/${i}`);
    const probe = new ShardedWriterLease({ name: 'probe', shards: options.shards, ...RUN, scheduler });
    this.#shardOf = (key) => probe.shardOf(key);
    this.store.changes().subscribe((change) => {
      const record = this.#truth.get(change.key) ?? {};
      const part = change.value === undefined ? undefined : { value: change.value, version: change.version };
      this.#truth.set(change.key, { ...record, [change.kind]: part });
    });
  }

  shardOf(key: string): number {
    return this.#shardOf(key);
  }

  /** How many spec changes were made. */
  get changes(): number {
    let changes = 0;
    for (const times of this.#changes.values()) changes += times.length;
    return changes;
  }

  truth(key: string) {
    return this.#truth.get(key) ?? {};
  }

  start(name: string, latency: number, { list = false } = {}): Replica {
    const seed = (this.options.seed ?? 0) + this.#replicas.size + 1;
    const replica = new Replica(this, name, latency, seed);
    this.#replicas.set(name, replica);
    replica.start(list ? [...this.#truth].map(([key, parts]) => ({ key, ...parts })) : []);
    return replica;
  }

  replica(name: string): Replica {
    return this.#replicas.get(name)!;
  }

  /** One spec change every `every` frames, from `from` to `until`, on the keys in a shuffled round. */
  drive(from: number, until: number, every = 5): void {
    const random = seededRandom(this.options.seed ?? 7);
    const order = [...this.#keys].sort(() => random() - 0.5);
    for (let at = from, n = 0; at < until; at += every, n++) {
      const key = order[n % order.length];
      this.scheduler.schedule(() => {
        const generation = (this.truth(key).spec?.value.generation ?? 0) + 1;
        const shard = this.shardOf(key);
        this.#changes.set(shard, [...(this.#changes.get(shard) ?? []), this.scheduler.now()]);
        void this.store.put<SpecValue>('spec', key, { generation, value: `${key}@${generation}` });
      }, at);
    }
  }

  /** The writers of each shard's statuses in [from, to). */
  writersPerShard(from: number, to: number): Set<string>[] {
    const writers = Array.from({ length: this.options.shards }, () => new Set<string>());
    for (const write of this.writes) if (write.at >= from && write.at < to) writers[write.shard].add(write.writer);
    return writers;
  }

  /** The one writer of each shard in [from, to) (the last one if there were more). */
  writerOfEachShard(from: number, to: number): Map<number, string> {
    const writers = new Map<number, string>();
    for (const write of this.writes) if (write.at >= from && write.at < to) writers.set(write.shard, write.writer);
    return writers;
  }

  ledByEach(from: number, to: number): Map<string, number[]> {
    const led = new Map<string, number[]>();
    for (const [shard, writer] of this.writerOfEachShard(from, to))
      led.set(writer, [...(led.get(writer) ?? []), shard]);
    return led;
  }

  /**
   * How long `shard` went without a writer other than `gone` after `since`:
   * from `since`, or from its first spec change after `since` when later,
   * to the first write by another replica.
   */
  takeoverMs(shard: number, since: number, gone: string): number {
    const firstChange = (this.#changes.get(shard) ?? []).find((at) => at >= since) ?? Infinity;
    const taken = this.writes.find((write) => write.shard === shard && write.at >= since && write.writer !== gone);
    return (taken?.at ?? Infinity) - Math.max(since, firstChange);
  }

  /** Every key's status is of its spec's generation. */
  everyKeyWritten(): boolean {
    return this.#keys.every((key) => {
      const { spec, status } = this.truth(key);
      return spec === undefined || status?.value.generation === spec.value.generation;
    });
  }
}

/** One replica: what StatusWriter does, with synchronous units and a sharded lease. */
class Replica {
  readonly lease: ShardedWriterLease;
  /** What this replica has seen of the store, `latency` late: the cache its units work from. */
  readonly #seen = new Map<string, { spec?: Part<SpecValue>; status?: Part<StatusValue> }>();
  readonly #watch = new Subscription();

  constructor(
    readonly cluster: Cluster,
    readonly name: string,
    readonly latency: number,
    seed: number,
  ) {
    const { scheduler, options } = cluster;
    this.lease = new ShardedWriterLease({
      name,
      shards: options.shards,
      ...RUN,
      backoff: exponentialBackoff({ cap: RUN.leaseDuration, random: seededRandom(seed) }),
      scheduler,
    });
  }

  start(listed: readonly { key: string; spec?: Part<SpecValue>; status?: Part<StatusValue> }[]): void {
    const { store, scheduler } = this.cluster;
    const { lease } = this;
    this.#watch.add(
      store
        .changes()
        .pipe(delay(this.latency, scheduler))
        .subscribe((change) => this.#observe(change)),
    );
    this.#watch.add(
      store
        .handovers()
        .pipe(delay(this.latency, scheduler))
        .subscribe((message) => lease.heard(message)),
    );
    this.#watch.add(lease.announcements$.subscribe((message) => void store.handOver(message)));
    for (const { key, spec, status } of listed) {
      this.#seen.set(key, { spec, status });
      if (status !== undefined && status.value.writer !== this.name) lease.saw(status.value.writer, key);
    }
    this.#watch.add(lease.run());
    for (const { key, spec, status } of listed) {
      if (spec !== undefined && (status?.value.generation ?? 0) < spec.value.generation)
        lease.try(key, this.#unit(key));
    }
  }

  /** A crash: no handover, no further write. */
  kill(): void {
    this.#watch.unsubscribe();
    this.lease.dispose();
  }

  /** A graceful stop: nothing runs (units are synchronous), then the handover. */
  stop(): void {
    this.#watch.unsubscribe();
    this.lease.dispose();
    void this.cluster.store.handOver(this.name);
  }

  #observe(change: RecordChange): void {
    const { kind, key } = change;
    const part = change.value === undefined ? undefined : { value: change.value, version: change.version };
    this.#seen.set(key, { ...this.#seen.get(key), [kind]: part });
    if (kind === 'spec') {
      this.lease.try(key, this.#unit(key));
      return;
    }
    const status = part?.value as StatusValue | undefined;
    if (status === undefined || status.writer === this.name) return;
    this.lease.saw(status.writer, key);
    const spec = this.#seen.get(key)?.spec;
    if (spec !== undefined && status.generation >= spec.value.generation) this.lease.extend(key);
  }

  #unit(key: string): WorkFunc {
    return () => {
      const { cluster, name } = this;
      const spec = this.#seen.get(key)?.spec;
      if (spec === undefined) return WorkResult.Release;
      const { generation } = spec.value;
      if (this.#isCurrent(key, this.#seen.get(key)?.status?.value, generation)) return WorkResult.None;
      const seenStatus = this.#seen.get(key)?.status;
      const before = cluster.truth(key).status?.version;
      const next: StatusValue = { generation, value: spec.value.value, writer: name, at: cluster.scheduler.now() };
      void cluster.store.compareAndSet('status', key, next, seenStatus?.version ?? null);
      const after = cluster.truth(key).status;
      const write = { at: cluster.scheduler.now(), key, shard: cluster.shardOf(key), writer: name };
      if (after !== undefined && after.version !== before && after.value.writer === name) {
        cluster.writes.push(write);
        this.#seen.set(key, { ...this.#seen.get(key), status: after });
        return WorkResult.Extend;
      }
      // Refused: read the record again, as StatusWriter does, and decide on what the store holds.
      cluster.conflicts.push(write);
      this.#seen.set(key, { ...this.#seen.get(key), status: after });
      if (this.#isCurrent(key, after?.value, generation)) return WorkResult.None;
      return { result: WorkResult.Release, retry: true };
    };
  }

  /** A status of `generation` or later: current; another writer's renews its lease (and lets go of the unit). */
  #isCurrent(key: string, status: StatusValue | undefined, generation: number): boolean {
    if (status === undefined || status.generation < generation) return false;
    if (status.writer !== this.name) {
      this.lease.saw(status.writer, key);
      this.lease.extend(key);
    }
    return true;
  }
}
