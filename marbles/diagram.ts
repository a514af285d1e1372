import { TestScheduler } from 'rxjs/testing';
import type { Scenario } from './scenarios';

/** A labelled mark on a row, at a frame. */
interface Mark {
  readonly frame: number;
  readonly text: string;
}

const ROW_HEIGHT = 44;
const LABEL_WIDTH = 90;
const PX_PER_FRAME = 5;
const MARGIN = 16;

/** The marks of a marble string, as TestScheduler reads it in run mode. */
function marksOf(marble: string, text: (char: string) => string): Mark[] {
  // Frames are milliseconds only inside run(), as in the tests.
  let messages: ReturnType<typeof TestScheduler.parseMarbles> = [];
  new TestScheduler(() => undefined).run(() => {
    messages = TestScheduler.parseMarbles(marble, undefined, undefined, undefined, true);
  });
  return messages
    .filter(({ notification }) => notification.kind === 'N')
    .map(({ frame, notification }) => ({ frame, text: text(String((notification as { value?: unknown }).value)) }));
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Draws a scenario as an SVG marble diagram: one timeline per input and
 * output row, a mark at each frame where something happens, and a time axis
 * in milliseconds. Deterministic: the same scenario gives the same bytes.
 */
export function renderDiagram(scenario: Scenario): string {
  const rows: { label: string; marks: Mark[]; input: boolean }[] = [
    ...scenario.inputs.map(({ label, marble }) => ({
      label,
      input: true,
      marks: marksOf(marble, (char) => char),
    })),
    ...scenario.outputs.map(({ stream, marble, values }) => ({
      label: stream === 'leader' ? 'leader$' : stream === 'state' ? 'state$' : 'runs',
      input: false,
      marks: marksOf(marble, (char) =>
        values && char in values ? JSON.stringify(values[char]).replace(/^"|"$/g, '') : char,
      ),
    })),
  ];
  const lastFrame = Math.max(...rows.flatMap(({ marks }) => marks.map(({ frame }) => frame)), 10);
  const axisFrames = Math.ceil((lastFrame + 10) / 10) * 10;
  const width = LABEL_WIDTH + axisFrames * PX_PER_FRAME + 2 * MARGIN + 24;
  const height = (rows.length + 1) * ROW_HEIGHT + 2 * MARGIN + 24;
  const x = (frame: number) => MARGIN + LABEL_WIDTH + frame * PX_PER_FRAME;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="12">`,
    `<title>${escape(scenario.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${MARGIN}" y="${MARGIN + 12}" font-size="14" font-weight="bold">${escape(scenario.title)}</text>`,
  ];
  rows.forEach((row, index) => {
    const y = MARGIN + 24 + (index + 1) * ROW_HEIGHT - ROW_HEIGHT / 2;
    const colour = row.input ? '#1f6feb' : '#2da44e';
    out.push(`<text x="${MARGIN}" y="${y + 4}" fill="#555">${escape(row.label)}</text>`);
    out.push(`<line x1="${x(0)}" y1="${y}" x2="${x(axisFrames)}" y2="${y}" stroke="#999"/>`);
    for (const mark of row.marks) {
      out.push(`<circle cx="${x(mark.frame)}" cy="${y}" r="6" fill="${colour}"/>`);
      out.push(`<text x="${x(mark.frame)}" y="${y - 10}" text-anchor="middle">${escape(mark.text)}</text>`);
    }
  });
  const axisY = MARGIN + 24 + rows.length * ROW_HEIGHT + 12;
  out.push(`<line x1="${x(0)}" y1="${axisY}" x2="${x(axisFrames)}" y2="${axisY}" stroke="#333"/>`);
  for (let frame = 0; frame <= axisFrames; frame += 10) {
    out.push(`<line x1="${x(frame)}" y1="${axisY - 3}" x2="${x(frame)}" y2="${axisY + 3}" stroke="#333"/>`);
    out.push(`<text x="${x(frame)}" y="${axisY + 16}" text-anchor="middle" fill="#555">${frame}</text>`);
  }
  out.push(`<text x="${x(axisFrames) + 12}" y="${axisY + 4}" fill="#555">ms</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
