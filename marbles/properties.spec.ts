/**
 * Property-based tests of the lease against the reference model in
 * `model.ts`, in virtual time. fast-check draws the options and a list of
 * commands (try / extend / remove / expire / stop / run, each at a frame);
 * `simulate` plays them on a fresh TestScheduler, feeding every command and
 * every event to the model, which records what the spec does not allow.
 * Each `it` asserts one property on its own share of those findings.
 *
 * On failure fast-check prints the seed, the path and the smallest command
 * list it found. To look into one:
 * - `FC_SEED=<seed> FC_PATH=<path> npx jest marbles/properties -t '<name>'` replays it;
 * - `FC_SCENARIO=<file.json>` (the counterexample saved as JSON) adds a test
 *   that replays it against every invariant; with `FC_TRACE=1` each
 *   simulation prints its events and what the model found.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { filter } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import {
  constantBackoff,
  exponentialBackoff,
  limitRetries,
  WorkResult,
  WriterLease,
  type BackoffPolicy,
  type LeaseEvent,
  type LeaseSnapshot,
  type WorkContext,
  type WorkFunc,
} from '../src';
import {
  LeaseModel,
  exponentialDuration,
  isKey,
  jitterBounds,
  optionErrors,
  type BackoffSpec,
  type Invariant,
  type RandomSpec,
  type ModelOptions,
  type Violation,
} from './model';
import {
  commandArb,
  simulate as simulateLease,
  timedArb,
  unitArb,
  type Command,
  type CommandWeights,
  type Timed,
  type UnitWeights,
} from '../test-support/leaseHarness';
import { PROPERTY_REPLAY as REPLAY, PROPERTY_RUNS as RUNS, weighted } from '../test-support/properties';

// One property's 1000 runs take about a second; the default 5 s is too tight on a busy machine.
jest.setTimeout(60_000);

// ---- scenarios ----------------------------------------------------------------

/** A 10 kB key, drawn as this token so that counterexamples stay readable. */
const LONG = '<10kB key>';
const LONG_KEY = 'k'.repeat(10_240);
const keyOf = (token: string) => (token === LONG ? LONG_KEY : token);

interface Scenario {
  readonly options: ModelOptions & { readonly spreadRandom?: RandomSpec };
  readonly startRunning: boolean;
  /** Each command runs `gap` frames after the previous one. */
  readonly commands: readonly Timed<Command>[];
}

/** Units of every fault, delivered at once or up to `maxDelay` frames later. */
const UNITS: UnitWeights = {
  maxDelay: 60,
  fault: { ok: 12, throw: 2, garbage: 2, empty: 1, never: 1 },
  delivery: { sync: 5, of: 1, timer: 4 },
};

const randomArb = weighted<Extract<BackoffSpec, { kind: 'exponential' }>['random']>(
  [
    1,
    fc.record({
      kind: fc.constant('constant' as const),
      value: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    }),
  ],
  [
    1,
    fc.record({
      kind: fc.constant('cycle' as const),
      values: fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 4 }),
    }),
  ],
);

const backoffArb = (maxLease: number): fc.Arbitrary<BackoffSpec> =>
  weighted<BackoffSpec>(
    [
      1,
      fc.record({ kind: fc.constant('constant' as const), ms: fc.integer({ min: 0, max: Math.ceil(maxLease * 1.5) }) }),
    ],
    [
      2,
      fc.record({
        kind: fc.constant('exponential' as const),
        initial: fc.integer({ min: 0, max: 40 }),
        factor: weighted(
          [1, fc.double({ min: 0, max: 1, noNaN: true })],
          [3, fc.double({ min: 1, max: 5, noNaN: true })],
        ),
        steps: fc.integer({ min: 0, max: 6 }),
        jitter: weighted([1, fc.constant(0)], [3, fc.double({ min: 0, max: 1, noNaN: true })]),
        random: randomArb,
      }),
    ],
  );

const optionsArb = fc.integer({ min: 1, max: 200 }).chain((leaseDuration) =>
  fc.record({
    leaseDuration: fc.constant(leaseDuration),
    retryInterval: fc.integer({ min: 1, max: 40 }),
    workers: fc.integer({ min: 1, max: 3 }),
    backoff: backoffArb(leaseDuration),
    workTimeout: weighted<number | undefined>([2, fc.constant(undefined)], [1, fc.integer({ min: 0, max: 30 })]),
    spread: fc.boolean(),
    spreadRandom: randomArb,
  }),
);

const ALL_KEYS = ['a', 'b', 'c', 'd', '__proto__', 'constructor', 'ключ', '🔑', LONG];

const DEFAULT_WEIGHTS: CommandWeights = {
  keys: ALL_KEYS,
  unit: unitArb(UNITS),
  try: 10,
  extend: 2,
  remove: 1,
  expire: 1,
  stop: 1,
  run: 1,
};

const scenarioArb = (weights: CommandWeights = DEFAULT_WEIGHTS): fc.Arbitrary<Scenario> =>
  fc.record({
    options: optionsArb,
    startRunning: weighted([4, fc.constant(true)], [1, fc.constant(false)]),
    commands: timedArb(commandArb(weights), {
      gaps: [
        [2, fc.constant(0)],
        [4, fc.integer({ min: 1, max: 8 })],
        [1, fc.integer({ min: 9, max: 120 })],
      ],
      maxLength: 40,
    }),
  });

// ---- playing a scenario ---------------------------------------------------------

/**
 * A policy from its description; the random numbers come from the
 * description, never from Math.random, and each call tells `observe` the
 * numbers it drew, so that the model knows the exact duration the spec gives.
 */
function policyOf(
  spec: BackoffSpec,
  leaseDuration: number,
  observe: (tick: number, draws: readonly number[]) => void,
): BackoffPolicy {
  if (spec.kind === 'constant') return constantBackoff(spec.ms);
  const { initial, factor, steps, jitter, random } = spec;
  let cycle = 0;
  let drawn: number[] = [];
  const next = () => {
    const value = random.kind === 'constant' ? random.value : random.values[cycle++ % random.values.length];
    drawn.push(value);
    return value;
  };
  // The spec's reference policy caps at every step by the lease duration; the lease caps only what it returns.
  const policy = exponentialBackoff({ initial, factor, steps, jitter, random: next, cap: leaseDuration });
  return (tick) => {
    drawn = [];
    const value = policy(tick);
    observe(tick, drawn);
    return value;
  };
}

/** The numbers of a random description, in [0, 1), from the description alone. */
function randomOf(spec: RandomSpec | undefined): () => number {
  if (spec === undefined) return () => 0;
  if (spec.kind === 'constant') return () => spec.value;
  let cycle = 0;
  return () => spec.values[cycle++ % spec.values.length];
}

interface Simulation {
  readonly violations: Violation[];
  /** `lease.wait()`, called before anything happened. */
  readonly decided: Promise<boolean>;
  /** What the model says `wait()` must resolve with; undefined: it must not resolve. */
  readonly decision: boolean | undefined;
}

/** Plays `scenario` in virtual time (test-support/leaseHarness.ts) and returns what the model found. */
function simulate({ options, startRunning, commands }: Scenario): Simulation {
  const model = new LeaseModel(options, 0);
  /** The context each submission's latest call was given: a unit let go of must see its signal aborted. */
  const contexts = new Map<number, WorkContext>();
  const leaseOptions = {
    leaseDuration: options.leaseDuration,
    retryInterval: options.retryInterval,
    workers: options.workers,
    backoff: policyOf(options.backoff, options.leaseDuration, (tick, draws) => model.observeBackoff(tick, draws)),
    workTimeout: options.workTimeout,
    spread: options.spread ?? false,
    random: randomOf(options.spreadRandom),
  };
  // The model hears of each command as it is made, and of each call of a unit's work.
  const { value: decided, harness } = simulateLease(
    leaseOptions,
    {
      work: (_key, _unit, { scheduler }) => {
        const id = model.nextId;
        return (context) => {
          model.unitCalled(id, scheduler.now());
          if (context.id !== id) {
            model.fail('trace', scheduler.now(), `unit ${id} was given the context of ${context.id}`);
          }
          contexts.set(id, context);
        };
      },
      before: (command, { now }) => {
        if (command.op === 'try') model.begin('try', now, command.key, command.unit);
        else if (command.op === 'extend' || command.op === 'remove') model.begin(command.op, now, command.key);
        else model.begin(command.op, now);
        if (command.op === 'expire' && command.wake === true) model.wakeWaiting(now);
      },
      after: (command, harness) => {
        if (command.op === 'stop') {
          // Property 7: no timer of the lease, nor of a unit it let go, is left.
          const left = harness.leftBehind();
          if (left.length > 0) model.fail('stop', harness.now, `${left.length} scheduled action(s) left after stop`);
        }
        model.end(harness.lease);
      },
    },
    (harness) => {
      const { lease, scheduler } = harness;
      const events: LeaseEvent[] = [];
      const stateEvents: LeaseSnapshot[] = [];
      lease.events$.subscribe((event) => {
        events.push(event);
        if (event.type === 'let-go' && contexts.get(event.id)?.signal.aborted !== true) {
          model.fail('trace', event.at, `let go of ${event.id} of "${event.key}", but its signal is not aborted`);
        }
        if (event.type === 'state') stateEvents.push(event.snapshot);
        model.event(event);
      });
      const snapshots: LeaseSnapshot[] = [];
      lease.state$.subscribe((snapshot) => snapshots.push(snapshot));
      const decided = lease.wait();

      const playCommand = (command: Command) => {
        switch (command.op) {
          case 'try':
          case 'extend':
          case 'remove':
            harness.play({ ...command, key: keyOf(command.key) });
            break;
          case 'expire':
            // Rule 17 with the reference timing only: with the spread, the keys wake at a random share of
            // 2 × backoff(0) that no event tells (marbles/handover.spec.ts covers that).
            harness.play({ op: 'expire', wake: command.wake === true && options.spread !== true });
            break;
          default:
            harness.play(command);
        }
      };

      if (startRunning) harness.at(0, () => playCommand({ op: 'run' }));
      const frame = harness.script(commands, playCommand);
      const { leaseDuration, retryInterval } = options;
      const resumeAt = frame + 1;
      const endAt = resumeAt + 2 * leaseDuration + retryInterval + 200;
      const afterAt = endAt + 10 * leaseDuration + 1_000;
      let eventsAtStop = 0;
      harness.at(resumeAt, () => playCommand({ op: 'run' }));
      harness.at(endAt, () => {
        model.finish(scheduler.now());
        playCommand({ op: 'stop' });
        eventsAtStop = events.length;
      });
      harness.at(afterAt, () => {
        // Property 7: long after the last stop, nothing happened and nothing waits.
        for (const event of events.slice(eventsAtStop)) {
          model.fail('stop', event.at, `${event.type} event after the lease stopped`);
        }
        const left = harness.leftBehind();
        if (left.length > 0) model.fail('stop', afterAt, `${left.length} scheduled action(s) left long after stop`);
        model.compare(lease, 'at the end');
        model.checkAccounts(afterAt);
        // state$ replays the snapshot, then one value per state event.
        const expected = [snapshots[0], ...stateEvents];
        if (snapshots.length !== expected.length || snapshots.some((snapshot, i) => snapshot !== expected[i])) {
          model.fail(
            'state',
            afterAt,
            `state$ emitted ${snapshots.length} snapshots for ${stateEvents.length} state events`,
          );
        }
        if (process.env.FC_TRACE) {
          const lines = events.map((event) => JSON.stringify({ ...event, lease: undefined }).slice(0, 300));
          console.log(
            [...lines, ...model.violations.map((v) => `VIOLATION ${v.invariant} at ${v.at}: ${v.message}`)].join('\n'),
          );
        }
      });
      // A lease that keeps scheduling past the end would otherwise flush forever.
      scheduler.maxFrames = afterAt + 1;
      return decided;
    },
  );
  if (harness.scheduler.actions.some((action) => !action.closed)) {
    model.fail('stop', Infinity, 'actions still scheduled after the run');
  }
  return { violations: model.violations, decided, decision: model.decision };
}

const ALL_INVARIANTS: readonly Invariant[] = [
  'pending',
  'newer',
  'overlap',
  'follower',
  'state',
  'backoff',
  'stop',
  'trace',
  'order',
];

/**
 * Throws with every violation of `invariants`, so that fast-check shows them
 * with the counterexample.
 */
function assertNone(violations: readonly Violation[], invariants: readonly Invariant[]): void {
  const found = violations.filter((violation) => invariants.includes(violation.invariant));
  if (found.length === 0) return;
  const lines = found.slice(0, 10).map(({ invariant, at, message }) => `  [${invariant}] at ${at}: ${message}`);
  if (found.length > 10) lines.push(`  … ${found.length - 10} more`);
  throw new Error(`the lease broke the spec:\n${lines.join('\n')}`);
}

const holds = (invariants: readonly Invariant[], arbitrary: fc.Arbitrary<Scenario> = scenarioArb()) =>
  fc.property(arbitrary, (scenario) => assertNone(simulate(scenario).violations, invariants));

/** Whether `promise` has settled by the next macrotask, and with what. */
async function peek<T>(promise: Promise<T>): Promise<{ settled: false } | { settled: true; value: T }> {
  const pending = new Promise<{ settled: false }>((resolve) => setImmediate(() => resolve({ settled: false })));
  return Promise.race([promise.then((value) => ({ settled: true as const, value })), pending]);
}

// ---- the properties ---------------------------------------------------------------

describe('properties of the lease against the reference model (virtual time)', () => {
  const scenarioFile = process.env.FC_SCENARIO;
  if (scenarioFile !== undefined) {
    it('replays the scenario in FC_SCENARIO (a counterexample saved as JSON)', () => {
      const scenario = JSON.parse(readFileSync(scenarioFile, 'utf8')) as Scenario;
      assertNone(simulate(scenario).violations, ALL_INVARIANTS);
    });
  }

  it("1. a key's pending work is never lost: each submission ends or stays pending; size and pendingKeys() agree", () => {
    fc.assert(holds(['pending']), { numRuns: RUNS, ...REPLAY });
  });

  it('2. a newer submission survives an older run of the same key finishing', () => {
    // Few keys and slow units, so that submissions often land while their key runs.
    const sameKey = scenarioArb({
      ...DEFAULT_WEIGHTS,
      keys: ['a', 'b'],
      unit: unitArb({ ...UNITS, maxDelay: 30 }),
      try: 20,
      extend: 4,
      remove: 2,
      expire: 2,
      stop: 1,
      run: 1,
    });
    fc.assert(holds(['newer', 'pending'], sameKey), { numRuns: RUNS, ...REPLAY });
  });

  it('3. no key runs twice at once, and never more than `workers` at once', () => {
    fc.assert(holds(['overlap']), { numRuns: RUNS, ...REPLAY });
  });

  it('4. a follower runs no work before its `expires` (unless expire() was called since)', () => {
    fc.assert(holds(['follower']), { numRuns: RUNS, ...REPLAY });
  });

  it('5. state transitions follow rules 4, 5, 7, 13 and 16; wait() resolves once, as the election ends', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb(), async (scenario) => {
        const { violations, decided, decision } = simulate(scenario);
        assertNone(violations, ['state']);
        const outcome = await peek(decided);
        if (decision === undefined) {
          if (outcome.settled)
            throw new Error(`wait() resolved ${String(outcome.value)} though no extend/release settled`);
        } else if (!outcome.settled || outcome.value !== decision) {
          throw new Error(
            `wait() ${outcome.settled ? `resolved ${String(outcome.value)}` : 'did not resolve'}; the end of the election says ${decision}`,
          );
        }
      }),
      { numRuns: RUNS, ...REPLAY },
    );
  });

  describe('6. backoff durations are within their jitter bounds and never exceed the lease duration', () => {
    const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
    /** Unused by `exponentialDuration`, which takes the draws as a function. */
    const randomSpecOfDraws: RandomSpec = { kind: 'constant', value: 0 };

    it("the policy alone: the spec's backoffDuration(tick) for the same draws, with cap as leaseDuration; within [initial × factor^t, initial × ((1 + jitter) × factor)^t] below the cap", () => {
      fc.assert(
        fc.property(
          fc.record({
            initial: fc.integer({ min: 0, max: 1_000 }),
            factor: fc.double({ min: 0, max: 8, noNaN: true }),
            steps: fc.integer({ min: 0, max: 8 }),
            jitter: fc.double({ min: 0, max: 2, noNaN: true }),
            cap: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
          }),
          fc.array(unit, { minLength: 1, maxLength: 10 }),
          fc.integer({ min: 0, max: 10 }),
          ({ initial, factor, steps, jitter, cap }, draws, tick) => {
            let i = 0;
            const policy = exponentialBackoff({
              initial,
              factor,
              steps,
              jitter,
              cap,
              random: () => draws[i++ % draws.length],
            });
            const value = policy(tick);
            const limit = cap ?? Infinity;
            // `cap` plays the spec's leaseDuration: a step past it returns it at once (the model's wording of the spec).
            const spec = { kind: 'exponential' as const, initial, factor, steps, jitter, random: randomSpecOfDraws };
            if (value !== exponentialDuration(spec, tick, limit, (step) => draws[step % draws.length])) return false;
            if (tick > steps || value === limit) return true;
            const [low, high] = jitterBounds(initial, factor, jitter, tick);
            const slack = 1e-9 * Math.max(1, high);
            return value >= low - slack && value <= high + slack;
          },
        ),
        { numRuns: RUNS * 5, ...REPLAY },
      );
    });

    it("in the lease: a follower's `expires - at` is backoffDuration(tick), within the bounds, capped at leaseDuration", () => {
      fc.assert(holds(['backoff']), { numRuns: RUNS, ...REPLAY });
    });
  });

  it('7. after stop, no timer is left and nothing runs until the next run()', () => {
    fc.assert(holds(['stop'], scenarioArb({ ...DEFAULT_WEIGHTS, stop: 3, run: 3 })), { numRuns: RUNS, ...REPLAY });
  });

  it('every event is one the spec allows: due times (rule 1), settlements and retries (rule 3), units run only after started', () => {
    fc.assert(holds(['trace']), { numRuns: RUNS, ...REPLAY });
  });

  it('rule 2: earliest due first', () => {
    fc.assert(holds(['order']), { numRuns: RUNS, ...REPLAY });
  });
});

// ---- found, and fixed --------------------------------------------------------------

/**
 * What the properties found in src/, kept as regression tests: the smallest
 * case fast-check found, run against the model, plus the same case as a
 * readable marble test.
 */
describe('regressions the properties found', () => {
  /**
   * B4, rule 2 "earliest due first" and rule 3 "a newer submission made while
   * it ran stays and is processed next": with workers > 1, a newer submission
   * that comes due while its key's previous run is still going is taken off
   * the queue (the key is busy) and put back only when that run settles, at
   * the settle time. Keys that came due after it, but before the settle, now
   * go first. Found by "rule 2: earliest due first", seed 1671091173, path
   * 264:8:2:1:1:1:2:3:2:3:3:3:3:7:6:6:2:5:7:5:5:6:6:9:12:13:5:5:5:7:5:5:12:5:5:7:5:14:14:14:17:17:18:1:8:9:13:13:13:14:3:10:5:9:3:9:16:16:16:16:16:16:16:4:6:10:10:10:10:10:10:10
   * (`FC_SEED=... FC_PATH=... npx jest marbles/properties -t 'earliest due'`).
   */
  it('B4: the newer submission of a busy key keeps its due time (found case)', () => {
    const scenario: Scenario = {
      options: {
        leaseDuration: 190,
        retryInterval: 1,
        workers: 2,
        backoff: {
          kind: 'exponential',
          initial: 0,
          factor: 0,
          steps: 0,
          jitter: 0,
          random: { kind: 'constant', value: 0 },
        },
      },
      startRunning: true,
      commands: [
        {
          gap: 1,
          command: {
            op: 'try',
            key: 'a',
            unit: { result: 'extend', retries: 1, bare: false, fault: 'ok', delivery: 3 },
          },
        },
        { gap: 1, command: { op: 'stop' } },
        { gap: 1, command: { op: 'run' } },
        {
          gap: 1,
          command: {
            op: 'try',
            key: 'ключ',
            unit: { result: 'extend', retries: 1, bare: false, fault: 'empty', delivery: 'sync' },
          },
        },
        {
          gap: 1,
          command: {
            op: 'try',
            key: 'a',
            unit: { result: 'extend', retries: 1, bare: false, fault: 'throw', delivery: 1 },
          },
        },
      ],
    };
    // before the fix, at 6: "ключ" (due 6) started before "a" (due 5)
    assertNone(simulate(scenario).violations, ['order']);
  });

  it('B4: the newer submission of a busy key keeps its due time (marbles)', () => {
    const started: string[] = [];
    const scheduler = new TestScheduler(() => undefined);
    scheduler.run(({ cold }) => {
      const lease = new WriterLease({
        leaseDuration: 100,
        retryInterval: 10,
        backoff: constantBackoff(5),
        workers: 2,
        spread: false,
        scheduler,
      });
      lease.events$.subscribe((event) => {
        if (event.type === 'started') started.push(`${event.key}@${event.at}`);
      });
      lease.run();
      const slow = (frames: number) => () => cold(`${'-'.repeat(frames)}(r|)`, { r: WorkResult.Extend });
      lease.try('l', () => WorkResult.Extend); // leads at 0: both workers run (rule 18)
      lease.try('a', slow(10)); // runs 0..10
      scheduler.schedule(() => lease.try('a', () => WorkResult.None), 2); // due 2, while a runs
      scheduler.schedule(() => lease.try('s', slow(20)), 3); // second worker: 3..23
      scheduler.schedule(() => lease.try('c', slow(10)), 5); // due 5, no worker free
    });
    // a's newer submission (due 2) goes before c (due 5) when a's run frees a worker at 10;
    // the lease runs c at 10 and a's newer submission only at 20.
    expect(started).toEqual(['l@0', 'a@0', 's@3', 'a@10', 'c@10']);
  });
});

// ---- bad input ------------------------------------------------------------------------

describe('bad input everywhere throws RangeError/TypeError at once and changes nothing', () => {
  const anything = fc.anything({
    withBigInt: true,
    withBoxedValues: true,
    withNullPrototype: true,
    withSparseArray: true,
  });
  const duration = weighted<unknown>(
    [3, fc.integer({ min: 0, max: 1_000 })],
    [1, fc.constantFrom(-0, 0.5, 2 ** 31 + 5, Number.MAX_SAFE_INTEGER)],
    [3, fc.constantFrom(-1, -0.001, NaN, Infinity, -Infinity, '50', null, undefined, true, [], {}, 10n)],
    [1, anything],
  );
  const workers = weighted<unknown>(
    [3, fc.constantFrom(undefined, 1, 2, 3)],
    [3, fc.constantFrom(0, -1, 1.5, NaN, Infinity, '2', null, 2n)],
    [1, anything],
  );
  const backoff = weighted<unknown>([3, fc.constantFrom(undefined, constantBackoff(5), () => 1)], [2, anything]);

  /** Runs `call` and returns the error class it threw synchronously, or undefined. */
  const thrownBy = (call: () => unknown): { name: string; message: string } | undefined => {
    try {
      call();
    } catch (error) {
      if (error instanceof RangeError) return { name: 'RangeError', message: error.message };
      if (error instanceof TypeError) return { name: 'TypeError', message: error.message };
      return { name: `other: ${String(error)}`, message: '' };
    }
    return undefined;
  };

  it('new WriterLease(options): the error the spec names for a wrong field, and no error for right ones', () => {
    fc.assert(
      fc.property(fc.record({ leaseDuration: duration, retryInterval: duration, workers, backoff }), (options) => {
        const expected = optionErrors(options);
        const thrown = thrownBy(() => new WriterLease(options as never));
        if (expected.length === 0) return thrown === undefined;
        if (thrown === undefined) return false;
        // With several wrong fields, any one of them may be reported first.
        return expected.some(({ kind, argument }) => kind === thrown.name && thrown.message.includes(argument));
      }),
      { numRuns: RUNS * 2, ...REPLAY },
    );
  });

  it('try / extend / remove / waitUntil with garbage: TypeError or RangeError, size, state and events unchanged', () => {
    const key = weighted<unknown>(
      [1, fc.constantFrom('', null, undefined, 0, 1, [], {}, Symbol('k'), 10n, new String('k'))],
      [2, anything],
    );
    const work = weighted<unknown>(
      [1, fc.constantFrom(null, undefined, 'work', 0, {}, [], WorkResult.Extend)],
      [2, anything],
    );
    const call = fc.oneof(
      fc.record({ op: fc.constant('try' as const), key, work }),
      fc.record({ op: fc.constant('try' as const), key: fc.constant('k'), work }),
      fc.record({ op: fc.constant('try' as const), key, work: fc.constant<unknown>(() => WorkResult.Extend) }),
      fc.record({
        op: fc.constantFrom('extend' as const, 'remove' as const),
        key,
        work: fc.constant<unknown>(undefined),
      }),
      fc.record({ op: fc.constant('waitUntil' as const), key: duration, work: fc.constant<unknown>(undefined) }),
    );
    fc.assert(
      fc.property(call, ({ op, key: k, work: w }) => {
        const lease = new WriterLease({ leaseDuration: 50, retryInterval: 5 });
        lease.try('p', () => WorkResult.Extend); // not running: stays pending
        const events: LeaseEvent[] = [];
        lease.events$.subscribe((event) => events.push(event));
        const before = lease.state;
        let valid: boolean;
        let thrown: ReturnType<typeof thrownBy>;
        if (op === 'try') {
          valid = isKey(k) && typeof w === 'function';
          thrown = thrownBy(() => lease.try(k as string, w as WorkFunc));
        } else if (op === 'waitUntil') {
          valid = typeof k === 'number' && Number.isFinite(k) && k >= 0;
          if (valid) return true; // a valid wait would hold a real timer
          thrown = thrownBy(() => lease.waitUntil(k as number));
        } else {
          valid = isKey(k);
          if (valid) return true; // valid extend/remove of an unknown key is rule 5/6, tested above
          thrown = thrownBy(() => lease[op](k as string));
        }
        lease.dispose();
        if (valid) return thrown === undefined;
        const kind = op === 'waitUntil' ? 'RangeError' : 'TypeError';
        return (
          thrown?.name === kind &&
          lease.size === 1 &&
          lease.pendingKeys()[0] === 'p' &&
          lease.state === before &&
          events.length === 0
        );
      }),
      { numRuns: RUNS * 2, ...REPLAY },
    );
  });

  it('exponentialBackoff, constantBackoff, limitRetries with garbage: RangeError or TypeError', () => {
    fc.assert(
      fc.property(
        fc.record({ initial: duration, factor: duration, jitter: duration }),
        duration,
        workers,
        ({ initial, factor, jitter }, ms, retries) => {
          const expBad = [initial, factor, jitter].some(
            (value) => value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0),
          );
          const exp = thrownBy(() => exponentialBackoff({ initial, factor, jitter } as never));
          const constBad = !(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0);
          const cst = thrownBy(() => constantBackoff(ms as number));
          const limBad = !(typeof retries === 'number' && Number.isInteger(retries) && retries >= 0);
          const lim = thrownBy(() => limitRetries(retries as number, () => WorkResult.None));
          return (
            (expBad ? exp?.name === 'RangeError' : exp === undefined) &&
            (constBad ? cst?.name === 'RangeError' : cst === undefined) &&
            (limBad ? lim?.name === 'RangeError' : lim === undefined)
          );
        },
      ),
      { numRuns: RUNS * 2, ...REPLAY },
    );
  });
});

// ---- scale and long durations ---------------------------------------------------

describe('scale', () => {
  it('1,000,000 try calls on one key queue one run, of the last submission', () => {
    const started: number[] = [];
    let size = -1;
    const scheduler = new TestScheduler(() => undefined);
    scheduler.run(() => {
      const lease = new WriterLease({ leaseDuration: 100, retryInterval: 10, spread: false, scheduler });
      lease.events$.pipe(filter((event) => event.type === 'started')).subscribe((event) => {
        if (event.type === 'started') started.push(event.id);
      });
      lease.run();
      const work = () => WorkResult.Extend;
      scheduler.schedule(() => {
        for (let i = 0; i < 1_000_000; i++) lease.try('k', work);
      }, 1);
      scheduler.schedule(() => (size = lease.size), 2);
    });
    expect(started).toEqual([1_000_000]);
    expect(size).toBe(0);
  });

  it('a duration above 2^31 - 1 ms does not fire at once: a follower of a 2^31 + 5 ms lease waits it out', () => {
    const big = 2 ** 31 + 5;
    const started: Record<string, number[]> = {};
    const deferred: number[] = [];
    const scheduler = new TestScheduler(() => undefined);
    scheduler.run(() => {
      const lease = new WriterLease({
        leaseDuration: big,
        retryInterval: big,
        backoff: constantBackoff(2 ** 40),
        spread: false,
        scheduler,
      });
      lease.events$.subscribe((event) => {
        if (event.type === 'started') (started[event.key] ??= []).push(event.at);
        if (event.type === 'deferred') deferred.push(event.until);
      });
      const processing = lease.run();
      // frame 0: release → follower until 0 + min(2^40, big) = big
      lease.try('x', () => WorkResult.Release);
      // frame 1: due at 1 + max(big - 1, 2 × big) = 2 × big + 1
      scheduler.schedule(() => lease.try('k', () => WorkResult.Extend), 1);
      // a retry due after retryInterval = big: runs at 2 + big... once the follower's lease ran out
      let calls = 0;
      scheduler.schedule(() => lease.expire(), 2);
      scheduler.schedule(() => lease.try('r', () => ({ result: WorkResult.None, retry: calls++ === 0 })), 2);
      scheduler.schedule(() => processing.unsubscribe(), 2 ** 33);
    });
    expect(started.x).toEqual([0]);
    expect(started.k).toEqual([2 * big + 1]);
    expect(started.r?.every((at) => at > 2 ** 31 - 1)).toBe(true);
    expect(started.r).toEqual([2 + 2 * big, 2 + 2 * big + big]);
    expect(deferred).toEqual([]);
  });
});
