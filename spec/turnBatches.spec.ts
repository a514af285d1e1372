import { TurnBatches, type TurnBatchOptions } from '../src/stores/turnBatches';

interface Item {
  readonly group: string;
  readonly id: string;
}

const item = (id: string, group = 'g'): Item => ({ group, id });

/** A batcher whose calls are recorded, each answered with its items' ids (or its error). */
function recorded(options: Partial<TurnBatchOptions<Item, string>> & { fail?: (items: readonly Item[]) => boolean }) {
  const calls: string[][] = [];
  const batches = new TurnBatches<Item, string>({
    maxBatch: 100,
    ...options,
    send: async (items) => {
      calls.push(items.map(({ id }) => id));
      if (options.fail?.(items)) throw new Error(`call ${calls.length} failed`);
      return items.map(({ id }) => `${id}!`);
    },
  });
  return { batches, calls };
}

describe('TurnBatches', () => {
  it('sends the items of one turn in one call, each answered with its own answer', async () => {
    const { batches, calls } = recorded({});

    const answers = await Promise.all(['a', 'b', 'c'].map((id) => batches.add(item(id))));

    expect(answers).toEqual(['a!', 'b!', 'c!']);
    expect(calls).toEqual([['a', 'b', 'c']]);
  });

  it('sends a lone item at the end of its turn, and the next turn’s in a call of their own', async () => {
    const { batches, calls } = recorded({});

    expect(await batches.add(item('a'))).toBe('a!');
    expect(await Promise.all([batches.add(item('b')), batches.add(item('c'))])).toEqual(['b!', 'c!']);

    expect(calls).toEqual([['a'], ['b', 'c']]);
  });

  it('puts at most maxBatch items in a call', async () => {
    const { batches, calls } = recorded({ maxBatch: 2 });

    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => batches.add(item(id))));

    expect(calls).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
  });

  it('puts at most maxSize of sizeOf in a call, and an item heavier than that alone', async () => {
    const { batches, calls } = recorded({ maxSize: 10, sizeOf: ({ id }) => Number(id.slice(1)) });

    await Promise.all(['a4', 'b5', 'c3', 'd20', 'e1'].map((id) => batches.add(item(id))));

    expect(calls).toEqual([['a4', 'b5'], ['c3'], ['d20'], ['e1']]);
  });

  it('sends the items of a call that send gives back one by one through sendOne, each answered alone', async () => {
    const sent: string[][] = [];
    const batches = new TurnBatches<Item, string>({
      maxBatch: 100,
      send: async (items) => {
        sent.push(items.map(({ id }) => id));
        return undefined;
      },
      sendOne: async ({ id }) => {
        sent.push([id]);
        if (id === 'b') throw new Error('b alone failed');
        return `${id}!`;
      },
    });

    const settled = await Promise.allSettled(['a', 'b', 'c'].map((id) => batches.add(item(id))));

    expect(settled.map((each) => (each.status === 'fulfilled' ? each.value : (each.reason as Error).message))).toEqual([
      'a!',
      'b alone failed',
      'c!',
    ]);
    expect(sent).toEqual([['a', 'b', 'c'], ['a'], ['b'], ['c']]);
  });

  it('sends an item alone in its call through sendOne, when there is one', async () => {
    const { batches, calls } = recorded({ sendOne: async ({ id }) => `${id} alone` });

    expect(await batches.add(item('a'))).toBe('a alone');
    expect(calls).toEqual([]);
  });

  it('never mixes groups in a call', async () => {
    const { batches, calls } = recorded({ groupOf: ({ group }) => group });

    await Promise.all([item('a', 'x'), item('b', 'y'), item('c', 'x')].map((each) => batches.add(each)));

    expect(calls).toEqual([['a', 'c'], ['b']]);
  });

  it('never puts one id twice in a call: the second starts another, with the items after it', async () => {
    const { batches, calls } = recorded({ idOf: ({ id }) => id.slice(0, 1) });

    const answers = await Promise.all(['a1', 'b1', 'a2', 'c1', 'a3'].map((id) => batches.add(item(id))));

    expect(answers).toEqual(['a1!', 'b1!', 'a2!', 'c1!', 'a3!']);
    expect(calls).toEqual([['a1', 'b1'], ['a2', 'c1'], ['a3']]);
  });

  it('sends the call of an id’s second item once the call of its first has been answered, even with an error', async () => {
    const sent: string[][] = [];
    let answerFirst: (() => void) | undefined;
    const batches = new TurnBatches<Item, string>({
      maxBatch: 100,
      idOf: ({ id }) => id.slice(0, 1),
      send: (items) => {
        sent.push(items.map(({ id }) => id));
        if (sent.length > 1) return Promise.resolve(items.map(({ id }) => id));
        return new Promise((_, reject) => (answerFirst = () => reject(new Error('first failed'))));
      },
    });

    const first = batches.add(item('a1')).catch((error: Error) => error.message);
    const second = batches.add(item('a2'));
    // The batch went out at the end of the turn the items were added in: the second call would have gone with it.
    await new Promise(setImmediate);
    expect(sent).toEqual([['a1']]);
    answerFirst!();

    expect(await Promise.all([first, second])).toEqual(['first failed', 'a2']);
    expect(sent).toEqual([['a1'], ['a2']]);
  });

  it('sends the call of a repeated id once every call before it in the group has been answered', async () => {
    const sent: string[][] = [];
    const answers: (() => void)[] = [];
    const batches = new TurnBatches<Item, string>({
      maxBatch: 2,
      idOf: ({ id }) => id.slice(0, 1),
      send: (items) => {
        sent.push(items.map(({ id }) => id));
        return new Promise((resolve) => answers.push(() => resolve(items.map(({ id }) => id))));
      },
    });
    const nextTurn = () => new Promise(setImmediate);

    // a1 b1 fill a call, c1 starts another beside it; a2 must wait for both, whichever holds a1.
    const all = Promise.all(['a1', 'b1', 'c1', 'a2'].map((id) => batches.add(item(id))));
    await nextTurn();
    expect(sent).toEqual([['a1', 'b1'], ['c1']]);
    answers[1]();
    await nextTurn();
    expect(sent).toEqual([['a1', 'b1'], ['c1']]);
    answers[0]();
    await nextTurn();
    expect(sent).toEqual([['a1', 'b1'], ['c1'], ['a2']]);
    answers[2]();

    expect(await all).toEqual(['a1', 'b1', 'c1', 'a2']);
  });

  it('fails the items of a call whose send throws', async () => {
    const batches = new TurnBatches<Item, string>({
      maxBatch: 100,
      send: () => {
        throw new Error('refused at once');
      },
    });

    await expect(batches.add(item('a'))).rejects.toThrow('refused at once');
  });

  it('fails every item of a failed call with its error, and only those', async () => {
    const { batches } = recorded({ maxBatch: 2, fail: (items) => items[0].id === 'c' });

    const settled = await Promise.allSettled(['a', 'b', 'c', 'd', 'e'].map((id) => batches.add(item(id))));

    expect(settled.map((each) => (each.status === 'fulfilled' ? each.value : (each.reason as Error).message))).toEqual([
      'a!',
      'b!',
      'call 2 failed',
      'call 2 failed',
      'e!',
    ]);
  });
});
