import { DueQueue, NOT_QUEUED, type QueueSlot } from '../src/internal/dueQueue';

interface Keyed extends QueueSlot {
  readonly key: string;
}

/** A queue of named slots, with a slot made on first use of each name. */
function queueOfKeys() {
  const queue = new DueQueue<Keyed>();
  const slots = new Map<string, Keyed>();
  const slot = (key: string) => {
    let found = slots.get(key);
    if (found === undefined) slots.set(key, (found = { key, at: 0, seq: 0, index: NOT_QUEUED }));
    return found;
  };
  return {
    queue,
    add: (key: string, at: number) => queue.add(slot(key), at),
    delete: (key: string) => queue.delete(slot(key)),
    has: (key: string) => queue.has(slot(key)),
    /** Takes every key due by `now`, in order. */
    drain: (now = Infinity) => {
      const taken: string[] = [];
      for (let next = queue.takeDue(now); next !== undefined; next = queue.takeDue(now)) taken.push(next.key);
      return taken;
    },
  };
}

describe('DueQueue', () => {
  it('takes keys earliest first, and equal times in arrival order', () => {
    const q = queueOfKeys();
    q.add('c', 5);
    q.add('a', 1);
    q.add('b', 5);
    q.add('d', 3);
    expect(q.queue.peekTime()).toBe(1);
    expect(q.drain()).toEqual(['a', 'd', 'c', 'b']);
  });

  it('takes only what is due', () => {
    const q = queueOfKeys();
    q.add('a', 10);
    q.add('b', 20);
    expect(q.drain(15)).toEqual(['a']);
    expect(q.queue.size).toBe(1);
  });

  it('leaves out what was queued after a given arrival count', () => {
    const q = queueOfKeys();
    q.add('a', 0);
    const before = q.queue.arrivals;
    q.add('b', 0);
    expect(q.queue.takeDue(0, before)?.key).toBe('a');
    expect(q.queue.takeDue(0, before)).toBeUndefined();
    expect(q.drain(0)).toEqual(['b']);
  });

  it('queues a key once, keeping the earlier of two times', () => {
    const q = queueOfKeys();
    q.add('a', 10);
    q.add('b', 7);
    q.add('a', 20);
    expect(q.queue.size).toBe(2);
    q.add('a', 5);
    expect(q.queue.size).toBe(2);
    expect(q.drain()).toEqual(['a', 'b']);
  });

  it('deletes keys from anywhere, lane or heap', () => {
    const q = queueOfKeys();
    for (const [key, at] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 0.5],
      ['e', 5],
    ] as const)
      q.add(key, at);
    expect(q.delete('c')).toBe(true);
    expect(q.delete('d')).toBe(true);
    expect(q.delete('zz')).toBe(false);
    expect(q.has('c')).toBe(false);
    expect(q.queue.size).toBe(3);
    expect(q.drain()).toEqual(['a', 'b', 'e']);
  });

  it('agrees with a sorted list under random adds, moves, deletes and takes', () => {
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const q = queueOfKeys();
    const model = new Map<string, { at: number; seq: number }>();
    const sorted = () => [...model].sort(([, x], [, y]) => x.at - y.at || x.seq - y.seq).map(([key]) => key);
    let seq = 0;
    let now = 0;
    for (let step = 0; step < 20_000; step++) {
      const key = `k${Math.floor(random() * 200)}`;
      const draw = random();
      if (draw < 0.15) {
        expect(q.delete(key)).toBe(model.delete(key));
      } else if (draw < 0.3) {
        now += Math.floor(random() * 20);
        const expected = sorted().filter((k) => (model.get(k) as { at: number }).at <= now);
        expect(q.drain(now)).toEqual(expected);
        for (const k of expected) model.delete(k);
      } else {
        // Mostly in time order, as the lease queues, with some keys due earlier.
        const at = random() < 0.7 ? now + 40 + Math.floor(random() * 3) : now + Math.floor(random() * 100);
        q.add(key, at);
        const known = model.get(key);
        if (known === undefined || at < known.at) model.set(key, { at, seq: seq++ });
      }
      expect(q.queue.size).toBe(model.size);
    }
    expect(q.drain()).toEqual(sorted());
  });
});
