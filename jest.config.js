const { readdirSync, readFileSync } = require('node:fs');
const path = require('node:path');

/**
 * Two projects (docs/architecture.md, "Tests"):
 * - `unit` (`npm run test:unit`): marbles/ and the spec/ files that start no
 *   server and no child process, in virtual time or short real time;
 * - `integration` (`npm run test:integration`): the spec/ files that start
 *   Redis, etcd or PostgreSQL (spec/support/servers.ts, clusters.ts), spawn
 *   processes (the built CLI, replica processes, packaging) or run for long
 *   in real time.
 * `jest` alone runs both.
 *
 * A spec file is an integration test when its name ends in
 * `.integration.spec.ts`, when it is listed in LONG_REAL_TIME, or when its
 * text names a server or process starter, or the demo, which runs for
 * seconds in real time (INTEGRATION_MARKERS; describeEachStore starts
 * servers too): a new test file lands in the right project without being
 * listed here.
 */
const INTEGRATION_MARKERS =
  /\b(startRedis|startEtcd|startPostgres|start[A-Za-z]*Cluster|spawnServer|describeEachStore|startStoreServers|buildCli|runDemo)\b|['"](node:)?child_process['"]/;

/** The suites that run on ioredis 6 as well: the store contract (Redis, Redis Cluster) and Sentinel. */
const IOREDIS_6 = ['spec/stores.spec.ts', 'spec/redisSentinel.spec.ts'];

/** Files that start nothing but run for long in real time (relative to the root). */
const LONG_REAL_TIME = [];

/** Every `*.spec.ts` under `dir`, relative to the root, with `/`. */
function specFiles(dir) {
  return readdirSync(path.join(__dirname, dir), { withFileTypes: true }).flatMap((entry) => {
    const file = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return specFiles(file);
    return entry.name.endsWith('.spec.ts') ? [file] : [];
  });
}

const INTEGRATION = specFiles('spec').filter(
  (file) =>
    file.endsWith('.integration.spec.ts') ||
    LONG_REAL_TIME.includes(file) ||
    INTEGRATION_MARKERS.test(readFileSync(path.join(__dirname, file), 'utf8')),
);

/** Matches the absolute path of `file` (relative to the root), with either separator. */
const pathRegex = (file) =>
  `[/\\\\]${file
    .split('/')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[/\\\\]')}$`;

/** What both projects share: the same ts-jest transform for both. */
const shared = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  // Sources import with .js extensions, as ES modules need; under ts-jest they are .ts files.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
};

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      ...shared,
      displayName: 'unit',
      roots: ['<rootDir>/spec', '<rootDir>/marbles'],
      testMatch: ['**/*.spec.ts'],
      testPathIgnorePatterns: ['/node_modules/', ...INTEGRATION.map(pathRegex)],
    },
    {
      ...shared,
      displayName: 'integration',
      roots: ['<rootDir>/spec'],
      // No file: match nothing rather than every file.
      testRegex: INTEGRATION.length > 0 ? INTEGRATION.map(pathRegex) : ['^$'],
    },
    {
      // The Redis suites once more on ioredis 6 (the peer range takes 5 and 6): `ioredis` is the
      // `ioredis6` alias of the dev dependencies here.
      ...shared,
      displayName: 'ioredis6',
      roots: ['<rootDir>/spec'],
      moduleNameMapper: { ...shared.moduleNameMapper, '^ioredis$': 'ioredis6' },
      testRegex: IOREDIS_6.map(pathRegex),
    },
  ],
};
