import { execFileSync } from 'node:child_process';
import { spawnReplica } from '../src/cli/replicaProcess';
import type { ReplicaHandle } from '../src/cli/replicaHandle';
import { openStore } from '../src/stores/openStore';
import type { RecordStore, SpecValue, StatusValue } from '../src/stores/store';
import { buildCli } from './support/buildCli';
import { startRedis, type TestServer } from './support/servers';
import { waitFor } from './support/waitFor';

/**
 * One bad record, one bad key (docs/lease.md, "Round three"): another tool
 * overwrites one status with text that is not JSON. Three replica processes
 * on Redis keep every other key at its usual pace, and the bad key is
 * written again at its next spec change: nobody retries it for ever, nobody
 * stands down.
 */

const KEYS = Array.from({ length: 20 }, (_, i) => `key-${i}`);
const PREFIX = 'wl_poison';
const CONVERGE_MS = 3_000;

let main: string;
let server: TestServer;
let store: RecordStore;
let replicas: ReplicaHandle[] = [];

beforeAll(async () => {
  main = buildCli('poisoned-record');
  server = await startRedis();
  store = await openStore(server.url, { prefix: PREFIX });
}, 60_000);

afterAll(async () => {
  await Promise.all(replicas.map((replica) => replica.stop()));
  await store?.close();
  await server?.stop();
}, 30_000);

/** Every status at the generation of its spec, read from the store. */
async function current(keys: readonly string[], generation: number): Promise<boolean> {
  const statuses = await Promise.all(keys.map((key) => store.get<StatusValue>('status', key).catch(() => undefined)));
  return statuses.every((status) => status?.value.generation === generation);
}

async function waitUntilCurrent(keys: readonly string[], generation: number, what: string): Promise<number> {
  const started = performance.now();
  let done = false;
  const poll = async () => {
    while (!done) {
      done = await current(keys, generation);
      if (!done) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  void poll();
  await waitFor(() => done, what, CONVERGE_MS);
  return performance.now() - started;
}

it('a status overwritten with garbage is written again at the next change, and the other keys keep their pace', async () => {
  const port = new URL(server.url).port;
  replicas = ['r1', 'r2', 'r3'].map((name) =>
    spawnReplica({
      command: [process.execPath, main],
      store: server.url,
      name,
      leaseDuration: 500,
      retryInterval: 100,
      strategy: 'writer-lease',
      spread: true,
      prefix: PREFIX,
    }),
  );
  await Promise.all(replicas.map((replica) => replica.ready()));
  await Promise.all(KEYS.map((key) => store.put<SpecValue>('spec', key, { generation: 1, value: `${key}/1` })));
  await waitUntilCurrent(KEYS, 1, 'the first statuses');

  execFileSync('redis-cli', ['-p', port, 'SET', `${PREFIX}:status:key-0`, 'garbage{']);
  await Promise.all(KEYS.map((key) => store.put<SpecValue>('spec', key, { generation: 2, value: `${key}/2` })));
  const healthyMs = await waitUntilCurrent(KEYS.slice(1), 2, 'the healthy keys');
  await waitUntilCurrent(['key-0'], 2, 'the poisoned key');

  const readBack = JSON.parse(execFileSync('redis-cli', ['-p', port, 'GET', `${PREFIX}:status:key-0`]).toString());
  expect(readBack).toMatchObject({ generation: 2, value: 'key-0/2' });
  expect(healthyMs).toBeLessThan(1_000);
}, 60_000);
