/** A table: a header and rows of cells, all strings; numbers are right-aligned. */
export interface Table {
  readonly title: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** Columns aligned right (numbers); the others are aligned left. */
  readonly right: ReadonlySet<number>;
}

/**
 * The table as aligned plain text, for the terminal.
 *
 * @example
 * ```ts
 * textTable({ title: 'Micro', header: ['figure', 'value'], rows: [['tryRatio', '0.51']], right: new Set([1]) });
 * // Micro
 * //   figure    value
 * //   tryRatio   0.51
 * ```
 */
export function textTable({ title, header, rows, right }: Table): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i].length)));
  const line = (cells: readonly string[]) =>
    `  ${cells.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ')}`.trimEnd();
  return [title, line(header), ...rows.map(line)].join('\n');
}

/**
 * The table in Markdown, for docs/benchmarks.md.
 *
 * @example
 * ```ts
 * markdownTable({ title: 'Micro', header: ['figure', 'value'], rows: [['tryRatio', '0.51']], right: new Set([1]) });
 * // | figure | value |
 * // | --- | ---: |
 * // | tryRatio | 0.51 |
 * ```
 */
export function markdownTable({ header, rows, right }: Table): string {
  const line = (cells: readonly string[]) => `| ${cells.map((cell) => cell.replaceAll('|', '\\|')).join(' | ')} |`;
  const rule = `| ${header.map((_, i) => (right.has(i) ? '---:' : '---')).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}
