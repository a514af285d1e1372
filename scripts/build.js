#!/usr/bin/env node
// Builds the two halves of the package: dist/cjs (CommonJS, with the command
// line) and dist/esm (ES modules). Each gets a package.json naming its module
// type, so that Node and TypeScript read its .js and .d.ts files right.
const { execFileSync } = require('node:child_process');
const { mkdirSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
for (const [config, type] of [
  ['tsconfig.build.json', 'commonjs'],
  ['tsconfig.esm.json', 'module'],
]) {
  execFileSync(process.execPath, [tsc, '-p', join(root, config)], { stdio: 'inherit' });
  const out = join(root, 'dist', type === 'module' ? 'esm' : 'cjs');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'package.json'), `${JSON.stringify({ type })}\n`);
}
// src/packageRequire.ts is `require`, which an ES module does not have; its ES module
// build resolves from the same place (TypeScript cannot emit import.meta for CommonJS).
rmSync(join(root, 'dist', 'esm', 'packageRequire.js.map'));
writeFileSync(
  join(root, 'dist', 'esm', 'packageRequire.js'),
  "import { createRequire } from 'node:module';\nexport const packageRequire = createRequire(import.meta.url);\n",
);
