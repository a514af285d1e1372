import { Writable } from 'node:stream';

/** A stream that keeps what is written; a terminal of the given size when `rows` is set. */
export function capture(terminal?: { rows: number; columns: number }) {
  const chunks: string[] = [];
  const stream = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        chunks.push(String(chunk));
        done();
      },
    }),
    terminal === undefined ? { isTTY: false } : { isTTY: true, ...terminal },
  );
  return { stream, text: () => chunks.join(''), chunks };
}
