import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const root = path.resolve(__dirname, '..');
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const run = (file: string, args: string[], cwd = root) =>
  execFileSync(file, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const runAsync = async (file: string, args: string[], cwd: string) =>
  (await promisify(execFile)(file, args, { cwd, encoding: 'utf8' })).stdout;

/**
 * How a TypeScript project can be set up to consume the package: its module
 * setting, its package type, and so which build and which declarations it
 * reads. node10 (`module: commonjs`) ignores "exports" and reads `types` and
 * `typesVersions`.
 */
const PROFILES = [
  { name: 'commonjs (node10)', type: 'commonjs', compilerOptions: { module: 'commonjs' } },
  { name: 'node16 (CommonJS)', type: 'commonjs', compilerOptions: { module: 'node16' } },
  { name: 'nodenext (ES module)', type: 'module', compilerOptions: { module: 'nodenext' } },
  { name: 'bundler (ES module)', type: 'module', compilerOptions: { module: 'es2022', moduleResolution: 'bundler' } },
] as const;

/**
 * Every export path, used as a user would, without any optional peer: the
 * lease works, the store adapters load and say which client to install, and
 * so does the Prometheus reporter. No top-level await: the same file is
 * compiled as CommonJS too. In scope: the ES library, @types/node (rxjs's
 * declarations need its timers) and the package's declarations, all checked
 * (no skipLibCheck).
 */
const WITHOUT_PEERS = `
import { MemoryStore, WorkResult, WriterLease } from 'rx-writer-lease';
import { openRedisStore } from 'rx-writer-lease/redis';
import { openEtcdStore } from 'rx-writer-lease/etcd';
import { openPostgresStore } from 'rx-writer-lease/postgres';
import { leaseMetrics, PeerDependencyMissingError, type MetricsRegistry } from 'rx-writer-lease/prometheus';
import { recordStoreConformance } from 'rx-writer-lease/testing';

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

async function main(): Promise<void> {
  const lease = new WriterLease({ leaseDuration: 10, retryInterval: 1 });
  const processing = lease.run();
  lease.try('k', () => WorkResult.Extend);
  console.log('leader', await lease.wait());
  processing.unsubscribe();
  const store = new MemoryStore();
  console.log('memory', (await store.compareAndSet('status', 'k', { generation: 1 }, null)).ok);
  console.log('testing', typeof recordStoreConformance);
  const registry: MetricsRegistry | undefined = undefined;
  try {
    leaseMetrics(lease, { registry });
  } catch (error) {
    console.log(error instanceof PeerDependencyMissingError, messageOf(error));
  }
  const stores = [
    () => openRedisStore('redis://127.0.0.1:1'),
    () => openEtcdStore('etcd://127.0.0.1:1'),
    () => openPostgresStore('postgres://app@127.0.0.1:1/app'),
  ];
  for (const open of stores) console.log(await open().then(() => 'opened', messageOf));
  lease.dispose();
}
main().catch((error: unknown) => console.log('failed:', error));
`;

/** With prom-client installed: the reporter takes its Registry (checked against the package's own interface). */
const WITH_PROM_CLIENT = `
import { Registry } from 'prom-client';
import { WorkResult, WriterLease } from 'rx-writer-lease';
import { leaseMetrics } from 'rx-writer-lease/prometheus';


async function main(): Promise<void> {
  const registry = new Registry();
  const lease = new WriterLease({ leaseDuration: 10, retryInterval: 1, name: 'consumer' });
  const reporting = leaseMetrics(lease, { registry });
  const processing = lease.run();
  lease.try('k', () => WorkResult.Extend);
  await lease.wait();
  console.log((await registry.metrics()).split('\\n').find((line) => line.startsWith('writer_lease_leader{')));
  reporting.unsubscribe();
  processing.unsubscribe();
  lease.dispose();
}
main().catch((error: unknown) => console.log('failed:', error));
`;

// What a user installs: the packed tarball, checked by publint and
// arethetypeswrong, then installed once into a fresh project; one project per
// TypeScript module setting shares that install, type-checks and runs.
describe('the published package', () => {
  let workdir: string;
  let tarball: string;
  let installed: string;
  let withPromClient: string;
  /** What each consumer project printed, by profile and variant; compiled and run in the background. */
  const printed = new Map<string, Promise<string[]>>();

  beforeAll(async () => {
    workdir = mkdtempSync(path.join(tmpdir(), 'rx-writer-lease-pack-'));
    run('npm', ['pack', '--silent', '--pack-destination', workdir]);
    tarball = path.join(workdir, readdirSync(workdir).find((file) => file.endsWith('.tgz')) as string);

    // One install for every profile, and one beside it with prom-client, so that the
    // package finds it as a user's install would. rxjs (the required peer) and
    // prom-client come from this checkout; the package's own dependency from the
    // npm cache when it is there.
    const linked = (name: string) => path.join(root, 'node_modules', name);
    [installed, withPromClient] = await Promise.all([
      install('installed', [tarball, linked('rxjs')]),
      install('with-prom-client', [tarball, linked('rxjs'), linked('prom-client')]),
    ]);

    // The consumers compile and run two at a time while the other tests go on: each is a tsc
    // of its own, mostly spent reading @types/node and rxjs, and this machine's cores are shared.
    const slot = limitConcurrency(2);
    for (const profile of PROFILES) {
      for (const [variant, source, from] of [
        ['without peers', WITHOUT_PEERS, installed],
        ['with prom-client', WITH_PROM_CLIENT, withPromClient],
      ] as const) {
        const result = slot(() => compileAndRun(consumer(profile, source, from)));
        result.catch(() => undefined); // reported by its test
        printed.set(`${profile.name}/${variant}`, result);
      }
    }
  }, 180_000);

  afterAll(() => rmSync(workdir, { recursive: true, force: true }));

  it('passes publint --strict', async () => {
    expect(await runAsync(bin('publint'), ['--strict', tarball], root)).toMatch(/All good/);
  }, 60_000);

  it('passes arethetypeswrong in every profile (node10, node16 from CommonJS and ES modules, bundler)', async () => {
    // Exit code 0: no problem found in any profile.
    expect(await runAsync(bin('attw'), [tarball, '--format', 'table-flipped'], root)).toMatch(/No problems found/);
  }, 60_000);

  it('ships dist, bin and the guides, not the sources or tests', () => {
    const listed = run('tar', ['-tzf', tarball]).split('\n');
    expect(listed).toContain('package/dist/cjs/index.js');
    expect(listed).toContain('package/dist/esm/index.js');
    expect(listed).toContain('package/bin/rx-writer-lease.js');
    expect(listed).toContain('package/docs/getting-started.md'); // the README links to the guides
    expect(listed.filter((file) => /^package\/(src|spec|marbles|bench)\//.test(file))).toEqual([]);
  });

  describe.each(PROFILES)('in a project with module $compilerOptions.module, type $type', (profile) => {
    it('type-checks and runs every export path without the optional peers', async () => {
      expect(await printed.get(`${profile.name}/without peers`)).toEqual([
        'leader true',
        'memory true',
        'testing function',
        'true leaseMetrics needs the package "prom-client": install it with `npm install prom-client`',
        expect.stringMatching(/needs the package "ioredis": install it with `npm install ioredis`/),
        expect.stringMatching(/needs the package "etcd3": install it with `npm install etcd3`/),
        expect.stringMatching(/needs the package "pg": install it with `npm install pg`/),
      ]);
    }, 120_000);

    it('reports to a prom-client Registry when prom-client is installed', async () => {
      expect(await printed.get(`${profile.name}/with prom-client`)).toEqual([
        'writer_lease_leader{lease="consumer"} 1',
      ]);
    }, 120_000);
  });

  /**
   * A project of its own: package.json, tsconfig.json, index.ts, and a
   * node_modules made of links to the packages of an install.
   */
  function consumer(profile: (typeof PROFILES)[number], source: string, installed: string): string {
    const dir = mkdtempSync(path.join(workdir, 'consumer-'));
    writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: profile.type }),
    );
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          lib: ['es2022'],
          types: ['node'],
          strict: true,
          skipLibCheck: false,
          outDir: 'out',
          ...profile.compilerOptions,
        },
        files: ['index.ts'],
      }),
    );
    writeFileSync(path.join(dir, 'index.ts'), source);
    const modules = path.join(dir, 'node_modules');
    mkdirSync(modules);
    const packages: Record<string, string> = {
      '@types/node': path.join(root, 'node_modules', '@types', 'node'),
    };
    for (const name of listPackages(path.join(installed, 'node_modules'))) {
      packages[name] = path.join(installed, 'node_modules', name);
    }
    for (const [name, target] of Object.entries(packages)) {
      mkdirSync(path.dirname(path.join(modules, name)), { recursive: true });
      symlinkSync(target, path.join(modules, name), 'dir');
    }
    return dir;
  }

  async function install(name: string, packages: string[]): Promise<string> {
    const dir = path.join(workdir, name);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true }));
    await runAsync(
      'npm',
      ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--silent', ...packages],
      dir,
    );
    return dir;
  }

  /** The packages in a node_modules folder, scoped ones as `@scope/name`. */
  function listPackages(modules: string): string[] {
    return readdirSync(modules)
      .filter((name) => !name.startsWith('.'))
      .flatMap((name) =>
        name.startsWith('@') ? readdirSync(path.join(modules, name)).map((inner) => `${name}/${inner}`) : [name],
      );
  }

  async function compileAndRun(dir: string): Promise<string[]> {
    try {
      await runAsync(process.execPath, [tsc, '-p', 'tsconfig.json'], dir);
    } catch (error) {
      throw new Error(`tsc failed in ${dir}:\n${(error as { stdout?: string }).stdout ?? String(error)}`, {
        cause: error,
      });
    }
    const printed = await runAsync(process.execPath, [path.join('out', 'index.js')], dir);
    return printed.trim().split('\n');
  }
});

/** Runs at most `concurrency` of the tasks given at once, the others in order as slots free up. */
function limitConcurrency(concurrency: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return <T>(task: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      const start = () => {
        running++;
        task()
          .then(resolve, reject)
          .finally(() => {
            running--;
            waiting.shift()?.();
          });
      };
      if (running < concurrency) start();
      else waiting.push(start);
    });
}
