import { LeaseState } from '../types.js';
import type { ReplicaTally } from './figures.js';
import { formatDuration } from './formatDuration.js';

/** Where a demo run is. */
export type DemoPhase = 'starting' | 'running' | 'converging' | 'idle' | 'stopping' | 'done';

/** What the live view shows: read by the view whenever it draws. */
export interface DemoProgress {
  /** `memory`, `redis://…`: where the records are. */
  readonly store: string;
  readonly strategy: string;
  readonly keys: number;
  readonly phase: DemoPhase;
  /**
   * Since the driver's first change; once every status has converged, the
   * time that took, the run's duration in the final table.
   */
  readonly elapsedMs: number;
  readonly updates: number;
  readonly totalUpdates: number;
  readonly replicas: readonly Readonly<ReplicaTally>[];
}

/** A stream the view writes to; `isTTY` decides between redrawing and printing lines. */
export interface ViewStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  /** A terminal's height: the block never has more lines, or redrawing it would scroll. */
  readonly rows?: number;
  /** A terminal's width: longer lines are cut, or they would wrap and the redraw lose count. */
  readonly columns?: number;
}

/** The room a block has on a terminal, in characters. */
export interface TerminalSize {
  readonly rows: number;
  readonly columns: number;
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
    // Read on each frame: the terminal may have been resized. One row stays free for the cursor.
    const lines = progressBlock(progress, {
      rows: Math.max(1, (this.#out.rows ?? Infinity) - 1),
      columns: this.#out.columns ?? Infinity,
    });
    // Back to the top of the previous block, then overwrite each line and clear its rest.
    const up = this.#drawnLines > 0 ? `\x1b[${this.#drawnLines}A` : '';
    this.#out.write(`${up}${lines.map((line) => `\r\x1b[2K${line}\n`).join('')}`);
    this.#drawnLines = lines.length;
  }
}

/**
 * The block drawn on a terminal, cut to fit it: replicas beyond its height
 * are summed up in one line (the leaders, then killed and ended replicas, are
 * the last to be left out; those shown keep their order), and lines beyond
 * its width are cut.
 *
 * @example
 * ```ts
 * progressBlock(progress, { rows: 6, columns: 80 }).join('\n');
 * // memory · writer-lease · 10 keys   1.23 s  running
 * // updates    60/100  [############--------]
 * //   replica   state       writes  conflicts
 * //   r1        leader          58          1
 * //   r2        follower         0          1
 * //   ... 48 more: 48 follower; 0 writes, 2 conflicts
 * ```
 * @param progress The progress.
 * @param size The terminal's room; unbounded by default.
 * @returns The lines, at most `size.rows`.
 */
export function progressBlock(
  progress: DemoProgress,
  size: TerminalSize = { rows: Infinity, columns: Infinity },
): string[] {
  const { store, strategy, keys, phase, elapsedMs, updates, totalUpdates, replicas } = progress;
  const width = 20;
  const filled = totalUpdates === 0 ? width : Math.round((updates / totalUpdates) * width);
  const nameWidth = Math.max(7, ...replicas.map(({ name }) => name.length));
  const row = ({ name, state, writes, conflicts }: Readonly<ReplicaTally>) =>
    `  ${name.padEnd(nameWidth)}  ${state.padEnd(9)}  ${`${writes}`.padStart(6)}  ${`${conflicts}`.padStart(9)}`;
  const header = [
    `${store} · ${strategy} · ${keys} keys   ${formatDuration(elapsedMs)}  ${phase}`,
    `updates ${`${updates}`.padStart(5)}/${totalUpdates}  [${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`,
    `  ${'replica'.padEnd(nameWidth)}  ${'state'.padEnd(9)}  ${'writes'.padStart(6)}  ${'conflicts'.padStart(9)}`,
  ];
  const room = size.rows - header.length;
  let body: string[];
  if (replicas.length <= room) {
    body = replicas.map(row);
  } else {
    // One line goes to the summary of the replicas left out.
    const shown = new Set(byInterest(replicas).slice(0, Math.max(0, room - 1)));
    const hidden = replicas.filter((replica) => !shown.has(replica));
    body = [...replicas.filter((replica) => shown.has(replica)).map(row), summaryOf(hidden)];
  }
  return [...header, ...body].slice(0, Math.max(1, size.rows)).map((line) => cut(line, size.columns));
}

/** The replicas by how much a reader wants to see them: leaders, then killed and ended ones, then the rest. */
function byInterest(replicas: readonly Readonly<ReplicaTally>[]): Readonly<ReplicaTally>[] {
  const rank = ({ state }: Readonly<ReplicaTally>) =>
    state === LeaseState.Leader ? 0 : state === 'killed' || state === 'gone' || state === 'stopped' ? 1 : 2;
  return [...replicas].sort((a, b) => rank(a) - rank(b));
}

/** `... 48 more: 47 follower, 1 election; 3 writes, 2 conflicts`. */
function summaryOf(hidden: readonly Readonly<ReplicaTally>[]): string {
  const states = new Map<string, number>();
  for (const { state } of hidden) states.set(state, (states.get(state) ?? 0) + 1);
  const byState = [...states].map(([state, count]) => `${count} ${state}`).join(', ');
  const writes = hidden.reduce((sum, { writes }) => sum + writes, 0);
  const conflicts = hidden.reduce((sum, { conflicts }) => sum + conflicts, 0);
  return `  ... ${hidden.length} more: ${byState}; ${writes} writes, ${conflicts} conflicts`;
}

function cut(line: string, columns: number): string {
  return line.length <= columns ? line : `${line.slice(0, Math.max(0, columns - 1))}…`;
}

/**
 * The line printed once a second when the output is not a terminal.
 *
 * @example
 * ```ts
 * progressLine(progress);
 * // '1.00 s running updates 50/100 | r1 leader w=48 c=1 | r2 follower w=0 c=1 | r3 follower w=0 c=0'
 * ```
 * @param progress The progress.
 * @returns The line.
 */
export function progressLine({ phase, elapsedMs, updates, totalUpdates, replicas }: DemoProgress): string {
  const parts = replicas.map(({ name, state, writes, conflicts }) => `${name} ${state} w=${writes} c=${conflicts}`);
  return [`${formatDuration(elapsedMs)} ${phase} updates ${updates}/${totalUpdates}`, ...parts].join(' | ');
}
