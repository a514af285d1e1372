/**
 * Two edges of the PostgreSQL store that the conformance suite
 * (spec/stores.spec.ts) does not reach: a listening connection that goes
 * silent without closing, and a record changed by another tool with a plain
 * SQL `UPDATE`.
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
