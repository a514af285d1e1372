import { MemoryStore } from '../src/stores/memory';
import { TokenBucket, throttledStore } from '../src/cli/tokenBucket';

describe('TokenBucket', () => {
  let now = 0;
  const clock = () => now;

  beforeEach(() => {
    now = 0;
    jest.useFakeTimers();
  });
  afterEach(() => jest.useRealTimers());

  /** Advances the clock and the timers together. */
  const advance = async (ms: number) => {
    now += ms;
    await jest.advanceTimersByTimeAsync(ms);
  };

  it('starts full: `burst` calls go at once, the next waits 1/rate s', async () => {
    const bucket = new TokenBucket({ rate: 10, burst: 3, now: clock });
    const went: number[] = [];
    for (let i = 0; i < 5; i++) void bucket.take().then(() => went.push(i));
    await advance(0);
    expect(went).toEqual([0, 1, 2]);
    expect(bucket.waiting).toBe(2);
    await advance(99);
    expect(went).toEqual([0, 1, 2]);
    await advance(1);
    expect(went).toEqual([0, 1, 2, 3]);
    await advance(100);
    expect(went).toEqual([0, 1, 2, 3, 4]);
    expect(bucket.waiting).toBe(0);
  });

  it('holds `rate` calls a second over a long run, in the order they asked', async () => {
    const bucket = new TokenBucket({ rate: 50, now: clock });
    const went: number[] = [];
    for (let i = 0; i < 250; i++) void bucket.take().then(() => went.push(i));
    await advance(0);
    expect(went).toHaveLength(50); // the burst, rate by default
    for (let s = 0; s < 4; s++) await advance(1000);
    expect(went).toHaveLength(250);
    expect(went).toEqual([...went].sort((a, b) => a - b));
  });

  it('refills no more than `burst` after a quiet spell', async () => {
    const bucket = new TokenBucket({ rate: 100, burst: 2, now: clock });
    await advance(10_000);
    let went = 0;
    for (let i = 0; i < 4; i++) void bucket.take().then(() => went++);
    await advance(0);
    expect(went).toBe(2);
  });

  it('refuses a rate or a burst that is not a positive number, naming it and the value received', () => {
    expect(() => new TokenBucket({ rate: 0 })).toThrow(
      'TokenBucket: options.rate must be a finite number > 0, received 0',
    );
    expect(() => new TokenBucket({ rate: 5, burst: 0.5 })).toThrow(
      'TokenBucket: options.burst must be a finite number >= 1, received 0.5',
    );
  });
});

describe('throttledStore', () => {
  it('every call of get, compareAndSet, put, delete and list waits for a token; the feed does not', async () => {
    const store = new MemoryStore();
    const bucket = new TokenBucket({ rate: 1_000, burst: 1 });
    const limited = throttledStore(store, bucket);
    const take = jest.spyOn(bucket, 'take');
    const changes: string[] = [];
    const feed = limited.changes().subscribe(({ key }) => changes.push(key));
    await limited.put('spec', 'a', { generation: 1, value: 'x' });
    await limited.get('spec', 'a');
    await limited.compareAndSet('status', 'a', { generation: 1, value: 'x', writer: 'r1', at: 0 }, null);
    await limited.list?.();
    await limited.delete('spec', 'a');
    expect(take).toHaveBeenCalledTimes(5);
    expect(changes).toEqual(['a', 'a', 'a']);
    feed.unsubscribe();
    await limited.close();
  });
});

describe('TokenBucket and AbortSignal', () => {
  it('a call whose signal aborts while it waits leaves the line and takes no token', async () => {
    const bucket = new TokenBucket({ rate: 1_000, burst: 1 });
    await bucket.take();
    const controller = new AbortController();
    const aborted = bucket.take(controller.signal);
    const next = bucket.take();
    expect(bucket.waiting).toBe(2);
    controller.abort(new Error('let go'));
    await expect(aborted).rejects.toThrow('let go');
    expect(bucket.waiting).toBe(1);
    await next;
    expect(bucket.waiting).toBe(0);
    bucket.close();
  });
});
