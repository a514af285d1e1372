#!/usr/bin/env node
// Every export of the public entry points has a summary and an example
// (docs/architecture.md, "House conventions", 10). typedoc checks that a
// doc comment exists; this checks what is in it, from typedoc's JSON model.
const { execFileSync } = require('node:child_process');
const { mkdtempSync, readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { tmpdir } = require('node:os');

const out = join(mkdtempSync(join(tmpdir(), 'api-')), 'api.json');
execFileSync(join(__dirname, '..', 'node_modules', '.bin', 'typedoc'), ['--json', out, '--logLevel', 'Error'], {
  stdio: 'inherit',
});
const project = JSON.parse(readFileSync(out, 'utf8'));

// typedoc ReflectionKind: Enum 8, Variable 32, Function 64, Class 128, Interface 256, TypeAlias 2097152
const CHECKED = new Set([8, 32, 64, 128, 256, 2097152]);
const commentOf = (reflection) => reflection.comment ?? reflection.signatures?.[0]?.comment;
const missing = [];
const seen = new Set();
for (const module of project.children ?? []) {
  for (const reflection of module.children ?? []) {
    if (!CHECKED.has(reflection.kind) || seen.has(reflection.name)) continue;
    seen.add(reflection.name);
    const comment = commentOf(reflection);
    const summary = (comment?.summary ?? [])
      .map((part) => part.text)
      .join('')
      .trim();
    const hasExample = (comment?.blockTags ?? []).some((tag) => tag.tag === '@example');
    if (!summary) missing.push(`${module.name}: ${reflection.name} has no summary`);
    if (!hasExample) missing.push(`${module.name}: ${reflection.name} has no @example`);
  }
}
// Modules are named by their import path (scripts/typedoc-import-paths.mjs), and every guide is a page.
const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'));
const importPaths = Object.keys(manifest.exports)
  .filter((subpath) => subpath !== './package.json')
  .map((subpath) => (subpath === '.' ? manifest.name : `${manifest.name}/${subpath.slice(2)}`))
  .sort();
const modules = (project.children ?? []).map((module) => module.name).sort();
if (JSON.stringify(modules) !== JSON.stringify(importPaths)) {
  missing.push(`modules are ${modules.join(', ')}; expected the import paths ${importPaths.join(', ')}`);
}
const guides = readdirSync(join(__dirname, '..', 'docs')).filter((file) => file.endsWith('.md'));
const pages = new Set((project.documents ?? []).map((document) => `${document.name}.md`));
for (const guide of guides.filter((file) => !pages.has(file))) missing.push(`docs/${guide} is not a page`);
if (missing.length > 0) {
  console.error(`Doc comments incomplete (${missing.length}):\n  ${missing.join('\n  ')}`);
  process.exit(1);
}
console.log(
  `docs: ${seen.size} exports, each with a summary and an example; modules ${modules.join(', ')}; ${pages.size} guides`,
);
