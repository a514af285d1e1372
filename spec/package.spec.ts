import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(__dirname, '..');
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);
const run = (file: string, args: string[], cwd = root) =>
  execFileSync(file, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

// What a user installs: the packed tarball, checked by publint and
// arethetypeswrong, then installed into a fresh project and loaded both ways.
describe('the published package', () => {
  let workdir: string;
  let tarball: string;

  beforeAll(() => {
    workdir = mkdtempSync(path.join(tmpdir(), 'rx-writer-lease-pack-'));
    run(process.execPath, [path.join(root, 'scripts', 'build.js')]);
    run('npm', ['pack', '--silent', '--pack-destination', workdir]);
    tarball = path.join(workdir, readdirSync(workdir).find((file) => file.endsWith('.tgz')) as string);
  }, 180_000);

  afterAll(() => rmSync(workdir, { recursive: true, force: true }));

  it('passes publint --strict', () => {
    expect(run(bin('publint'), ['--strict', tarball])).toMatch(/All good/);
  }, 60_000);

  it('passes arethetypeswrong (node16 from CJS and ESM, bundler)', () => {
    // Exit code 0 means no problem found; node10 is ignored: engines is >= 20, which reads "exports".
    expect(() => run(bin('attw'), [tarball, '--profile', 'node16', '--format', 'table-flipped'])).not.toThrow();
  }, 60_000);

  it('ships dist, bin and the guides, not the sources or tests', () => {
    const listed = run('tar', ['-tzf', tarball]).split('\n');
    expect(listed).toContain('package/dist/cjs/index.js');
    expect(listed).toContain('package/dist/esm/index.js');
    expect(listed).toContain('package/bin/rx-writer-lease.js');
    expect(listed).toContain('package/docs/getting-started.md'); // the README links to the guides
    expect(listed.filter((file) => /^package\/(src|spec|marbles|bench)\//.test(file))).toEqual([]);
  });

  it('installs into a fresh project and loads with require and with import', () => {
    const project = path.join(workdir, 'consumer');
    execFileSync('mkdir', ['-p', project]);
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    const rxjs = path.join(root, 'node_modules', 'rxjs');
    run('npm', ['install', '--no-audit', '--no-fund', '--silent', tarball, rxjs], project);

    const required = run(
      process.execPath,
      [
        '-e',
        `const { WriterLease, WorkResult } = require('rx-writer-lease');
         const { openRedisStore } = require('rx-writer-lease/redis');
         const lease = new WriterLease({ leaseDuration: 10, retryInterval: 1 });
         lease.try('k', () => WorkResult.Extend);
         console.log(typeof openRedisStore, lease.size, lease.state.state);`,
      ],
      project,
    );
    expect(required.trim()).toBe('function 1 election');

    const imported = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { WriterLease, WorkResult } from 'rx-writer-lease';
         const lease = new WriterLease({ leaseDuration: 10, retryInterval: 1 });
         const processing = lease.run();
         lease.try('k', () => WorkResult.Extend);
         console.log(await lease.wait());
         processing.unsubscribe();`,
      ],
      project,
    );
    expect(imported.trim()).toBe('true');
  }, 180_000);
});
