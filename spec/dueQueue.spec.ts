import { DueQueue } from '../src/internal/dueQueue';

/** Takes every key due by `now`, in order. */
function drain(queue: DueQueue, now = Infinity): string[] {
  const taken: string[] = [];
  for (let key = queue.takeDue(now); key !== undefined; key = queue.takeDue(now)) taken.push(key);
  return taken;
}

describe('DueQueue', () => {
  it('takes keys earliest first, and equal times in arrival order', () => {
    const queue = new DueQueue();
    queue.add('c', 5);
    queue.add('a', 1);
    queue.add('b', 5);
    queue.add('d', 3);
    expect(queue.peekTime()).toBe(1);
    expect(drain(queue)).toEqual(['a', 'd', 'c', 'b']);
  });

  it('takes only what is due', () => {
    const queue = new DueQueue();
    queue.add('a', 10);
    queue.add('b', 20);
    expect(drain(queue, 15)).toEqual(['a']);
    expect(queue.size).toBe(1);
  });

  it('queues a key once, keeping the earlier of two times', () => {
    const queue = new DueQueue();
    queue.add('a', 10);
    queue.add('b', 7);
    queue.add('a', 20);
    expect(queue.size).toBe(2);
    queue.add('a', 5);
    expect(drain(queue)).toEqual(['a', 'b']);
  });

  it('deletes keys from anywhere in the heap', () => {
    const queue = new DueQueue();
    for (const [key, at] of [['a', 1], ['b', 2], ['c', 3], ['d', 4], ['e', 5]] as const) queue.add(key, at);
    expect(queue.delete('c')).toBe(true);
    expect(queue.delete('a')).toBe(true);
    expect(queue.delete('zz')).toBe(false);
    expect(queue.has('c')).toBe(false);
    expect(drain(queue)).toEqual(['b', 'd', 'e']);
  });

  it('agrees with a sorted list under random adds, moves and deletes', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const queue = new DueQueue();
    const model = new Map<string, { at: number; seq: number }>();
    let seq = 0;
    for (let step = 0; step < 5_000; step++) {
      const key = `k${Math.floor(random() * 200)}`;
      const at = Math.floor(random() * 1_000);
      if (random() < 0.2) {
        expect(queue.delete(key)).toBe(model.delete(key));
      } else {
        queue.add(key, at);
        const known = model.get(key);
        if (known === undefined || at < known.at) model.set(key, { at, seq: seq++ });
      }
    }
    const expected = [...model].sort(([, x], [, y]) => x.at - y.at || x.seq - y.seq).map(([key]) => key);
    expect(queue.keys()).toEqual(expected);
    expect(drain(queue)).toEqual(expected);
  });
});
