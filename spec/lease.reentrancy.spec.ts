/**
 * Property test of re-entrancy (docs/lease.md, "Events"): "A listener may
 * call the lease back. Events are emitted after the lease has done its
 * bookkeeping, so a unit an event reports as over holds no worker, and a
 * call made from a listener takes effect as if made just after the event."
 *
 * fast-check draws a list of commands (try / extend / remove / expire /
 * stop / run, each some frames after the previous one) and a list of
 * reactions: on an event of some type, for some key or any, a listener calls
 * the lease back (try, remove, extend, expire). The scenario plays in virtual
 * time; a witness reads every event as it is emitted, and every call of a
 * unit's work, and records what the guarantee does not allow:
 *
 * 1. every unit that started ends exactly once: `settled`, or `let-go`
 *    (a timeout's `let-go` is followed by its `settled`, which ends it);
 * 2. never more than `workers` units run at once, never two of one key;
 * 3. no `retried`, `started`, `superseded` or `dropped` for a submission that
 *    already ended (done, superseded or dropped);
 * 4. a unit's work is called once per start, never after its `let-go`, so
 *    never when a listener of its `started` event let go of it;
 * 5. once the events of a moment are out, and after the lease stopped,
 *    `pendingKeys()` and `size` are the keys whose latest submission has not
 *    ended; `dispose()` says so too.
 *
 * To look into a failure: `FC_SEED=<seed> FC_PATH=<path> npx jest spec/lease.reentrancy`
 * replays it, and `FC_TRACE=1` prints the events of every simulation it plays.
 */
import fc from 'fast-check';
import { constantBackoff, type LeaseEvent, type WorkContext, type WriterLease } from '../src';
import {
  commandArb,
  simulate as simulateLease,
  timedArb,
  unitArb,
  type Command,
  type Timed,
  type UnitSpec,
} from '../test-support/leaseHarness';
import { PROPERTY_REPLAY as REPLAY, PROPERTY_RUNS as RUNS, weighted } from '../test-support/properties';

jest.setTimeout(60_000);

/** Reactions fired in one simulation, at most: a reaction to its own consequences must end. */
const MAX_REACTIONS = 30;
/** Frames the lease runs on after the last command, before it is stopped for good. */
const QUIET_FRAMES = 50;

// ---- scenarios ----------------------------------------------------------------

const KEYS = ['a', 'b', 'c'] as const;
type Key = (typeof KEYS)[number];

/** A call made from a listener; `same` is the key of the event that triggered it. */
type Call = Command<Key | 'same'>;

const REACTS_TO = [
  'submitted',
  'started',
  'settled',
  'retried',
  'dropped',
  'let-go',
  'error',
  'deferred',
  'state',
  'superseded',
] as const;

/** On each event of type `on` for `key` (`*`: any key), make `call`, `times` times at most. */
interface Reaction {
  readonly on: (typeof REACTS_TO)[number];
  readonly key: Key | '*';
  readonly call: Call;
  readonly times: number;
}

interface Scenario {
  readonly options: {
    readonly leaseDuration: number;
    readonly retryInterval: number;
    readonly backoff: number;
    readonly workers: number;
    readonly workTimeout: number | undefined;
  };
  /** Each command runs `gap` frames after the previous one. */
  readonly commands: readonly Timed<Command<Key>>[];
  readonly reactions: readonly Reaction[];
}

const keyArb = fc.constantFrom(...KEYS);

/** Units that return at once, settle 1 to 6 frames later (by a timer or a cold marble), throw, or never settle. */
const unit = unitArb({
  maxDelay: 6,
  fault: { ok: 9, throw: 1, never: 2 },
  delivery: { sync: 4, timer: 3, cold: 2 },
});

const commandsArb = timedArb(
  commandArb({ keys: KEYS, unit, try: 16, extend: 2, remove: 2, expire: 2, stop: 1, run: 1 }),
  {
    gaps: [
      [1, fc.constant(0)],
      [2, fc.integer({ min: 1, max: 8 })],
    ],
    maxLength: 15,
  },
);

/** What a listener calls: try, remove, extend or expire; on the event's key half the time. */
const callArb: fc.Arbitrary<Call> = commandArb<Key | 'same'>({
  keys: weighted<Key | 'same'>([1, fc.constant('same')], [1, keyArb]),
  unit,
  try: 4,
  extend: 3,
  remove: 3,
  expire: 2,
});

const reactionArb: fc.Arbitrary<Reaction> = fc.record({
  on: fc.constantFrom(...REACTS_TO),
  key: weighted<Key | '*'>([1, fc.constant('*')], [1, keyArb]),
  call: callArb,
  times: fc.integer({ min: 1, max: 3 }),
});

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  options: fc.record({
    leaseDuration: fc.integer({ min: 5, max: 60 }),
    retryInterval: fc.integer({ min: 1, max: 10 }),
    backoff: fc.integer({ min: 0, max: 10 }),
    workers: fc.integer({ min: 1, max: 3 }),
    workTimeout: weighted<number | undefined>([2, fc.constant(undefined)], [1, fc.integer({ min: 1, max: 8 })]),
  }),
  commands: commandsArb,
  reactions: fc.array(reactionArb, { minLength: 1, maxLength: 5 }),
});

// ---- the witness ----------------------------------------------------------------

/** One start of a submission's unit, as the events tell it. */
interface Run {
  readonly key: string;
  readonly id: number;
  /** Its work was called (once per start). */
  called: boolean;
  /** What the work was given, to check that a unit let go of sees its signal aborted. */
  context: WorkContext | undefined;
  over: boolean;
}

/**
 * Reads the lease's events as they are emitted (so inside any listener's
 * call back into the lease) and the calls of the units' work, and records
 * each break of the guarantee.
 */
class Witness {
  readonly violations: string[] = [];
  readonly trace: string[] = [];
  readonly #workers: number;
  /** Each submission's key, and how it ended, once it has. */
  readonly #submissions = new Map<number, { readonly key: string; ended: string | undefined }>();
  readonly #latest = new Map<string, number>();
  /** The unit holding a worker, per key. */
  readonly #running = new Map<string, Run>();
  /** Units let go of by their timeout, whose `settled` is still to come. */
  readonly #timedOut = new Map<string, Run>();
  /** The latest run of each submission. */
  readonly #runs = new Map<number, Run>();

  constructor(workers: number) {
    this.#workers = workers;
  }

  fail(at: number, message: string): void {
    this.violations.push(`at ${at}: ${message}`);
    this.trace.push(`  VIOLATION ${message}`);
  }

  event(event: LeaseEvent): void {
    const { at } = event;
    if (process.env.FC_TRACE) this.trace.push(describeEvent(event));
    switch (event.type) {
      case 'submitted':
        this.#submissions.set(event.id, { key: event.key, ended: undefined });
        this.#latest.set(event.key, event.id);
        break;
      case 'superseded':
      case 'dropped':
        this.#end(at, event.id, event.type, `${event.type} ${label(event)}`);
        break;
      case 'started': {
        this.#assertOpen(at, event.id, `started ${label(event)}`);
        if (this.#running.has(event.key)) this.fail(at, `started ${label(event)} while its key runs`);
        else if (this.#running.size >= this.#workers) {
          this.fail(at, `started ${label(event)} with ${this.#running.size} of ${this.#workers} workers busy`);
        }
        const run: Run = { key: event.key, id: event.id, called: false, context: undefined, over: false };
        this.#running.set(event.key, run);
        this.#runs.set(event.id, run);
        break;
      }
      case 'let-go': {
        const run = this.#takeRun(at, event.key, event.id, `let-go (${event.reason}) of ${label(event)}`);
        if (run === undefined) break;
        if (run.context !== undefined && !run.context.signal.aborted) {
          this.fail(at, `let go of ${label(event)}, but its signal is not aborted`);
        }
        // A timeout's let-go frees the worker; the unit ends with the `settled` that follows.
        if (event.reason === 'timeout') this.#timedOut.set(event.key, run);
        else run.over = true;
        break;
      }
      case 'settled': {
        const run = this.#timedOut.get(event.key) ?? this.#takeRun(at, event.key, event.id, `settled ${label(event)}`);
        this.#timedOut.delete(event.key);
        if (run === undefined) break;
        if (run.id !== event.id) this.fail(at, `settled ${label(event)} after the timeout of #${run.id}`);
        if (!run.called) this.fail(at, `settled ${label(event)}, whose work was never called`);
        run.over = true;
        if (!event.retry && this.#latest.get(event.key) === event.id) {
          this.#end(at, event.id, 'done', `settled ${label(event)}`);
        }
        break;
      }
      case 'retried':
        this.#assertOpen(at, event.id, `retried ${label(event)}`);
        break;
      case 'stopped':
        if (this.#running.size > 0) {
          this.fail(at, `stopped with units still running: ${[...this.#running.keys()].join(', ')}`);
        }
        break;
    }
  }

  /** The work of `key` was called with `context`. */
  called(key: string, context: WorkContext, at: number): void {
    const run = this.#runs.get(context.id);
    const unit = `the work of "${key}"#${context.id}`;
    if (context.key !== key) this.fail(at, `${unit} was given the context of "${context.key}"`);
    if (run === undefined) this.fail(at, `${unit} was called though it never started`);
    else if (run.over) this.fail(at, `${unit} was called after its let-go`);
    else if (run.called) this.fail(at, `${unit} was called twice in one run`);
    else {
      run.called = true;
      run.context = context;
    }
  }

  /** Property 5: the keys the lease holds pending are those whose latest submission has not ended. */
  checkPending(at: number, lease: WriterLease, when: string): void {
    const expected = this.#pendingKeys();
    const actual = [...lease.pendingKeys()].sort();
    if (actual.join() !== expected.join()) {
      this.fail(at, `${when}: pendingKeys() is [${actual.join(', ')}], but [${expected.join(', ')}] have not ended`);
    }
    if (lease.size !== expected.length) this.fail(at, `${when}: size is ${lease.size}, expected ${expected.length}`);
  }

  /** After the last stop: every unit that started has ended. */
  checkStopped(at: number, lease: WriterLease): void {
    for (const run of [...this.#running.values(), ...this.#timedOut.values()]) {
      this.fail(at, `"${run.key}"#${run.id} started and never ended, though the lease stopped`);
    }
    this.checkPending(at, lease, 'after stop');
    const disposed = lease.dispose().sort();
    if (disposed.join() !== this.#pendingKeys().join()) {
      this.fail(at, `dispose() returned [${disposed.join(', ')}], expected [${this.#pendingKeys().join(', ')}]`);
    }
  }

  #pendingKeys(): string[] {
    const keys: string[] = [];
    for (const [key, id] of this.#latest) if (this.#submissions.get(id)?.ended === undefined) keys.push(key);
    return keys.sort();
  }

  #end(at: number, id: number, how: string, what: string): void {
    const submission = this.#submissions.get(id);
    if (submission === undefined) return this.fail(at, `${what}: no such submission`);
    if (submission.ended !== undefined) return this.fail(at, `${what}, though it had ended (${submission.ended})`);
    submission.ended = how;
  }

  #assertOpen(at: number, id: number, what: string): void {
    const ended = this.#submissions.get(id)?.ended;
    if (ended !== undefined) this.fail(at, `${what}, though it had ended (${ended})`);
  }

  /** The run of `key` that holds a worker, which must be the one of submission `id`; it no longer holds it. */
  #takeRun(at: number, key: string, id: number, what: string): Run | undefined {
    const run = this.#running.get(key);
    if (run === undefined || run.id !== id) {
      this.fail(at, `${what}, which is not running${run === undefined ? '' : ` (#${run.id} is)`}`);
      return undefined;
    }
    this.#running.delete(key);
    return run;
  }
}

const label = ({ key, id }: { key: string; id: number }) => `"${key}"#${id}`;

function describeEvent(event: LeaseEvent): string {
  const { type, at } = event;
  if (type === 'state') return `${at} state ${event.snapshot.state} expires ${event.snapshot.expires}`;
  if (type === 'let-go') return `${at} let-go ${label(event)} ${event.reason}`;
  if (type === 'settled') return `${at} settled ${label(event)} ${event.result}${event.retry ? ' retry' : ''}`;
  return 'key' in event ? `${at} ${type} ${label(event)}` : `${at} ${type}`;
}

// ---- playing a scenario ---------------------------------------------------------

/** Plays `scenario` in virtual time (test-support/leaseHarness.ts); returns what the witness found. */
function simulate({ options, commands, reactions }: Scenario): Witness {
  const witness = new Witness(options.workers);
  const leaseOptions = {
    leaseDuration: options.leaseDuration,
    retryInterval: options.retryInterval,
    backoff: constantBackoff(options.backoff),
    workers: options.workers,
    workTimeout: options.workTimeout,
    spread: false,
  };
  simulateLease(
    leaseOptions,
    {
      work:
        (key, _unit, { scheduler }) =>
        (context) =>
          witness.called(key, context, scheduler.now()),
      // None of these calls has bad input: a call that throws is a violation.
      threw: (what, error, { now }) => witness.fail(now, `${what} threw ${String(error)}`),
    },
    (harness) => {
      const { lease, scheduler } = harness;
      /** Makes `call`, with `same` for the key of the event that triggered it. */
      const make = (call: Call, same: string) => {
        harness.play('key' in call && call.key === 'same' ? { ...call, key: same } : call);
      };

      const left = reactions.map(({ times }) => times);
      let fired = 0;
      lease.events$.subscribe((event) => {
        witness.event(event);
        // Events go out once the operation that made them is over, and a listener's calls run operations of
        // their own: the keys pending agree with the events once every event of this moment is out, which an
        // action scheduled now sees (it runs after the one in progress).
        scheduler.schedule(() => witness.checkPending(scheduler.now(), lease, `after ${event.type}`));
        reactions.forEach((reaction, i) => {
          if (left[i] === 0 || fired >= MAX_REACTIONS || reaction.on !== event.type) return;
          const key = 'key' in event ? event.key : undefined;
          if (reaction.key !== '*' && reaction.key !== key) return;
          left[i]--;
          fired++;
          if (process.env.FC_TRACE) witness.trace.push(`  reaction: ${JSON.stringify(reaction.call)}`);
          make(reaction.call, key ?? KEYS[0]);
        });
      });

      harness.play({ op: 'run' });
      const frame = harness.script(commands, (command) => {
        if (process.env.FC_TRACE) witness.trace.push(`${scheduler.now()} command: ${JSON.stringify(command)}`);
        harness.play(command);
      });
      const endAt = frame + QUIET_FRAMES;
      harness.at(endAt, () => {
        harness.play({ op: 'stop' });
        witness.checkStopped(scheduler.now(), lease);
      });
      // Units that fail for ever retry for ever: nothing runs after the lease stopped for good.
      scheduler.maxFrames = endAt;
    },
  );
  if (process.env.FC_TRACE) console.log(witness.trace.join('\n'));
  return witness;
}

// ---- the property ---------------------------------------------------------------

describe('re-entrancy: listeners that call the lease back (docs/lease.md, "Events")', () => {
  it('every unit ends once, workers and keys never overlap, no retry after the end, no work after let-go, pendingKeys() right once the events are out', () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        const { violations } = simulate(scenario);
        if (violations.length > 0) {
          throw new Error(`the lease broke the guarantee:\n  ${violations.slice(0, 8).join('\n  ')}`);
        }
      }),
      { numRuns: RUNS, ...REPLAY },
    );
  });
});

// ---- found ------------------------------------------------------------------------

const never: UnitSpec = { result: 'extend', retries: 0, bare: true, fault: 'never', delivery: 'sync' };
const quick: UnitSpec = { result: 'extend', retries: 0, bare: true, fault: 'ok', delivery: 1 };

/**
 * Defects of src/ the property finds, written out small: both fail today. The first is what it finds at
 * once; the second it finds in some seeds only (it needs two workers busy at a stop), so it is kept here.
 */
const FOUND: Record<string, Scenario> = {
  // extend("a") drops #1 and emits `dropped` before letting go of the running unit; the listener submits #2
  // and removes it, which lets go of the unit #1; then extend lets go of it a second time.
  'a listener of `dropped` that submits and removes the same key while its unit runs': {
    options: { leaseDuration: 5, retryInterval: 1, backoff: 0, workers: 1, workTimeout: undefined },
    commands: [
      { gap: 0, command: { op: 'try', key: 'a', unit: never } },
      { gap: 1, command: { op: 'remove', key: 'a' } },
      { gap: 1, command: { op: 'try', key: 'b', unit: never } },
      { gap: 0, command: { op: 'try', key: 'c', unit: never } },
    ],
    reactions: [
      { on: 'dropped', key: 'a', call: { op: 'try', key: 'same', unit: quick }, times: 1 },
      { on: 'dropped', key: 'a', call: { op: 'remove', key: 'same' }, times: 1 },
    ],
  },
  // stop() lets go of the running units one by one; a listener of the first let-go removes the second key,
  // whose unit the lease then lets go of a second time.
  'a listener of a `let-go` on stop that removes another running key': {
    options: { leaseDuration: 5, retryInterval: 1, backoff: 0, workers: 2, workTimeout: undefined },
    commands: [
      { gap: 0, command: { op: 'try', key: 'a', unit: never } },
      { gap: 0, command: { op: 'try', key: 'b', unit: never } },
      { gap: 1, command: { op: 'stop' } },
    ],
    reactions: [{ on: 'let-go', key: 'a', call: { op: 'remove', key: 'b' }, times: 1 }],
  },
};

describe('re-entrancy: the cases the property found', () => {
  it.each(Object.entries(FOUND))('%s', (_name, scenario) => {
    expect(simulate(scenario).violations).toEqual([]);
  });
});
