import { WorkResult, type WorkFunc, type WriterLease, type WriterLeaseOptions } from '../src';

/** A call made on the lease at the frame of its marble character. */
export type Act = (lease: WriterLease) => void;

/** One input row: what the user does, and when. */
export interface InputRow {
  readonly label: string;
  readonly marble: string;
  readonly acts: Record<string, Act>;
}

/**
 * One output row: what the lease does. `runs` is the key of each unit that
 * starts; `state` is every change of the snapshot as `state/expires`;
 * `leader` is `leader$`.
 */
export interface OutputRow {
  readonly stream: 'runs' | 'leader' | 'state';
  readonly marble: string;
  readonly values?: Record<string, unknown>;
}

/**
 * A scenario of the guide: the same marble strings drive a test
 * (`scenarios.spec.ts`) and draw the picture (`docs/diagrams/<id>.svg`), so
 * the pictures cannot drift from the behaviour.
 */
export interface Scenario {
  readonly id: string;
  readonly title: string;
  readonly caption: string;
  readonly options?: Partial<WriterLeaseOptions>;
  readonly inputs: readonly InputRow[];
  readonly outputs: readonly OutputRow[];
}

const result =
  (value: WorkResult): WorkFunc =>
  () =>
    value;
const tryKey =
  (key: string, work: WorkFunc): Act =>
  (lease) =>
    lease.try(key, work);

/** 5 ms at tick 0, 50 at tick 1, 80 beyond (the lease caps at 100). */
const stepped = (tick: number) => [5, 50][tick] ?? 80;

export const scenarios: readonly Scenario[] = [
  {
    id: 'election',
    title: 'Election, then leading',
    caption: 'The first unit to settle ends the election; a successful write makes this replica the leader.',
    inputs: [{ label: 'try', marble: '--a', acts: { a: tryKey('a', result(WorkResult.Extend)) } }],
    outputs: [
      { stream: 'runs', marble: '--a' },
      { stream: 'state', marble: '--l', values: { l: 'leader/102' } },
      { stream: 'leader', marble: 'f-t', values: { f: false, t: true } },
    ],
  },
  {
    id: 'follower-deferral',
    title: 'A follower gives the nominal leader the first chance',
    caption: 'After a release, new work waits max(expires − now, 2 × backoff(0)) = 10 ms before it runs.',
    inputs: [
      {
        label: 'try',
        marble: 'x-k',
        acts: { x: tryKey('x', result(WorkResult.Release)), k: tryKey('k', result(WorkResult.Extend)) },
      },
    ],
    outputs: [
      { stream: 'runs', marble: 'x 11ms k' },
      { stream: 'state', marble: 'f 11ms l', values: { f: 'follower/5', l: 'leader/112' } },
    ],
  },
  {
    id: 'extend',
    title: 'Another replica did the work: extend(key)',
    caption: "Seeing another writer's status for a pending key drops the key and renews that writer's lease here.",
    options: { backoff: stepped },
    inputs: [
      {
        label: 'try',
        marble: 'xk',
        acts: { x: tryKey('x', result(WorkResult.Release)), k: tryKey('k', result(WorkResult.Extend)) },
      },
      { label: 'extend', marble: '----k', acts: { k: (lease) => lease.extend('k') } },
    ],
    outputs: [
      { stream: 'runs', marble: 'x' },
      { stream: 'state', marble: 'a---b', values: { a: 'follower/5', b: 'follower/54' } },
    ],
  },
  {
    id: 'expire',
    title: 'The other lease ran out: expire()',
    caption: 'A key waiting for a long follower lease runs at its next check once the lease is expired.',
    options: { backoff: stepped },
    inputs: [
      {
        label: 'try',
        marble: 'xk-y',
        acts: {
          x: tryKey('x', result(WorkResult.Release)),
          k: tryKey('k', result(WorkResult.Extend)),
          y: tryKey('y', result(WorkResult.Extend)),
        },
      },
      { label: 'extend', marble: '---y', acts: { y: (lease) => lease.extend('y') } },
      { label: 'expire', marble: '-----e', acts: { e: (lease) => lease.expire() } },
    ],
    outputs: [
      { stream: 'runs', marble: 'x 10ms k' },
      {
        stream: 'state',
        marble: 'a--b-c 5ms d',
        values: { a: 'follower/5', b: 'follower/53', c: 'follower/5', d: 'leader/111' },
      },
    ],
  },
  {
    id: 'retry',
    title: 'Retry after a version conflict',
    caption: 'A unit that asks to retry runs again retryInterval (10 ms) later; here it conflicts twice, then writes.',
    inputs: [
      {
        label: 'try',
        marble: 'k',
        acts: {
          k: (lease) => {
            let conflicts = 2;
            lease.try('k', () => (conflicts-- > 0 ? { result: WorkResult.None, retry: true } : WorkResult.Extend));
          },
        },
      },
    ],
    outputs: [
      { stream: 'runs', marble: 'k 9ms k 9ms k' },
      { stream: 'leader', marble: 'f 19ms t', values: { f: false, t: true } },
    ],
  },
  {
    id: 'failover',
    title: 'Failover: the leader stops writing',
    caption:
      'While the leader writes, each change it makes extends its lease here (extend). When it dies, the next change runs here once its lease runs out, and this replica leads.',
    options: { backoff: stepped },
    inputs: [
      {
        label: 'try',
        marble: 'x 8ms k 9ms k 9ms k',
        acts: { x: tryKey('x', result(WorkResult.Release)), k: tryKey('k', result(WorkResult.Extend)) },
      },
      { label: 'extend', marble: '10ms k 10ms k', acts: { k: (lease) => lease.extend('k') } },
    ],
    outputs: [
      { stream: 'runs', marble: 'x 100ms k' },
      { stream: 'leader', marble: 'f 100ms t', values: { f: false, t: true } },
    ],
  },
];
