import type { Redis } from 'ioredis';
import type { HostPort } from './storeUrl.js';

/**
 * Options of a {@link ShardedSubscriber}.
 *
 * @example
 * ```ts
 * const options: ShardedSubscriberOptions = {
 *   channels: [{ channel: 'wl:{3560}:changes', slot: 0 }],
 *   slots: () => cluster.slots,
 *   refreshSlots: () => cluster.refreshSlotsCache(),
 *   connect: ({ host, port }) => new Redis({ host, port, lazyConnect: true, retryStrategy: () => null }),
 *   onMessage: (channel, message) => console.log(channel, message),
 *   onSubscribed: (node) => console.log('subscribed on', node),
 *   healInterval: 100,
 *   healPatience: 50,
 *   subscribeTimeout: 5000,
 * };
 * ```
 */
export interface ShardedSubscriberOptions {
  /** Every channel to subscribe to, with its hash slot. */
  readonly channels: readonly { readonly channel: string; readonly slot: number }[];
  /** The cluster's slot table as the client knows it: per slot, `host:port` of its master first. */
  readonly slots: () => readonly (readonly string[] | undefined)[];
  /** Asks the client to read the slot table again (it calls {@link ShardedSubscriber.update} when done). */
  readonly refreshSlots: () => void;
  /** A connection to one node, not connected yet, that does not reconnect by itself. */
  readonly connect: (node: HostPort) => Redis;
  /** A message on one of the channels. */
  readonly onMessage: (channel: string, message: string) => void;
  /**
   * The channels served by `node` are subscribed there, for the first time
   * or again: whatever was published on them while they were not is lost.
   */
  readonly onSubscribed: (node: string) => void;
  /** A connection failed (for diagnosis: failures are retried anyway). */
  readonly onError?: (error: unknown) => void;
  /**
   * Milliseconds between two attempts to mend the subscriptions while some
   * are missing, for the first {@link ShardedSubscriberOptions.healPatience}
   * attempts in a row; then ten times as long.
   */
  readonly healInterval: number;
  /** How many attempts in a row are made every `healInterval` ms before they slow down. */
  readonly healPatience: number;
  /** Milliseconds a node may take to confirm its subscriptions before its connection is made again. */
  readonly subscribeTimeout: number;
}

/** One master's connection and the channels of the slots it serves. */
interface Shard {
  readonly node: string;
  readonly channels: readonly string[];
  readonly redis: Redis;
  subscribed: boolean;
  ended: boolean;
}

/**
 * Sharded pub/sub (`SSUBSCRIBE`) on Redis Cluster: one connection per
 * master, subscribed to the channels of the slots that master serves.
 *
 * A message published with `SPUBLISH` goes only to the subscribers of the
 * node that serves its channel's slot, in the order that node ran the
 * publications. When a connection drops, or the slot table changes (a
 * replica promoted, slots moved), the subscriptions are made again on the
 * node that serves each slot now: every `healInterval` ms (ten times less
 * often after `healPatience` attempts), until all are confirmed, it asks the
 * client for the slot table again and connects where it says. Each confirmed node is reported with `onSubscribed`, so
 * that the caller re-reads what it may have missed.
 *
 * ioredis's own `shardedSubscribers` option does this too, but it neither
 * waits for the server to confirm a resubscription nor says which node came
 * back, and it retries a dead node with backoffs up to 2 s: a store re-reading
 * after it might read before the subscription holds, and join a promoted
 * replica late.
 *
 * @example
 * ```ts
 * const subscriber = new ShardedSubscriber(options);
 * cluster.on('refresh', () => subscriber.update());
 * subscriber.update();
 * await subscriber.whenComplete(); // every channel subscribed on its slot's master
 * subscriber.close();
 * ```
 */
export class ShardedSubscriber {
  readonly #options: ShardedSubscriberOptions;
  readonly #shards = new Map<string, Shard>();
  #uncovered: number[] = [];
  #healTimer: ReturnType<typeof setTimeout> | undefined;
  #healAttempts = 0;
  #waiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  #closed = false;

  /**
   * @param options The channels, the client's slot table, and what to call.
   */
  constructor(options: ShardedSubscriberOptions) {
    this.#options = options;
  }

  /** Whether every channel is subscribed on the master of its slot, as the slot table says. */
  get complete(): boolean {
    if (this.#uncovered.length > 0 || this.#shards.size === 0) return false;
    for (const shard of this.#shards.values()) if (!shard.subscribed) return false;
    return true;
  }

  /** The channels' slots that no master serves, as of the last {@link update}. */
  get uncovered(): readonly number[] {
    return this.#uncovered;
  }

  /**
   * Follows the slot table: a connection per master that serves a channel's
   * slot, subscribed to those channels; a master whose channels changed, or
   * whose connection ended, gets a new connection.
   *
   * @example
   * ```ts
   * cluster.on('refresh', () => subscriber.update());
   * ```
   */
  update(): void {
    if (this.#closed) return;
    const slots = this.#options.slots();
    const wanted = new Map<string, string[]>();
    const uncovered: number[] = [];
    for (const { channel, slot } of this.#options.channels) {
      const node = slots[slot]?.[0];
      if (node === undefined) {
        uncovered.push(slot);
        continue;
      }
      const channels = wanted.get(node) ?? [];
      channels.push(channel);
      wanted.set(node, channels);
    }
    this.#uncovered = uncovered;
    for (const [node, shard] of this.#shards) {
      const channels = wanted.get(node);
      if (shard.ended || channels === undefined || !sameChannels(channels, shard.channels)) {
        this.#shards.delete(node);
        this.#drop(shard);
      }
    }
    for (const [node, channels] of wanted) {
      if (!this.#shards.has(node)) this.#shards.set(node, this.#open(node, channels));
    }
    this.#settle();
  }

  /**
   * Resolves once {@link complete}; rejects if closed first.
   *
   * @example
   * ```ts
   * subscriber.update();
   * await subscriber.whenComplete();
   * ```
   * @returns When every channel is subscribed.
   */
  whenComplete(): Promise<void> {
    if (this.complete) return Promise.resolve();
    if (this.#closed) return Promise.reject(new Error('the subscriber is closed'));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /**
   * Drops every connection and stops mending.
   *
   * @example
   * ```ts
   * subscriber.close();
   * ```
   */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#healTimer);
    for (const shard of this.#shards.values()) this.#drop(shard);
    this.#shards.clear();
    for (const { reject } of this.#waiters.splice(0)) reject(new Error('the subscriber is closed'));
  }

  #open(node: string, channels: readonly string[]): Shard {
    const redis = this.#options.connect(parseNode(node));
    const shard: Shard = { node, channels, redis, subscribed: false, ended: false };
    redis.on('smessage', (channel: string, message: string) => this.#options.onMessage(channel, message));
    redis.on('error', (error: unknown) => this.#options.onError?.(error));
    redis.on('end', () => {
      shard.ended = true;
      shard.subscribed = false;
      this.#settle();
    });
    redis.connect().then(
      () => this.#subscribe(shard),
      // 'end' follows, and the next mending connects again.
      () => undefined,
    );
    return shard;
  }

  async #subscribe(shard: Shard): Promise<void> {
    const { redis, channels } = shard;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onMoved: (() => void) | undefined;
    // A MOVED reply to SSUBSCRIBE (a stale slot table) leaves ioredis's
    // promise pending forever and emits 'moved' instead.
    const failed = new Promise<never>((_, reject) => {
      onMoved = () => reject(new Error(`${shard.node} does not serve the slot of a channel (MOVED)`));
      redis.once('moved', onMoved);
      timer = setTimeout(
        () => reject(new Error(`${shard.node} did not confirm the subscriptions`)),
        this.#options.subscribeTimeout,
      );
    });
    try {
      // One SSUBSCRIBE per channel: a command's channels must share a slot, and each bucket has its own.
      await Promise.race([Promise.all(channels.map((channel) => redis.ssubscribe(channel))), failed]);
    } catch (error) {
      this.#options.onError?.(error);
      // Dropped, the connection ends, and the next mending makes a new one.
      redis.disconnect();
      return;
    } finally {
      clearTimeout(timer);
      if (onMoved !== undefined) redis.off('moved', onMoved);
    }
    if (this.#closed || shard.ended) return;
    shard.subscribed = true;
    this.#options.onSubscribed(shard.node);
    this.#settle();
  }

  #drop(shard: Shard): void {
    shard.subscribed = false;
    shard.redis.removeAllListeners('smessage');
    // ioredis arms a 2 s timer to end an already ended connection again, which would keep a process alive.
    if (shard.redis.status !== 'end') shard.redis.disconnect();
  }

  /** Wakes the waiters when complete; otherwise makes sure that a mending is due. */
  #settle(): void {
    if (this.#closed) return;
    if (this.complete) {
      this.#healAttempts = 0;
      for (const { resolve } of this.#waiters.splice(0)) resolve();
      return;
    }
    if (this.#healTimer !== undefined) return;
    const { healInterval, healPatience } = this.#options;
    // A master down for good (no replica to promote) is asked after less often.
    const delay = this.#healAttempts++ < healPatience ? healInterval : 10 * healInterval;
    this.#healTimer = setTimeout(() => {
      this.#healTimer = undefined;
      if (this.#closed || this.complete) return;
      // Replace what ended now, with the table as it is; the refresh brings a newer one, and its update.
      this.update();
      this.#options.refreshSlots();
    }, delay);
  }
}

function sameChannels(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((channel, i) => channel === b[i]);
}

/** `host:port`, the host possibly an IPv6 address with colons of its own. */
function parseNode(node: string): HostPort {
  const colon = node.lastIndexOf(':');
  return { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
}
