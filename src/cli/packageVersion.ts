import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The version of the installed rx-writer-lease, from its package.json: the
 * nearest one above this file, found from the sources (`src/cli`) and from
 * the build (`dist/cjs/cli`) alike.
 *
 * @example
 * ```ts
 * packageVersion(); // '0.1.0'
 * ```
 * @returns The version.
 * @throws Error when no package.json of rx-writer-lease is found above this file.
 */
export function packageVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === 'rx-writer-lease' && manifest.version !== undefined) return manifest.version;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (path.dirname(dir) === dir) throw new Error(`rx-writer-lease: no package.json of it above ${__dirname}`);
  }
}
