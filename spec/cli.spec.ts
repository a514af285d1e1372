import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { LeaseState } from '../src';
import { DEMO_HELP, REPLICA_HELP } from '../src/cli/args';
import { demoNow } from '../src/cli/demoClock';
import type { DemoSummary } from '../src/cli/demo';
import { errorLine } from '../src/cli/errorLine';
import type { ReplicaTally } from '../src/cli/figures';
import { LiveView, progressBlock, type DemoProgress } from '../src/cli/liveView';
import { main, type CliIO } from '../src/cli/main';
import { summaryTable } from '../src/cli/table';
import { capture } from './support/capture';
import { freePort } from './support/servers';
import { waitFor } from './support/waitFor';

function cli() {
  const stdout = capture();
  const stderr = capture();
  const io: CliIO = { stdout: stdout.stream, stderr: stderr.stream };
  return { io, stdout: stdout.text, stderr: stderr.text };
}

/** Each option of a help, its lines joined. */
const optionsOf = (help: string) =>
  help
    .slice(help.indexOf('Options:\n') + 'Options:\n'.length)
    .split(/\n(?= {2}-)/)
    .map((option) => option.trim().replace(/\s+/g, ' '));

/** The flags a help lists: its lines that start with `  --`. */
const flagsOf = (help: string) => [...help.matchAll(/^ {2}(?:-h, )?(--[a-z-]+)/gm)].map(([, flag]) => flag);

describe('--help and --version', () => {
  it.each([
    ['demo', DEMO_HELP],
    ['replica', REPLICA_HELP],
  ])('%s --help describes every flag of its usage: what it does, its unit, its default', async (command, help) => {
    const { io, stdout } = cli();
    expect(await main([command, '--help'], io)).toBe(0);
    expect(stdout()).toBe(`${help}\n`);
    const usage = help.slice(0, help.indexOf('\n\n'));
    const inUsage = [...new Set([...usage.matchAll(/--[a-z-]+/g)].map(([flag]) => flag))];
    expect(flagsOf(help).sort()).toEqual([...inUsage, '--help'].sort());
    for (const option of optionsOf(help)) {
      expect(option).toMatch(/^(-h, )?--\S+( [A-Z]+)? +\S.{10,}/); // a description, not just the flag
      if (!/--help|replica.*--store/.test(`${command} ${option}`)) expect(option).toMatch(/\(default: [^)]+\)$/);
    }
  });

  it('gives the unit of every duration', () => {
    for (const option of optionsOf(DEMO_HELP).filter((o) => / MS /.test(o))) expect(option).toMatch(/milliseconds/);
  });

  it('--version prints the version of package.json', async () => {
    const { io, stdout } = cli();
    expect(await main(['--version'], io)).toBe(0);
    expect(stdout()).toBe(`${(require('../package.json') as { version: string }).version}\n`);
  });

  it('--help names the commands and points to their help', async () => {
    const { io, stdout } = cli();
    expect(await main(['--help'], io)).toBe(0);
    expect(stdout()).toMatch(/^ {2}demo +\S/m);
    expect(stdout()).toMatch(/^ {2}replica +\S/m);
    expect(stdout()).toContain('rx-writer-lease demo --help');
    expect(stdout()).toContain('--version');
  });
});

const tally = (name: string, state: ReplicaTally['state'], writes = 0, conflicts = 0): ReplicaTally => ({
  name,
  state,
  writes,
  conflicts,
  lastWriteAt: 0,
});

const progressOf = (replicas: ReplicaTally[]): DemoProgress => ({
  store: 'memory',
  strategy: 'writer-lease',
  keys: 10,
  phase: 'running',
  elapsedMs: 1234,
  updates: 60,
  totalUpdates: 100,
  replicas,
});

describe('the live view fits the terminal', () => {
  const many = [
    ...Array.from({ length: 30 }, (_, i) => tally(`r${i + 1}`, LeaseState.Follower, 0, 1)),
    tally('r31', LeaseState.Leader, 58, 0),
    ...Array.from({ length: 19 }, (_, i) => tally(`r${i + 32}`, LeaseState.Follower)),
  ];

  it('lists every replica when they fit', () => {
    const lines = progressBlock(progressOf(many.slice(0, 3)), { rows: 20, columns: 80 });
    expect(lines).toHaveLength(6);
    expect(lines[0]).toBe('memory · writer-lease · 10 keys   1.23 s  running');
  });

  it('sums up the replicas beyond its height in one line, never leaving the leader out', () => {
    const lines = progressBlock(progressOf(many), { rows: 8, columns: 80 });
    expect(lines).toHaveLength(8);
    expect(lines.slice(3, 7).map((line) => line.trim().split(/ +/)[0])).toEqual(['r1', 'r2', 'r3', 'r31']);
    expect(lines[6]).toMatch(/^ {2}r31 +leader +58 +0$/);
    expect(lines[7]).toBe('  ... 46 more: 46 follower; 0 writes, 27 conflicts');
  });

  it('cuts lines to its width', () => {
    for (const line of progressBlock(progressOf(many), { rows: 8, columns: 30 })) {
      expect(line.length).toBeLessThanOrEqual(30);
    }
  });

  it('redraws in place on a terminal of 10 rows: never more lines than it has, minus the cursor line', async () => {
    const terminal = capture({ rows: 10, columns: 80 });
    const view = new LiveView(terminal.stream);
    view.start(() => progressOf(many));
    await waitFor(() => terminal.chunks.length >= 2, 'two frames');
    view.stop();
    for (const frame of terminal.chunks) {
      const lines = frame.split('\n').length - 1;
      expect(lines).toBeLessThanOrEqual(9);
    }
    // Each frame after the first moves up over the lines of the one before.
    expect(terminal.chunks[1].startsWith('\u001b[9A')).toBe(true);
  });
});

describe('the final table', () => {
  const summary: DemoSummary = {
    store: 'redis://127.0.0.1:6379',
    strategy: 'writer-lease',
    lostWrites: 0,
    handoverMs: null,
    demotions: 0,
    latencyMs: { p50: 3, p99: 12, max: 15 },
    steadyLatencyMs: { p50: 3, p99: 10, max: 12 },
    convergeMs: 2034,
    burstConvergeMs: null,
    replicas: 3,
    keys: 10,
    updates: 100,
    writes: 60,
    conflicts: 3,
    attemptsPerUpdate: 0.63,
    writesPerUpdate: 0.6,
    idleWrites: 0,
    failoverMs: 985,
    converged: true,
    durationMs: 1986,
    shardsByReplica: { r2: 1, r3: 0 },
    movedShards: 1,
    joinMs: null,
    conflictsSinceEvent: 2,
  };
  const durations = { leaseDuration: 1000, retryInterval: 100 };

  it('shows the duration as the live view does', () => {
    expect(summaryTable(summary, durations).split('\n')[0]).toBe(
      'redis://127.0.0.1:6379 · writer-lease · 3 replicas · 10 keys · 1.99 s',
    );
  });

  it('says why a figure is off its ideal, and why fewer writes than changes is not: coalesced changes', () => {
    const [, rest] = summaryTable(summary, durations).split('\nOff the ideal:\n');
    const [offIdeal, notes] = rest.split('\nNotes:\n').map((text) => text.replace(/\s+/g, ' '));
    expect(offIdeal).toMatch(/conflicts 3: writes refused on version, from the election .* and the failover/);
    expect(offIdeal).not.toMatch(/coalesced/);
    expect(notes).toMatch(/writes 60 for 100 updates \(attemptsPerUpdate 0\.63\): 40 changes were coalesced/);
  });

  it('ends with one verdict line, and rounds every millisecond figure', () => {
    const lines = summaryTable({ ...summary, failoverMs: 993.143310546875 }, durations).split('\n');
    expect(lines.at(-1)).toBe('Verdict: converged, 0.60 writes per change, 3 conflicts.');
    expect(lines.find((line) => line.includes('failoverMs'))).toMatch(/failoverMs +993 /);
    expect(
      summaryTable({ ...summary, converged: false }, durations)
        .split('\n')
        .at(-1),
    ).toMatch(/^Verdict: NOT converged/);
  });

  it('has no "Off the ideal" when a run is better than ideal (fewer writes than changes, no conflict)', () => {
    const better = { ...summary, conflicts: 0, failoverMs: null };
    expect(summaryTable(better, durations)).not.toContain('Off the ideal');
  });

  it('fits its notes in 80 columns', () => {
    for (const line of summaryTable(summary, durations).split('\n')) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('has no notes when every figure is at its ideal', () => {
    const ideal = { ...summary, writes: 100, conflicts: 0, attemptsPerUpdate: 1, writesPerUpdate: 1, failoverMs: null };
    expect(summaryTable(ideal, durations)).not.toContain('Off the ideal');
  });

  it('calls uncoordinated figures the baseline', () => {
    const baseline = {
      ...summary,
      strategy: 'uncoordinated' as const,
      writes: 100,
      conflicts: 200,
      attemptsPerUpdate: 3,
    };
    expect(summaryTable(baseline, durations).replace(/\s+/g, ' ')).toMatch(
      /uncoordinated, every replica writes every change/,
    );
  });
});

describe("the demo's clock", () => {
  it('is one clock for every process of the machine: a child reads a time between two of ours', () => {
    // The module itself, compiled, in a process started after ours: not a clock each process sets at its start.
    const source = readFileSync(path.join(__dirname, '..', 'src', 'cli', 'demoClock.ts'), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS } });
    const before = demoNow();
    const child = Number(
      execFileSync(process.execPath, ['-e', `${outputText}\nprocess.stdout.write(String(exports.demoNow()));`], {
        encoding: 'utf8',
      }),
    );
    const after = demoNow();
    expect(child).toBeGreaterThanOrEqual(before);
    expect(child).toBeLessThanOrEqual(after);
  });
});

describe('store errors are one clean line', () => {
  it('takes gRPC’s status code, nested cause and empty resolution note off', () => {
    expect(
      errorLine(
        'Cannot reach the store at etcd://127.0.0.1:1: 14 UNAVAILABLE: No connection established. ' +
          'Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
      ),
    ).toBe(
      'Cannot reach the store at etcd://127.0.0.1:1: No connection established (connect ECONNREFUSED 127.0.0.1:1)',
    );
  });

  it('keeps the first line of a message that goes on', () => {
    expect(errorLine('Cannot find module x\nRequire stack:\n- a.js')).toBe('Cannot find module x');
  });

  it('an unreachable etcd: exit 1 and one line on stderr, ending in the cause', async () => {
    const url = `etcd://127.0.0.1:${await freePort()}`;
    const { io, stderr } = cli();
    expect(await main(['demo', '--store', url], io)).toBe(1);
    expect(stderr()).toMatch(
      new RegExp(`^rx-writer-lease demo: Cannot reach the store at ${url}: .*ECONNREFUSED[^\\n]*\\)\\n$`),
    );
  }, 30_000);
});
