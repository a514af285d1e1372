// @ts-check
// A typedoc plugin: each module of the API reference is named by the path it
// is imported from (`rx-writer-lease/redis`), not by its file (`stores/redis`).
// The names come from package.json's "exports", so a new export path is named
// without touching this file.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Converter, ReflectionKind } from 'typedoc';

/** @param {import('typedoc').Application} app */
export function load(app) {
  const manifest = JSON.parse(readFileSync(fileURLToPath(import.meta.resolve('../package.json')), 'utf8'));
  /** @type {Map<string, string>} file name as typedoc has it ('stores/redis') → import path */
  const importPaths = new Map();
  for (const [subpath, conditions] of Object.entries(manifest.exports)) {
    const types = conditions?.require?.types;
    if (typeof types !== 'string') continue;
    const file = types.replace(/^\.\/dist\/cjs\//, '').replace(/\.d\.ts$/, '');
    importPaths.set(file, subpath === '.' ? manifest.name : `${manifest.name}/${subpath.slice(2)}`);
  }
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const module of context.project.getReflectionsByKind(ReflectionKind.Module)) {
      const importPath = importPaths.get(module.name);
      if (importPath !== undefined) module.name = importPath;
    }
  });
}
