import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import {
  etcdIsHealthy,
  findBinary,
  freePort,
  redisAnswersPing,
  spawnServer,
  type ServerProcess,
  type TestServer,
} from './servers';

/** How long a cluster may take to form, or a condition on it to come true. */
const FORM_TIMEOUT_MS = 30_000;
const POLL_MS = 50;

/**
 * One etcd member of a test cluster.
 *
 * @example
 * ```ts
 * const leader = await cluster.leader();
 * await leader.kill(); // SIGKILL
 * await leader.start(); // back with its data; resolves once healthy
 * ```
 */
export interface EtcdMember {
  readonly name: string;
  readonly clientPort: number;
  readonly alive: boolean;
  /** SIGKILL: no shutdown, as a crashed machine. */
  kill(): Promise<void>;
  /** Starts it again on its data; resolves once it is healthy (has a leader). */
  start(): Promise<void>;
}

/**
 * An etcd cluster on 127.0.0.1, each member on free ports with its data in
 * a temporary directory.
 *
 * @example
 * ```ts
 * const cluster = await startEtcdCluster(3);
 * cluster.url; // 'etcd://127.0.0.1:40123,127.0.0.1:40125,127.0.0.1:40127'
 * ```
 */
export interface EtcdCluster {
  /** Every member's client address. */
  readonly url: string;
  readonly members: readonly EtcdMember[];
  /** The member that is Raft leader now, as the live members report it. */
  leader(): Promise<EtcdMember>;
  /** Stops every member and removes the data. */
  stop(): Promise<void>;
}

/**
 * Starts `size` etcd members as one cluster. Heartbeat 50 ms and election
 * timeout 500 ms (etcd's defaults are 100 and 1000) so that a killed
 * leader is replaced in well under a second.
 *
 * @example
 * ```ts
 * const { url } = await startEtcdCluster(3);
 * ```
 * @param size How many members.
 * @returns The running cluster, every member healthy.
 */
export async function startEtcdCluster(size: number): Promise<EtcdCluster> {
  const binary = findBinary('etcd', ['/usr/bin/etcd', '/usr/local/bin/etcd'], 'etcd-server');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wl-etcd-cluster-'));
  const plans: { name: string; clientPort: number; peerPort: number }[] = [];
  for (let i = 0; i < size; i++) {
    plans.push({ name: `m${i + 1}`, clientPort: await freePort(), peerPort: await freePort() });
  }
  const initialCluster = plans.map(({ name, peerPort }) => `${name}=http://127.0.0.1:${peerPort}`).join(',');
  const launch = ({ name, clientPort, peerPort }: (typeof plans)[number]): ServerProcess =>
    spawnServer(binary, [
      '--name',
      name,
      '--data-dir',
      path.join(dir, name),
      '--listen-client-urls',
      `http://127.0.0.1:${clientPort}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${clientPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-token',
      path.basename(dir),
      '--heartbeat-interval',
      '50',
      '--election-timeout',
      '500',
    ]);

  const members = plans.map((plan) => {
    let process: ServerProcess | undefined = launch(plan);
    const member = {
      name: plan.name,
      clientPort: plan.clientPort,
      get alive() {
        return process !== undefined;
      },
      async kill() {
        const dying = process;
        process = undefined;
        await dying?.stop('SIGKILL');
      },
      async start() {
        if (process !== undefined) return;
        process = launch(plan);
        await process.waitUntil(() => etcdIsHealthy(plan.clientPort));
      },
      process: () => process,
    };
    return member;
  });
  const stop = async (): Promise<void> => {
    await Promise.all(members.map((member) => member.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Every member waits for a quorum: they are all launched before any is waited on.
    await Promise.all(
      members.map((member) => member.process()?.waitUntil(() => etcdIsHealthy(member.clientPort)) ?? Promise.resolve()),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `etcd://${members.map(({ clientPort }) => `127.0.0.1:${clientPort}`).join(',')}`,
    members,
    async leader() {
      return until('an etcd leader', async () => {
        for (const member of members.filter(({ alive }) => alive)) {
          const status = await etcdStatus(member.clientPort).catch(() => undefined);
          if (status === undefined || status.leader === undefined || status.leader === '0') continue;
          for (const candidate of members.filter(({ alive }) => alive)) {
            const own = await etcdStatus(candidate.clientPort).catch(() => undefined);
            if (own?.header.member_id === status.leader) return candidate;
          }
        }
        return undefined;
      });
    },
    stop,
  };
}

/**
 * Redis behind Sentinel on 127.0.0.1: one primary, one replica, three
 * Sentinels with quorum 2, each on a free port.
 *
 * @example
 * ```ts
 * const redis = await startSentinelCluster();
 * const store = await openStore(redis.url);
 * const old = await redis.killPrimary();
 * await redis.promoted(old); // the port of the new primary
 * ```
 */
export interface SentinelCluster {
  /** `redis-sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/wl-main`. */
  readonly url: string;
  readonly masterName: string;
  /** The port of the primary, as the Sentinels name it now. */
  primaryPort(): Promise<number>;
  /**
   * Makes the primary stop replicating (it asks a password the replica does
   * not have, and drops the replica's link): writes it acknowledges from now
   * on exist only on the primary, as when a primary dies before its replica
   * received the last writes.
   */
  cutReplication(): Promise<void>;
  /** SIGKILLs the primary; returns its port. */
  killPrimary(): Promise<number>;
  /** Resolves with the new primary's port once the Sentinels name another than `oldPort` and it says it is primary. */
  promoted(oldPort: number): Promise<number>;
  /** Stops every process and removes the data. */
  stop(): Promise<void>;
}

/** The Sentinel settings for tests: a dead primary is noticed after 500 ms. */
const DOWN_AFTER_MS = 500;
const FAILOVER_TIMEOUT_MS = 5_000;

/**
 * Starts a primary, a replica and three Sentinels, and waits until the
 * replica is in sync and every Sentinel knows the replica and the two other
 * Sentinels, so that a failover can be agreed on.
 *
 * @example
 * ```ts
 * const { url } = await startSentinelCluster(); // 'redis-sentinel://127.0.0.1:40123,.../wl-main'
 * ```
 * @returns The running cluster.
 */
export async function startSentinelCluster(): Promise<SentinelCluster> {
  const binary = findBinary('redis-server', ['/usr/bin/redis-server', '/usr/local/bin/redis-server'], 'redis-server');
  const masterName = 'wl-main';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wl-sentinel-'));
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const sentinelPorts = [await freePort(), await freePort(), await freePort()];
  const node = (port: number, extra: string[] = []): ServerProcess =>
    spawnServer(binary, [
      '--port',
      `${port}`,
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--dbfilename',
      `dump-${port}.rdb`,
      '--save',
      '',
      '--appendonly',
      'no',
      ...extra,
    ]);
  const nodes = new Map<number, ServerProcess>([
    [primaryPort, node(primaryPort)],
    [replicaPort, node(replicaPort, ['--replicaof', '127.0.0.1', `${primaryPort}`])],
  ]);
  const sentinels: ServerProcess[] = [];
  const admins = new Map<number, Redis>();
  const stop = async (): Promise<void> => {
    admins.forEach((admin) => admin.disconnect());
    await Promise.all([...nodes.values(), ...sentinels].map((process) => process.stop('SIGKILL')));
    await rm(dir, { recursive: true, force: true });
  };
  const admin = (port: number): Redis => {
    let client = admins.get(port);
    if (client === undefined) {
      client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
      client.on('error', () => undefined);
      admins.set(port, client);
    }
    return client;
  };
  try {
    await Promise.all([...nodes].map(([port, process]) => process.waitUntil(() => redisAnswersPing(port))));
    const replica = admin(replicaPort);
    await until('the replica in sync', async () =>
      (await replica.info('replication')).includes('master_link_status:up') ? true : undefined,
    );
    for (const port of sentinelPorts) {
      const config = path.join(dir, `sentinel-${port}.conf`);
      await writeFile(
        config,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${masterName} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${masterName} ${FAILOVER_TIMEOUT_MS}`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(spawnServer(binary, [config, '--sentinel']));
    }
    await Promise.all(sentinels.map((process, i) => process.waitUntil(() => redisAnswersPing(sentinelPorts[i]))));
    await Promise.all(
      sentinelPorts.map(async (port) => {
        const sentinel = admin(port);
        await until(`Sentinel ${port} to know the replica and the other Sentinels`, async () => {
          const [replicas, others] = await Promise.all([
            sentinel.call('SENTINEL', 'REPLICAS', masterName) as Promise<unknown[]>,
            sentinel.call('SENTINEL', 'SENTINELS', masterName) as Promise<unknown[]>,
          ]);
          return replicas.length >= 1 && others.length >= 2 ? true : undefined;
        });
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const sentinel = admin(sentinelPorts[0]);
  const primaryPortNow = async (): Promise<number> => {
    const [, port] = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
    return Number(port);
  };
  return {
    url: `redis-sentinel://${sentinelPorts.map((port) => `127.0.0.1:${port}`).join(',')}/${masterName}`,
    masterName,
    primaryPort: primaryPortNow,
    async cutReplication() {
      const primary = admin(await primaryPortNow());
      // Connections already open stay logged in: only the replica's next connection is refused.
      await primary.config('SET', 'requirepass', `cut-${Date.now()}`);
      await primary.call('CLIENT', 'KILL', 'TYPE', 'replica');
    },
    async killPrimary() {
      const port = await primaryPortNow();
      admins.get(port)?.disconnect();
      admins.delete(port);
      await nodes.get(port)?.stop('SIGKILL');
      nodes.delete(port);
      return port;
    },
    async promoted(oldPort) {
      return until('a replica promoted by the Sentinels', async () => {
        const port = await primaryPortNow();
        if (port === oldPort) return undefined;
        const role = await admin(port).info('replication');
        return role.includes('role:master') ? port : undefined;
      });
    },
    stop,
  };
}

/**
 * One node of a test Redis Cluster.
 *
 * @example
 * ```ts
 * const [victim] = await cluster.masters();
 * await cluster.kill(victim.port);
 * ```
 */
export interface RedisClusterNode {
  readonly port: number;
  /** The slot ranges it serves (a master), inclusive. */
  readonly slots: readonly (readonly [number, number])[];
  /** The ports of its replicas that are alive and linked to it. */
  readonly replicas: readonly number[];
}

/**
 * A Redis Cluster on 127.0.0.1, every node on a free port with its data in
 * a temporary directory; also a {@link TestServer} (`restart()` stops every
 * node and starts it again on its data).
 *
 * @example
 * ```ts
 * const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
 * const [victim] = await cluster.masters();
 * await cluster.kill(victim.port);
 * await cluster.promoted(victim.port); // the port of the replica that took its slots over
 * ```
 */
export interface RedisCluster extends TestServer {
  /** `redis-cluster://127.0.0.1:P1,...`, every node a seed. */
  readonly url: string;
  /** Every node's port, masters first as created. */
  readonly ports: readonly number[];
  /** The masters and their replicas, as a live node's `CLUSTER SLOTS` says now. */
  masters(): Promise<RedisClusterNode[]>;
  /** The port of the master that serves `slot` now. */
  masterOf(slot: number): Promise<number>;
  /**
   * Makes the master on `port` stop replicating (it asks a password its
   * replicas do not have, and drops their links): writes it acknowledges
   * from now on exist only there, as when a master dies before its
   * replicas received the last writes. Connections already open stay
   * logged in.
   */
  cutReplication(port: number): Promise<void>;
  /** SIGKILL of the node on `port`. */
  kill(port: number): Promise<void>;
  /** Resolves with the port of the node that serves the slots `oldPort` served, once it says it is master. */
  promoted(oldPort: number): Promise<number>;
}

/** The cluster settings of the tests: a node that does not answer for 1 s is failing. */
const CLUSTER_NODE_TIMEOUT_MS = 1000;

/**
 * Starts `masters` × (1 + `replicasPerMaster`) nodes and joins them with
 * `redis-cli --cluster create`, then waits until every node says
 * `cluster_state:ok` and knows every other node, and every replica has
 * finished its first sync (`master_link_status:up`): a replica that has
 * not refuses to fail over.
 *
 * @example
 * ```ts
 * const { url } = await startRedisCluster({ masters: 3, replicasPerMaster: 0 }); // 'redis-cluster://127.0.0.1:40123,...'
 * ```
 * @param layout How many masters, and replicas of each.
 * @returns The running cluster.
 */
export async function startRedisCluster(layout: { masters: number; replicasPerMaster: number }): Promise<RedisCluster> {
  const { masters: masterCount, replicasPerMaster } = layout;
  const binary = findBinary('redis-server', ['/usr/bin/redis-server', '/usr/local/bin/redis-server'], 'redis-server');
  const cli = findBinary('redis-cli', ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'], 'redis-tools');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wl-redis-cluster-'));
  const ports: number[] = [];
  for (let i = 0; i < masterCount * (1 + replicasPerMaster); i++) ports.push(await freePort());
  const launch = (port: number): ServerProcess =>
    spawnServer(binary, [
      '--port',
      `${port}`,
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `nodes-${port}.conf`,
      '--cluster-node-timeout',
      `${CLUSTER_NODE_TIMEOUT_MS}`,
      '--dbfilename',
      `dump-${port}.rdb`,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appenddirname',
      `aof-${port}`,
    ]);
  const nodes = new Map<number, ServerProcess>();
  /** A killed master's first slot, to tell which node took its slots over. */
  const firstSlotOf = new Map<number, number>();
  const admins = new Map<number, Redis>();
  const admin = (port: number): Redis => {
    let client = admins.get(port);
    if (client === undefined) {
      client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
      client.on('error', () => undefined);
      admins.set(port, client);
    }
    return client;
  };
  const forget = (port: number): void => {
    admins.get(port)?.disconnect();
    admins.delete(port);
  };
  const startAll = async (): Promise<void> => {
    for (const port of ports) nodes.set(port, launch(port));
    await Promise.all([...nodes].map(([port, process]) => process.waitUntil(() => redisAnswersPing(port))));
  };
  const stopAll = async (signal: NodeJS.Signals): Promise<void> => {
    [...admins.keys()].forEach(forget);
    await Promise.all([...nodes.values()].map((process) => process.stop(signal)));
    nodes.clear();
  };
  const stop = async (): Promise<void> => {
    await stopAll('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  /** Every live node says the cluster is ok and knows every node; every live replica is in sync. */
  const settled = async (): Promise<void> => {
    await until('the Redis Cluster to settle', async () => {
      for (const port of nodes.keys()) {
        const [info, replication] = await Promise.all([
          admin(port).call('CLUSTER', 'INFO') as Promise<string>,
          admin(port).info('replication'),
        ]);
        if (!info.includes('cluster_state:ok') || !info.includes(`cluster_known_nodes:${ports.length}`)) {
          return undefined;
        }
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return undefined;
      }
      return true;
    });
  };
  const masters = async (): Promise<RedisClusterNode[]> => {
    for (const port of nodes.keys()) {
      const slots = (await admin(port)
        .call('CLUSTER', 'SLOTS')
        .catch(() => undefined)) as [number, number, [string, number], ...[string, number][]][] | undefined;
      if (slots === undefined) continue;
      const byPort = new Map<number, { slots: [number, number][]; replicas: number[] }>();
      for (const [start, end, [, masterPort], ...replicas] of slots) {
        const entry = byPort.get(masterPort) ?? { slots: [], replicas: replicas.map(([, replicaPort]) => replicaPort) };
        entry.slots.push([start, end]);
        byPort.set(masterPort, entry);
      }
      return [...byPort].map(([port, entry]) => ({ port, ...entry }));
    }
    throw new Error('no live node answered CLUSTER SLOTS');
  };
  try {
    await startAll();
    await promisify(execFile)(cli, [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      `${replicasPerMaster}`,
      '--cluster-yes',
    ]);
    await settled();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `redis-cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`,
    ports,
    masters,
    async masterOf(slot) {
      const master = (await masters()).find(({ slots }) => slots.some(([start, end]) => start <= slot && slot <= end));
      if (master === undefined) throw new Error(`no master serves slot ${slot}`);
      return master.port;
    },
    async cutReplication(port) {
      await admin(port).config('SET', 'requirepass', `cut-${Date.now()}`);
      await admin(port).call('CLIENT', 'KILL', 'TYPE', 'replica');
    },
    async kill(port) {
      const served = (await masters()).find((master) => master.port === port)?.slots[0]?.[0];
      if (served !== undefined) firstSlotOf.set(port, served);
      forget(port);
      await nodes.get(port)?.stop('SIGKILL');
      nodes.delete(port);
    },
    async promoted(oldPort) {
      const slot = firstSlotOf.get(oldPort);
      if (slot === undefined) throw new Error(`${oldPort} was not a master when it was killed`);
      return until(`a replica of ${oldPort} promoted`, async () => {
        const master = (await masters()).find(({ slots }) =>
          slots.some(([start, end]) => start <= slot && slot <= end),
        );
        if (master === undefined || master.port === oldPort) return undefined;
        const role = await admin(master.port).info('replication');
        return role.includes('role:master') ? master.port : undefined;
      });
    },
    async restart() {
      await stopAll('SIGTERM');
      await startAll();
      await settled();
    },
    stop,
  };
}

interface EtcdStatus {
  readonly header: { readonly member_id: string };
  readonly leader?: string;
}

/** etcd's JSON gateway: `POST /v3/maintenance/status` (etcdctl is not always installed). */
function etcdStatus(port: number): Promise<EtcdStatus> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, path: '/v3/maintenance/status', method: 'POST', timeout: 1000 },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => {
          try {
            resolve(JSON.parse(body) as EtcdStatus);
          } catch {
            reject(new Error(`etcd status on ${port}: not JSON: ${body.slice(0, 80)}`));
          }
        });
      },
    );
    request.once('timeout', () => request.destroy(new Error('timeout')));
    request.once('error', reject);
    request.end('{}');
  });
}

/** Polls `check` until it returns a value; rejects after {@link FORM_TIMEOUT_MS}. */
async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + FORM_TIMEOUT_MS;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`gave up after ${FORM_TIMEOUT_MS} ms waiting for ${what}`, { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
