/** A key waiting in the queue. */
interface Entry {
  readonly key: string;
  readonly at: number;
  /** Order of arrival, so that keys due at the same time leave in the order they became due. */
  readonly seq: number;
  /** Position in the heap array; {@link IN_LANE} or {@link GONE} otherwise. */
  index: number;
}

const IN_LANE = -1;
const GONE = -2;

/**
 * Keys ordered by the time they become due, earliest first and, at equal
 * times, in the order they became due. A key is queued at most once.
 *
 * Most keys arrive in time order (due now, or now plus a fixed delay), so
 * they go to a first-in-first-out lane at O(1); a key due earlier than the
 * lane's last goes to a binary min-heap. Taking compares the two heads. An
 * index by key finds an entry to move it or take it out.
 */
export class DueQueue {
  readonly #byKey = new Map<string, Entry>();
  readonly #heap: Entry[] = [];
  /** Entries in (at, seq) order; `#laneHead` is the first not yet taken. */
  #lane: Entry[] = [];
  #laneHead = 0;
  #arrivals = 0;

  /** Keys in the queue. */
  get size(): number {
    return this.#byKey.size;
  }

  /** True when `key` is queued. */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** Queues `key` to be due at `at`. A key already queued keeps the earlier of its two times. */
  add(key: string, at: number): void {
    const queued = this.#byKey.get(key);
    if (queued !== undefined) {
      if (at >= queued.at) return;
      this.#unlink(queued);
    }
    const entry: Entry = { key, at, seq: this.#arrivals++, index: IN_LANE };
    this.#byKey.set(key, entry);
    const last = this.#lane[this.#lane.length - 1];
    if (this.#laneHead === this.#lane.length || at >= last.at) {
      this.#lane.push(entry);
    } else {
      entry.index = this.#heap.length;
      this.#heap.push(entry);
      this.#siftUp(entry.index);
    }
  }

  /** The earliest due time, or undefined when empty. */
  peekTime(): number | undefined {
    return this.#first()?.at;
  }

  /** How many times a key was queued so far: `takeDue` can leave out the keys queued from then on. */
  get arrivals(): number {
    return this.#arrivals;
  }

  /**
   * Takes the earliest key out if it is due at or before `now` and, when
   * `queuedBefore` is given, was queued before `arrivals` reached it.
   */
  takeDue(now: number, queuedBefore = Infinity): string | undefined {
    const first = this.#first();
    if (first === undefined || first.at > now || first.seq >= queuedBefore) return undefined;
    this.#unlink(first);
    return first.key;
  }

  /** Takes `key` out of the queue; false when it was not queued. */
  delete(key: string): boolean {
    const entry = this.#byKey.get(key);
    if (entry === undefined) return false;
    this.#unlink(entry);
    return true;
  }

  /** The queued keys, earliest first. */
  keys(): string[] {
    return [...this.#byKey.values()].sort(compare).map((entry) => entry.key);
  }

  /** The head of the lane or of the heap, whichever comes first. */
  #first(): Entry | undefined {
    const lane = this.#laneFirst();
    const heap = this.#heap[0];
    if (lane === undefined) return heap;
    return heap !== undefined && compare(heap, lane) < 0 ? heap : lane;
  }

  /** The first live entry of the lane, dropping entries already taken out. */
  #laneFirst(): Entry | undefined {
    const lane = this.#lane;
    while (this.#laneHead < lane.length && lane[this.#laneHead].index === GONE) this.#laneHead++;
    if (this.#laneHead === lane.length) {
      if (lane.length > 0) this.#lane = [];
      this.#laneHead = 0;
      return undefined;
    }
    // Keep the array from growing without bound behind its head.
    if (this.#laneHead > 1024 && this.#laneHead * 2 > lane.length) {
      this.#lane = lane.slice(this.#laneHead);
      this.#laneHead = 0;
    }
    return this.#lane[this.#laneHead];
  }

  #unlink(entry: Entry): void {
    this.#byKey.delete(entry.key);
    if (entry.index >= 0) this.#removeFromHeap(entry.index);
    entry.index = GONE;
  }

  #removeFromHeap(index: number): void {
    const heap = this.#heap;
    const last = heap.pop() as Entry;
    if (index === heap.length) return;
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
