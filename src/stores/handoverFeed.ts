import { Subject, type Observable } from 'rxjs';

/**
 * The handovers of a store that talks to a server (private to the adapters):
 * a hot stream of the writers that handed over, in order with the store's
 * {@link ChangeFeed}.
 *
 * After a reconnect the change feed re-reads every record, and the writes
 * that were made while it was away reach its subscribers only when that
 * read is done. A handover that arrives meanwhile is held until the feed has
 * emitted what it read, so that a writer's last writes still come before its
 * handover. The adapter wraps its read with {@link HandoverFeed.reading}.
 *
 * @example
 * ```ts
 * const handovers = new HandoverFeed();
 * const feed = new ChangeFeed(() => handovers.reading(readEveryRecord()));
 * subscriber.on('message', (channel, text) => handovers.push(decodeHandover(text)));
 * ```
 */
export class HandoverFeed {
  readonly #writers = new Subject<string>();
  /** Handovers that arrived while a read ran, in arrival order. */
  #held: string[] = [];
  #reads = 0;
  #closed = false;

  /** Every handover from the moment of subscription. */
  readonly handovers$: Observable<string> = this.#writers.asObservable();

  /**
   * Holds the handovers that arrive until `read` settles and the change feed
   * has emitted what it read.
   *
   * @example
   * ```ts
   * new ChangeFeed(() => handovers.reading(this.#readAll()));
   * ```
   * @param read The change feed's read of every record.
   * @returns `read` itself.
   */
  reading<T>(read: Promise<T>): Promise<T> {
    this.#reads++;
    // The change feed emits what it read in the continuation of its own
    // `await read`, a microtask: a macrotask later it has emitted it all.
    const done = (): void => {
      setImmediate(() => {
        this.#reads--;
        this.#flush();
      });
    };
    read.then(done, done);
    return read;
  }

  /**
   * Emits that `writer` handed over, or holds it while a read runs.
   *
   * @example
   * ```ts
   * handovers.push('replica-1');
   * ```
   * @param writer The writer that handed over; undefined (a message that was not a handover) is ignored.
   */
  push(writer: string | undefined): void {
    if (writer === undefined || this.#closed) return;
    this.#held.push(writer);
    this.#flush();
  }

  /**
   * Completes the stream; held handovers are dropped.
   *
   * @example
   * ```ts
   * handovers.close();
   * ```
   */
  close(): void {
    this.#closed = true;
    this.#held = [];
    this.#writers.complete();
  }

  #flush(): void {
    if (this.#reads > 0 || this.#closed) return;
    for (let writer = this.#held.shift(); writer !== undefined; writer = this.#held.shift()) this.#writers.next(writer);
  }
}

/**
 * The text a handover travels as on a store's channel or key.
 *
 * @example
 * ```ts
 * encodeHandover('replica-1'); // '{"writer":"replica-1"}'
 * ```
 * @param writer The writer that handed over.
 * @returns JSON text.
 */
export function encodeHandover(writer: string): string {
  return JSON.stringify({ writer });
}

/**
 * The writer of a handover's text.
 *
 * @example
 * ```ts
 * decodeHandover('{"writer":"replica-1"}'); // 'replica-1'
 * decodeHandover('hello'); // undefined
 * ```
 * @param text What arrived on the channel or key.
 * @returns The writer; undefined when the text is not a handover (another publisher's).
 */
export function decodeHandover(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as unknown;
    const writer = typeof parsed === 'object' && parsed !== null ? (parsed as { writer?: unknown }).writer : undefined;
    return typeof writer === 'string' ? writer : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The error a failed `handOver` rejects with: it names the store (its URL
 * already without password) and the writer, and keeps the client's error as
 * its cause. A writer name longer than 80 characters is cut short.
 *
 * @example
 * ```ts
 * handoverFailed('redis://127.0.0.1:6379', 'replica-1', new Error('Connection is closed.')).message;
 * // 'Store redis://127.0.0.1:6379: handOver("replica-1") failed: Connection is closed.'
 * ```
 * @param url The store's redacted URL.
 * @param writer The writer that was handing over.
 * @param cause What the client library threw.
 * @returns The error to reject with.
 */
export function handoverFailed(url: string, writer: string, cause: unknown): Error {
  const reason = cause instanceof Error ? (cause.message || cause.name).split('\n')[0] : String(cause);
  const name = JSON.stringify(writer);
  const shown = name.length > 80 ? `${name.slice(0, 76)}..."` : name;
  return new Error(`Store ${url}: handOver(${shown}) failed: ${reason}`, { cause });
}
