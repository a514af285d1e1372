import { runMacro, type MacroConfig, type MacroFigures } from '../bench/macro';

// One tiny macro configuration per strategy, in virtual time: exact figures, no timing.
const TINY: Omit<MacroConfig, 'strategy'> = { replicas: 3, keys: 10, updates: 50, rate: 47, seed: 1 };

describe('bench: macro runs in virtual time', () => {
  let figures: Record<MacroConfig['strategy'], MacroFigures>;

  beforeAll(async () => {
    figures = {
      'writer-lease': await runMacro({ ...TINY, strategy: 'writer-lease' }),
      uncoordinated: await runMacro({ ...TINY, strategy: 'uncoordinated' }),
      'lock-lease': await runMacro({ ...TINY, strategy: 'lock-lease' }),
    };
  });

  it('converges with every strategy, one write per update at most', () => {
    for (const run of Object.values(figures)) {
      expect(run).toMatchObject({ updates: 50, converged: true });
      expect(run.writes).toBeLessThanOrEqual(run.updates);
      expect(run.attemptsPerUpdate).toBe(Math.round(((run.writes + run.conflicts) / run.updates) * 1000) / 1000);
      expect(run.writesPerUpdate).toBe(Math.round((run.writes / run.updates) * 1000) / 1000);
      const byState = Object.values(run.conflictsByState).reduce((sum, count) => sum + count, 0);
      expect(byState).toBe(run.conflicts);
    }
  });

  it('counts exactly one lock renewal per retry period while idle (2 s: 30 a minute)', () => {
    expect(figures['lock-lease']).toMatchObject({
      idleMinutes: 10,
      idleWrites: 300,
      idleWritesPerMin: 30,
      conflicts: 0,
    });
  });

  it('writes nothing while idle with the writer lease or without coordination', () => {
    expect(figures['writer-lease'].idleWrites).toBe(0);
    expect(figures.uncoordinated.idleWrites).toBe(0);
  });

  it('costs the uncoordinated replicas more attempts than the writer lease', () => {
    expect(figures.uncoordinated.attemptsPerUpdate).toBeGreaterThan(figures['writer-lease'].attemptsPerUpdate);
    // Not even the election costs a conflict: the first write, heard on the feed, extends the key on the
    // other two replicas while their first units run, and the lease lets go of them before they write.
    expect(figures['writer-lease'].conflictsByState).toEqual({});
  });

  it('measures the failover of each strategy against its own lease', () => {
    const { 'writer-lease': lease, uncoordinated, 'lock-lease': lock } = figures;
    expect(lease.failoverMs).toBeGreaterThan(0);
    expect(lease.failoverMs).toBeLessThanOrEqual(1000);
    expect(uncoordinated.failoverMs).toBe(0);
    // A candidate takes the lock once it saw no change for 15 s, at its next poll.
    expect(lock.failoverMs).toBeGreaterThanOrEqual(15_000);
    expect(lock.failoverMs).toBeLessThan(15_000 + 2 * 2_000 * 2.2);
  });

  it('gives the same figures for the same seed', async () => {
    expect(await runMacro({ ...TINY, strategy: 'writer-lease' })).toEqual(figures['writer-lease']);
  });
});
