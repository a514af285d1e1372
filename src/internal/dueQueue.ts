/**
 * Where a queued thing keeps its place. The queue is intrusive: it orders
 * the caller's own objects instead of wrapping them, so a key costs the lease
 * one object and one map entry, not three.
 */
export interface QueueSlot {
  /** When it is due; meaningful while queued. */
  at: number;
  /** Order of arrival, so that slots due at the same time leave in the order they became due. */
  seq: number;
  /** Position in the heap, {@link IN_LANE}, or {@link NOT_QUEUED}. */
  index: number;
}

const IN_LANE = -1;
/** The `index` of a slot that is not queued: give it to new slots. */
export const NOT_QUEUED = -2;

/**
 * Slots ordered by the time they become due, earliest first and, at equal
 * times, in the order they became due. A slot is queued at most once.
 *
 * Most slots arrive in time order (due now, or now plus a fixed delay), so
 * they go to a first-in-first-out lane at O(1); a slot due earlier than the
 * lane's last goes to a binary min-heap. Taking compares the two heads.
 */
export class DueQueue<S extends QueueSlot> {
  readonly #heap: S[] = [];
  /** Slots in (at, seq) order, with the seq each had when it joined: a slot queued again elsewhere is stale here. */
  #lane: S[] = [];
  #laneSeqs: number[] = [];
  #laneHead = 0;
  /** The due time of the lane's last slot when it joined (that slot may have moved since). */
  #laneTailAt = -Infinity;
  #arrivals = 0;
  #size = 0;

  /** Slots in the queue. */
  get size(): number {
    return this.#size;
  }

  /** How many times a slot was queued so far: `takeDue` can leave out the slots queued from then on. */
  get arrivals(): number {
    return this.#arrivals;
  }

  /** True when `slot` is queued. */
  has(slot: S): boolean {
    return slot.index !== NOT_QUEUED;
  }

  /** Queues `slot` to be due at `at`. A slot already queued keeps the earlier of its two times. */
  add(slot: S, at: number): void {
    if (slot.index !== NOT_QUEUED) {
      if (at >= slot.at) return;
      this.delete(slot);
    }
    slot.at = at;
    slot.seq = this.#arrivals++;
    this.#size++;
    if (this.#laneHead === this.#lane.length || at >= this.#laneTailAt) {
      slot.index = IN_LANE;
      this.#lane.push(slot);
      this.#laneSeqs.push(slot.seq);
      this.#laneTailAt = at;
    } else {
      slot.index = this.#heap.length;
      this.#heap.push(slot);
      this.#siftUp(slot.index);
    }
  }

  /** The earliest due time, or undefined when empty. */
  peekTime(): number | undefined {
    return this.#first()?.at;
  }

  /**
   * Takes the earliest slot out if it is due at or before `now` and, when
   * `queuedBefore` is given, joined before `arrivals` reached it.
   */
  takeDue(now: number, queuedBefore = Infinity): S | undefined {
    const first = this.#first();
    if (first === undefined || first.at > now || first.seq >= queuedBefore) return undefined;
    this.delete(first);
    return first;
  }

  /** Takes `slot` out of the queue; false when it was not queued. */
  delete(slot: S): boolean {
    if (slot.index === NOT_QUEUED) return false;
    if (slot.index >= 0) this.#removeFromHeap(slot.index);
    slot.index = NOT_QUEUED;
    this.#size--;
    return true;
  }

  /** The head of the lane or of the heap, whichever comes first. */
  #first(): S | undefined {
    const lane = this.#laneFirst();
    const heap = this.#heap[0];
    if (lane === undefined) return heap;
    return heap !== undefined && compare(heap, lane) < 0 ? heap : lane;
  }

  /** The first live slot of the lane, dropping the stale ones before it. */
  #laneFirst(): S | undefined {
    const lane = this.#lane;
    const seqs = this.#laneSeqs;
    let head = this.#laneHead;
    while (head < lane.length && (lane[head].index !== IN_LANE || lane[head].seq !== seqs[head])) head++;
    if (head === lane.length) {
      this.#lane = [];
      this.#laneSeqs = [];
      this.#laneHead = 0;
      return undefined;
    }
    // Keep the arrays from growing without bound behind their head.
    if (head > 1024 && head * 2 > lane.length) {
      this.#lane = lane.slice(head);
      this.#laneSeqs = seqs.slice(head);
      head = 0;
    }
    this.#laneHead = head;
    return this.#lane[head];
  }

  #removeFromHeap(index: number): void {
    const heap = this.#heap;
    const last = heap.pop() as S;
    if (index === heap.length) return;
    last.index = index;
    heap[index] = last;
    this.#siftDown(index);
    this.#siftUp(last.index);
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    const slot = heap[index];
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex];
      if (compare(parent, slot) <= 0) break;
      parent.index = index;
      heap[index] = parent;
      index = parentIndex;
    }
    slot.index = index;
    heap[index] = slot;
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    const slot = heap[index];
    const half = heap.length >> 1;
    while (index < half) {
      let childIndex = 2 * index + 1;
      const right = childIndex + 1;
      if (right < heap.length && compare(heap[right], heap[childIndex]) < 0) childIndex = right;
      const child = heap[childIndex];
      if (compare(slot, child) <= 0) break;
      child.index = index;
      heap[index] = child;
      index = childIndex;
    }
    slot.index = index;
    heap[index] = slot;
  }
}

function compare(a: QueueSlot, b: QueueSlot): number {
  return a.at - b.at || a.seq - b.seq;
}
