/** A key waiting in the queue. */
interface Entry {
  readonly key: string;
  at: number;
  /** Order of arrival, so that keys due at the same time leave in the order they became due. */
  seq: number;
  /** Position in the heap array. */
  index: number;
}

/**
 * Keys ordered by the time they become due: a binary min-heap on
 * `(at, arrival)` with an index by key, so that a key is queued at most once
 * and can be moved or taken out in O(log n). The lease keeps one timer for
 * the head of this queue instead of one per key.
 */
export class DueQueue {
  readonly #heap: Entry[] = [];
  readonly #byKey = new Map<string, Entry>();
  #arrivals = 0;

  /** Keys in the queue. */
  get size(): number {
    return this.#heap.length;
  }

  /** True when `key` is queued. */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /**
   * Queues `key` to be due at `at`. A key already queued keeps the earlier of
   * its two times (and its place among equals when that is its own).
   */
  add(key: string, at: number): void {
    const queued = this.#byKey.get(key);
    if (queued === undefined) {
      const entry: Entry = { key, at, seq: this.#arrivals++, index: this.#heap.length };
      this.#heap.push(entry);
      this.#byKey.set(key, entry);
      this.#siftUp(entry.index);
    } else if (at < queued.at) {
      queued.at = at;
      queued.seq = this.#arrivals++;
      this.#siftUp(queued.index);
    }
  }

  /** The earliest due time, or undefined when empty. */
  peekTime(): number | undefined {
    return this.#heap[0]?.at;
  }

  /** Takes the earliest key out if it is due at or before `now`. */
  takeDue(now: number): string | undefined {
    const head = this.#heap[0];
    if (head === undefined || head.at > now) return undefined;
    this.#removeAt(0);
    return head.key;
  }

  /** Takes `key` out of the queue; false when it was not queued. */
  delete(key: string): boolean {
    const entry = this.#byKey.get(key);
    if (entry === undefined) return false;
    this.#removeAt(entry.index);
    return true;
  }

  /** The queued keys, earliest first. */
  keys(): string[] {
    return [...this.#heap].sort(compare).map((entry) => entry.key);
  }

  #removeAt(index: number): void {
    const heap = this.#heap;
    const removed = heap[index];
    const last = heap.pop() as Entry;
    this.#byKey.delete(removed.key);
    if (last === removed) return;
    last.index = index;
    heap[index] = last;
    this.#siftDown(index);
    this.#siftUp(last.index);
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    const entry = heap[index];
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex];
      if (compare(parent, entry) <= 0) break;
      parent.index = index;
      heap[index] = parent;
      index = parentIndex;
    }
    entry.index = index;
    heap[index] = entry;
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    const entry = heap[index];
    const half = heap.length >> 1;
    while (index < half) {
      let childIndex = 2 * index + 1;
      const right = childIndex + 1;
      if (right < heap.length && compare(heap[right], heap[childIndex]) < 0) childIndex = right;
      const child = heap[childIndex];
      if (compare(entry, child) <= 0) break;
      child.index = index;
      heap[index] = child;
      index = childIndex;
    }
    entry.index = index;
    heap[index] = entry;
  }
}

function compare(a: Entry, b: Entry): number {
  return a.at - b.at || a.seq - b.seq;
}
