/**
 * Words into lines of at most `width` characters, for help and notes that fit
 * an 80-column terminal. A word longer than `width` gets a line of its own.
 *
 * @example
 * ```ts
 * wrapText('spec changes per second, on keys drawn at random', 24);
 * // ['spec changes per second,', 'on keys drawn at random']
 * ```
 * @param text One paragraph: words separated by single spaces.
 * @param width The longest line.
 * @returns The lines.
 */
export function wrapText(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  return [...lines, line];
}
