import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { MemoryStore, StatusWriter, WriterLease, type HealthServer } from '../src';
import { Driver } from '../src/cli/driver';
import { Replica } from '../src/cli/replica';
import { seededRandom } from '../src/cli/seededRandom';
import { openStore } from '../src/stores/openStore';
import type { RecordStore } from '../src/stores/store';
import { buildCli } from './support/buildCli';
import { eventually } from './support/failoverRun';
import { findBinary, freePort, spawnServer, startRedis, type ServerProcess, type TestServer } from './support/servers';
import { startTcpProxy, type TcpProxy } from './support/tcpProxy';
import { waitFor } from './support/waitFor';
import { spec } from './support/records';

/**
 * A real Prometheus (Debian package `prometheus`, installed by
 * scripts/install-servers.sh) scrapes 3 `rx-writer-lease replica --listen`
 * processes on Redis every second: PromQL says exactly one leads, and that
 * the leader moves to another replica after a SIGKILL. promtool checks the
 * /metrics text (prom-client's and the built-in one) and the alert rules of
 * docs/observability/. And the adversary's case on Redis: a leader cut off
 * by a silent connection says so on /readyz.
 */

const root = path.resolve(__dirname, '..');
const RULES = path.join(root, 'docs', 'observability', 'alerts.yml');
const RULE_TESTS = path.join(root, 'docs', 'observability', 'alerts.test.yml');
const LEASE = { leaseDuration: 500, retryInterval: 100 };
const NAMES = ['r1', 'r2', 'r3'];
/** How long PromQL may take to see a condition: a few scrapes, a lease, a failover. */
const PROMQL_WAIT_MS = 30_000;
const RUN_MS = 120_000;

const binaryOf = (name: string): string | undefined => {
  try {
    return findBinary(name, [`/usr/bin/${name}`, `/usr/local/bin/${name}`], 'prometheus');
  } catch {
    return undefined;
  }
};
const prometheusBinary = binaryOf('prometheus');
const promtoolBinary = binaryOf('promtool');
const installed = prometheusBinary !== undefined && promtoolBinary !== undefined;

(installed ? describe : describe.skip)(
  installed
    ? 'Prometheus scrapes 3 replica processes on Redis'
    : 'Prometheus scrapes 3 replica processes on Redis (skipped: no prometheus/promtool binary; scripts/install-servers.sh installs the Debian package)',
  () => {
    let main: string;
    let redis: TestServer | undefined;
    let driverStore: RecordStore | undefined;
    let driver: Driver | undefined;
    let driving: Promise<void> | undefined;
    let prometheus: ServerProcess | undefined;
    let prometheusPort: number;
    let dir: string | undefined;
    const replicas = new Map<string, { child: ChildProcess; port: number }>();

    beforeAll(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'wl-prometheus-'));
      main = buildCli('prometheus-integration');
      redis = await startRedis();
      driverStore = await openStore(redis.url, { prefix: 'wl_prom' });
      for (const name of NAMES) replicas.set(name, await startReplica(name));
      await Promise.all(
        [...replicas.values()].map(({ port }) =>
          eventually(async () => (await get(port, '/readyz')).status === 200, `replica on ${port} ready`, 20_000),
        ),
      );

      // Work, so that a lease is won (by doing it) and moves: 20 changes a second on 10 keys.
      const keys = Array.from({ length: 10 }, (_, i) => `key-${i}`);
      driver = new Driver({
        store: driverStore,
        keys,
        updates: 1_000_000,
        rate: 20,
        random: seededRandom(5),
        checkLost: false,
      });
      driving = driver.run();

      prometheusPort = await freePort();
      const config = path.join(dir, 'prometheus.yml');
      writeFileSync(config, prometheusConfig([...replicas.values()].map(({ port }) => `127.0.0.1:${port}`)));
      prometheus = spawnServer(prometheusBinary!, [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${prometheusPort}`,
      ]);
      await prometheus.waitUntil(
        async () => (await get(prometheusPort, '/-/ready').catch(() => ({ status: 0 }))).status === 200,
      );
    }, RUN_MS);

    afterAll(async () => {
      driver?.stop();
      await driving?.catch(() => undefined);
      for (const { child } of replicas.values()) child.kill('SIGKILL');
      await prometheus?.stop('SIGTERM');
      await driverStore?.close();
      await redis?.stop();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it(
      'exactly one replica leads (sum(writer_lease_leader) == 1); after a SIGKILL of it, another does',
      async () => {
        await eventually(
          async () => (await scalar('count(up{job="rx-writer-lease"} == 1)')) === 3,
          'Prometheus to scrape the 3 replicas',
          PROMQL_WAIT_MS,
        );
        const leaderAt = async () => {
          const series = await vector('writer_lease_leader == 1');
          return series.length === 1 ? series[0].metric.writer : undefined;
        };
        await eventually(
          async () => (await scalar('sum(writer_lease_leader)')) === 1 && (await leaderAt()) !== undefined,
          'sum(writer_lease_leader) == 1',
          PROMQL_WAIT_MS,
        );
        const first = (await leaderAt())!;
        // Who leads, as each replica believes it: the followers name the leader too.
        await eventually(
          async () => (await scalar(`count(writer_lease_believed_leader{leader="${first}"})`)) === 3,
          `all 3 replicas to believe ${first} leads`,
          PROMQL_WAIT_MS,
        );

        const killedAt = Date.now();
        replicas.get(first)!.child.kill('SIGKILL');
        let second: string | undefined;
        await eventually(
          async () => {
            second = await leaderAt();
            return second !== undefined && second !== first && (await scalar('sum(writer_lease_leader)')) === 1;
          },
          'the leader label to move to another replica, and the sum to be 1 again',
          PROMQL_WAIT_MS,
        );
        const movedMs = Date.now() - killedAt;
        await eventually(
          async () => (await scalar(`count(writer_lease_believed_leader{leader="${second}"})`)) === 2,
          `both survivors to believe ${second} leads`,
          PROMQL_WAIT_MS,
        );
        // `PROMETHEUS_REPORT=1 npx jest spec/prometheus.integration` prints the figures.
        if (process.env.PROMETHEUS_REPORT !== undefined) {
          process.stdout.write(`${JSON.stringify({ first, second, movedMs, believedMs: Date.now() - killedAt })}\n`);
        }
        expect(second).not.toBe(first);
        expect(NAMES).toContain(second);
      },
      RUN_MS,
    );

    it('promtool check metrics accepts the /metrics text of a replica', async () => {
      const [{ port }] = [...replicas.values()].filter(
        ({ child }) => child.exitCode === null && child.signalCode === null,
      );
      const metrics = await get(port, '/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(/^writer_lease_leader\{lease="r\d",writer="r\d"\} [01]$/m);
      const file = path.join(dir!, 'metrics.txt');
      writeFileSync(file, metrics.body);
      await expect(promtool(['check', 'metrics'], file)).resolves.toEqual({ code: 0, output: '' });
    });

    it('promtool check metrics accepts the built-in text (without prom-client)', async () => {
      const file = path.join(dir!, 'builtin.txt');
      writeFileSync(file, await builtInMetricsText());
      await expect(promtool(['check', 'metrics'], file)).resolves.toEqual({ code: 0, output: '' });
    });

    it('promtool accepts the alert rules of docs/observability/ and their tests pass', async () => {
      const checked = await promtool(['check', 'rules', RULES]);
      expect(checked).toEqual({ code: 0, output: expect.stringContaining('SUCCESS: 3 rules found') });
      const tested = await promtool(['test', 'rules', RULE_TESTS]);
      expect(tested).toEqual({ code: 0, output: expect.stringContaining('SUCCESS') });
      // Prometheus loaded them too (its configuration names the file).
      const { data } = JSON.parse((await get(prometheusPort, '/api/v1/rules')).body) as {
        data: { groups: { rules: { name: string; health: string }[] }[] };
      };
      const rules = data.groups.flatMap((group) => group.rules);
      expect(rules.map(({ name }) => name).sort()).toEqual([
        'WriterLeaseNoLeader',
        'WriterLeaseTwoLeaders',
        'WriterLeaseWorkPending',
      ]);
    });

    async function startReplica(name: string): Promise<{ child: ChildProcess; port: number }> {
      const port = await freePort();
      const child = spawn(
        process.execPath,
        [
          main,
          'replica',
          '--store',
          redis!.url,
          '--name',
          name,
          '--prefix',
          'wl_prom',
          '--lease-duration',
          `${LEASE.leaseDuration}`,
          '--retry-interval',
          `${LEASE.retryInterval}`,
          '--listen',
          `127.0.0.1:${port}`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      // Its reports are not read here; the pipe must not fill up.
      child.stdout?.resume();
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
      child.once('exit', (code, signal) => {
        if (code !== 0 && code !== null)
          process.stderr.write(`replica ${name} exited ${code} (${signal}): ${stderr}\n`);
      });
      return { child, port };
    }

    /** A PromQL instant query's vector. */
    async function vector(query: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
      const reply = await get(prometheusPort, `/api/v1/query?query=${encodeURIComponent(query)}`);
      const { status, data } = JSON.parse(reply.body) as {
        status: string;
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      if (status !== 'success') throw new Error(`query ${query}: ${reply.body}`);
      return data.result;
    }

    /** The single value of a PromQL query that aggregates to one series; undefined when it has none. */
    async function scalar(query: string): Promise<number | undefined> {
      const [first] = await vector(query);
      return first === undefined ? undefined : Number(first.value[1]);
    }
  },
);

describe('on Redis: a leader cut off by a silent connection (open, no bytes)', () => {
  let redis: TestServer | undefined;
  const proxies: TcpProxy[] = [];
  const stores: RecordStore[] = [];
  const replicas: Replica[] = [];
  const servers: HealthServer[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  }, 60_000);
  afterAll(async () => {
    for (const replica of replicas) replica.halt();
    await Promise.all(servers.map((server) => server.close()));
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await Promise.all(stores.map((store) => store.close()));
    await redis?.stop();
  });

  it('another replica takes over; the cut-off one still says leader, and /readyz says 503 within a lease and a probe', async () => {
    const leaseDuration = 500;
    const prefix = 'wl_health';
    const redisPort = Number(new URL(redis!.url).port);
    const open = (url: string) => openStore(url, { prefix }).then((store) => (stores.push(store), store));
    const driver = await open(redis!.url);
    /** A replica in this process whose store connections go through a proxy of its own. */
    const start = async (name: string) => {
      const proxy = await startTcpProxy(redisPort);
      proxies.push(proxy);
      const replica = new Replica({
        store: await open(`redis://127.0.0.1:${proxy.port}`),
        name,
        leaseDuration,
        retryInterval: 100,
        strategy: 'writer-lease',
        spread: true,
      });
      replicas.push(replica);
      const server = await replica.serveHealth({ host: '127.0.0.1', port: 0 });
      servers.push(server);
      replica.start();
      return { name, proxy, port: server.address.port };
    };
    const statusOf = async (port: number) => JSON.parse((await get(port, '/status')).body) as Record<string, unknown>;
    const both = [await start('r1'), await start('r2')];
    let generation = 0;
    const change = () => driver.put('spec', 'k', spec(++generation));

    // Changes until one leads and the other follows it (whichever wins the election).
    let roles: { leader: (typeof both)[number]; follower: (typeof both)[number] } | undefined;
    await eventually(
      async () => {
        await change();
        const [first, second] = await Promise.all(both.map(({ port }) => statusOf(port)));
        if (first.state === 'leader' && second.leader === 'r1') roles = { leader: both[0], follower: both[1] };
        if (second.state === 'leader' && first.leader === 'r2') roles = { leader: both[1], follower: both[0] };
        return roles !== undefined;
      },
      'one replica to lead and the other to follow it',
      10_000,
    );
    const { leader, follower } = roles!;
    // Idle when cut: no store call in flight (one would be let go of at the work timeout, and the lease released).
    await eventually(
      async () => {
        const status = await statusOf(leader.port);
        return status.pending === 0 && (status.lastWrite as { generation: number } | null)?.generation === generation;
      },
      'the leader to write the last change and go idle',
      10_000,
    );
    expect((await get(leader.port, '/readyz')).status).toBe(200);

    leader.proxy.silence();
    const cutAt = performance.now();
    let notReadyMs: number | undefined;
    let takenOverMs: number | undefined;
    await eventually(
      async () => {
        await change();
        if (notReadyMs === undefined && (await get(leader.port, '/readyz')).status === 503) {
          notReadyMs = performance.now() - cutAt;
        }
        if (takenOverMs === undefined && (await statusOf(follower.port)).leader === follower.name) {
          takenOverMs = performance.now() - cutAt;
        }
        return notReadyMs !== undefined && takenOverMs !== undefined;
      },
      'the cut-off leader not ready and the other leading',
      15_000,
    );
    // `HEALTH_REPORT=1 npx jest spec/health` prints the figures.
    if (process.env.HEALTH_REPORT !== undefined) {
      process.stdout.write(`${JSON.stringify({ notReadyMs, takenOverMs })}\n`);
    }
    // A lease of silence, then a probe that waits min(lease, 1 s) in vain; the rest is polling.
    expect(notReadyMs).toBeLessThanOrEqual(2 * leaseDuration + 500);
    // The adversary's case: the cut-off leader still believes it leads; /readyz is what says it is cut off.
    expect(await statusOf(leader.port)).toMatchObject({
      state: 'leader',
      leader: leader.name,
      ready: false,
      live: true,
    });
    expect((await get(leader.port, '/healthz')).status).toBe(200);
    expect(await statusOf(follower.port)).toMatchObject({ state: 'leader', leader: follower.name, ready: true });
  }, 60_000);
});

/**
 * The /metrics text of serveHealth when prom-client cannot be loaded: a
 * lease and its writer on a memory store, after one write.
 */
async function builtInMetricsText(): Promise<string> {
  let serve!: typeof import('../src/health').serveHealth;
  jest.isolateModules(() => {
    jest.doMock('../src/packageRequire', () => ({
      packageRequire: (name: string) => {
        throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
      },
    }));
    ({ serveHealth: serve } = require('../src/health') as typeof import('../src/health'));
  });
  const store = new MemoryStore();
  const lease = new WriterLease({ leaseDuration: 200, retryInterval: 20, name: 'r1' });
  const writer = new StatusWriter({ store, lease, writer: 'r1' });
  const subscriptions = [lease.run(), writer.run()];
  const server = await serve({ lease, writer, leaseDuration: 200, listen: { host: '127.0.0.1', port: 0 } });
  try {
    await store.put('spec', 'a', spec(1));
    await waitFor(() => writer.lastWritten !== undefined, 'the first write');
    const { body } = await get(server.address.port, '/metrics');
    expect(body).toContain('writer_lease_leader{lease="r1",writer="r1"} 1\n');
    expect(body).not.toContain('writer_lease_submissions_total'); // leaseMetrics', had prom-client been loaded
    return body;
  } finally {
    subscriptions.forEach((subscription) => subscription.unsubscribe());
    lease.dispose();
    await server.close();
  }
}

/** The scrape configuration of docs/observability.md, with a 1 s interval and static targets. */
function prometheusConfig(targets: string[]): string {
  return `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - ${RULES}
scrape_configs:
  - job_name: rx-writer-lease
    metrics_path: /metrics
    static_configs:
      - targets: [${targets.map((target) => `'${target}'`).join(', ')}]
`;
}

function get(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: target, timeout: 5_000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.once('timeout', () => request.destroy(new Error(`GET ${target} on ${port}: no answer within 5 s`)));
    request.once('error', reject);
  });
}

/** Runs promtool; `input` is a file fed to its stdin (`check metrics` reads stdin). */
async function promtool(args: string[], input?: string): Promise<{ code: number; output: string }> {
  const command =
    input === undefined ? [promtoolBinary!, ...args] : ['sh', '-c', `"$0" "$@" < "${input}"`, promtoolBinary!, ...args];
  try {
    const { stdout, stderr } = await promisify(execFile)(command[0], command.slice(1), { cwd: root });
    return { code: 0, output: `${stdout}${stderr}`.trim() };
  } catch (error) {
    const { code, stdout = '', stderr = '' } = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof code === 'number' ? code : -1, output: `${stdout}${stderr}`.trim() };
  }
}
