import { spawnSync } from 'node:child_process';
import path from 'node:path';

/**
 * Compiles `src/` into a directory of its own under `node_modules/.cache`
 * (so that `require('rxjs')` resolves) and returns its `cli/main.js`: a spec
 * file must not race another one, or a developer's build, on `dist/`.
 */
export function buildCli(name: string): string {
  const root = path.resolve(__dirname, '..', '..');
  const outDir = path.join(root, 'node_modules', '.cache', 'rx-writer-lease-spec', name);
  const tsc = require.resolve('typescript/bin/tsc');
  const args = [
    '-p',
    path.join(root, 'tsconfig.build.json'),
    '--outDir',
    outDir,
    '--declaration',
    'false',
    '--sourceMap',
    'false',
    '--inlineSources',
    'false',
  ];
  const built = spawnSync(process.execPath, [tsc, ...args], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`tsc failed (${built.status}):\n${built.stdout}${built.stderr}`);
  return path.join(outDir, 'cli', 'main.js');
}
