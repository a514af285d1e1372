import { Redis } from 'ioredis';
import { merge, map, type Subscription } from 'rxjs';
import { ChangeFeed } from '../src/stores/changeFeed';
import { StoreClosedError } from '../src/stores/errors';
import { decodeHandover, encodeHandover, HandoverFeed } from '../src/stores/handoverFeed';
import { MemoryStore } from '../src/stores/memory';
import { openStore } from '../src/stores/openStore';
import type { RecordChange, RecordStore } from '../src/stores/store';
import { describeEachStore, SERVER_START_MS, startStoreServers } from './support/describeEachStore';
import { nextMacrotask, waitFor } from './support/waitFor';
import { status } from './support/records';

/** How long a message may take to arrive: below jest's 5 s, so that a missing one fails with a message. */
const ARRIVAL_MS = 4_000;

/** The store API with the two optional methods present, as every store of this file has them. */
type HandoverStore = RecordStore & Required<Pick<RecordStore, 'handOver' | 'handovers'>>;

function withHandover(store: RecordStore): HandoverStore {
  if (!store.handOver || !store.handovers) throw new Error(`${store.url} has no handOver/handovers`);
  return store as HandoverStore;
}

/** What a subscriber saw, from the moment of the call on. */
interface Seen {
  readonly items: string[];
  readonly subscription: Subscription;
}

/** Handovers only: `handover:<writer>`. */
function watchHandovers(store: HandoverStore): Seen {
  const items: string[] = [];
  const subscription = store.handovers().subscribe((writer) => items.push(`handover:${writer}`));
  return { items, subscription };
}

/** Every change and every handover, on one list in arrival order: `<kind>:<key>:<version>` and `handover:<writer>`. */
function watchBoth(store: HandoverStore): Seen {
  const items: string[] = [];
  const subscription = merge(
    store.changes().pipe(map((change) => `${change.kind}:${change.key}:${change.version}`)),
    store.handovers().pipe(map((writer) => `handover:${writer}`)),
  ).subscribe((item) => items.push(item));
  return { items, subscription };
}

/** The three servers, started at once to keep this file short; 'handover failures and reconnects' uses them too. */
const servers = startStoreServers(['redis', 'etcd', 'postgres']);

describeEachStore('$kind store: handover', { kinds: ['memory', 'redis', 'etcd', 'postgres'], servers }, (backend) => {
  const name = backend.kind;
  /** The writer's instance and a follower's: two connections to one server (in memory, the one store). */
  let writer: HandoverStore;
  let follower: HandoverStore;
  const opened: RecordStore[] = [];
  const open = async (): Promise<HandoverStore> => {
    const store = backend.server ? await openStore(backend.server.url) : new MemoryStore();
    opened.push(store);
    return withHandover(store);
  };
  let writers = 0;
  const freshWriter = (): string => `${name}-writer-${++writers}`;

  beforeAll(async () => {
    writer = await open();
    follower = name === 'memory' ? writer : await open();
  }, SERVER_START_MS);

  afterAll(async () => {
    await Promise.all(opened.map((store) => store.close()));
  });

  it('delivers a handover to a subscriber of another instance', async () => {
    const seen = watchHandovers(follower);
    const gone = freshWriter();
    await writer.handOver(gone);
    await waitFor(() => seen.items.length > 0, 'the handover', ARRIVAL_MS);
    seen.subscription.unsubscribe();
    expect(seen.items).toEqual([`handover:${gone}`]);
  });

  it('delivers a writer’s status writes before its handover, and the handover on handovers() only', async () => {
    const seen = watchBoth(follower);
    const gone = freshWriter();
    const key = `${gone}/route`;
    const expected: string[] = [];
    const created = await writer.compareAndSet('status', key, status(1, gone), null);
    if (!created.ok) throw new Error('the status must not exist yet');
    expected.push(`status:${key}:${created.version}`);
    let version = created.version;
    for (let generation = 2; generation <= 4; generation++) {
      const outcome = await writer.compareAndSet('status', key, status(generation, gone), version);
      if (!outcome.ok) throw new Error(`conflict at generation ${generation}`);
      version = outcome.version;
      expected.push(`status:${key}:${version}`);
    }
    expected.push(`status:${key}-other:${await writer.put('status', `${key}-other`, status(1, gone))}`);
    await writer.handOver(gone);
    expected.push(`handover:${gone}`);
    await waitFor(() => seen.items.includes(`handover:${gone}`), 'the handover', ARRIVAL_MS);
    seen.subscription.unsubscribe();
    expect(seen.items).toEqual(expected);
  });

  it('does not show a handover made before subscription, not even to an instance opened after it', async () => {
    const early = watchHandovers(follower);
    const old = freshWriter();
    await writer.handOver(old);
    await waitFor(() => early.items.length > 0, 'the old handover', ARRIVAL_MS);
    early.subscription.unsubscribe();

    const late = watchHandovers(follower);
    const newcomer = name === 'memory' ? follower : await open();
    const fresh = watchHandovers(newcomer);
    const next = freshWriter();
    await writer.handOver(next);
    await waitFor(() => late.items.length > 0 && fresh.items.length > 0, 'the new handover', ARRIVAL_MS);
    late.subscription.unsubscribe();
    fresh.subscription.unsubscribe();
    expect(late.items).toEqual([`handover:${next}`]);
    expect(fresh.items).toEqual([`handover:${next}`]);
  });

  it('rejects handOver after close() with StoreClosedError naming the store, and completes handovers()', async () => {
    const store = await open();
    let completed = false;
    store.handovers().subscribe({ complete: () => (completed = true) });
    await store.close();
    const error = await store.handOver(freshWriter()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreClosedError);
    expect((error as Error).message).toBe(`Store ${store.url}: handOver was called after close()`);
    expect(completed).toBe(true);
  });
});

describe('handover failures and reconnects', () => {
  it('postgres: a handover the server refuses rejects with an error naming the URL, password masked', async () => {
    const server = servers.get('postgres');
    // The test server trusts every local connection, so any password is accepted (and must not be shown).
    const url = server.url.replace('postgres@', 'postgres:secret@');
    const store = withHandover(await openStore(url));
    try {
      // NOTIFY refuses payloads of 8000 bytes or more.
      const error = await store.handOver('w'.repeat(9000)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      const { message } = error as Error;
      expect(message).toMatch(
        /^Store postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres: handOver\("w{75}\.\.\."\) failed: /,
      );
      expect(message).not.toContain('secret');
    } finally {
      await store.close();
    }
  });

  it('redis: after its feed reconnects, an instance shows new handovers and no old one again', async () => {
    const url = servers.get('redis').url;
    const [writer, follower] = (await Promise.all([openStore(url), openStore(url)])).map(withHandover);
    try {
      const seen = watchBoth(follower);
      await writer.handOver('before');
      await waitFor(() => seen.items.includes('handover:before'), 'the first handover', ARRIVAL_MS);
      const admin = new Redis(url);
      try {
        await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      } finally {
        admin.disconnect();
      }
      // Published while the follower is away: it arrives with the re-read after the follower subscribed again.
      const version = await writer.put('status', 'probe', status(1, 'w'));
      await waitFor(() => seen.items.includes(`status:probe:${version}`), 'the re-read', ARRIVAL_MS);
      await writer.handOver('after');
      await waitFor(() => seen.items.includes('handover:after'), 'the second handover', ARRIVAL_MS);
      seen.subscription.unsubscribe();
      expect(seen.items).toEqual(['handover:before', `status:probe:${version}`, 'handover:after']);
    } finally {
      await Promise.all([writer.close(), follower.close()]);
    }
  });
});

describe('HandoverFeed (the server stores’ handovers across a re-read)', () => {
  const record = (key: string, version: number): RecordChange => ({
    kind: 'status',
    key,
    value: status(version, 'w'),
    version,
  });

  it('holds a handover that arrives during a re-read until the feed has emitted what it read', async () => {
    const handovers = new HandoverFeed();
    let release!: (records: RecordChange[]) => void;
    const feed = new ChangeFeed(() => handovers.reading(new Promise((resolve) => (release = resolve))));
    const items: string[] = [];
    feed.changes$.subscribe((change) => items.push(`${change.key}:${change.version}`));
    handovers.handovers$.subscribe((writer) => items.push(`handover:${writer}`));
    const reread = feed.reread();
    await nextMacrotask();
    handovers.push('w');
    expect(items).toEqual([]);
    release([record('a', 7)]);
    await reread;
    await waitFor(() => items.length === 2, 'the held handover');
    expect(items).toEqual(['a:7', 'handover:w']);
    handovers.push('v');
    expect(items).toEqual(['a:7', 'handover:w', 'handover:v']);
    feed.close();
    handovers.close();
  });

  it('ignores what is not a handover, and drops what it holds on close()', async () => {
    const handovers = new HandoverFeed();
    const items: string[] = [];
    handovers.handovers$.subscribe({ next: (writer) => items.push(writer), complete: () => items.push('completed') });
    handovers.push(decodeHandover('not json'));
    handovers.push(decodeHandover('{"kind":"spec"}'));
    handovers.push(decodeHandover(encodeHandover('w')));
    void handovers.reading(new Promise<void>(() => undefined));
    handovers.push('held');
    handovers.close();
    expect(items).toEqual(['w', 'completed']);
  });
});
