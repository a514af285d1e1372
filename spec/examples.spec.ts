import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { exampleContext, type ExampleContext } from './examples/exampleContext';
import { markdownExamples, type MarkdownExample } from './examples/markdownExamples';
import { waitFor } from './support/waitFor';

// Every ```ts block of README.md and docs/*.md is type-checked (by ts-jest, as
// it loads the block written out as a module) and run, and what it prints is
// compared with its `// → ` comments: the examples cannot drift from the API.
// See spec/examples/markdownExamples.ts for the markers a block can carry.
const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'build', 'examples');

/** The package's import paths, as the sources the examples run against. */
const IMPORT_PATHS: Record<string, string> = {
  'rx-writer-lease': 'spec/examples/library',
  'rx-writer-lease/prometheus': 'src/prometheus',
  'rx-writer-lease/redis': 'src/stores/redis',
  'rx-writer-lease/etcd': 'src/stores/etcd',
  'rx-writer-lease/postgres': 'src/stores/postgres',
};

/** Modules of this repository that a guide imports as the reader's own files, next to their code. */
const LOCAL_MODULES: Record<string, string> = {
  './ingressStatusStore': 'examples/kubernetes/ingressStatusStore',
};

const examples = markdownExamples(root);

beforeAll(() => {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
});

it('finds the examples', () => {
  expect(examples.filter(({ file }) => file === 'README.md').length).toBeGreaterThanOrEqual(3);
});

describe.each(examples.filter(({ mode }) => mode !== 'shape'))('$file:$line', (example) => {
  if (example.mode === 'skip') {
    it.skip(`is not run: ${example.reason}`, () => undefined);
    return;
  }
  it(
    example.mode === 'run' ? 'compiles, runs and prints what the text says' : 'compiles',
    async () => {
      if (example.mode === 'compile') {
        expect(typeErrors(write(example))).toEqual([]);
        return;
      }
      const run = load(example);

      const context = exampleContext();
      try {
        await run(context);
        // Outputs of subscriptions may come after the example's last line: wait for as many as it shows.
        await waitFor(
          () => context.printed.length >= example.prints.length,
          `the ${example.prints.length} lines its comments show`,
          20_000,
        );
      } finally {
        await context.finish();
      }
      expect(context.printed).toEqual(example.prints);
    },
    // The first example loaded type-checks against the whole sources: slow on a busy machine.
    120_000,
  );
});

/** Writes the block out as a module; returns its path. */
function write(example: MarkdownExample): string {
  const file = path.join(outDir, `${example.file.replace(/[/.]/g, '_')}_${example.line}.ts`);
  writeFileSync(file, moduleOf(example));
  return file;
}

/**
 * The type errors of a module, from the compiler with the project's options,
 * without running it (a `compile` example talks to what a test cannot have).
 */
function typeErrors(file: string): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      },
    },
  );
  const program = ts.createProgram([file], { ...config?.options, noEmit: true });
  return ts
    .getPreEmitDiagnostics(program)
    .filter((diagnostic) => diagnostic.file?.fileName === file)
    .map((diagnostic) => {
      const { line } = diagnostic.file!.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
      return `line ${line + 1}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
    });
}

/** Writes the block out as a module and loads it: ts-jest type-checks it on the way. */
function load(example: MarkdownExample): (context: ExampleContext) => Promise<void> {
  const file = write(example);
  try {
    return (require(file) as { default: (context: ExampleContext) => Promise<void> }).default;
  } catch (error) {
    // ts-jest's TSError keeps the diagnostics out of its message.
    const diagnostics = (error as { diagnosticText?: string }).diagnosticText;
    if (diagnostics === undefined) throw error;
    throw new Error(`${example.file}:${example.line} does not compile:\n${stripColors(diagnostics)}`, { cause: error });
  }
}

function stripColors(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, '');
}

/**
 * The block as a module: its imports on top, pointed at the sources; its
 * setup and its body inside a function of the context, the body in a scope of
 * its own so that it may declare names the context also has.
 */
function moduleOf({ file, line, code, setup }: MarkdownExample): string {
  const setupParts = splitImports(setup);
  const codeParts = splitImports(code);
  const source = [...setupParts.imports, ...codeParts.imports]
    .join('\n')
    .replace(/(['"])(rx-writer-lease(?:\/[a-z]+)?)\1/g, (_match, _quote, name: string) => {
      const target = IMPORT_PATHS[name];
      if (target === undefined) throw new Error(`${file}:${line}: unknown import path ${name}`);
      return `'${path.relative(outDir, path.join(root, target))}'`;
    })
    .replace(/(['"])(\.\/[A-Za-z]+)\1/g, (match, _quote, name: string) => {
      const target = LOCAL_MODULES[name];
      return target === undefined ? match : `'${path.relative(outDir, path.join(root, target))}'`;
    });
  return [
    `// ${file}:${line}`,
    source,
    `import type { ExampleContext } from '${path.relative(outDir, path.join(__dirname, 'examples', 'exampleContext'))}';`,
    '',
    'export default function example(context: ExampleContext): Promise<void> {',
    '  const { lease, store, console, process, it, test, describe } = context;',
    ...setupParts.rest,
    '  return (async () => {',
    ...codeParts.rest,
    '  })();',
    '}',
    '',
  ].join('\n');
}

/** The import statements of some code (each maybe over several lines), and the rest. */
function splitImports(code: string): { imports: string[]; rest: string[] } {
  const imports: string[] = [];
  const rest: string[] = [];
  let inImport = false;
  for (const text of code.split('\n')) {
    if (inImport || /^import\s/.test(text)) {
      imports.push(text);
      inImport = !/(\bfrom\s+['"][^'"]+['"]|^import\s+['"][^'"]+['"]);?\s*$/.test(text);
    } else {
      rest.push(text);
    }
  }
  return { imports, rest };
}
