/**
 * The edges of the PostgreSQL store that the conformance suite
 * (spec/stores.spec.ts) does not reach: a listening connection that goes
 * silent without closing, a record changed by another tool with a plain SQL
 * `UPDATE`, and the compare-and-sets of one turn in one statement, counted
 * by the server itself.
 *
 * `STORES_REPORT=1` prints the measured detection times.
 */
import { filter, firstValueFrom, throwError, timeout } from 'rxjs';
import { Client } from 'pg';
import { openPostgresStore } from '../src/stores/postgres';
import type { RecordChange, RecordStore } from '../src/stores/store';
import { startPostgres, type TestServer } from './support/servers';
import { startTcpProxy, type TcpProxy } from './support/tcpProxy';
import { spec } from './support/records';

const SERVER_START_MS = 60_000;
/** A lease duration as short as the demo's and the cluster tests' (500 ms) is where a silent feed hurts most. */
const LEASE_MS = 1000;
/** A fifth of the lease: a silence is found within two checks, leaving time to connect again and re-read. */
const LISTEN_CHECK_MS = LEASE_MS / 5;
/** What a loaded 2-core machine adds to a timer. */
const SLACK_MS = 100;
/** Four leases: a change the feed missed fails the test with a message, before jest's 5 s timeout. */
const CHANGE_WAIT_MS = 4 * LEASE_MS;

function nextChange(store: RecordStore, key: string): Promise<RecordChange & { at: number }> {
  return firstValueFrom(
    store.changes().pipe(
      filter((change) => change.key === key),
      timeout({
        first: CHANGE_WAIT_MS,
        with: () => throwError(() => new Error(`no change of ${key} on the feed within ${CHANGE_WAIT_MS} ms`)),
      }),
    ),
  ).then((change) => ({ ...change, at: performance.now() }));
}

describe('postgres store', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startPostgres();
  }, SERVER_START_MS);

  afterAll(() => server?.stop());

  describe('a listening connection gone silent', () => {
    let proxy: TcpProxy;
    let store: RecordStore;

    beforeAll(async () => {
      const url = new URL(server.url);
      proxy = await startTcpProxy(Number(url.port));
      url.port = String(proxy.port);
      store = await openPostgresStore(server.url, {
        table: 'silent_listen',
        listenUrl: url.toString(),
        listenCheckInterval: LISTEN_CHECK_MS,
      });
    });

    afterAll(async () => {
      await store?.close();
      await proxy?.close();
    });

    it('is found within two checks and replaced: a change made during the silence arrives within a lease', async () => {
      // Only the listening connection goes through the proxy; the pool's queries go straight to the server.
      expect(proxy.connections).toHaveLength(1);
      const before = nextChange(store, 'before');
      await store.put('spec', 'before', spec(1));
      await before;

      const during = nextChange(store, 'during');
      proxy.silence();
      const silencedAt = performance.now();
      // Notified while the proxy swallows every byte: only a re-read can bring it.
      const duringVersion = await store.put('spec', 'during', spec(2));
      const arrived = await during;
      const [silenced, replacement] = proxy.connections;
      const detectedMs = silenced.closedAt! - silencedAt;
      const deliveredMs = arrived.at - silencedAt;

      const after = nextChange(store, 'after');
      const afterVersion = await store.put('spec', 'after', spec(3));
      const live = await after;
      if (process.env.STORES_REPORT !== undefined) {
        process.stdout.write(`${JSON.stringify({ listenCheckMs: LISTEN_CHECK_MS, detectedMs, deliveredMs })}\n`);
      }

      expect(arrived).toEqual({ kind: 'spec', key: 'during', value: spec(2), version: duringVersion, at: arrived.at });
      expect(live).toEqual({ kind: 'spec', key: 'after', value: spec(3), version: afterVersion, at: live.at });
      expect(proxy.connections).toHaveLength(2);
      expect(replacement).toEqual({ silent: false, closedAt: undefined });
      expect(detectedMs).toBeLessThanOrEqual(2 * LISTEN_CHECK_MS + SLACK_MS);
      expect(deliveredMs).toBeLessThanOrEqual(LEASE_MS);
    });
  });

  describe('a plain SQL UPDATE by another tool', () => {
    let store: RecordStore;
    let admin: Client;

    beforeAll(async () => {
      store = await openPostgresStore(server.url, { table: 'plain_sql' });
      admin = new Client(server.url);
      await admin.connect();
    });

    afterAll(async () => {
      await store?.close();
      await admin?.end();
    });

    it('gets a new version, so that the change reaches the feed and the fence refuses the old version', async () => {
      const put = nextChange(store, 'k');
      const version = await store.put('spec', 'k', spec(1));
      await put;
      const changed = nextChange(store, 'k');
      await admin.query(`UPDATE plain_sql SET value = $1::jsonb WHERE kind = 'spec' AND key = 'k'`, [
        JSON.stringify(spec(2)),
      ]);
      const change = await changed;

      expect(change).toEqual({ kind: 'spec', key: 'k', value: spec(2), version: expect.any(Number), at: change.at });
      expect(change.version).toBeGreaterThan(version);
      expect(await store.get('spec', 'k')).toEqual({ value: spec(2), version: change.version });
      expect(await store.compareAndSet('spec', 'k', spec(3), version)).toEqual({ ok: false, reason: 'conflict' });
    });

    it('keeps the version of an UPDATE that leaves the value as it was', async () => {
      const version = await store.put('spec', 'same', spec(1));
      await admin.query(`UPDATE plain_sql SET value = value WHERE kind = 'spec' AND key = 'same'`);

      expect(await store.get('spec', 'same')).toEqual({ value: spec(1), version });
    });
  });

  describe('writes made in one turn', () => {
    let store: RecordStore;
    let admin: Client;

    beforeAll(async () => {
      store = await openPostgresStore(server.url, { table: 'batched' });
      admin = new Client(server.url);
      await admin.connect();
      await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    });

    afterAll(async () => {
      await store?.close();
      await admin?.end();
    });

    /** Calls of each statement on the table since the last reset, counted by the server (pg_stat_statements). */
    async function statements(): Promise<Record<string, number>> {
      const { rows } = await admin.query<{ query: string; calls: string }>(
        `SELECT query, calls FROM pg_stat_statements WHERE query LIKE '%batched%' AND query NOT LIKE '%pg_stat%'`,
      );
      const kinds: Record<string, number> = {};
      for (const { query, calls } of rows) {
        const kind = query.trim().split(/\s+/)[0];
        kinds[kind] = (kinds[kind] ?? 0) + Number(calls);
      }
      return kinds;
    }

    it('compare-and-sets go out as one statement, each applied or refused on its own; a record written twice starts a second one', async () => {
      const a = await store.put('spec', 'a', spec(1));
      const b = await store.put('spec', 'b', spec(1));
      const awkward = spec(1, 'quotes " and \\ backslashes, {braces, commas}, NULL, é ✓\n');
      await admin.query('SELECT pg_stat_statements_reset()');

      const outcomes = await Promise.all([
        store.compareAndSet('spec', 'a', spec(2, 'first'), a),
        store.compareAndSet('spec', 'b', spec(2), b - 1),
        store.compareAndSet('spec', 'c', spec(1), null),
        store.compareAndSet('spec', 'a', spec(2, 'second'), a),
        store.compareAndSet('spec', 'b', spec(2), null),
        store.compareAndSet('status', 'd', awkward, null),
      ]);
      const counted = await statements();

      const [first, refused, inserted, second, present, written] = outcomes;
      // The two writes of `a` on one version, in the order they were made: the first is applied.
      expect(first.ok).toBe(true);
      expect(second).toEqual({ ok: false, reason: 'conflict' });
      expect(refused).toEqual({ ok: false, reason: 'conflict' });
      expect(present).toEqual({ ok: false, reason: 'conflict' });
      const version = (outcome: (typeof outcomes)[number]) => (outcome.ok ? outcome.version : NaN);
      expect(await store.get('spec', 'a')).toEqual({ value: spec(2, 'first'), version: version(first) });
      expect(await store.get('spec', 'b')).toEqual({ value: spec(1), version: b });
      expect(await store.get('spec', 'c')).toEqual({ value: spec(1), version: version(inserted) });
      expect(await store.get('status', 'd')).toEqual({ value: awkward, version: version(written) });
      // Six writes, two statements: the second write of `a` starts another, with the writes made after it,
      // sent once the first has been answered.
      expect(counted).toEqual({ WITH: 2 });
    });

    it('puts too: one statement, and of a record put twice, the later value stands', async () => {
      await admin.query('SELECT pg_stat_statements_reset()');

      const [x, y, again] = await Promise.all([
        store.put('spec', 'x', spec(1)),
        store.put('status', 'y', spec(1, 'quotes " and \\ backslashes')),
        store.put('spec', 'x', spec(2)),
      ]);

      // x's second put starts another statement, sent once the first has been answered.
      expect(await statements()).toEqual({ INSERT: 2 });
      expect(again).toBeGreaterThan(x);
      expect(await store.get('spec', 'x')).toEqual({ value: spec(2), version: again });
      expect(await store.get('status', 'y')).toEqual({ value: spec(1, 'quotes " and \\ backslashes'), version: y });
    });

    it('go each alone when the server refuses the batch: a value it cannot store fails only its own write', async () => {
      await admin.query('SELECT pg_stat_statements_reset()');

      // jsonb refuses the escape \u0000: its write fails, and the two beside it stand.
      const settled = await Promise.allSettled([
        store.compareAndSet('spec', 'before-bad', spec(1), null),
        store.compareAndSet('spec', 'bad', spec(1, 'nul \u0000 inside'), null),
        store.compareAndSet('spec', 'after-bad', spec(1), null),
      ]);

      // The batch's statement was refused, then each went alone: pg_stat_statements counts what completed.
      expect(await statements()).toEqual({ INSERT: 2 });
      expect(settled.map(({ status }) => status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(await store.get('spec', 'before-bad')).toEqual({ value: spec(1), version: expect.any(Number) });
      expect(await store.get('spec', 'after-bad')).toEqual({ value: spec(1), version: expect.any(Number) });
      expect(await store.get('spec', 'bad')).toBeUndefined();
    });

    it('go out in statements of at most 256 writes', async () => {
      const keys = Array.from({ length: 300 }, (_, i) => `many-${i}`);
      await admin.query('SELECT pg_stat_statements_reset()');

      const outcomes = await Promise.all(keys.map((key) => store.compareAndSet('spec', key, spec(1), null)));

      expect(outcomes.every(({ ok }) => ok)).toBe(true);
      expect(await statements()).toEqual({ WITH: 2 });
    });
  });

  describe('options of the listening connection', () => {
    it('refuses a listenCheckInterval that is not a positive number, naming it and what it received', async () => {
      await expect(openPostgresStore(server.url, { listenCheckInterval: 0 })).rejects.toThrow(
        new RangeError(
          'openPostgresStore: options.listenCheckInterval must be a finite number of milliseconds > 0, received 0',
        ),
      );
    });

    it('refuses a listenUrl that is not a postgres:// URL, without its password', async () => {
      await expect(openPostgresStore(server.url, { listenUrl: 'redis://u:secret@127.0.0.1:6379' })).rejects.toThrow(
        new RangeError(
          'openPostgresStore: options.listenUrl must be a postgres:// or postgresql:// URL, ' +
            'received "redis://u:***@127.0.0.1:6379"',
        ),
      );
    });
  });
});
