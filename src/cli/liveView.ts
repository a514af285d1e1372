import type { ReplicaTally } from './figures.js';

/** Where a demo run is. */
export type DemoPhase = 'starting' | 'running' | 'converging' | 'idle' | 'stopping' | 'done';

/** What the live view shows: read by the view whenever it draws. */
export interface DemoProgress {
  /** `memory`, `redis://…`: where the records are. */
  readonly store: string;
  readonly strategy: string;
  readonly keys: number;
  readonly phase: DemoPhase;
  /** Since the driver's first change. */
  readonly elapsedMs: number;
  readonly updates: number;
  readonly totalUpdates: number;
  readonly replicas: readonly Readonly<ReplicaTally>[];
}

/** A stream the view writes to; `isTTY` decides between redrawing and printing lines. */
export interface ViewStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** How often a terminal is redrawn, and how often a line is printed otherwise. */
const REDRAW_MS = 100;
const LINE_MS = 1000;

/**
 * The demo's live view. On a terminal it redraws a small block in place
 * (each replica's state, writes and conflicts; the updates done); on a pipe
 * or file it prints one line per second at most.
 *
 * @example
 * ```ts
 * const view = new LiveView(process.stdout);
 * view.start(() => progress);
 * // r1 leader  w 48 c 1 | r2 follower w 0 c 1 | ...   (redrawn every 100 ms)
 * view.stop(); // draws the last frame and leaves it on screen
 * ```
 */
export class LiveView {
  readonly #out: ViewStream;
  readonly #tty: boolean;
  #read: (() => DemoProgress) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Lines of the block drawn last, to move back over on a terminal. */
  #drawnLines = 0;

  /**
   * @param out Where to draw.
   */
  constructor(out: ViewStream) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  /**
   * Starts drawing what `read()` returns.
   *
   * @param read The progress now.
   */
  start(read: () => DemoProgress): void {
    this.#read = read;
    if (this.#tty) this.#draw();
    this.#timer = setInterval(() => this.#draw(), this.#tty ? REDRAW_MS : LINE_MS);
    this.#timer.unref();
  }

  /** Stops drawing; on a terminal the last frame is drawn and stays. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#tty) this.#draw();
  }

  #draw(): void {
    const progress = this.#read?.();
    if (progress === undefined) return;
    if (!this.#tty) {
      this.#out.write(`${progressLine(progress)}\n`);
      return;
    }
    const lines = progressBlock(progress);
    // Back to the top of the previous block, then overwrite each line and clear its rest.
    const up = this.#drawnLines > 0 ? `\x1b[${this.#drawnLines}A` : '';
    this.#out.write(`${up}${lines.map((line) => `\r\x1b[2K${line}\n`).join('')}`);
    this.#drawnLines = lines.length;
  }
}

/**
 * The block drawn on a terminal.
 *
 * @example
 * ```ts
 * progressBlock(progress).join('\n');
 * // memory · writer-lease · 10 keys   1.2 s  running
 * // updates   60/100  [############--------]
 * //   replica   state       writes  conflicts
 * //   r1        leader          58          1
 * ```
 * @param progress The progress.
 * @returns The lines.
 */
export function progressBlock(progress: DemoProgress): string[] {
  const { store, strategy, keys, phase, elapsedMs, updates, totalUpdates, replicas } = progress;
  const width = 20;
  const filled = totalUpdates === 0 ? width : Math.round((updates / totalUpdates) * width);
  const nameWidth = Math.max(7, ...replicas.map(({ name }) => name.length));
  return [
    `${store} · ${strategy} · ${keys} keys   ${(elapsedMs / 1000).toFixed(1)} s  ${phase}`,
    `updates ${`${updates}`.padStart(5)}/${totalUpdates}  [${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`,
    `  ${'replica'.padEnd(nameWidth)}  ${'state'.padEnd(9)}  ${'writes'.padStart(6)}  ${'conflicts'.padStart(9)}`,
    ...replicas.map(
      ({ name, state, writes, conflicts }) =>
        `  ${name.padEnd(nameWidth)}  ${state.padEnd(9)}  ${`${writes}`.padStart(6)}  ${`${conflicts}`.padStart(9)}`,
    ),
  ];
}

/**
 * The line printed once a second when the output is not a terminal.
 *
 * @example
 * ```ts
 * progressLine(progress);
 * // '1.0 s running updates 50/100 | r1 leader w=48 c=1 | r2 follower w=0 c=1 | r3 follower w=0 c=0'
 * ```
 * @param progress The progress.
 * @returns The line.
 */
export function progressLine({ phase, elapsedMs, updates, totalUpdates, replicas }: DemoProgress): string {
  const parts = replicas.map(({ name, state, writes, conflicts }) => `${name} ${state} w=${writes} c=${conflicts}`);
  return [`${(elapsedMs / 1000).toFixed(1)} s ${phase} updates ${updates}/${totalUpdates}`, ...parts].join(' | ');
}
