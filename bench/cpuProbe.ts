import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/**
 * Where the CPU of a stretch of a demo run went, in cores (CPU seconds per
 * second of wall time; this machine has `os.cpus().length` of them):
 *
 * - `bench`: this process (the demo's driver, its feed, the bench itself);
 * - `replicas`: its child processes (the replica processes), summed, and
 *   `leader`, the busiest of them;
 * - `store`: the server process that listens on the store's port and its
 *   descendants (PostgreSQL's backends); null when it is not on this machine;
 * - `machine`: every process of the machine (`/proc/stat`), the other
 *   users of the machine included.
 */
export interface CpuShares {
  readonly bench: number;
  readonly replicas: number;
  readonly leader: number;
  readonly store: number | null;
  readonly machine: number;
}

/** One reading of the counters {@link CpuShares} is the difference of. */
export interface CpuMark {
  readonly at: number;
  readonly bench: number;
  /** CPU seconds of each child process, by pid. */
  readonly children: ReadonlyMap<number, number>;
  readonly store: number | null;
  /** Busy and total CPU seconds of the machine. */
  readonly machineBusy: number;
}

/** Clock ticks a second of `/proc/<pid>/stat` (`getconf CLK_TCK`: 100 on Linux). */
const TICKS = 100;

/**
 * Reads the CPU counters of Linux's `/proc`: on another system every
 * reading is empty and the shares are 0 (null for the store).
 *
 * @example
 * ```ts
 * const probe = new CpuProbe(6379);
 * const before = probe.mark();
 * // ... the run ...
 * probe.shares(before, probe.mark()); // { bench: 0.4, replicas: 1.1, leader: 0.8, store: 0.3, machine: 1.9 }
 * ```
 */
export class CpuProbe {
  readonly #storePid: number | undefined;

  /**
   * @param storePort The TCP port the store listens on, on this machine; undefined: no store figure.
   */
  constructor(storePort?: number) {
    this.#storePid = storePort === undefined ? undefined : listenerPid(storePort);
  }

  /** Whether the store's server process was found (it runs on this machine, and /proc shows it). */
  get seesStore(): boolean {
    return this.#storePid !== undefined;
  }

  /** The counters now. */
  mark(): CpuMark {
    const usage = process.cpuUsage();
    const processes = readProcesses();
    const children = new Map<number, number>();
    for (const [pid, { ppid, seconds }] of processes) if (ppid === process.pid) children.set(pid, seconds);
    let store: number | null = null;
    if (this.#storePid !== undefined && processes.has(this.#storePid)) {
      store = 0;
      for (const pid of descendants(processes, this.#storePid)) store += processes.get(pid)?.seconds ?? 0;
    }
    return {
      at: performance.now(),
      bench: (usage.user + usage.system) / 1e6,
      children,
      store,
      machineBusy: machineBusySeconds(),
    };
  }

  /**
   * The shares between two marks.
   *
   * @param from The earlier mark.
   * @param to The later one.
   * @returns Cores used by each part, 2 decimals.
   */
  shares(from: CpuMark, to: CpuMark): CpuShares {
    const seconds = Math.max(1e-3, (to.at - from.at) / 1000);
    let replicas = 0;
    let leader = 0;
    for (const [pid, used] of to.children) {
      const spent = used - (from.children.get(pid) ?? 0);
      replicas += spent;
      leader = Math.max(leader, spent);
    }
    const cores = (value: number) => Math.round((value / seconds) * 100) / 100;
    return {
      bench: cores(to.bench - from.bench),
      replicas: cores(replicas),
      leader: cores(leader),
      store: from.store === null || to.store === null ? null : cores(to.store - from.store),
      machine: cores(to.machineBusy - from.machineBusy),
    };
  }
}

interface ProcessTimes {
  readonly ppid: number;
  readonly seconds: number;
}

/** Every process of `/proc`: its parent and its CPU seconds (user + system). */
function readProcesses(): Map<number, ProcessTimes> {
  const processes = new Map<number, ProcessTimes>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return processes;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces: the fields start after its last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] is the state (field 3); ppid is field 4, utime 14, stime 15.
      processes.set(Number(entry), {
        ppid: Number(fields[1]),
        seconds: (Number(fields[11]) + Number(fields[12])) / TICKS,
      });
    } catch {
      // The process ended while we read.
    }
  }
  return processes;
}

/** `pid` and every process below it. */
function descendants(processes: ReadonlyMap<number, ProcessTimes>, pid: number): number[] {
  const found = [pid];
  for (let i = 0; i < found.length; i++) {
    for (const [child, { ppid }] of processes) if (ppid === found[i]) found.push(child);
  }
  return found;
}

/** Busy CPU seconds of the whole machine: every state of `/proc/stat`'s `cpu` line but idle and iowait. */
function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = ticks.reduce((sum, value) => sum + value, 0);
    return (total - ticks[3] - ticks[4]) / TICKS;
  } catch {
    return 0;
  }
}

/**
 * The process that listens on TCP `port` of this machine: the socket's inode
 * from `/proc/net/tcp{,6}`, then the process holding a descriptor of it.
 * Needs the right to read other processes' descriptors (root, or the same user).
 */
function listenerPid(port: number): number | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 0A is LISTEN; the inode is the 10th field.
      if (fields.length > 9 && fields[1].endsWith(`:${hex}`) && fields[3] === '0A') inodes.add(fields[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    for (const fd of safeReaddir(`/proc/${entry}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${entry}/fd/${fd}`);
        const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
        if (inode !== undefined && inodes.has(inode)) return Number(entry);
      } catch {
        // Closed meanwhile, or not ours to read.
      }
    }
  }
  return undefined;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
