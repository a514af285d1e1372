/**
 * How {@link TurnBatches} splits and sends the calls made in one turn.
 *
 * @example
 * ```ts
 * const options: TurnBatchOptions<Write, number> = { maxBatch: 256, send: (writes) => writeAll(writes) };
 * ```
 */
export interface TurnBatchOptions<T, R> {
  /** At most this many items go out in one call. */
  readonly maxBatch: number;
  /**
   * At most this much of `sizeOf` in one call (etcd's request size limit),
   * but for an item heavier than that alone, which goes in a call of its own.
   * @default no limit
   */
  readonly maxSize?: number;
  /** The weight of an item against `maxSize` (bytes, say). */
  readonly sizeOf?: (item: T) => number;
  /**
   * Items of different groups never share a call (a Redis script's keys are
   * one target's); each group's calls take the group's first item's place.
   * @default every item in one group
   */
  readonly groupOf?: (item: T) => unknown;
  /**
   * Two items of one id never share a call: a statement that would write
   * one row twice at once (PostgreSQL's `UPDATE ... FROM`) says nothing
   * certain about which write it made, and etcd refuses a transaction that
   * puts one key twice. Such an item starts another call, sent once the
   * calls before it in the group have been answered: the items of one id go
   * out in the order they were added.
   * @default no two items alike
   */
  readonly idOf?: (item: T) => string;
  /**
   * Sends one call's items: resolves with each one's answer, in order, or
   * with undefined when the server applied none of them and each is to go
   * alone ({@link sendOne}: a transaction refused whole, a statement that
   * deadlocked); rejects for all of them.
   */
  readonly send: (items: readonly T[]) => Promise<readonly R[] | undefined>;
  /**
   * Sends one item alone, answered alone: an item alone in its call, and
   * each item of a call that `send` gave back.
   * @default send, with a call of one item
   */
  readonly sendOne?: (item: T) => Promise<R>;
}

interface Pending<T, R> {
  readonly item: T;
  readonly resolve: (answer: R | PromiseLike<R>) => void;
  readonly reject: (error: unknown) => void;
}

/** One call being filled: its items, their size, and the calls it must wait for. */
interface Call<T, R> {
  readonly pending: Pending<T, R>[];
  size: number;
  /** The calls of its group that hold an earlier item of an id it holds (and those beside them). */
  readonly after: readonly Call<T, R>[];
  /** Settles once each item of the call has its answer or its error. */
  answered?: Promise<unknown>;
}

/** The calls of one group, and the ids of the items added since the last call that waits for the others. */
interface Group<T, R> {
  readonly calls: Call<T, R>[];
  ids: Set<string>;
}

/**
 * Gathers the calls made in one turn of the event loop and sends them
 * together: a replica whose units write hundreds of records at once (a
 * burst, or the steady rate once the machine is busy) makes one round trip
 * and one server command for each batch of `maxBatch`, not one per record.
 * Each item still gets its own answer; when a call fails, every item of it
 * fails with its error (none is known to have been applied or not), and
 * when the server applied none of a call, its items go one by one. The
 * batch goes out at the end of the turn (`setImmediate`), so a lone call
 * waits for nothing but the turn it was made in.
 *
 * @example
 * ```ts
 * const writes = new TurnBatches({ maxBatch: 256, send: (items) => store.writeAll(items) });
 * const [a, b] = await Promise.all([writes.add(first), writes.add(second)]); // one call for both
 * ```
 */
export class TurnBatches<T, R> {
  readonly #options: TurnBatchOptions<T, R>;
  #pending: Pending<T, R>[] = [];

  /**
   * @param options The largest call, what must not share one, and how a call is sent.
   */
  constructor(options: TurnBatchOptions<T, R>) {
    this.#options = options;
  }

  /**
   * Adds `item` to this turn's batch.
   *
   * @param item What to send.
   * @returns Its answer, once its call has been answered.
   */
  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (this.#pending.length === 0) setImmediate(() => this.#flush());
      this.#pending.push({ item, resolve, reject });
    });
  }

  #flush(): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const call of this.#calls(pending)) {
      call.answered =
        call.after.length === 0
          ? this.#send(call)
          : // The calls it waits for come before it: they are sent, or waiting, already.
            Promise.all(call.after.map(({ answered }) => answered!)).then(() => this.#send(call));
    }
  }

  /**
   * The turn's items in calls: by group, at most `maxBatch` and `maxSize` each. An item
   * whose id came before in its group starts a call that waits for every
   * call of the group made so far, and the calls after it wait as it does:
   * so one id's items go out in the order they were added, never two in one
   * call, and without a repeated id every call goes out at once.
   */
  #calls(pending: readonly Pending<T, R>[]): Call<T, R>[] {
    const { maxBatch, maxSize = Infinity, sizeOf, groupOf, idOf } = this.#options;
    const groups = new Map<unknown, Group<T, R>>();
    for (const entry of pending) {
      const key = groupOf?.(entry.item);
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = { calls: [], ids: new Set() }));
      const { calls } = group;
      const id = idOf?.(entry.item);
      const size = sizeOf?.(entry.item) ?? 0;
      let call = calls.at(-1);
      if (id !== undefined && group.ids.has(id)) {
        calls.push((call = { pending: [], size: 0, after: [...calls] }));
        group.ids = new Set();
      } else if (call === undefined || call.pending.length >= maxBatch || call.size + size > maxSize) {
        calls.push((call = { pending: [], size: 0, after: call?.after ?? [] }));
      }
      call.pending.push(entry);
      call.size += size;
      if (id !== undefined) group.ids.add(id);
    }
    return [...groups.values()].flatMap(({ calls }) => calls);
  }

  /** Sends one call; settles, never rejecting, once each of its items has its answer or its error. */
  async #send({ pending }: Call<T, R>): Promise<void> {
    const { send, sendOne } = this.#options;
    let answers: readonly R[] | undefined;
    if (pending.length > 1 || sendOne === undefined) {
      try {
        answers = await send(pending.map(({ item }) => item));
      } catch (error) {
        for (const { reject } of pending) reject(error);
        return;
      }
    }
    if (answers !== undefined) {
      pending.forEach(({ resolve }, i) => resolve(answers[i]));
      return;
    }
    // Alone in its call, or given back by `send`: each item alone (a call that waits for this one waits for them).
    const alone = async (item: T): Promise<R> => {
      if (sendOne === undefined) throw new Error('TurnBatches: send gave a call back, and there is no sendOne');
      return sendOne(item);
    };
    await Promise.all(pending.map(({ item, resolve, reject }) => alone(item).then(resolve, reject)));
  }
}
