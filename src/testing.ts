/**
 * The conformance suite of {@link RecordStore}: the contract every store
 * adapter keeps, as tests to run against yours (docs/write-a-record-store.md).
 *
 * It declares its tests with the global `describe`, `it`, `beforeAll`,
 * `afterAll` and `expect` of the test runner: jest, or vitest with
 * `globals: true`.
 *
 * @module
 */
import { filter, firstValueFrom, take, throwError, timeout, toArray } from 'rxjs';
import type { RecordChange, RecordStore, SpecValue } from './stores/store.js';

/**
 * Options of {@link recordStoreConformance}.
 *
 * @example
 * ```ts
 * recordStoreConformance('my store', open, { closedError: StoreClosedError, changeTimeoutMs: 2_000 });
 * ```
 */
export interface ConformanceOptions {
  /**
   * How long a change may take to arrive on another client's feed, in ms.
   * Keep it below the runner's test timeout, so that a missing change fails
   * with a message naming it.
   * @default 4000
   */
  readonly changeTimeoutMs?: number;
  /**
   * The timeout of each test, in ms, passed to `it`; the runner's own
   * (5 s in jest and vitest) when absent.
   */
  readonly testTimeoutMs?: number;
  /**
   * The timeout of opening and closing the clients, in ms, passed to
   * `beforeAll` and `afterAll`.
   * @default 60000
   */
  readonly setupTimeoutMs?: number;
  /**
   * The error class every call rejects with after `close()`; any rejection
   * when absent.
   */
  readonly closedError?: abstract new (...args: never[]) => Error;
  /**
   * What the suite's keys start with; a random prefix by default, so that
   * the suite may run against a store holding other records, and again.
   */
  readonly keyPrefix?: string;
}

/** The runner's globals the suite uses: as jest and vitest declare them, narrowed to what it calls. */
interface Matchers {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toBeUndefined(): void;
  toBeGreaterThan(expected: number): void;
  toHaveLength(expected: number): void;
  toContain(expected: unknown): void;
  readonly rejects: { toBeInstanceOf(expected: unknown): Promise<void>; toBeDefined(): Promise<void> };
}
interface TestGlobals {
  describe: (name: string, body: () => void) => void;
  it: (name: string, test: () => Promise<void> | void, timeout?: number) => void;
  beforeAll: (hook: () => Promise<void>, timeout?: number) => void;
  afterAll: (hook: () => Promise<void>, timeout?: number) => void;
  expect: ((actual: unknown) => Matchers) & { any(type: unknown): unknown };
}

function testGlobals(): TestGlobals {
  const globals = globalThis as unknown as Partial<TestGlobals>;
  const missing = (['describe', 'it', 'beforeAll', 'afterAll', 'expect'] as const).filter(
    (name) => typeof globals[name] !== 'function',
  );
  if (missing.length > 0) {
    throw new Error(
      `recordStoreConformance declares tests with the test runner's globals, and ${missing.join(', ')} ` +
        'is missing: run it under jest, or vitest with `globals: true`',
    );
  }
  return globals as TestGlobals;
}

const spec = (generation: number, value = `v${generation}`): SpecValue => ({ generation, value });

/**
 * Declares the contract of {@link RecordStore} as tests, in a `describe`
 * named `name`, against the store that `open` opens. `open` is called
 * three times: two clients that the tests write and read through (one reads
 * what the other wrote, and sees it on its change feed), then one that a
 * test closes, last. Each call must open a client of the same store; an
 * in-memory store may return the same instance each time.
 *
 * What it checks: a missing record reads undefined; `put` returns the
 * version `get` reads; versions increase, and a record deleted and created
 * again never reuses one; a compare-and-set succeeds on the current version
 * only, and against `null` only while the record is absent; of two
 * concurrent ones on one version exactly one wins; spec and status of a key
 * are apart; the change feed shows another client's writes in order;
 * `list()` (when the store has it) lists every record with its version;
 * `versioning` is `'field'`, `'record'` or absent; every call rejects after
 * `close()`.
 *
 * It needs a test runner with the global `describe`, `it`, `beforeAll`,
 * `afterAll` and `expect`: jest, or vitest with `globals: true`.
 *
 * @param name The title of the `describe`.
 * @param open Opens a client of the store under test.
 * @param options Timeouts, the error after `close()`, the keys' prefix.
 *
 * @example
 * ```ts
 * // my-store.spec.ts
 * import { recordStoreConformance } from 'rx-writer-lease/testing';
 * import { MyStore } from './my-store';
 *
 * recordStoreConformance('MyStore', async () => MyStore.connect('my://127.0.0.1:7000'));
 * ```
 */
export function recordStoreConformance(
  name: string,
  open: () => Promise<RecordStore>,
  options: ConformanceOptions = {},
): void {
  const { describe, it: declare, beforeAll, afterAll, expect } = testGlobals();
  const {
    changeTimeoutMs = 4_000,
    testTimeoutMs,
    setupTimeoutMs = 60_000,
    closedError,
    keyPrefix = `conformance-${Math.random().toString(36).slice(2, 8)}-`,
  } = options;
  const it = (title: string, test: () => Promise<void> | void) => declare(title, test, testTimeoutMs);

  describe(name, () => {
    let a: RecordStore;
    let b: RecordStore;
    let keys = 0;
    const freshKey = (): string => `${keyPrefix}${++keys}`;

    const changesOf = (store: RecordStore, key: string, count: number): Promise<RecordChange[]> =>
      firstValueFrom(
        store.changes().pipe(
          filter((change) => change.key === key),
          take(count),
          toArray(),
          timeout({
            first: changeTimeoutMs,
            with: () => throwError(() => new Error(`fewer than ${count} changes of ${key} in ${changeTimeoutMs} ms`)),
          }),
        ),
      );

    beforeAll(async () => {
      a = await open();
      b = await open();
    }, setupTimeoutMs);

    afterAll(async () => {
      // An in-memory store may be one instance for both, closed already by the last test.
      await Promise.allSettled([a?.close(), b?.close()]);
    }, setupTimeoutMs);

    it('reads a missing record as undefined', async () => {
      expect(await a.get('spec', freshKey())).toBeUndefined();
    });

    it('reads what was put, with the version put returned', async () => {
      const key = freshKey();
      const version = await a.put('spec', key, spec(1));
      expect(await b.get('spec', key)).toEqual({ value: spec(1), version });
      expect(await b.get('status', key)).toBeUndefined();
    });

    it('lists every record with its version, and none deleted (when it has list)', async () => {
      if (b.list === undefined) return;
      const [kept, gone] = [freshKey(), freshKey()];
      const specVersion = await a.put('spec', kept, spec(2));
      const statusVersion = await a.put('status', kept, spec(1));
      await a.put('spec', gone, spec(1));
      await a.delete('spec', gone);
      const listed = (await b.list()).filter(({ key }) => key === kept || key === gone);
      // With one version per record, both parts are at the record's version: the later write's.
      const recordVersion = b.versioning === 'record' ? statusVersion : specVersion;
      expect(listed.sort((x, y) => x.kind.localeCompare(y.kind))).toEqual([
        { kind: 'spec', key: kept, value: spec(2), version: recordVersion },
        { kind: 'status', key: kept, value: spec(1), version: statusVersion },
      ]);
    });

    it('says what one version covers: field, record, or nothing (field)', () => {
      expect([undefined, 'field', 'record']).toContain(a.versioning);
    });

    it('increases the version with every put', async () => {
      const key = freshKey();
      const first = await a.put('status', key, spec(1));
      const second = await b.put('status', key, spec(2));
      expect(second).toBeGreaterThan(first);
    });

    it('accepts a compare-and-set on the current version and increases the version', async () => {
      const key = freshKey();
      const version = await a.put('status', key, spec(1));
      const outcome = await b.compareAndSet('status', key, spec(2), version);
      expect(outcome).toEqual({ ok: true, version: expect.any(Number) });
      expect(outcome.ok && outcome.version).toBeGreaterThan(version);
      expect(await a.get('status', key)).toEqual({ value: spec(2), version: outcome.ok && outcome.version });
    });

    it('refuses a compare-and-set on a stale version and leaves the value unchanged', async () => {
      const key = freshKey();
      const stale = await a.put('status', key, spec(1));
      const current = await a.put('status', key, spec(2));
      expect(await b.compareAndSet('status', key, spec(3), stale)).toEqual({ ok: false, reason: 'conflict' });
      expect(await a.get('status', key)).toEqual({ value: spec(2), version: current });
    });

    it('creates a missing record on a compare-and-set against null, and refuses it once the record exists', async () => {
      const key = freshKey();
      const created = await a.compareAndSet('status', key, spec(1), null);
      expect(created).toEqual({ ok: true, version: expect.any(Number) });
      expect(await b.compareAndSet('status', key, spec(2), null)).toEqual({ ok: false, reason: 'conflict' });
      expect(await b.get('status', key)).toEqual({ value: spec(1), version: created.ok && created.version });
    });

    it('refuses a compare-and-set on a version of a record that does not exist', async () => {
      const key = freshKey();
      expect(await a.compareAndSet('status', key, spec(1), 1)).toEqual({ ok: false, reason: 'conflict' });
      expect(await a.get('status', key)).toBeUndefined();
    });

    it('fences: of two clients setting the same version at once, exactly one wins', async () => {
      for (let round = 0; round < 10; round++) {
        const key = freshKey();
        const version = await a.put('status', key, spec(0));
        const outcomes = await Promise.all([
          a.compareAndSet('status', key, { ...spec(1), writer: 'a' }, version),
          b.compareAndSet('status', key, { ...spec(1), writer: 'b' }, version),
        ]);
        expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(1);
        const winner = outcomes[0].ok ? 'a' : 'b';
        expect((await a.get('status', key))?.value).toEqual({ ...spec(1), writer: winner });
      }
    });

    it('fences creation too: of two clients creating the same record at once, exactly one wins', async () => {
      for (let round = 0; round < 10; round++) {
        const key = freshKey();
        const outcomes = await Promise.all([
          a.compareAndSet('status', key, spec(1), null),
          b.compareAndSet('status', key, spec(1), null),
        ]);
        expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(1);
      }
    });

    it('deletes a record, and deletes a missing one without error', async () => {
      const key = freshKey();
      await a.put('spec', key, spec(1));
      await b.delete('spec', key);
      expect(await a.get('spec', key)).toBeUndefined();
      expect(await b.delete('spec', key)).toBeUndefined();
    });

    it('never reuses a version: a record deleted and created again refuses the old version', async () => {
      const key = freshKey();
      const old = await a.put('status', key, spec(1));
      await a.delete('status', key);
      const recreated = await a.put('status', key, spec(1));
      expect(recreated).toBeGreaterThan(old);
      expect(await b.compareAndSet('status', key, spec(2), old)).toEqual({ ok: false, reason: 'conflict' });
    });

    it('keeps spec and status of one key apart', async () => {
      const key = freshKey();
      await a.put('spec', key, spec(1, 'desired'));
      await a.put('status', key, spec(1, 'reported'));
      expect((await b.get('spec', key))?.value).toEqual(spec(1, 'desired'));
      expect((await b.get('status', key))?.value).toEqual(spec(1, 'reported'));
    });

    it('shows another client’s put, compare-and-set and delete on its change feed, in order', async () => {
      const key = freshKey();
      const seen = changesOf(a, key, 3);
      // Awaited below; handled now, so that a write that fails first leaves no rejection unhandled.
      seen.catch(() => undefined);
      const put = await b.put('spec', key, spec(1));
      const cas = await b.compareAndSet('spec', key, spec(2), put);
      await b.delete('spec', key);
      const casVersion = cas.ok ? cas.version : NaN;
      expect(await seen).toEqual([
        { kind: 'spec', key, value: spec(1), version: put },
        { kind: 'spec', key, value: spec(2), version: casVersion },
        { kind: 'spec', key, value: undefined, version: casVersion },
      ]);
    });

    // Last: with an in-memory store, `open` may have returned the same instance to every client.
    it('rejects every call after close(), and completes its change feed', async () => {
      const store = await open();
      const completed = firstValueFrom(store.changes(), { defaultValue: 'completed' });
      await store.close();
      expect(await completed).toBe('completed');
      // Each call made when it is checked: one that fails the check leaves no other's rejection unhandled.
      const calls = [() => store.get('spec', 'a'), () => store.put('spec', 'a', spec(1))];
      for (const call of calls) {
        const answer = (async () => call())();
        if (closedError === undefined) await expect(answer).rejects.toBeDefined();
        else await expect(answer).rejects.toBeInstanceOf(closedError);
      }
    });
  });
}
