import {
  LeaseState,
  MemoryStore,
  StatusWriter,
  WriterLease,
  constantBackoff,
  type HandoverHeard,
  type SpecValue,
  type StatusWriterEvent,
} from '../src';
import { VirtualClock } from '../test-support';

/**
 * Handover between status writers on one memory store, in virtual time
 * (docs/lease.md, "Handover"): the followers of a writer that stops
 * gracefully write at once; a handover that is late, repeated, or from a
 * writer this replica does not follow changes nothing.
 */

const LEASE_MS = 1_000;
const STEP_MS = 10; // backoff(0): a follower's new work waits 20 ms, plus a spread of up to 20

interface Replica {
  readonly name: string;
  readonly lease: WriterLease;
  readonly writer: StatusWriter;
  readonly heard: HandoverHeard[];
  readonly written: string[];
  /** Stops as a crash would: no more work, no word to anyone. */
  crash(): void;
}

function setUp(names: readonly string[]) {
  const clock = new VirtualClock();
  const store = new MemoryStore();
  let seed = 0;
  const replicas: Replica[] = names.map((name) => {
    const lease = new WriterLease({
      leaseDuration: LEASE_MS,
      retryInterval: 100,
      backoff: constantBackoff(STEP_MS),
      spread: true,
      random: ((n) => () => ((n = (n * 9301 + 49297) % 233280), n / 233280))(++seed),
      scheduler: clock.scheduler,
      name,
    });
    const writer = new StatusWriter({ store, lease, writer: name, scheduler: clock.scheduler });
    const heard: HandoverHeard[] = [];
    const written: string[] = [];
    writer.handovers$.subscribe((handover) => heard.push(handover));
    writer.events$.subscribe((event: StatusWriterEvent) => {
      if (event.type === 'written') written.push(`${event.key}@${event.generation}`);
    });
    const processing = lease.run();
    const watching = writer.run();
    const crash = () => {
      watching.unsubscribe();
      processing.unsubscribe();
      lease.dispose();
    };
    return { name, lease, writer, heard, written, crash };
  });
  let generation = 0;
  const change = (key = 'k') =>
    store.put<SpecValue>('spec', key, { generation: ++generation, value: `v${generation}` });
  const leader = (among = replicas) => among.find(({ lease }) => lease.state.state === LeaseState.Leader);
  return { clock, store, replicas, change, leader };
}

/** `replica.writer.handOver()`, with the virtual clock running meanwhile (the lease drains in scheduled actions). */
async function handOver(setup: ReturnType<typeof setUp>, replica: Replica, timeoutMs?: number): Promise<string[]> {
  const handing = replica.writer.handOver({ timeoutMs });
  let pending: string[] | undefined;
  void handing.then((keys) => (pending = keys));
  await setup.clock.runUntil(setup.clock.now + 1_000, () => pending !== undefined);
  return handing;
}

/** Elects a leader: one change, written by one replica, the others follow it. */
async function elect(setup: ReturnType<typeof setUp>): Promise<Replica> {
  await setup.change();
  await setup.clock.runUntil(setup.clock.now + 200);
  const leader = setup.leader();
  expect(leader).toBeDefined();
  for (const other of setup.replicas) {
    if (other !== leader) expect(other.lease.state.state).toBe(LeaseState.Follower);
  }
  return leader!;
}

describe('handover between status writers (memory store, virtual time)', () => {
  it("the writer a replica follows hands over: the next change is written long before the leader's lease runs out", async () => {
    const setup = setUp(['r1', 'r2', 'r3']);
    const leader = await elect(setup);
    const followers = setup.replicas.filter((replica) => replica !== leader);

    const stoppedAt = setup.clock.now;
    const pending = await handOver(setup, leader);
    expect(pending).toEqual([]);
    for (const follower of followers) {
      expect(follower.heard).toEqual([{ writer: leader.name, followed: true }]);
      expect(follower.lease.state.expires).toBeLessThanOrEqual(stoppedAt); // the lease ran out at the handover
    }

    await setup.change();
    const written = await setup.clock.runUntil(stoppedAt + LEASE_MS, () =>
      followers.some(({ written }) => written.length > 0),
    );
    expect(written).toBe(true);
    // New work of a follower waits 2 × backoff(0) plus its spread (at most 2 × backoff(0)): 40 ms, not the 1 s lease.
    expect(setup.clock.now - stoppedAt).toBeLessThanOrEqual(4 * STEP_MS);
    expect(followers.flatMap(({ written }) => written)).toHaveLength(1); // no herd: one write
  });

  it('keys left pending when the leader stops are written at once (rule 17)', async () => {
    const setup = setUp(['r1', 'r2']);
    const leader = await elect(setup);
    const follower = setup.replicas.find((replica) => replica !== leader)!;
    // The leader stops watching as it starts to hand over: a change made then is the follower's alone,
    // deferred until the leader's lease would run out, a second away.
    const stoppedAt = setup.clock.now;
    const handing = handOver(setup, leader);
    await setup.change('slow');
    expect(follower.lease.pendingKeys()).toEqual(['slow']);
    await handing;
    await setup.clock.runUntil(stoppedAt + LEASE_MS, () => follower.written.length > 0);
    expect(follower.written).toEqual(['slow@2']);
    expect(setup.clock.now - stoppedAt).toBeLessThanOrEqual(2 * STEP_MS); // the woken key waits its spread only
  });

  it('a handover from a writer this replica does not follow changes nothing', async () => {
    const setup = setUp(['r1', 'r2']);
    const leader = await elect(setup);
    const follower = setup.replicas.find((replica) => replica !== leader)!;
    const before = follower.lease.state;
    await setup.store.handOver('someone-else');
    expect(follower.heard).toEqual([{ writer: 'someone-else', followed: false }]);
    expect(follower.lease.state).toEqual(before);
  });

  it('a repeated handover changes nothing the second time', async () => {
    const setup = setUp(['r1', 'r2']);
    const leader = await elect(setup);
    const follower = setup.replicas.find((replica) => replica !== leader)!;
    await setup.store.handOver(leader.name);
    const after = follower.lease.state;
    await setup.store.handOver(leader.name);
    expect(follower.heard.map(({ followed }) => followed)).toEqual([true, false]);
    expect(follower.lease.state).toEqual(after);
  });

  it('a late handover (this replica follows a newer writer by then) changes nothing, and starts no fight', async () => {
    const setup = setUp(['r1', 'r2', 'r3']);
    const leader = await elect(setup);
    const others = setup.replicas.filter((replica) => replica !== leader);
    const [next, last] = others;
    // The old leader stops without a word (as a crash): the others take over by the lease alone.
    leader.crash();
    await setup.change();
    await setup.clock.runUntil(setup.clock.now + 2 * LEASE_MS, () => setup.leader(others) !== undefined);
    const newLeader = setup.leader(others)!;
    const follower = newLeader === next ? last : next;
    await setup.clock.runUntil(setup.clock.now + 100);
    const before = follower.lease.state;

    await setup.store.handOver(leader.name); // its handover comes only now
    expect(follower.heard).toEqual([{ writer: leader.name, followed: false }]);
    expect(follower.lease.state).toEqual(before);
    await setup.change();
    await setup.clock.runUntil(setup.clock.now + 200);
    expect(newLeader.written.length).toBeGreaterThan(0);
    expect(follower.written).toEqual([]);
  });
});
