/**
 * `require`, resolving from this package's files: how an optional peer is
 * loaded synchronously, only when a feature that needs it is used.
 *
 * This is the CommonJS build's; `scripts/build.js` writes the ES module
 * build's as `createRequire(import.meta.url)`, which TypeScript cannot emit
 * from a file compiled to both.
 *
 * @internal
 */
export const packageRequire: NodeJS.Require = require;
