import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';

/**
 * A store server started for a test, bound to 127.0.0.1 on a free port with
 * its data in a temporary directory.
 *
 * @example
 * ```ts
 * const redis = await startRedis();
 * const store = await openStore(redis.url);
 * await redis.restart(); // the store reconnects
 * await redis.stop();
 * ```
 */
export interface TestServer {
  /** The URL to open a store on it, e.g. `redis://127.0.0.1:40123`. */
  readonly url: string;
  /** Stops the server, keeping its data, and starts it again on the same port; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` (Debian package `redis-server`), with an append-only
 * file so that its data survives {@link TestServer.restart}.
 *
 * @example
 * ```ts
 * const { url } = await startRedis(); // 'redis://127.0.0.1:40123'
 * ```
 * @returns The running server.
 */
export async function startRedis(): Promise<TestServer> {
  const binary = findBinary('redis-server', ['/usr/bin/redis-server', '/usr/local/bin/redis-server'], 'redis-server');
  const [port, dir] = await Promise.all([freePort(), mkdtemp(path.join(os.tmpdir(), 'wl-redis-'))]);
  return startServer({
    url: `redis://127.0.0.1:${port}`,
    dir,
    launch: () =>
      spawnServer(binary, [
        '--port',
        `${port}`,
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'yes',
      ]),
    isReady: () => redisAnswersPing(port),
  });
}

/**
 * Starts a single-member `etcd` (Debian package `etcd-server`).
 *
 * @example
 * ```ts
 * const { url } = await startEtcd(); // 'etcd://127.0.0.1:40124'
 * ```
 * @returns The running server.
 */
export async function startEtcd(): Promise<TestServer> {
  const binary = findBinary('etcd', ['/usr/bin/etcd', '/usr/local/bin/etcd'], 'etcd-server');
  const [port, peerPort, dir] = await Promise.all([
    freePort(),
    freePort(),
    mkdtemp(path.join(os.tmpdir(), 'wl-etcd-')),
  ]);
  const client = `http://127.0.0.1:${port}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return startServer({
    url: `etcd://127.0.0.1:${port}`,
    dir,
    launch: () =>
      spawnServer(binary, [
        '--name',
        'wl-test',
        '--data-dir',
        path.join(dir, 'data'),
        '--listen-client-urls',
        client,
        '--advertise-client-urls',
        client,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `wl-test=${peer}`,
      ]),
    isReady: () => etcdIsHealthy(port),
  });
}

/**
 * Starts PostgreSQL (Debian package `postgresql`): `initdb` with trust
 * authentication, then `postgres` with its socket in the data's directory.
 * Both refuse to run as root, so as root they run as the `postgres` user.
 *
 * @example
 * ```ts
 * const { url } = await startPostgres(); // 'postgres://postgres@127.0.0.1:40125/postgres'
 * ```
 * @returns The running server.
 */
export async function startPostgres(): Promise<TestServer> {
  const bin = findPostgresBin();
  const [port, dir] = await Promise.all([freePort(), mkdtemp(path.join(os.tmpdir(), 'wl-postgres-'))]);
  const owner = process.getuid?.() === 0 ? await userIds('postgres') : undefined;
  if (owner) await chown(dir, owner.uid, owner.gid);
  const data = path.join(dir, 'data');
  await promisify(execFile)(
    path.join(bin, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'],
    { ...owner, cwd: dir },
  );
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return startServer({
    url,
    dir,
    launch: () =>
      spawnServer(
        path.join(bin, 'postgres'),
        // pg_stat_statements: the server's own count of each statement, for the tests that count round trips.
        [
          ...['-D', data, '-k', dir, '-p', `${port}`, '-h', '127.0.0.1', '-c', 'fsync=off'],
          ...['-c', 'shared_preload_libraries=pg_stat_statements'],
        ],
        { ...owner, cwd: dir },
      ),
    isReady: () => postgresAnswers(url),
    // SIGINT is the "fast" shutdown: it disconnects clients instead of waiting for them.
    stopSignal: 'SIGINT',
  });
}

/**
 * A TCP port on 127.0.0.1 that nothing listens on right now: the kernel
 * picks it for a listener that is closed at once.
 *
 * @example
 * ```ts
 * await openStore(`redis://127.0.0.1:${await freePort()}`); // rejects: nothing listens there
 * ```
 * @returns The port number.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface ServerPlan {
  readonly url: string;
  readonly dir: string;
  readonly launch: () => ServerProcess;
  readonly isReady: () => Promise<boolean>;
  readonly stopSignal?: NodeJS.Signals;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 50;

async function startServer({ url, dir, launch, isReady, stopSignal = 'SIGTERM' }: ServerPlan): Promise<TestServer> {
  let current = launch();
  try {
    await current.waitUntil(isReady);
  } catch (error) {
    await current.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url,
    async restart() {
      await current.stop(stopSignal);
      current = launch();
      await current.waitUntil(isReady);
    },
    async stop() {
      await current.stop(stopSignal);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Servers still running, killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => running.forEach((child) => child.kill('SIGKILL')));

/** One server process; the clusters of `clusters.ts` are made of them. */
export interface ServerProcess {
  /** Polls `isReady` until it says yes; rejects with the server's output if it exits or takes too long. */
  waitUntil(isReady: () => Promise<boolean>): Promise<void>;
  /** Sends `signal` and waits for the exit, killing the server if it takes too long. */
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** Starts a server process and keeps the tail of its output for error messages. */
export function spawnServer(
  command: string,
  args: string[],
  options: { uid?: number; gid?: number; cwd?: string } = {},
): ServerProcess {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<string>((resolve) => {
    child.once('error', (error) => resolve(error.message));
    child.once('exit', (code, signal) => resolve(`exit code ${code}, signal ${signal}`));
  }).finally(() => running.delete(child));
  const name = path.basename(command);

  return {
    async waitUntil(isReady) {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      let exit: string | undefined;
      void exited.then((how) => (exit = how));
      while (exit === undefined) {
        if (await isReady()) return;
        if (Date.now() > deadline) {
          throw new Error(`${name} did not accept connections within ${READY_TIMEOUT_MS} ms:\n${output}`);
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
      }
      throw new Error(`${name} ${command} exited before accepting connections (${exit}):\n${output}`);
    },
    async stop(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** The path of a server binary, or an error naming the Debian package to install. */
export function findBinary(name: string, candidates: string[], debianPackage: string): string {
  const onPath = (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, name));
  const found = [...candidates, ...onPath].find((candidate) => existsSync(candidate));
  if (found) return found;
  throw new Error(
    `${name} is needed to test the stores and was not found in ${candidates.join(', ')} or on PATH: ` +
      `install the Debian package with \`apt-get install -y ${debianPackage}\``,
  );
}

function findPostgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const bin = versions
    .map((version) => path.join(root, version, 'bin'))
    .find((dir) => existsSync(path.join(dir, 'initdb')));
  return bin ?? path.dirname(findBinary('initdb', [], 'postgresql'));
}

async function userIds(user: string): Promise<{ uid: number; gid: number }> {
  const id = promisify(execFile);
  try {
    const [uid, gid] = await Promise.all([id('id', ['-u', user]), id('id', ['-g', user])]);
    return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
  } catch {
    throw new Error(
      `PostgreSQL refuses to run as root and there is no "${user}" user to run it as: ` +
        'install the Debian package with `apt-get install -y postgresql`, which creates it',
    );
  }
}

/** Whether the Redis (or Sentinel) on `port` of 127.0.0.1 answers PING. */
export function redisAnswersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ready: boolean): void => {
      socket.destroy();
      resolve(ready);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (reply) => done(reply.toString().startsWith('+PONG')));
  });
}

/** Whether the etcd member on `port` of 127.0.0.1 says it is healthy (it has a leader). */
export function etcdIsHealthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/health', timeout: 1000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(response.statusCode === 200 && body.includes('"health":"true"')));
    });
    request.once('timeout', () => request.destroy());
    request.once('error', () => resolve(false));
  });
}

async function postgresAnswers(url: string): Promise<boolean> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}
