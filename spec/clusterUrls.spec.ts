/**
 * Cluster store URLs (`etcd://H1:P1,H2:P2`, `redis-sentinel://H:P[,H:P]/MASTER`):
 * how they are read, what is refused before any connection (exit 2 from the
 * CLI), and what happens when no member answers (exit 1).
 */
import { PassThrough } from 'node:stream';
import { main } from '../src/cli/main';
import { StoreUnreachableError, StoreUrlError } from '../src/stores/errors';
import { openStore } from '../src/stores/openStore';
import { parseSentinelUrl } from '../src/stores/sentinelUrl';
import { parseClusterUrl } from '../src/stores/storeUrl';
import { freePort } from './support/servers';

describe('parseClusterUrl', () => {
  it('reads every member, with the default port where none is given', () => {
    expect(parseClusterUrl('etcd://10.0.0.1:2379,10.0.0.2,[::1]:2381', 2379)).toEqual({
      hosts: [
        { host: '10.0.0.1', port: 2379 },
        { host: '10.0.0.2', port: 2379 },
        { host: '::1', port: 2381 },
      ],
      username: '',
      password: '',
      path: [],
    });
  });

  it('decodes the user, the password and the path', () => {
    expect(parseClusterUrl('x://us%40er:p%3Aw@h:1/a%2Fb/c', 9)).toMatchObject({
      username: 'us@er',
      password: 'p:w',
      path: ['a/b', 'c'],
    });
  });
});

describe('parseSentinelUrl', () => {
  it('reads the Sentinels, the master name and the database', () => {
    expect(parseSentinelUrl('redis-sentinel://:pw@127.0.0.1,127.0.0.1:26380/main/2')).toEqual({
      sentinels: [
        { host: '127.0.0.1', port: 26379 },
        { host: '127.0.0.1', port: 26380 },
      ],
      name: 'main',
      db: 2,
      username: '',
      password: 'pw',
    });
  });
});

describe('openStore refuses a malformed cluster URL before connecting', () => {
  it.each([
    ['etcd://', 'no host'],
    ['etcd://127.0.0.1:2379,,127.0.0.1:2380', 'an empty member in the host list'],
    [
      'etcd://127.0.0.1:2379,127.0.0.1:70000',
      'member "127.0.0.1:70000": port must be an integer from 1 to 65535, received "70000"',
    ],
    ['etcd://127.0.0.1:x', 'member "127.0.0.1:x": port must be an integer from 1 to 65535, received "x"'],
    ['redis-sentinel://127.0.0.1:26379', 'no master name'],
    ['redis-sentinel://127.0.0.1:26379/', 'no master name'],
    ['redis-sentinel:///main', 'no host'],
    ['redis-sentinel://127.0.0.1:26379/main/zero', 'the database must be an integer >= 0, received "zero"'],
  ])('%s: %s', async (url, message) => {
    const error = await openStore(url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUrlError);
    expect((error as Error).message).toContain(`Store URL "${url}": ${message}; expected `);
  });

  it('masks the password in the message', async () => {
    const error = await openStore('redis-sentinel://app:secret@127.0.0.1:26379').catch((e: unknown) => e);
    expect((error as Error).message).toContain('"redis-sentinel://app:***@127.0.0.1:26379": no master name');
    expect((error as Error).message).not.toContain('secret');
  });
});

describe('a cluster none of whose members answers', () => {
  it.each([
    ['etcd', (ports: number[]) => `etcd://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`],
    [
      'Redis Sentinel',
      (ports: number[]) => `redis-sentinel://${ports.map((port) => `127.0.0.1:${port}`).join(',')}/main`,
    ],
  ])('%s: StoreUnreachableError naming the URL', async (_name, urlOf) => {
    const url = urlOf([await freePort(), await freePort(), await freePort()]);
    const error = await openStore(url, { connectTimeout: 2000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnreachableError);
    expect((error as Error).message).toContain(`Cannot reach the store at ${url}: `);
  });
});

describe('the CLI with a cluster URL', () => {
  it.each([
    [['demo', '--store', 'etcd://127.0.0.1:2379,'], 'Store URL "etcd://127.0.0.1:2379,": an empty member'],
    [['replica', '--store', 'etcd://127.0.0.1:0'], '--store: expected ports from 1 to 65535, received 0'],
    [
      ['demo', '--store', 'redis-sentinel://:secret@127.0.0.1:26379'],
      'Store URL "redis-sentinel://:***@127.0.0.1:26379": no master name',
    ],
    [['replica', '--store', 'redis-sentinel://,/main'], 'an empty member in the host list'],
  ])('%j: exit 2, naming the URL with its password masked', async (argv, message) => {
    const { code, stderr } = await run(argv);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).not.toContain('secret');
  });

  it('no member reachable: exit 1, naming the URL', async () => {
    const url = `redis-sentinel://:secret@127.0.0.1:${await freePort()},127.0.0.1:${await freePort()}/main`;
    const { code, stderr } = await run(['replica', '--store', url]);
    expect(code).toBe(1);
    expect(stderr).toContain('Cannot reach the store at redis-sentinel://:***@127.0.0.1:');
    expect(stderr).not.toContain('secret');
  });
});

async function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  stdout.resume();
  const code = await main(argv, { stdout, stderr });
  return { code, stderr: err };
}
