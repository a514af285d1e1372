/**
 * The property harness of the lease, shared by marbles/properties.spec.ts
 * (the lease against the reference model) and spec/lease.reentrancy.spec.ts
 * (listeners that call the lease back): units of work described as data,
 * commands and their arbitraries, and `simulate`, which plays commands on a
 * fresh lease in virtual time and tells an observer each call it makes.
 * What each suite checks stays in the suite: the model, or the witness.
 */
import fc from 'fast-check';
import { EMPTY, NEVER, Observable, filter, map, of, throwError, timer, type Subscription } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { WriterLease, type WorkContext, type WorkFunc, type WorkResult, type WriterLeaseOptions } from '../src';
import { weighted } from './properties';

// ---- units of work ----------------------------------------------------------

/** What a unit returns when it does not fail (the spec's words for WorkResult). */
export type Result = 'extend' | 'release' | 'none';

/** How a unit behaves when it is called. */
export type Fault =
  | 'ok' // returns its result
  | 'throw' // throws (sync) or errors (Observable)
  | 'garbage' // returns something that is not a WorkReturn
  | 'empty' // an Observable that completes without a value
  | 'never'; // an Observable that never emits: holds its worker until stopped

/** `sync`: a plain value; `of`: an Observable that emits at once; a number: an Observable that emits after that many frames. */
export type Delivery = 'sync' | 'of' | number;

export interface UnitSpec {
  readonly result: Result;
  /** How many of its calls ask to retry (the first ones). */
  readonly retries: number;
  /** Return the bare WorkResult (rather than `{ result, retry: false }`) when not retrying. */
  readonly bare: boolean;
  readonly fault: Fault;
  readonly delivery: Delivery;
  /** With a delivery in frames: a cold marble of the TestScheduler rather than a `timer`. */
  readonly cold?: boolean;
  /** What a `garbage` unit returns. */
  readonly garbage?: unknown;
}

/** What a `garbage` unit may return: nothing a WorkReturn is. */
export const GARBAGE: readonly unknown[] = [
  'extend ',
  'EXTEND',
  42,
  null,
  undefined,
  {},
  [],
  NaN,
  true,
  { result: 'extend', retry: 'yes' },
  { result: 'nope' },
  { then: 5 },
];

/** The weight of each way a unit may fail and be delivered (0 or absent: never drawn). */
export interface UnitWeights {
  /** Deliveries in frames are drawn from 1 to this. */
  readonly maxDelay: number;
  readonly fault: Readonly<Partial<Record<Fault, number>>>;
  /** `timer` and `cold`: a delivery in frames, by a `timer` or by a cold marble. */
  readonly delivery: Readonly<Partial<Record<'sync' | 'of' | 'timer' | 'cold', number>>>;
}

/** Each option of `weights` with a positive weight. */
function drawn<K extends string, T>(
  weights: Readonly<Partial<Record<K, number>>>,
  arbitraryOf: (name: K) => fc.Arbitrary<T>,
): fc.Arbitrary<T> {
  const options = (Object.entries(weights) as [K, number | undefined][])
    .filter((entry): entry is [K, number] => (entry[1] ?? 0) > 0)
    .map(([name, weight]): [number, fc.Arbitrary<T>] => [weight, arbitraryOf(name)]);
  return weighted(...options);
}

/** A unit of work: its result, its retries, how it fails and how it is delivered. */
export const unitArb = ({ maxDelay, fault, delivery }: UnitWeights): fc.Arbitrary<UnitSpec> =>
  fc
    .record({
      result: fc.constantFrom<Result>('extend', 'release', 'none'),
      retries: weighted([3, fc.constant(0)], [1, fc.integer({ min: 1, max: 2 })]),
      bare: fc.boolean(),
      fault: drawn(fault, (name) => fc.constant(name)),
      delivery: drawn(delivery, (name): fc.Arbitrary<{ delivery: Delivery; cold?: boolean }> => {
        if (name === 'sync' || name === 'of') return fc.constant({ delivery: name });
        const frames = fc.integer({ min: 1, max: maxDelay });
        return name === 'cold'
          ? frames.map((n) => ({ delivery: n, cold: true }))
          : frames.map((n) => ({ delivery: n }));
      }),
      garbage: fc.constantFrom(...GARBAGE),
    })
    .map(({ delivery, ...unit }) => ({ ...unit, ...delivery }));

/**
 * The work of a unit that behaves as `unit` says; `onCall` runs first at
 * each call, with the context the lease gave.
 */
export function workOf(
  unit: UnitSpec,
  label: string,
  scheduler: TestScheduler,
  onCall: (context: WorkContext) => void,
): WorkFunc {
  let calls = 0;
  return (context) => {
    onCall(context);
    const call = calls++;
    const value =
      unit.fault === 'garbage'
        ? unit.garbage
        : call < unit.retries
          ? { result: unit.result, retry: true }
          : unit.bare
            ? unit.result
            : { result: unit.result, retry: false };
    const failure = () => new Error(`${label} fails`);
    if (unit.fault === 'never') return NEVER;
    const { delivery } = unit;
    if (delivery === 'sync') {
      if (unit.fault === 'throw') throw failure();
      if (unit.fault === 'empty') return EMPTY;
      return value as WorkResult;
    }
    if (delivery === 'of') {
      if (unit.fault === 'throw') return throwError(failure);
      if (unit.fault === 'empty') return EMPTY;
      return of(value) as Observable<WorkResult>;
    }
    const later: Observable<unknown> = unit.cold
      ? scheduler.createColdObservable(`${'-'.repeat(delivery)}(r|)`, { r: 0 })
      : timer(delivery, scheduler);
    if (unit.fault === 'throw')
      return later.pipe(
        map(() => {
          throw failure();
        }),
      );
    if (unit.fault === 'empty') return later.pipe(filter(() => false)) as Observable<never>;
    return later.pipe(map(() => value)) as Observable<WorkResult>;
  };
}

// ---- commands -----------------------------------------------------------------

/** A call of the lease a scenario makes; `run` and `stop` start and stop its processing. */
export type Command<K extends string = string> =
  | { readonly op: 'try'; readonly key: K; readonly unit: UnitSpec }
  | { readonly op: 'extend' | 'remove'; readonly key: K }
  | { readonly op: 'expire'; readonly wake?: boolean }
  | { readonly op: 'stop' | 'run' };

/** A command made `gap` frames after the previous one. */
export interface Timed<C> {
  readonly gap: number;
  readonly command: C;
}

/** The keys commands draw from (a list, each as likely; or an arbitrary), their units, and each command's weight. */
export interface CommandWeights<K extends string = string> {
  readonly keys: readonly K[] | fc.Arbitrary<K>;
  readonly unit: fc.Arbitrary<UnitSpec>;
  readonly try: number;
  readonly extend: number;
  readonly remove: number;
  readonly expire: number;
  /** 0 or absent: never drawn. */
  readonly stop?: number;
  readonly run?: number;
}

/** One command, drawn by weight. */
export const commandArb = <K extends string>(weights: CommandWeights<K>): fc.Arbitrary<Command<K>> => {
  const key = Array.isArray(weights.keys) ? fc.constantFrom(...weights.keys) : (weights.keys as fc.Arbitrary<K>);
  const options: [number | undefined, fc.Arbitrary<Command<K>>][] = [
    [weights.try, fc.record({ op: fc.constant('try' as const), key, unit: weights.unit })],
    [weights.extend, fc.record({ op: fc.constant('extend' as const), key })],
    [weights.remove, fc.record({ op: fc.constant('remove' as const), key })],
    [weights.expire, fc.record({ op: fc.constant('expire' as const), wake: fc.boolean() })],
    [weights.stop, fc.constant({ op: 'stop' as const })],
    [weights.run, fc.constant({ op: 'run' as const })],
  ];
  return weighted(...options.filter((option): option is [number, fc.Arbitrary<Command<K>>] => (option[0] ?? 0) > 0));
};

/** From 1 to `maxLength` commands, each `gap` frames after the previous one, the gaps drawn by weight. */
export const timedArb = <C>(
  command: fc.Arbitrary<C>,
  { gaps, maxLength }: { gaps: [number, fc.Arbitrary<number>][]; maxLength: number },
): fc.Arbitrary<Timed<C>[]> => fc.array(fc.record({ gap: weighted(...gaps), command }), { minLength: 1, maxLength });

/** How a command reads in a message: `try("a")`, `expire({ wake: true })`, `stop`. */
export function describeCommand(command: Command): string {
  switch (command.op) {
    case 'try':
    case 'extend':
    case 'remove':
      return `${command.op}("${command.key}")`;
    case 'expire':
      return `expire({ wake: ${command.wake === true} })`;
    default:
      return command.op;
  }
}

// ---- playing commands -----------------------------------------------------------

/** What a simulation is told as it plays; every hook is optional. */
export interface Observer {
  /** A `try` is about to be made: what to run first at each call of its unit's work. */
  work?(key: string, unit: UnitSpec, harness: LeaseHarness): (context: WorkContext) => void;
  /** Right before the lease is called for `command` (a run while running, a stop while stopped, are not made). */
  before?(command: Command, harness: LeaseHarness): void;
  /** Right after that call returned. */
  after?(command: Command, harness: LeaseHarness): void;
  /** A call of the lease threw; absent, the error goes on up. */
  threw?(what: string, error: unknown, harness: LeaseHarness): void;
}

/** A lease in virtual time, and the commands played on it. */
export class LeaseHarness {
  readonly lease: WriterLease;
  readonly #observer: Observer;
  /** The actions the harness scheduled: any other one belongs to the lease or to a unit. */
  readonly #mine = new Set<unknown>();
  #processing: Subscription | undefined;

  constructor(
    readonly scheduler: TestScheduler,
    options: Omit<WriterLeaseOptions, 'scheduler'>,
    observer: Observer = {},
  ) {
    this.lease = new WriterLease({ ...options, scheduler });
    this.#observer = observer;
  }

  /** The virtual time. */
  get now(): number {
    return this.scheduler.now();
  }

  /** Whether the lease is processing: a `run` was played, and no `stop` since. */
  get processing(): boolean {
    return this.#processing !== undefined;
  }

  /** Runs `action` at virtual time `frame`. */
  at(frame: number, action: () => void): void {
    this.#mine.add(this.scheduler.schedule(action, frame - this.now));
  }

  /** Plays each command `gap` frames after the previous one, with `play`; returns the frame of the last. */
  script<C>(commands: readonly Timed<C>[], play: (command: C) => void): number {
    let frame = this.now;
    for (const { gap, command } of commands) {
      frame += gap;
      this.at(frame, () => play(command));
    }
    return frame;
  }

  /** Actions still scheduled that the harness did not schedule: timers of the lease or of its units. */
  leftBehind(): unknown[] {
    return this.scheduler.actions.filter((action) => !this.#mine.has(action) && !action.closed);
  }

  /** Calls the lease for `command`; false when it was not made (a run while running, a stop while stopped). */
  play(command: Command): boolean {
    if (command.op === 'run' && this.#processing !== undefined) return false;
    if (command.op === 'stop' && this.#processing === undefined) return false;
    const observer = this.#observer;
    const work =
      command.op === 'try'
        ? workOf(
            command.unit,
            `the unit of "${command.key}"`,
            this.scheduler,
            observer.work?.(command.key, command.unit, this) ?? (() => undefined),
          )
        : undefined;
    observer.before?.(command, this);
    try {
      switch (command.op) {
        case 'try':
          this.lease.try(command.key, work!);
          break;
        case 'extend':
        case 'remove':
          this.lease[command.op](command.key);
          break;
        case 'expire':
          this.lease.expire({ wake: command.wake === true });
          break;
        case 'run':
          this.#processing = this.lease.run();
          break;
        case 'stop': {
          const processing = this.#processing;
          this.#processing = undefined;
          processing?.unsubscribe();
          break;
        }
      }
    } catch (error) {
      if (observer.threw === undefined) throw error;
      observer.threw(describeCommand(command), error, this);
    }
    observer.after?.(command, this);
    return true;
  }
}

/**
 * Plays `script` on a fresh lease with `options`, on a fresh TestScheduler
 * (in run mode: cold marbles count in milliseconds). The script schedules its
 * commands and checks with the harness, and sets `scheduler.maxFrames` when
 * the lease may schedule for ever; returns what the script returned, and the
 * harness, whose scheduler holds what was left once the run ended.
 */
export function simulate<T>(
  options: Omit<WriterLeaseOptions, 'scheduler'>,
  observer: Observer,
  script: (harness: LeaseHarness) => T,
): { value: T; harness: LeaseHarness } {
  const scheduler = new TestScheduler(() => undefined);
  let played!: { value: T; harness: LeaseHarness };
  scheduler.run(() => {
    const harness = new LeaseHarness(scheduler, options, observer);
    played = { value: script(harness), harness };
  });
  return played;
}
