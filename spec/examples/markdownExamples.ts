import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * How a code block of the guides is checked.
 *
 * - `run` (no marker): type-checked and run; what it prints is compared
 *   with its `// → ` comments.
 * - `compile`: type-checked only (against the dev dependencies, e.g.
 *   @kubernetes/client-node), for an example that needs what a test cannot
 *   have (a Kubernetes cluster). The marker says why.
 * - `shape`: not code to run but an API's shape (signatures); left out.
 * - `skip`: an example that needs what neither a test nor this repository's
 *   dev dependencies have; reported as skipped, with the reason the marker
 *   gives. None is, today.
 */
export type ExampleMode = 'run' | 'compile' | 'shape' | 'skip';

/** One ```ts block of a Markdown file. */
export interface MarkdownExample {
  /** The file, relative to the repository root. */
  readonly file: string;
  /** The line of the opening fence (1-based). */
  readonly line: number;
  readonly code: string;
  readonly mode: ExampleMode;
  /** What the mode marker says after the mode: why. */
  readonly reason: string;
  /**
   * Declarations the text describes around the block but the block does not
   * show, from an `<!-- example-setup ... -->` comment before it.
   */
  readonly setup: string;
  /** The `// → ` comments, in order: what the example prints, one line each. */
  readonly prints: readonly string[];
}

const FENCE = /^```(ts|typescript)\s*$/;
const MODE = /^<!--\s*example:\s*(compile|shape|skip)\b(.*?)\s*-->\s*$/;
/** `// → text`, with an optional note in parentheses after two spaces or more. */
const PRINTS = /^\s*\/\/ → (.*?)(?:\s{2,}\(.*\))?\s*$/;

/**
 * The ```ts blocks of README.md and docs/*.md.
 *
 * A block can be preceded (blank lines aside) by a mode marker,
 * `<!-- example: compile|shape|skip (why) -->`, and by a setup comment, whose
 * imports join the block's and whose declarations come before it:
 *
 * ```md
 * <!-- example-setup
 * const me = 'replica-1';
 * -->
 * ```
 *
 * @param root The repository root.
 * @returns Every block, in file order.
 */
export function markdownExamples(root: string): MarkdownExample[] {
  const files = [
    'README.md',
    ...readdirSync(path.join(root, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .sort(),
  ].map((file) => (file === 'README.md' ? file : path.join('docs', file)));
  return files.flatMap((file) => examplesOf(file, readFileSync(path.join(root, file), 'utf8')));
}

function examplesOf(file: string, text: string): MarkdownExample[] {
  const lines = text.split('\n');
  const examples: MarkdownExample[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (/^```/.test(lines[i]) && !FENCE.test(lines[i])) {
      i = closingFence(lines, i); // another language's block: step over it
      continue;
    }
    if (!FENCE.test(lines[i])) continue;
    const end = closingFence(lines, i);
    const code = lines.slice(i + 1, end).join('\n');
    const { mode, reason, setup } = markersBefore(lines, i);
    const prints = code
      .split('\n')
      .map((line) => PRINTS.exec(line)?.[1])
      .filter((printed): printed is string => printed !== undefined);
    examples.push({ file, line: i + 1, code, mode, reason, setup, prints });
    i = end;
  }
  return examples;
}

function closingFence(lines: readonly string[], open: number): number {
  for (let i = open + 1; i < lines.length; i++) if (/^```\s*$/.test(lines[i])) return i;
  throw new Error(`unclosed code block at line ${open + 1}`);
}

/** The HTML comments right above a fence (blank lines between them allowed). */
function markersBefore(lines: readonly string[], fence: number): { mode: ExampleMode; reason: string; setup: string } {
  let mode: ExampleMode = 'run';
  let reason = '';
  let setup = '';
  let i = fence - 1;
  while (i >= 0) {
    if (lines[i].trim() === '') {
      i--;
      continue;
    }
    const modeMatch = MODE.exec(lines[i]);
    if (modeMatch !== null) {
      mode = modeMatch[1] as ExampleMode;
      reason = modeMatch[2].trim();
      i--;
      continue;
    }
    if (lines[i].trim() === '-->') {
      let start = i - 1;
      while (start >= 0 && !lines[start].startsWith('<!--')) start--;
      if (start >= 0 && lines[start].trim() === '<!-- example-setup') {
        setup = lines.slice(start + 1, i).join('\n');
        i = start - 1;
        continue;
      }
    }
    break;
  }
  return { mode, reason, setup };
}
