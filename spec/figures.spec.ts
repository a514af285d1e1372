import { FigureCounter } from '../src/cli/figures';

const conflict = (replica: string, at: number) =>
  ({ type: 'conflict', replica, key: 'key-1', generation: 1, at }) as const;

describe('FigureCounter: conflictsSinceEvent', () => {
  it('is null in a run with no kill, stop or join, whatever the conflicts', () => {
    const counter = new FigureCounter(['r1', 'r2']);
    counter.record(conflict('r2', 10));
    expect(counter.figures()).toMatchObject({ conflicts: 1, conflictsSinceEvent: null });
  });

  it('counts, of a join, the conflicts reported from the newcomer ready on: not the election before it', () => {
    const counter = new FigureCounter(['r1', 'r2', 'r3', 'r4'], { shards: 30 });
    counter.record(conflict('r2', 10)); // the election
    counter.joining('r4');
    counter.record(conflict('r3', 50)); // r4 started, not ready yet
    counter.record({ type: 'ready', replica: 'r4', pid: 4, at: 100 });
    counter.record(conflict('r4', 150));
    counter.record(conflict('r1', 100));
    expect(counter.figures()).toMatchObject({ conflicts: 4, conflictsSinceEvent: 2 });
  });

  it('counts, of a kill or a graceful stop, the conflicts reported from its time on, by their own time', () => {
    for (const stop of ['kill', 'handover'] as const) {
      const counter = new FigureCounter(['r1', 'r2', 'r3']);
      counter.record(conflict('r2', 10));
      if (stop === 'kill') counter.killed('r1', 200);
      else counter.handedOver('r1', 200);
      counter.record(conflict('r3', 190)); // made before the stop, reported after it
      counter.record(conflict('r3', 230));
      expect(counter.figures()).toMatchObject({ conflicts: 3, conflictsSinceEvent: 1 });
    }
  });
});

describe('FigureCounter: steadyLatencyMs', () => {
  const written = (replica: string, key: string, generation: number, at: number) =>
    ({ type: 'written', replica, key, generation, at }) as const;

  it('counts the changes made from the first status write on; latencyMs counts every change', () => {
    const counter = new FigureCounter(['r1', 'r2']);
    counter.update({ key: 'a', generation: 1, at: 0 }); // made in the election: waits for it
    counter.update({ key: 'b', generation: 1, at: 10 });
    counter.record(written('r1', 'a', 1, 200)); // the election ends
    counter.record(written('r1', 'b', 1, 201));
    counter.update({ key: 'a', generation: 2, at: 300 });
    counter.record(written('r1', 'a', 2, 303));
    counter.update({ key: 'b', generation: 2, at: 400 });
    counter.record(written('r1', 'b', 2, 405));
    expect(counter.figures()).toMatchObject({
      latencyMs: { p50: 5, p99: 200, max: 200 },
      steadyLatencyMs: { p50: 3, p99: 5, max: 5 },
    });
  });

  it('is null before any status is written', () => {
    const counter = new FigureCounter(['r1']);
    counter.update({ key: 'a', generation: 1, at: 0 });
    expect(counter.figures().steadyLatencyMs).toBeNull();
  });
});
