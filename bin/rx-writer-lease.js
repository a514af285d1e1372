#!/usr/bin/env node
'use strict';

let cli;
try {
  cli = require('../dist/cjs/cli/main.js');
} catch (error) {
  if (error.code !== 'MODULE_NOT_FOUND' || !String(error.message).includes('dist/cjs/cli/main.js')) throw error;
  process.stderr.write('rx-writer-lease: dist/ is missing: run `npm run build` first\n');
  process.exit(1);
}
cli.runCli(process.argv.slice(2));
