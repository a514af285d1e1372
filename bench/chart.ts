import type { MacroFigures } from './macro';

/** How each strategy is drawn: colour, dash, and the marker that tells overlapping lines apart. */
const STYLES: Record<string, { color: string; dash: string; marker: 'circle' | 'square' | 'triangle' }> = {
  'writer-lease': { color: '#1f6feb', dash: '', marker: 'circle' },
  'lock-lease': { color: '#2da44e', dash: '6 4', marker: 'square' },
  uncoordinated: { color: '#cf222e', dash: '', marker: 'triangle' },
};

const PANEL = { width: 380, height: 300, left: 52, right: 16, top: 40, bottom: 44 };
const LEGEND_HEIGHT = 36;

/**
 * Attempts per update against replicas, one panel per key count, one line
 * per strategy, with the physical limit (one attempt per update) dotted.
 * Plain SVG text, no dependency: the bench writes it to docs/benchmarks/attempts.svg.
 *
 * @example
 * ```ts
 * writeFileSync('docs/benchmarks/attempts.svg', attemptsChart(results.macro.runs));
 * ```
 * @param runs The macro runs.
 * @returns The SVG document.
 */
export function attemptsChart(runs: readonly MacroFigures[]): string {
  const keyCounts = [...new Set(runs.map((run) => run.keys))].sort((a, b) => a - b);
  const strategies = [...new Set(runs.map((run) => run.strategy))];
  const replicaCounts = [...new Set(runs.map((run) => run.replicas))].sort((a, b) => a - b);
  const yMax = Math.max(2, Math.ceil(Math.max(...runs.map((run) => run.attemptsPerUpdate), ...replicaCounts) / 2) * 2);
  const width = PANEL.width * keyCounts.length;
  const height = PANEL.height + LEGEND_HEIGHT;

  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    legend(strategies),
    ...keyCounts.map((keys, i) =>
      panel(
        runs.filter((run) => run.keys === keys),
        { x: i * PANEL.width, y: LEGEND_HEIGHT, keys, yMax, replicaCounts, strategies },
      ),
    ),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}

interface PanelLayout {
  x: number;
  y: number;
  keys: number;
  yMax: number;
  replicaCounts: number[];
  strategies: string[];
}

function panel(runs: readonly MacroFigures[], layout: PanelLayout): string {
  const { x, y, keys, yMax, replicaCounts, strategies } = layout;
  const plotLeft = x + PANEL.left;
  const plotRight = x + PANEL.width - PANEL.right;
  const plotTop = y + PANEL.top;
  const plotBottom = y + PANEL.height - PANEL.bottom;
  const xMin = Math.min(...replicaCounts);
  const xMax = Math.max(...replicaCounts);
  const px = (replicas: number) => plotLeft + ((replicas - xMin) / Math.max(1, xMax - xMin)) * (plotRight - plotLeft);
  const py = (attempts: number) => plotBottom - (attempts / yMax) * (plotBottom - plotTop);

  const yTicks = Array.from({ length: Math.floor(yMax / 2) + 1 }, (_, i) => ({ y: py(2 * i), label: `${2 * i}` }));
  const out = panelFrame(
    { y, title: `${keys} keys`, plotLeft, plotRight, plotTop, plotBottom },
    {
      replicaCounts,
      px,
      yTicks,
      yLabel: 'attempts per update',
      yLabelX: x + 16,
    },
  );
  out.push(
    // The physical limit: one write per update.
    `<line x1="${plotLeft}" x2="${plotRight}" y1="${f(py(1))}" y2="${f(py(1))}" stroke="#8c959f" stroke-dasharray="2 3"/>`,
    `<text x="${plotRight - 2}" y="${f(py(1) - 5)}" text-anchor="end" fill="#8c959f" font-size="10">1 attempt per update</text>`,
  );
  for (const strategy of strategies) {
    const style = STYLES[strategy] ?? { color: '#000000', dash: '', marker: 'circle' as const };
    const points = runs
      .filter((run) => run.strategy === strategy)
      .sort((a, b) => a.replicas - b.replicas)
      .map((run) => ({ x: px(run.replicas), y: py(run.attemptsPerUpdate), value: run.attemptsPerUpdate }));
    if (points.length === 0) continue;
    const dash = style.dash === '' ? '' : ` stroke-dasharray="${style.dash}"`;
    out.push(
      `<polyline fill="none" stroke="${style.color}" stroke-width="2"${dash} points="${points.map((p) => `${f(p.x)},${f(p.y)}`).join(' ')}"/>`,
      ...points.map((p) => marker(style.marker, p.x, p.y, style.color)),
    );
    const last = points[points.length - 1];
    // Labels: above the line for uncoordinated, below for the two near 1 so that they do not collide.
    const below = strategy !== 'uncoordinated';
    const offset = below ? (strategy === 'lock-lease' ? 28 : 16) : -10;
    out.push(
      `<text x="${f(last.x - 4)}" y="${f(last.y + offset)}" text-anchor="end" fill="${style.color}" font-size="11">${last.value.toFixed(2)}</text>`,
    );
  }
  out.push('</g>');
  return out.join('\n');
}

function legend(strategies: readonly string[]): string {
  const out = ['<g>'];
  strategies.forEach((strategy, i) => {
    const style = STYLES[strategy] ?? { color: '#000000', dash: '', marker: 'circle' as const };
    const x = PANEL.left + i * 170;
    const dash = style.dash === '' ? '' : ` stroke-dasharray="${style.dash}"`;
    out.push(
      `<line x1="${x}" x2="${x + 30}" y1="18" y2="18" stroke="${style.color}" stroke-width="2"${dash}/>`,
      marker(style.marker, x + 15, 18, style.color),
      `<text x="${x + 38}" y="22" fill="#24292f">${strategy}</text>`,
    );
  });
  out.push('</g>');
  return out.join('\n');
}

function marker(kind: 'circle' | 'square' | 'triangle', x: number, y: number, color: string): string {
  if (kind === 'circle') return `<circle cx="${f(x)}" cy="${f(y)}" r="4" fill="${color}"/>`;
  if (kind === 'square')
    return `<rect x="${f(x - 4)}" y="${f(y - 4)}" width="8" height="8" fill="none" stroke="${color}" stroke-width="1.5"/>`;
  return `<polygon points="${f(x)},${f(y - 5)} ${f(x - 5)},${f(y + 4)} ${f(x + 5)},${f(y + 4)}" fill="${color}"/>`;
}

/** Coordinates to one decimal keep the file small and stable from run to run. */
/** Where a panel sits and what it is called. */
interface PanelBox {
  y: number;
  title: string;
  plotLeft: number;
  plotRight: number;
  plotTop: number;
  plotBottom: number;
}

/**
 * The frame both charts' panels share: the title, the horizontal grid with
 * its labels, the replica counts under the x axis, both axes and their names.
 * Opens a `<g>` the caller closes.
 */
function panelFrame(
  { y, title, plotLeft, plotRight, plotTop, plotBottom }: PanelBox,
  axes: {
    replicaCounts: readonly number[];
    px: (replicas: number) => number;
    yTicks: readonly { y: number; label: string }[];
    yLabel: string;
    yLabelX: number;
  },
): string[] {
  const out = [
    `<g>`,
    `<text x="${(plotLeft + plotRight) / 2}" y="${y + 22}" text-anchor="middle" font-weight="bold">${title}</text>`,
  ];
  for (const tick of axes.yTicks) {
    out.push(
      `<line x1="${plotLeft}" x2="${plotRight}" y1="${f(tick.y)}" y2="${f(tick.y)}" stroke="#e5e7eb"/>`,
      `<text x="${plotLeft - 6}" y="${f(tick.y + 4)}" text-anchor="end" fill="#57606a">${tick.label}</text>`,
    );
  }
  for (const replicas of axes.replicaCounts) {
    out.push(
      `<text x="${f(axes.px(replicas))}" y="${plotBottom + 16}" text-anchor="middle" fill="#57606a">${replicas}</text>`,
    );
  }
  out.push(
    `<line x1="${plotLeft}" x2="${plotLeft}" y1="${plotTop}" y2="${plotBottom}" stroke="#57606a"/>`,
    `<line x1="${plotLeft}" x2="${plotRight}" y1="${plotBottom}" y2="${plotBottom}" stroke="#57606a"/>`,
    `<text x="${(plotLeft + plotRight) / 2}" y="${plotBottom + 34}" text-anchor="middle" fill="#24292f">replicas</text>`,
    `<text transform="translate(${axes.yLabelX} ${(plotTop + plotBottom) / 2}) rotate(-90)" text-anchor="middle" fill="#24292f">${axes.yLabel}</text>`,
  );
  return out;
}

function f(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}

/** The dotted line of a panel of {@link outageChart}: a target, with its label. */
export interface OutageBound {
  readonly ms: number;
  readonly label: string;
}

/**
 * Failover and handover against replicas, in virtual time: two panels
 * (leader killed, leader stopped gracefully), one line per strategy that
 * waits for a leader (writer lease, lock lease), at the smallest key count of
 * the runs, on a logarithmic scale of ms since the two strategies are a
 * hundred times apart; each panel's target dotted. Uncoordinated replicas
 * wait for nobody (0 ms): they have no line. The bench writes it to
 * docs/benchmarks/outages.svg.
 *
 * @example
 * ```ts
 * writeFileSync('docs/benchmarks/outages.svg', outageChart(results.macro.runs, {
 *   failover: { ms: 1130, label: 'writer-lease bound 1130 ms' },
 *   handover: { ms: 100, label: 'writer-lease bound 100 ms' },
 * }));
 * ```
 * @param runs The macro runs.
 * @param bounds The target of each panel.
 * @returns The SVG document.
 */
export function outageChart(
  runs: readonly MacroFigures[],
  bounds: { readonly failover: OutageBound; readonly handover: OutageBound },
): string {
  const keys = Math.min(...runs.map((run) => run.keys));
  const shown = runs.filter((run) => run.keys === keys && run.replicas > 1 && run.strategy !== 'uncoordinated');
  const strategies = [...new Set(shown.map((run) => run.strategy))];
  const replicaCounts = [...new Set(shown.map((run) => run.replicas))].sort((a, b) => a - b);
  const width = PANEL.width * 2;
  const height = PANEL.height + LEGEND_HEIGHT;
  const panels: { title: string; figure: (run: MacroFigures) => number | null; bound: OutageBound }[] = [
    { title: `leader killed: failover (${keys} keys)`, figure: (run) => run.failoverMs, bound: bounds.failover },
    { title: `leader stops: handover (${keys} keys)`, figure: (run) => run.handoverMs, bound: bounds.handover },
  ];
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    legend(strategies),
    ...panels.map((spec, i) =>
      outagePanel(shown, { ...spec, x: i * PANEL.width, y: LEGEND_HEIGHT, replicaCounts, strategies }),
    ),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}

interface OutagePanelLayout {
  title: string;
  figure: (run: MacroFigures) => number | null;
  bound: OutageBound;
  x: number;
  y: number;
  replicaCounts: number[];
  strategies: string[];
}

/** Decades of ms from 1 ms to 100 s: the log scale of {@link outageChart}. */
const DECADES = [1, 10, 100, 1_000, 10_000, 100_000];

function outagePanel(runs: readonly MacroFigures[], layout: OutagePanelLayout): string {
  const { title, figure, bound, x, y, replicaCounts, strategies } = layout;
  const plotLeft = x + PANEL.left + 8;
  const plotRight = x + PANEL.width - PANEL.right;
  const plotTop = y + PANEL.top;
  const plotBottom = y + PANEL.height - PANEL.bottom;
  // Replica counts evenly spaced: 3, 5, 10 and 30 would crowd on a linear axis.
  const px = (replicas: number) =>
    plotLeft + ((replicaCounts.indexOf(replicas) + 0.5) / replicaCounts.length) * (plotRight - plotLeft);
  const low = Math.log10(DECADES[0]);
  const high = Math.log10(DECADES[DECADES.length - 1]);
  // 0 ms (an instant hand-over) sits on the axis floor, 1 ms.
  const py = (ms: number) =>
    plotBottom - ((Math.log10(Math.max(ms, DECADES[0])) - low) / (high - low)) * (plotBottom - plotTop);

  const yTicks = DECADES.map((ms) => ({ y: py(ms), label: ms >= 1000 ? `${ms / 1000} s` : `${ms} ms` }));
  const out = panelFrame(
    { y, title, plotLeft, plotRight, plotTop, plotBottom },
    {
      replicaCounts,
      px,
      yTicks,
      yLabel: 'ms, log scale',
      yLabelX: x + 14,
    },
  );
  out.push(
    `<line x1="${plotLeft}" x2="${plotRight}" y1="${f(py(bound.ms))}" y2="${f(py(bound.ms))}" stroke="#8c959f" stroke-dasharray="2 3"/>`,
    // Under the title, where no point can sit: the target is close to the writer lease's failover.
    `<text x="${(plotLeft + plotRight) / 2}" y="${y + 36}" text-anchor="middle" fill="#8c959f" font-size="10">dotted: ${bound.label}</text>`,
  );
  for (const strategy of strategies) {
    const style = STYLES[strategy] ?? { color: '#000000', dash: '', marker: 'circle' as const };
    const points = runs
      .filter((run) => run.strategy === strategy && figure(run) !== null)
      .sort((a, b) => a.replicas - b.replicas)
      .map((run) => ({ x: px(run.replicas), y: py(figure(run) ?? 0), value: figure(run) ?? 0 }));
    if (points.length === 0) continue;
    const dash = style.dash === '' ? '' : ` stroke-dasharray="${style.dash}"`;
    out.push(
      `<polyline fill="none" stroke="${style.color}" stroke-width="2"${dash} points="${points.map((p) => `${f(p.x)},${f(p.y)}`).join(' ')}"/>`,
      ...points.map((p) => marker(style.marker, p.x, p.y, style.color)),
      // Every point's value, above it: the figures are the point of this chart.
      ...points.map(
        (p) =>
          `<text x="${f(p.x)}" y="${f(p.y - 9)}" text-anchor="middle" fill="${style.color}" font-size="10">${msLabel(p.value)}</text>`,
      ),
    );
  }
  out.push('</g>');
  return out.join('\n');
}

/** `981.7` → `982 ms`, `15216` → `15.2 s`. */
function msLabel(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** What {@link ceilingChart} draws of one store's throughput figures. */
export interface CeilingSeries {
  readonly store: string;
  readonly rawCas: { readonly oneClient: number };
  readonly rates: readonly { readonly rate: number; readonly p99: number | null; readonly held?: boolean }[];
  readonly ceiling: { readonly rate: number } | null;
}

/** One colour and marker per store, in the order given. */
const SERIES_STYLES = [
  { color: '#1f6feb', marker: 'circle' as const },
  { color: '#cf222e', marker: 'triangle' as const },
  { color: '#2da44e', marker: 'square' as const },
  { color: '#8250df', marker: 'circle' as const },
  { color: '#bf8700', marker: 'triangle' as const },
];
/** Rates of the x axis's ticks, changes a second. */
const RATE_TICKS = [25, 50, 100, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000];
/** The latency target of the ceiling, ms. */
const CEILING_P99_MS = 100;

/**
 * The ceiling search of each store: p99 latency against the rate asked for
 * (both on log scales), one line per store; a filled marker is a rate that
 * held (converged, p99 within 100 ms, the driver kept up), a hollow one a
 * rate that did not. The 100 ms target is dotted; each store's goal, a
 * quarter of its raw one-client compare-and-set rate, is a dashed vertical
 * line of its colour. The bench writes it to docs/benchmarks/ceiling.svg.
 *
 * @example
 * ```ts
 * writeFileSync('docs/benchmarks/ceiling.svg', ceilingChart(results.throughput, 0.25));
 * ```
 * @param series The throughput figures of each store.
 * @param goalShare The goal, as a share of the raw one-client rate.
 * @returns The SVG document.
 */
export function ceilingChart(series: readonly CeilingSeries[], goalShare: number): string {
  const width = 760;
  const legendHeight = 40 + 18 * series.length;
  const height = PANEL.height + 40 + legendHeight;
  const plotLeft = 84;
  const plotRight = width - 32;
  const plotTop = legendHeight + 36;
  const plotBottom = height - PANEL.bottom;
  const names = shortNames(series.map(({ store }) => store));
  const rates = series.flatMap((s) => [...s.rates.map(({ rate }) => rate), s.rawCas.oneClient * goalShare]);
  const low = RATE_TICKS.filter((tick) => tick <= Math.min(...rates)).at(-1) ?? RATE_TICKS[0];
  const high = RATE_TICKS.find((tick) => tick >= Math.max(...rates)) ?? RATE_TICKS[RATE_TICKS.length - 1];
  const px = (rate: number) =>
    plotLeft +
    ((Math.log2(rate) - Math.log2(low)) / Math.max(1e-9, Math.log2(high) - Math.log2(low))) * (plotRight - plotLeft);
  const yLow = Math.log10(1);
  const yHigh = Math.log10(10_000);
  const py = (ms: number) =>
    plotBottom - ((Math.log10(Math.min(Math.max(ms, 1), 10_000)) - yLow) / (yHigh - yLow)) * (plotBottom - plotTop);

  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${(plotLeft + plotRight) / 2}" y="16" text-anchor="middle" font-weight="bold">p99 latency against the rate asked for: 3 replica processes, 1000 records</text>`,
  ];
  series.forEach((s, i) => {
    const style = SERIES_STYLES[i % SERIES_STYLES.length];
    const y = 36 + 18 * i;
    out.push(
      `<line x1="${plotLeft}" x2="${plotLeft + 30}" y1="${y}" y2="${y}" stroke="${style.color}" stroke-width="2"/>`,
      marker(style.marker, plotLeft + 15, y, style.color),
      `<text x="${plotLeft + 38}" y="${y + 4}" fill="#24292f">${escapeXml(names[i])}: raw compare-and-set ${s.rawCas.oneClient.toLocaleString('en')}/s from 1 client, goal ${Math.round(s.rawCas.oneClient * goalShare).toLocaleString('en')}/s; ceiling ${s.ceiling === null ? 'none' : `${s.ceiling.rate.toLocaleString('en')}/s`}</text>`,
    );
  });
  for (const ms of [1, 10, 100, 1_000, 10_000]) {
    out.push(
      `<line x1="${plotLeft}" x2="${plotRight}" y1="${f(py(ms))}" y2="${f(py(ms))}" stroke="#e5e7eb"/>`,
      `<text x="${plotLeft - 6}" y="${f(py(ms) + 4)}" text-anchor="end" fill="#57606a">${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`}</text>`,
    );
  }
  for (const tick of RATE_TICKS.filter((rate) => rate >= low && rate <= high)) {
    out.push(
      `<line x1="${f(px(tick))}" x2="${f(px(tick))}" y1="${plotTop}" y2="${plotBottom}" stroke="#f3f4f6"/>`,
      `<text x="${f(px(tick))}" y="${plotBottom + 16}" text-anchor="middle" fill="#57606a">${tick.toLocaleString('en')}</text>`,
    );
  }
  out.push(
    `<line x1="${plotLeft}" x2="${plotLeft}" y1="${plotTop}" y2="${plotBottom}" stroke="#57606a"/>`,
    `<line x1="${plotLeft}" x2="${plotRight}" y1="${plotBottom}" y2="${plotBottom}" stroke="#57606a"/>`,
    `<text x="${(plotLeft + plotRight) / 2}" y="${plotBottom + 34}" text-anchor="middle" fill="#24292f">spec changes a second asked of the driver (log scale)</text>`,
    `<text transform="translate(16 ${(plotTop + plotBottom) / 2}) rotate(-90)" text-anchor="middle" fill="#24292f">p99 ms (log scale)</text>`,
    `<line x1="${plotLeft}" x2="${plotRight}" y1="${f(py(CEILING_P99_MS))}" y2="${f(py(CEILING_P99_MS))}" stroke="#8c959f" stroke-dasharray="2 3"/>`,
    `<text x="${plotRight - 2}" y="${f(py(CEILING_P99_MS) - 5)}" text-anchor="end" fill="#8c959f" font-size="10">p99 target 100 ms</text>`,
  );
  series.forEach((s, i) => {
    const style = SERIES_STYLES[i % SERIES_STYLES.length];
    const goal = s.rawCas.oneClient * goalShare;
    out.push(
      `<line x1="${f(px(goal))}" x2="${f(px(goal))}" y1="${plotTop}" y2="${plotBottom}" stroke="${style.color}" stroke-dasharray="6 4" stroke-opacity="0.6"/>`,
      `<text x="${f(px(goal) + 3)}" y="${plotTop + 12 + 12 * i}" fill="${style.color}" font-size="10">${escapeXml(names[i])} goal</text>`,
    );
    const points = s.rates
      .filter((row) => row.p99 !== null)
      .map((row) => ({ x: px(row.rate), y: py(row.p99 ?? 0), held: row.held !== false, p99: row.p99 ?? 0 }));
    if (points.length === 0) return;
    out.push(
      `<polyline fill="none" stroke="${style.color}" stroke-width="2" points="${points.map((p) => `${f(p.x)},${f(p.y)}`).join(' ')}"/>`,
      ...points.map((p) =>
        p.held
          ? marker(style.marker, p.x, p.y, style.color)
          : `<circle cx="${f(p.x)}" cy="${f(p.y)}" r="5" fill="#ffffff" stroke="${style.color}" stroke-width="2"/>`,
      ),
      ...points.map(
        (p) =>
          `<text x="${f(p.x)}" y="${f(p.y - 9)}" text-anchor="middle" fill="${style.color}" font-size="10">${Math.round(p.p99)}</text>`,
      ),
    );
  });
  out.push(
    `<text x="${plotLeft}" y="${36 + 18 * series.length}" fill="#57606a" font-size="11">filled: the rate held; hollow: it did not (p99 over 100 ms, or no convergence, or the driver fell behind); dashed: goal = ${goalShare} × raw</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}

/** `redis://127.0.0.1:6379` → `redis`; the port too when two stores share a scheme. */
function shortNames(stores: readonly string[]): string[] {
  const schemes = stores.map((store) => /^([a-z-]+):/.exec(store)?.[1] ?? store);
  return stores.map((store, i) =>
    schemes.filter((scheme) => scheme === schemes[i]).length > 1
      ? `${schemes[i]} ${store.replace(/^[a-z-]+:\/\/([^@]*@)?/, '')}`
      : schemes[i],
  );
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
