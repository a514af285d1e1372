import type { Etcd3, ICompare, IKeyValue, IOptions, Watcher } from 'etcd3';
import type { Observable } from 'rxjs';
import { ChangeFeed } from './changeFeed.js';
import { redactUrl, StoreClosedError } from './errors.js';
import { decodeHandover, encodeHandover, handoverFailed, HandoverFeed } from './handoverFeed.js';
import { loadClient } from './loadClient.js';
import { reachWithin } from './reachWithin.js';
import { reconnectDelay } from './reconnectDelay.js';
import { CLUSTER_URL_FORMS, parseClusterUrl } from './storeUrl.js';
import { decodeRecord, encodeRecord, recordLayout, type RecordLayout } from './recordLayout.js';
import type { CasOutcome, Generational, RecordChange, RecordKind, RecordStore, Versioned } from './store.js';
import { TurnBatches } from './turnBatches.js';

/**
 * Options of {@link openEtcdStore}.
 *
 * @example
 * ```ts
 * const options: EtcdStoreOptions = { prefix: 'demo', callTimeout: 2000 };
 * ```
 */
export interface EtcdStoreOptions {
  /**
   * The top-level directory of the keys: records are `/<prefix>/spec/<key>`
   * and `/<prefix>/status/<key>`; handovers are written to `/<prefix>/handover`.
   * @default 'wl'
   */
  prefix?: string;
  /**
   * Milliseconds each call to the server may take, opening included.
   * @default 5000
   */
  callTimeout?: number;
}

/**
 * The port of an etcd member that a store URL names without one.
 *
 * @example
 * ```ts
 * await openEtcdStore('etcd://10.0.0.5'); // talks to 10.0.0.5:2379
 * ```
 */
export const DEFAULT_ETCD_PORT = 2379;

/**
 * At most this many writes in one transaction: etcd refuses more than 128
 * operations of a kind in one (`--max-txn-ops`).
 */
const MAX_BATCH = 64;

/**
 * At most this many bytes of keys and values in one transaction, far below
 * etcd's request limit (1.5 MiB by default); a write heavier than that goes
 * alone.
 */
const MAX_BATCH_BYTES = 512 * 1024;

/**
 * One write, its key and value encoded: a compare-and-set when `expected`
 * is given (null: the key must be absent), else a put.
 */
interface EtcdWrite {
  readonly name: string;
  readonly json: string;
  readonly expected?: number | null;
}

/**
 * The compare of a compare-and-set: its key's mod revision is the one
 * expected, or it has none (absent). A put has none.
 */
function compareOf({ name, expected }: EtcdWrite): ICompare[] {
  if (expected === undefined) return [];
  const key = Buffer.from(name);
  return expected === null
    ? [{ key, result: 'Equal', target: 'Create', create_revision: 0 }]
    : [{ key, result: 'Equal', target: 'Mod', mod_revision: expected }];
}

/** The deadline of a write to a cluster: far above a write's round trip, well below a member's timeout. */
const CLUSTER_WRITE_DEADLINE_MS = 1000;

/**
 * Opens a {@link RecordStore} on an etcd server with `etcd3` (an optional
 * peer dependency, loaded now).
 *
 * A record's version is its key's mod revision, and compare-and-set is a
 * transaction comparing it (`Create == 0` for a record that must not exist).
 * The compare-and-sets made in one turn of the event loop go in one
 * transaction (up to 64), or each in its own when one of them is refused.
 * The change feed is one etcd watch on `/<prefix>/`, started at the revision
 * right after the first read so that nothing falls between the two. After
 * a reconnect `etcd3` resumes the watch from the last revision it received,
 * so no event is lost; the feed still re-reads every record, which also
 * covers a watch that the server cancelled because its revision was compacted
 * (the feed then watches again from the present).
 *
 * A handover is a put of `/<prefix>/handover` (its value names the writer):
 * the same watch delivers it, in revision order with the changes. The key
 * is overwritten by the next handover and is never read back, so a watch
 * started later, or a re-read, does not show an old handover again.
 *
 * A cluster is named by its members, `etcd://H1:P1,H2:P2,H3:P3`. etcd is
 * linearizable: a write is acknowledged once a majority of members has it,
 * and every read and compare-and-set is served through the Raft leader, so a
 * member killed mid-run (even the leader) loses no acknowledged write, and
 * revisions never go back. Calls that the dying member had in flight fail
 * (the unit is retried); the watch resumes on another member from the last
 * revision it delivered.
 *
 * A member that fails 3 calls in a row is left alone for 100 ms, then for
 * 200 ms, 400 ms... at most 2 s each time a call to it fails again (the
 * reconnect delays of every store); meanwhile its calls go to another member
 * or, if none is left, fail at once with {@link EtcdMemberRestingError}. The
 * watch asks every 100 ms and reaches a member only when it is not left
 * alone. So a member that comes back is used again within 2 s, and the first
 * call that succeeds ends the rests.
 *
 * @example
 * ```ts
 * const store = await openEtcdStore('etcd://127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379');
 * await store.compareAndSet('status', 'a', status, null); // { ok: true, version: 42 }
 * await store.close();
 * ```
 * @param url `etcd://HOST[:PORT][,HOST[:PORT]...]` (port 2379 by default).
 * @param options Key prefix and call timeout.
 * @returns The store, connected and watching.
 * @throws StoreUnreachableError when the server does not answer within `callTimeout`.
 * @throws StoreClientMissingError when `etcd3` is not installed.
 */
export async function openEtcdStore(url: string, options: EtcdStoreOptions = {}): Promise<RecordStore> {
  const { prefix = 'wl', callTimeout = 5000 } = options;
  const etcd3 = await loadClient<typeof import('etcd3')>('etcd3', url);
  const { Etcd3 } = etcd3;
  const { hosts } = parseClusterUrl(url, DEFAULT_ETCD_PORT, CLUSTER_URL_FORMS.etcd);
  const client = new Etcd3({
    // etcd3 sends each call to a member picked at random and, when a member
    // fails, to the next one: every member must be listed, not just one.
    hosts: hosts.map(({ host, port }) => `http://${host.includes(':') ? `[${host}]` : host}:${port}`),
    // A watch is a stream that lives as long as the store: only calls get a deadline.
    defaultCallOptions: (call) => {
      if (call.isStream) return {};
      // A write that a dying leader had taken in is never answered: the member waits for it
      // until its own timeout (5 s and more). With other members to ask, give up on it soon;
      // the caller's retry then reaches the new leader.
      const write = hosts.length > 1 && call.method !== 'range';
      return { deadline: Date.now() + (write ? Math.min(callTimeout, CLUSTER_WRITE_DEADLINE_MS) : callTimeout) };
    },
    faultHandling: {
      host: (member) =>
        new MemberRest(redactUrl(url), member.replace(/^\w+:\/\//, ''), (error) => isOutage(etcd3, error)),
      watchBackoff: WATCH_RETRY,
    },
  });
  const store = new EtcdStore(url, recordLayout(`/${prefix}/`, '/'), client);
  await store.open(callTimeout);
  return store;
}

class EtcdStore implements RecordStore {
  readonly url: string;
  readonly #layout: RecordLayout;
  readonly #client: Etcd3;
  readonly #handovers = new HandoverFeed();
  readonly #feed = new ChangeFeed(() => this.#handovers.reading(this.#readAll()));
  /** Writes made in one turn, one transaction for each batch (see {@link EtcdStore.#writeAll}). */
  readonly #writes = new TurnBatches<EtcdWrite, number | undefined>({
    maxBatch: MAX_BATCH,
    // Each key twice (its compare and its put) and its value: within etcd's request size, 1.5 MiB by default.
    maxSize: MAX_BATCH_BYTES,
    sizeOf: ({ name, json }) => 2 * Buffer.byteLength(name) + Buffer.byteLength(json),
    // etcd refuses a transaction that puts one key twice.
    idOf: ({ name }) => name,
    send: (writes) => this.#writeAll(writes),
    sendOne: (write) => this.#writeOne(write),
  });
  /** The key a handover is put to; not a record, so neither the feed nor a re-read shows it. */
  readonly #handoverKey: string;
  #watcher: Watcher | undefined;
  #rewatchTimer: ReturnType<typeof setTimeout> | undefined;
  /** The revision of the last full read: a new watch starts right after it. */
  #readRevision = 0;
  /** The revision of the last handover emitted. */
  #handoverRevision = 0;
  #closed = false;

  constructor(url: string, layout: RecordLayout, client: Etcd3) {
    this.url = redactUrl(url);
    this.#layout = layout;
    this.#client = client;
    this.#handoverKey = `${layout.root}handover`;
  }

  async open(timeoutMs: number): Promise<void> {
    await reachWithin(
      this.url,
      timeoutMs,
      async () => {
        await this.#feed.reread();
        await this.#watch();
      },
      () => this.close(),
    );
  }

  list(): Promise<RecordChange[]> {
    this.#assertOpen('list');
    return this.#readAll();
  }

  async get<T extends Generational>(kind: RecordKind, key: string): Promise<Versioned<T> | undefined> {
    this.#assertOpen('get');
    const name = this.#layout.keyOf(kind, key);
    const [kv] = (await this.#client.get(name).exec()).kvs;
    const version = Number(kv?.mod_revision);
    return kv && { value: decodeRecord<T>(kv.value.toString(), this.url, name, version), version };
  }

  async compareAndSet<T extends Generational>(
    kind: RecordKind,
    key: string,
    value: T,
    expected: number | null,
  ): Promise<CasOutcome> {
    this.#assertOpen('compareAndSet');
    const name = this.#layout.keyOf(kind, key);
    const version = await this.#writes.add({ name, json: encodeRecord(value, this.url, name), expected });
    return version === undefined ? { ok: false, reason: 'conflict' } : { ok: true, version };
  }

  /**
   * Writes `writes` (no key twice) in one transaction when every one of
   * them would be applied: its compares are those of the compare-and-sets,
   * its puts are all of the writes', and each record's version is the
   * transaction's revision. When one compare fails, nothing is written, and
   * the batch is given back: each write goes alone, at once, answered on its
   * own (a leader's batch rarely meets a conflict, and each write must be
   * applied or refused as if alone).
   *
   * @returns The version each write made, or undefined when the transaction was refused.
   */
  async #writeAll(writes: readonly EtcdWrite[]): Promise<number[] | undefined> {
    const { succeeded, header } = await this.#client.kv.txn({
      compare: writes.flatMap(compareOf),
      success: writes.map(({ name, json }) => ({ request_put: { key: Buffer.from(name), value: Buffer.from(json) } })),
    });
    return succeeded ? writes.map(() => Number(header.revision)) : undefined;
  }

  /** One write alone: a put, or a compare-and-set in a transaction of its own (undefined when refused). */
  async #writeOne(write: EtcdWrite): Promise<number | undefined> {
    if (write.expected !== undefined) return (await this.#writeAll([write]))?.[0];
    const { header } = await this.#client.put(write.name).value(write.json).exec();
    return Number(header.revision);
  }

  async put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number> {
    this.#assertOpen('put');
    const name = this.#layout.keyOf(kind, key);
    // A put is never refused: the transaction of a batch it is in is refused only by another write's compare.
    return (await this.#writes.add({ name, json: encodeRecord(value, this.url, name) }))!;
  }

  async delete(kind: RecordKind, key: string): Promise<void> {
    this.#assertOpen('delete');
    await this.#client.delete().key(this.#layout.keyOf(kind, key)).exec();
  }

  changes(): Observable<RecordChange> {
    return this.#feed.changes$;
  }

  /**
   * Announces that `writer` stopped writing for good: puts `/<prefix>/handover`,
   * at a revision after every write made before.
   *
   * @example
   * ```ts
   * await store.handOver('replica-1'); // every store watching this prefix emits 'replica-1' on handovers()
   * ```
   * @param writer The writer that stopped.
   * @returns Resolves once etcd has committed the put.
   * @throws StoreClosedError after `close()`.
   * @throws Error naming the store and the writer when etcd cannot be reached.
   */
  async handOver(writer: string): Promise<void> {
    this.#assertOpen('handOver');
    try {
      await this.#client.put(this.#handoverKey).value(encodeHandover(writer)).exec();
    } catch (error) {
      throw handoverFailed(this.url, writer, error);
    }
  }

  /**
   * The writers that handed over, from now on, in order with {@link changes}.
   *
   * @example
   * ```ts
   * store.handovers().subscribe((writer) => console.log('handed over:', writer));
   * ```
   * @returns A hot Observable that completes on `close()`.
   */
  handovers(): Observable<string> {
    return this.#handovers.handovers$;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#feed.close();
    this.#handovers.close();
    clearTimeout(this.#rewatchTimer);
    const watcher = this.#watcher;
    this.#watcher = undefined;
    await watcher?.cancel().catch(() => undefined);
    this.#client.close();
  }

  async #watch(): Promise<void> {
    // Without previous values: etcd would read each update's previous value back for every watcher, five
    // times its CPU for updates; a deletion takes the version the feed saw last instead.
    const watcher = await this.#client
      .watch()
      .prefix(this.#layout.root)
      .startRevision(String(this.#readRevision + 1))
      .create();
    if (this.#closed) {
      await watcher.cancel();
      return;
    }
    this.#watcher = watcher;
    let disconnected = false;
    watcher.on('put', (kv) => (kv.key.toString() === this.#handoverKey ? this.#pushHandover(kv) : this.#push(kv)));
    watcher.on('delete', (kv) => {
      const record = this.#layout.parse(kv.key.toString());
      if (record) this.#feed.pushDeletion(record.kind, record.key);
    });
    watcher.on('disconnected', () => (disconnected = true));
    watcher.on('connected', () => {
      if (!disconnected) return;
      disconnected = false;
      this.#feed.resync();
    });
    // The server cancelled the watch, e.g. its revision was compacted away.
    watcher.on('error', () => {
      // Once per watch, the one in force: a second watch started for it would never be cancelled, and etcd3
      // would keep reconnecting it after close().
      if (this.#watcher !== watcher) return;
      this.#watcher = undefined;
      void this.#rewatch(0);
    });
  }

  /**
   * Re-reads and watches again after the server cancelled the watch, until
   * both go through or close(). etcd3 has detached it already: cancelling it
   * again would wait for an answer that never comes.
   */
  async #rewatch(attempt: number): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#feed.reread();
      await this.#watch();
    } catch {
      // Neither read nor watch went through: try again, the server may be coming back.
      this.#rewatchTimer = setTimeout(() => void this.#rewatch(attempt + 1), reconnectDelay(attempt));
    }
  }

  #push(kv: IKeyValue): void {
    const change = this.#toChange(kv);
    if (change) this.#feed.push(change);
  }

  /** A watch resuming from a revision may replay a handover already emitted: each revision is emitted once. */
  #pushHandover(kv: IKeyValue): void {
    const revision = Number(kv.mod_revision);
    if (revision <= this.#handoverRevision) return;
    this.#handoverRevision = revision;
    this.#handovers.push(decodeHandover(kv.value.toString()));
  }

  async #readAll(): Promise<RecordChange[]> {
    const { header, kvs } = await this.#client.getAll().prefix(this.#layout.root).exec();
    this.#readRevision = Number(header.revision);
    return kvs.flatMap((kv) => this.#toChange(kv) ?? []);
  }

  /** Undefined for a key under the prefix that is not a record, or that another tool filled with something else. */
  #toChange(kv: IKeyValue): RecordChange | undefined {
    const name = kv.key.toString();
    const record = this.#layout.parse(name);
    if (!record) return undefined;
    try {
      return { ...record, value: decodeRecord(kv.value.toString(), this.url, name), version: Number(kv.mod_revision) };
    } catch {
      return undefined;
    }
  }

  #assertOpen(call: string): void {
    if (this.#closed) throw new StoreClosedError({ url: this.url, call });
  }
}

/**
 * A call to an etcd member that is being left alone after failing: it failed
 * 3 calls in a row, or a call after its last rest (see {@link openEtcdStore}).
 * The call was not sent. etcd3 sends it to another member instead, so a
 * caller sees this error only when every member of the URL is resting.
 *
 * @example
 * ```ts
 * await store.get('status', 'a').catch((e: EtcdMemberRestingError) => e.info);
 * // { url: 'etcd://127.0.0.1:2379', member: '127.0.0.1:2379', restMs: 387, cause: GRPCUnavailableError }
 * ```
 */
export class EtcdMemberRestingError extends Error {
  override readonly name = 'EtcdMemberRestingError';

  constructor(
    readonly info: {
      /** The store, password as `***`. */
      readonly url: string;
      /** The member, `HOST:PORT` as etcd3 names it. */
      readonly member: string;
      /** Milliseconds until a call is sent to it again, rounded up. */
      readonly restMs: number;
      /** The failure that started the rest. */
      readonly cause: unknown;
    },
  ) {
    super(
      `etcd member ${info.member} of ${info.url} failed and is left alone for ${info.restMs} ms more ` +
        `(last failure: ${info.cause instanceof Error ? info.cause.message : String(info.cause)})`,
      { cause: info.cause },
    );
  }
}

/**
 * How many calls to a member must fail in a row before it is left alone, as
 * in etcd3's own breaker: a call that finds its member down is tried three
 * times, so one such call is enough.
 */
const MEMBER_FAILURES_TO_REST = 3;

type MemberPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;
/** cockatiel's types as etcd3 names them: cockatiel is etcd3's dependency, not ours. */
type PolicyContext = Parameters<Parameters<MemberPolicy['execute']>[0]>[0];
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/** Nobody subscribes to a member policy's events: etcd3 only calls `execute`. */
const noEvents = (): { dispose(): void } => ({ dispose: () => undefined });

/**
 * etcd3's fault handling for one member, in place of its default circuit
 * breaker, which left a failed member alone 5 s at a time: a store then
 * stayed unusable up to 5 s after the member was back, though the stores
 * promise reconnects within 2 s. Here the rests follow {@link reconnectDelay}:
 * 100 ms after {@link MEMBER_FAILURES_TO_REST} failures in a row, doubling with
 * each failure after a rest, up to 2 s. A call that succeeds ends the rests.
 * Only failures that {@link isOutage} count. Unlike a circuit breaker's
 * half-open state, every call may go once a rest is over: the first failure
 * starts the next rest.
 */
class MemberRest implements MemberPolicy {
  declare readonly _altReturn: never;
  readonly onSuccess = noEvents;
  readonly onFailure = noEvents;
  readonly #url: string;
  readonly #member: string;
  readonly #isOutage: (error: Error) => boolean;
  /** Failures in a row, until the first rest. */
  #failures = 0;
  /** Rests in a row: the next one lasts `reconnectDelay(#rests)`. */
  #rests = 0;
  /** When the rest in force ends, on `performance.now()`'s clock: a moved wall clock must not end it. */
  #restUntil = 0;
  #lastFailure: unknown;

  constructor(url: string, member: string, isOutage: (error: Error) => boolean) {
    this.#url = url;
    this.#member = member;
    this.#isOutage = isOutage;
  }

  async execute<T>(fn: (context: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    const restMs = this.#restUntil - performance.now();
    if (restMs > 0) {
      throw new EtcdMemberRestingError({
        url: this.#url,
        member: this.#member,
        restMs: Math.ceil(restMs),
        cause: this.#lastFailure,
      });
    }
    try {
      const result = fn({ signal: signal ?? new AbortController().signal });
      // A watch stream is returned before it connects: its failure comes later, through
      // etcd3's markFailed (an `execute` that throws), and its creation proves nothing.
      if (!isPromiseLike(result)) return result;
      const value = await result;
      this.#failures = 0;
      this.#rests = 0;
      return value;
    } catch (error) {
      if (error instanceof Error && this.#isOutage(error)) this.#failed(error);
      throw error;
    }
  }

  #failed(error: Error): void {
    this.#lastFailure = error;
    const now = performance.now();
    // Calls sent before the rest began may fail during it: one rest for them all.
    if (now < this.#restUntil) return;
    if (this.#rests === 0 && ++this.#failures < MEMBER_FAILURES_TO_REST) return;
    this.#restUntil = now + reconnectDelay(this.#rests++);
  }
}

/**
 * Whether a failed call says that its member is out of reach: one of etcd3's
 * recoverable errors (unavailable, deadline exceeded...), as its breaker
 * counts, but neither a cancellation (ours, when a watch or the store
 * closes) nor an error the member sent itself: during an election every
 * member answers "etcdserver: leader changed" or "no leader" for a while, and
 * resting a member for it would keep calls off the cluster just when its new
 * leader is elected.
 */
function isOutage(etcd3: typeof import('etcd3'), error: Error): boolean {
  return (
    etcd3.isRecoverableError(error) &&
    !(error instanceof etcd3.GRPCCancelledError) &&
    !error.message.includes('etcdserver:')
  );
}

function isPromiseLike<T>(value: PromiseLike<T> | T): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | undefined)?.then === 'function';
}

/**
 * The watch asks to reconnect every 100 ms, and {@link MemberRest} decides
 * whether the member is asked: the watch's reconnects then follow the same
 * rests as the calls. With a backoff of its own (etcd3's default grows to
 * 30 s, ours to 2 s) it could wake just before a rest ends and sleep through
 * the member's return.
 */
const WATCH_RETRY: WatchBackoff = { duration: reconnectDelay(0), next: () => WATCH_RETRY };
