/**
 * The demo's replica (src/cli/replica.ts), in process on a memory store: how
 * it stops when the store cannot announce its handover.
 */
import { filter, firstValueFrom, lastValueFrom, toArray } from 'rxjs';
import { Replica, type ReplicaReport } from '../src/cli/replica';
import { MemoryStore } from '../src/stores/memory';

/** A store that works, but cannot reach the others to announce a handover. */
class NoHandoverStore extends MemoryStore {
  override handOver(writer: string): Promise<void> {
    return Promise.reject(new Error(`handOver("${writer}") failed: the store is unreachable`));
  }
}

describe('Replica', () => {
  it('stops all the same when the store cannot announce the handover, and says why in its last report', async () => {
    const replica = new Replica({
      store: new NoHandoverStore(),
      name: 'r1',
      leaseDuration: 1000,
      retryInterval: 100,
      strategy: 'writer-lease',
      spread: true,
    });
    const reports = lastValueFrom(replica.reports$.pipe(toArray()));
    const synced = firstValueFrom(replica.reports$.pipe(filter(({ type }) => type === 'synced')));
    replica.start();
    await synced;

    await expect(replica.stop()).resolves.toBeUndefined();
    const last = (await reports).at(-1) as Extract<ReplicaReport, { type: 'stopped' }>;
    expect(last).toEqual({
      type: 'stopped',
      replica: 'r1',
      writes: 0,
      conflicts: 0,
      handOverFailed: expect.stringContaining('handOver("r1") failed: the store is unreachable'),
      at: expect.any(Number),
    });
  });
});
