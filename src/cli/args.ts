import os from 'node:os';
import { wrapText } from './wrapText.js';
import { redactUrl } from '../stores/errors.js';
import type { Versioning } from '../stores/store.js';

/** How the replicas decide who writes. */
export type Strategy = 'writer-lease' | 'uncoordinated';

/**
 * The options of `rx-writer-lease demo`, with every default applied.
 *
 * @example
 * ```ts
 * parseDemoArgs(['--replicas', '5']).replicas; // 5
 * ```
 */
export interface DemoOptions {
  /**
   * `memory`, `redis://H:P`, `redis-sentinel://H:P[,H:P...]/MASTER_NAME`,
   * `redis-cluster://H:P[,H:P...]`, `etcd://H:P[,H:P...]` or `postgres://U@H:P/DB`.
   * @default 'memory'
   */
  store: string;
  /** @default 3 */
  replicas: number;
  /** Records `key-0` … `key-<keys-1>`. @default 10 */
  keys: number;
  /** Spec changes the driver makes. @default 100 */
  updates: number;
  /** Spec changes per second, across random keys. @default 50 */
  rate: number;
  /** @default 1000 */
  leaseDuration: number;
  /** @default 100 */
  retryInterval: number;
  /** @default 'writer-lease' */
  strategy: Strategy;
  /** Rule 16's spread (docs/lease.md, "No herd"); `--no-spread` gives the reference timing. @default true */
  spread: boolean;
  /** What one version of the memory store covers: `record` as a Kubernetes object. @default 'field' */
  versioning: Versioning;
  /** Every record changes once, at once (`updates` is `keys` × `bursts`, `rate` is ignored). @default false */
  burst: boolean;
  /**
   * How many bursts, each once the statuses of the one before are current:
   * the first lands on replicas that just started, the next ones on a fleet
   * that has run. `--bursts` turns `burst` on. @default 1
   */
  bursts: number;
  /** Milliseconds after the driver's first change when the leading replica is killed; undefined: never. */
  killLeaderAfter: number | undefined;
  /** Milliseconds after the driver's first change when the leading replica stops gracefully and hands over; undefined: never. */
  handoverAfter: number | undefined;
  /** The records' namespace in the store. @default 'wl' */
  prefix: string;
  /** Print one JSON object as the last line of stdout instead of the table. @default false */
  json: boolean;
  /** Seed of the driver's choice of keys and values. @default 1 */
  seed: number;
  /**
   * Milliseconds added to every store call of an in-process replica, standing
   * for a network round trip; undefined: 1 with `memory`, 0 otherwise.
   */
  latency: number | undefined;
  /** Shards the keys hash to (docs/lease.md, "Shards"); 1: one lease for every key. @default 1 */
  shards: number;
  /** Store calls a second each replica may make (a token bucket, burst the same); undefined: unlimited. */
  clientQps: number | undefined;
  /** Milliseconds after the driver's first change when one more replica starts; undefined: never. */
  joinAfter: number | undefined;
}

/**
 * The options of `rx-writer-lease replica`, with every default applied.
 *
 * @example
 * ```ts
 * parseReplicaArgs(['--store', 'redis://127.0.0.1:6379']).name; // 'myhost-4242'
 * ```
 */
export interface ReplicaOptions {
  /**
   * `redis://H:P`, `redis-sentinel://H:P[,H:P...]/MASTER_NAME`, `redis-cluster://H:P[,H:P...]`,
   * `etcd://H:P[,H:P...]` or `postgres://U@H:P/DB`.
   */
  store: string;
  /** Written into every status this replica writes. @default `<hostname>-<pid>` */
  name: string;
  /** @default 1000 */
  leaseDuration: number;
  /** @default 100 */
  retryInterval: number;
  /** @default 'writer-lease' */
  strategy: Strategy;
  /** Rule 16's spread; `--no-spread` gives the reference timing. @default true */
  spread: boolean;
  /** @default 'wl' */
  prefix: string;
  /** Where to serve /healthz, /readyz, /metrics and /status; undefined: nowhere. */
  listen?: ListenAddress;
  /** Shards the keys hash to; 1: one lease for every key. @default 1 */
  shards: number;
  /** Store calls a second this replica may make (a token bucket, burst the same); undefined: unlimited. */
  clientQps: number | undefined;
}

/**
 * A host and a port to listen on, from `--listen H:P`.
 *
 * @example
 * ```ts
 * parseReplicaArgs(['--store', 'redis://127.0.0.1:6379', '--listen', '0.0.0.0:9464']).listen;
 * // { host: '0.0.0.0', port: 9464 }
 * ```
 */
export interface ListenAddress {
  /** A name or an address; an IPv6 address without its brackets. */
  readonly host: string;
  /** 1 to 65535. */
  readonly port: number;
}

/**
 * A command line that cannot be run as given: the CLI prints the message and
 * the usage, and exits with code 2.
 *
 * @example
 * ```ts
 * parseDemoArgs(['--replicas', 'x']);
 * // UsageError: --replicas: expected an integer >= 1, received "x"
 * ```
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';

  constructor(
    message: string,
    readonly info: { readonly flag?: string; readonly expected?: string; readonly received?: string } = {},
  ) {
    super(message);
  }
}

/** Milliseconds a leader's write holds the lease, by default, in the demo and the replica command. */
export const DEFAULT_LEASE_DURATION = 1000;
/** Milliseconds before a refused write is tried again, by default, in the demo and the replica command. */
export const DEFAULT_RETRY_INTERVAL = 100;
/** The simulated round trip of an in-process replica's store calls, with `memory` (see `linkStore`). */
export const DEFAULT_MEMORY_LATENCY = 1;
/** Help lines fit an 80-column terminal. */
const HELP_WIDTH = 80;
const STRATEGIES: readonly Strategy[] = ['writer-lease', 'uncoordinated'];
const VERSIONINGS: readonly Versioning[] = ['field', 'record'];

/** The usage of `rx-writer-lease demo`, printed with every bad argument. */
export const DEMO_USAGE = `Usage: rx-writer-lease demo [--store memory|redis://H:P|etcd://H:P|postgres://U@H:P/DB]
                          [--replicas 3] [--keys 10] [--updates 100] [--rate 50]
                          [--lease-duration 1000] [--retry-interval 100]
                          [--strategy writer-lease|uncoordinated] [--no-spread]
                          [--kill-leader-after MS] [--handover-after MS] [--prefix wl] [--seed 1] [--latency MS]
                          [--versioning field|record] [--burst] [--bursts 1] [--json]
                          [--shards 1] [--client-qps Q] [--join-after MS]`;

/** The usage of `rx-writer-lease replica`, printed with every bad argument. */
export const REPLICA_USAGE = `Usage: rx-writer-lease replica --store redis://H:P|etcd://H:P|postgres://U@H:P/DB
                             [--name NAME] [--lease-duration 1000] [--retry-interval 100]
                             [--strategy writer-lease|uncoordinated] [--no-spread] [--prefix wl]
                             [--listen H:P] [--shards 1] [--client-qps Q]`;

// ---- flags ----------------------------------------------------------------

/** How one flag reads its value: `parse` returns undefined for a value it refuses. */
interface FlagKind {
  readonly expected: string;
  readonly parse: (text: string) => unknown;
  /** A switch takes no value. */
  readonly isSwitch?: boolean;
}

/** One flag of a command: how it reads its value, and what `--help` says of it. */
interface Flag {
  readonly kind: FlagKind;
  /** The placeholder of its value in the help (`MS`, `URL`...); none for a switch. */
  readonly value?: string;
  /** What it does, with its unit. */
  readonly help: string;
  /** Its default, as the help shows it. */
  readonly default?: string;
}

const TEXT: FlagKind = { expected: 'a non-empty string', parse: (text) => (text.length > 0 ? text : undefined) };
/** Valid in every store: a Redis key, an etcd path segment, and PostgreSQL's `<prefix>_records` table name. */
const PREFIX: FlagKind = {
  expected: 'a lowercase name (a-z, 0-9, "_"; not starting with a digit; at most 40 characters)',
  parse: (text) => (/^[a-z_][a-z0-9_]{0,39}$/.test(text) ? text : undefined),
};
const SWITCH: FlagKind = { expected: 'no value', parse: () => true, isSwitch: true };
/** `H:P`, `[IPv6]:P`; a port of 0 is refused: the address must be one that scrapers can be told. */
const LISTEN: FlagKind = {
  expected: 'HOST:PORT, a host and a port from 1 to 65535 (e.g. 0.0.0.0:9464 or [::1]:9464)',
  parse: (text): ListenAddress | undefined => {
    const match = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
    if (match === null) return undefined;
    const port = Number(match[3]);
    return port >= 1 && port <= 65_535 ? { host: match[1] ?? match[2], port } : undefined;
  },
};
const MILLISECONDS: FlagKind = {
  expected: 'milliseconds, a number >= 0',
  parse: (text) => {
    const value = toNumber(text);
    return value !== undefined && value >= 0 ? value : undefined;
  },
};
const POSITIVE_MILLISECONDS: FlagKind = {
  expected: 'milliseconds, a number > 0',
  parse: (text) => {
    const value = toNumber(text);
    return value !== undefined && value > 0 ? value : undefined;
  },
};
const POSITIVE_NUMBER: FlagKind = {
  expected: 'a number > 0',
  parse: (text) => {
    const value = toNumber(text);
    return value !== undefined && value > 0 ? value : undefined;
  },
};

/** The flags both commands share. */
const LEASE_FLAGS = {
  'lease-duration': {
    kind: POSITIVE_MILLISECONDS,
    value: 'MS',
    help: "milliseconds a leader's write holds the lease; also the longest a follower backs off",
    default: `${DEFAULT_LEASE_DURATION}`,
  },
  'retry-interval': {
    kind: MILLISECONDS,
    value: 'MS',
    help: 'milliseconds before a write refused on version (a conflict) is tried again',
    default: `${DEFAULT_RETRY_INTERVAL}`,
  },
  strategy: {
    kind: oneOf(STRATEGIES),
    value: 'NAME',
    help: 'writer-lease, or uncoordinated: every replica writes every change (the baseline to compare with)',
    default: 'writer-lease',
  },
  prefix: {
    kind: PREFIX,
    value: 'NAME',
    help: "the records' namespace in the store (Redis key prefix, etcd directory, PostgreSQL <prefix>_records)",
    default: 'wl',
  },
  'no-spread': {
    kind: SWITCH,
    help:
      "the reference timing exactly (the library's default): no random delay at the election nor when a lease " +
      'runs out. The CLI spreads by default (rule 16), so that many replicas do not write at the same instant',
    default: 'spread on',
  },
} satisfies Record<string, Flag>;

/** The flags of sharding and of client-side rate limiting, both commands. */
const SCALE_FLAGS = {
  shards: {
    kind: integerAtLeast(1),
    value: 'S',
    help:
      'shards the keys hash to, each with its own lease, so that each replica writes a share of them ' +
      '(docs/lease.md, "Shards"); 1 is one lease for every key',
    default: '1',
  },
  'client-qps': {
    kind: POSITIVE_NUMBER,
    value: 'Q',
    help:
      'store calls a second each replica may make (get, compare-and-set, put, delete, list): a token bucket of Q ' +
      'a second, burst Q, as a Kubernetes client limits its calls',
    default: 'unlimited',
  },
} satisfies Record<string, Flag>;

const DEMO_FLAGS = {
  store: {
    kind: TEXT,
    value: 'URL',
    help:
      'where the records are: memory (every replica in this process), or redis://H:P, ' +
      'redis-sentinel://H:P[,H:P...]/MASTER_NAME, redis-cluster://H:P[,H:P...], etcd://H:P[,H:P...], ' +
      'postgres://U@H:P/DB (a process per replica)',
    default: 'memory',
  },
  replicas: { kind: integerAtLeast(1), value: 'N', help: 'replicas that keep the statuses', default: '3' },
  keys: { kind: integerAtLeast(1), value: 'N', help: 'records, key-0 ... key-<N-1>', default: '10' },
  updates: { kind: integerAtLeast(1), value: 'N', help: 'spec changes the driver makes', default: '100' },
  rate: { kind: POSITIVE_NUMBER, value: 'N', help: 'spec changes per second, on keys drawn at random', default: '50' },
  ...LEASE_FLAGS,
  'kill-leader-after': {
    kind: MILLISECONDS,
    value: 'MS',
    help: "milliseconds after the driver's first change when the leading replica is killed",
    default: 'never',
  },
  'handover-after': {
    kind: MILLISECONDS,
    value: 'MS',
    help: "milliseconds after the driver's first change when the leading replica stops gracefully and hands over (a replica process gets SIGTERM)",
    default: 'never',
  },
  seed: { kind: integerAtLeast(0), value: 'N', help: "seed of the driver's choice of keys and values", default: '1' },
  versioning: {
    kind: oneOf(VERSIONINGS),
    value: 'KIND',
    help:
      'field: spec and status have a version each; record: one version per record, as a Kubernetes ' +
      'object, so a status write is refused when the spec moved (--store memory only)',
    default: 'field',
  },
  burst: {
    kind: SWITCH,
    help: 'every one of --keys records changes once, at once (as a restart or a config push), instead of --updates at --rate',
    default: 'off',
  },
  bursts: {
    kind: integerAtLeast(1),
    value: 'N',
    help:
      'bursts in a row (turns --burst on), each once every status of the one before is current: ' +
      'the first lands on replicas that just started, the next on a fleet that has run; burstConvergeMs has each',
    default: '1',
  },
  latency: {
    kind: MILLISECONDS,
    value: 'MS',
    help: 'milliseconds added to every store call, standing for a network round trip (--store memory only)',
    default: `${DEFAULT_MEMORY_LATENCY} with memory`,
  },
  json: {
    kind: SWITCH,
    help: 'print one JSON object with the figures as the last line of stdout, instead of the table',
    default: 'off',
  },
  ...SCALE_FLAGS,
  'join-after': {
    kind: MILLISECONDS,
    value: 'MS',
    help: "milliseconds after the driver's first change when one more replica starts (it takes its share of the shards)",
    default: 'never',
  },
} satisfies Record<string, Flag>;

const REPLICA_FLAGS = {
  store: {
    kind: TEXT,
    value: 'URL',
    help:
      'the shared store: redis://H:P, redis-sentinel://H:P[,H:P...]/MASTER_NAME, redis-cluster://H:P[,H:P...], ' +
      'etcd://H:P[,H:P...] or postgres://U@H:P/DB (required)',
  },
  name: {
    kind: TEXT,
    value: 'NAME',
    help: 'this replica, written into every status it writes',
    default: '<hostname>-<pid>',
  },
  ...LEASE_FLAGS,
  listen: {
    kind: LISTEN,
    value: 'H:P',
    help:
      'serve /healthz (live), /readyz (ready), /metrics (Prometheus text) and /status (JSON) over HTTP on this ' +
      'host and port (docs/observability.md)',
    default: 'off',
  },
  ...SCALE_FLAGS,
} satisfies Record<string, Flag>;

/** `rx-writer-lease demo --help`. */
export const DEMO_HELP = `${DEMO_USAGE}

Runs replicas that keep the statuses of --keys records while a driver changes
their specs, then prints the figures and what each should be (docs/replicas.md).

Options:
${optionsHelp(DEMO_FLAGS)}`;

/** `rx-writer-lease replica --help`. */
export const REPLICA_HELP = `${REPLICA_USAGE}

Runs one replica on a shared store until SIGTERM or SIGINT: it keeps the
statuses of the records whose specs change, and prints one JSON report per
line (ready, state, written, conflict, stopped).

Options:
${optionsHelp(REPLICA_FLAGS)}`;

/**
 * Parses the arguments of `rx-writer-lease demo` (after the command name).
 *
 * @example
 * ```ts
 * parseDemoArgs(['--store', 'redis://127.0.0.1:6379', '--json']);
 * // { store: 'redis://127.0.0.1:6379', replicas: 3, ..., json: true }
 * ```
 * @param argv The arguments, `--flag value` or `--flag=value`.
 * @returns The options with defaults applied.
 * @throws UsageError naming the flag, what it expects and what it received.
 */
export function parseDemoArgs(argv: readonly string[]): DemoOptions {
  const flags = readFlags(argv, DEMO_FLAGS);
  const options: DemoOptions = {
    store: (flags.store as string | undefined) ?? 'memory',
    replicas: (flags.replicas as number | undefined) ?? 3,
    keys: (flags.keys as number | undefined) ?? 10,
    updates: (flags.updates as number | undefined) ?? 100,
    rate: (flags.rate as number | undefined) ?? 50,
    leaseDuration: (flags['lease-duration'] as number | undefined) ?? DEFAULT_LEASE_DURATION,
    retryInterval: (flags['retry-interval'] as number | undefined) ?? DEFAULT_RETRY_INTERVAL,
    strategy: (flags.strategy as Strategy | undefined) ?? 'writer-lease',
    spread: flags['no-spread'] !== true,
    versioning: (flags.versioning as Versioning | undefined) ?? 'field',
    burst: flags.burst === true || flags.bursts !== undefined,
    bursts: (flags.bursts as number | undefined) ?? 1,
    killLeaderAfter: flags['kill-leader-after'] as number | undefined,
    handoverAfter: flags['handover-after'] as number | undefined,
    prefix: (flags.prefix as string | undefined) ?? 'wl',
    json: flags.json === true,
    seed: (flags.seed as number | undefined) ?? 1,
    latency: flags.latency as number | undefined,
    shards: (flags.shards as number | undefined) ?? 1,
    clientQps: flags['client-qps'] as number | undefined,
    joinAfter: flags['join-after'] as number | undefined,
  };
  checkLease(options);
  checkStorePorts(options.store);
  if (options.burst) options.updates = options.keys * options.bursts;
  if (options.versioning !== 'field' && options.store !== 'memory' && options.store !== 'memory://') {
    throw new UsageError(`--versioning: applies to --store memory only, received --store ${options.store}`, {
      flag: '--versioning',
      expected: '--store memory',
      received: options.store,
    });
  }
  checkOutage(options, '--kill-leader-after', options.killLeaderAfter);
  checkOutage(options, '--handover-after', options.handoverAfter);
  checkBeforeLastChange(options, '--join-after', options.joinAfter);
  if (options.killLeaderAfter !== undefined && options.handoverAfter !== undefined) {
    throw new UsageError('--kill-leader-after and --handover-after: give one of them, received both', {
      flag: '--handover-after',
      expected: 'no --kill-leader-after',
      received: `--kill-leader-after ${options.killLeaderAfter}`,
    });
  }
  if (options.latency !== undefined && options.store !== 'memory' && options.store !== 'memory://') {
    throw new UsageError(
      `--latency: applies to --store memory only (a real store has its own), received --store ${options.store}`,
      {
        flag: '--latency',
        expected: '--store memory',
        received: options.store,
      },
    );
  }
  return options;
}

/**
 * Parses the arguments of `rx-writer-lease replica` (after the command name).
 *
 * @example
 * ```ts
 * parseReplicaArgs(['--store', 'etcd://10.0.0.5:2379', '--name', 'eu-1']);
 * // { store: 'etcd://10.0.0.5:2379', name: 'eu-1', leaseDuration: 1000, ... }
 * ```
 * @param argv The arguments, `--flag value` or `--flag=value`.
 * @returns The options with defaults applied.
 * @throws UsageError naming the flag, what it expects and what it received.
 */
export function parseReplicaArgs(argv: readonly string[]): ReplicaOptions {
  const flags = readFlags(argv, REPLICA_FLAGS);
  const store = flags.store as string | undefined;
  if (store === undefined) {
    throw new UsageError(
      '--store: expected a store URL (redis://H:P, etcd://H:P or postgres://U@H:P/DB), received nothing',
      {
        flag: '--store',
        expected: 'a store URL',
      },
    );
  }
  if (store === 'memory' || store === 'memory://') {
    throw new UsageError(
      `--store: expected redis://H:P, etcd://H:P or postgres://U@H:P/DB, received "${store}" ` +
        '(a replica process cannot share a memory store: `demo --store memory` runs its replicas in one process)',
      { flag: '--store', expected: 'a server store URL', received: store },
    );
  }
  const options: ReplicaOptions = {
    store,
    name: (flags.name as string | undefined) ?? `${os.hostname()}-${process.pid}`,
    leaseDuration: (flags['lease-duration'] as number | undefined) ?? DEFAULT_LEASE_DURATION,
    retryInterval: (flags['retry-interval'] as number | undefined) ?? DEFAULT_RETRY_INTERVAL,
    strategy: (flags.strategy as Strategy | undefined) ?? 'writer-lease',
    spread: flags['no-spread'] !== true,
    prefix: (flags.prefix as string | undefined) ?? 'wl',
    listen: flags.listen as ListenAddress | undefined,
    shards: (flags.shards as number | undefined) ?? 1,
    clientQps: flags['client-qps'] as number | undefined,
  };
  checkLease(options);
  checkStorePorts(store);
  return options;
}

/**
 * A lease shorter than the retry interval would run out before a refused
 * write is tried again: every retry would find the other writer's lease
 * over, and the lease would decide nothing.
 */
function checkLease({ leaseDuration, retryInterval }: { leaseDuration: number; retryInterval: number }): void {
  if (leaseDuration >= retryInterval) return;
  throw new UsageError(
    `--lease-duration: expected milliseconds >= --retry-interval (${retryInterval}), received ${leaseDuration}`,
    { flag: '--lease-duration', expected: `>= ${retryInterval}`, received: `${leaseDuration}` },
  );
}

/**
 * Every host of a store URL names a port from 1 to 65535 or none, whatever
 * the scheme: port 0 is a bad argument (exit 2), not a server that cannot
 * be reached.
 */
function checkStorePorts(store: string): void {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(store)?.[1];
  if (authority === undefined) return;
  const hosts = authority.slice(authority.lastIndexOf('@') + 1);
  for (const member of hosts.split(',')) {
    const port = /:(\d*)$/.exec(member.replace(/^\[[^\]]*\]/, ''))?.[1];
    if (port === undefined || port === '') continue;
    const number = Number(port);
    if (number < 1 || number > 65535) {
      throw new UsageError(`--store: expected ports from 1 to 65535, received ${port} in "${redactUrl(store)}"`, {
        flag: '--store',
        expected: 'a port from 1 to 65535',
        received: port,
      });
    }
  }
}

/**
 * The driver's last change is made at `(updates - 1) / rate` s: a kill or a
 * handover must come before it, or no change is left to measure it by.
 */
function checkOutage(options: DemoOptions, flag: string, after: number | undefined): void {
  if (after === undefined) return;
  const { replicas } = options;
  if (replicas < 2) {
    throw new UsageError(
      `${flag}: needs --replicas >= 2, so that another replica can take over, received --replicas ${replicas}`,
      { flag, expected: '--replicas >= 2', received: String(replicas) },
    );
  }
  checkBeforeLastChange(options, flag, after);
}

/** A replica that joins after the driver's last change has no change to take its share by. */
function checkBeforeLastChange({ updates, rate }: DemoOptions, flag: string, after: number | undefined): void {
  if (after === undefined) return;
  const lastChange = ((updates - 1) * 1000) / rate;
  if (after >= lastChange) {
    throw new UsageError(
      `${flag}: expected milliseconds < ${Math.floor(lastChange)} (the driver's last change, (updates - 1) / rate), ` +
        `received ${after}; raise --updates or lower it`,
      { flag, expected: `< ${Math.floor(lastChange)}`, received: String(after) },
    );
  }
}

function integerAtLeast(min: number): FlagKind {
  return {
    expected: `an integer >= ${min}`,
    parse: (text) => {
      const value = toNumber(text);
      return value !== undefined && Number.isInteger(value) && value >= min ? value : undefined;
    },
  };
}

function oneOf(values: readonly string[]): FlagKind {
  return { expected: `one of ${values.join(', ')}`, parse: (text) => (values.includes(text) ? text : undefined) };
}

/** A plain decimal number (`Number()` alone would also take `0x10` and `1e3`). */
function toNumber(text: string): number | undefined {
  if (!/^-?\d+(\.\d+)?$/.test(text.trim())) return undefined;
  return Number(text);
}

/** Reads `--flag value` and `--flag=value` pairs; every flag at most once. */
function readFlags(argv: readonly string[], flags: Record<string, Flag>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const match = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    if (match === null) {
      throw new UsageError(`unexpected argument "${arg}"; expected flags, each --name value`, { received: arg });
    }
    const [, name, inline] = match;
    const flag = `--${name}`;
    const kind = flags[name]?.kind;
    if (kind === undefined) {
      const known = Object.keys(flags)
        .map((known) => `--${known}`)
        .join(', ');
      throw new UsageError(`unknown flag ${flag}; expected one of ${known}`, { flag, received: arg });
    }
    if (name in values) throw new UsageError(`${flag}: given twice; expected it at most once`, { flag });
    if (kind.isSwitch) {
      if (inline !== undefined) {
        throw new UsageError(`${flag}: expected no value, received "${inline}"`, {
          flag,
          expected: 'no value',
          received: inline,
        });
      }
      values[name] = true;
      continue;
    }
    let text = inline;
    if (text === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new UsageError(`${flag}: expected ${kind.expected}, received nothing`, { flag, expected: kind.expected });
      }
      text = next;
      i++;
    }
    const value = kind.parse(text);
    if (value === undefined) {
      throw new UsageError(`${flag}: expected ${kind.expected}, received "${text}"`, {
        flag,
        expected: kind.expected,
        received: text,
      });
    }
    values[name] = value;
  }
  return values;
}

/** The options of a command's help, one a line: the flag and its value, what it does, its default. */
function optionsHelp(flags: Record<string, Flag>): string {
  const rows = [
    ...Object.entries(flags).map(([name, { value, help, default: byDefault }]) => ({
      usage: value === undefined ? `--${name}` : `--${name} ${value}`,
      // Kept on one line by the wrap: a no-break space until then.
      text: byDefault === undefined ? help : `${help} (default:\u00a0${byDefault.replaceAll(' ', '\u00a0')})`,
    })),
    { usage: '-h, --help', text: 'print this help' },
  ];
  const width = Math.max(...rows.map(({ usage }) => usage.length));
  const indent = ' '.repeat(width + 4);
  return rows
    .map(
      ({ usage, text }) =>
        `  ${usage.padEnd(width)}  ${wrapText(text, HELP_WIDTH - indent.length).join(`\n${indent}`)}`,
    )
    .join('\n')
    .replaceAll('\u00a0', ' ');
}
