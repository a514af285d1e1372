import { crc16, HASH_SLOTS } from './hashSlot.js';
import { recordLayout, type RecordLayout } from './recordLayout.js';
import { escapeGlob } from './redisRecords.js';
import type { RecordKind } from './store.js';

/**
 * How many buckets the records of a Redis Cluster store are spread over.
 * Each bucket is one hash slot, 16 slots apart from the next, so that a
 * master serving a share of the slots in contiguous ranges (as
 * `redis-cli --cluster create` and `rebalance` assign them) serves the same
 * share of the buckets, within one bucket per range.
 *
 * @example
 * ```ts
 * HASH_SLOTS / BUCKETS; // 16: bucket n is slot 16 × n
 * ```
 */
export const BUCKETS = 1024;

const SLOT_STEP = HASH_SLOTS / BUCKETS;

/**
 * The names one bucket of a Redis Cluster store uses: all in one hash slot,
 * through the hash tag inside the prefix, so that every script touches one
 * slot and may `SPUBLISH` on the bucket's channel.
 *
 * @example
 * ```ts
 * const bucket = clusterLayout('wl:').of('route-a');
 * bucket.records.keyOf('status', 'route-a'); // 'wl:{<tag>}:status:route-a'
 * bucket.versionsKey; // 'wl:{<tag>}:versions'
 * ```
 */
export interface Bucket {
  /** 0 to {@link BUCKETS} - 1. */
  readonly index: number;
  /** The hash slot of every name below. */
  readonly slot: number;
  /** The record names: `<prefix>{<tag>}:spec:<key>` and `<prefix>{<tag>}:status:<key>`. */
  readonly records: RecordLayout;
  /** Hash: field `<kind>:<key>` → version. */
  readonly versionsKey: string;
  /** The last version handed out in this bucket. */
  readonly revisionKey: string;
  /** The sharded pub/sub channel of this bucket's changes and handovers. */
  readonly channel: string;
}

/**
 * The buckets of a Redis Cluster store with its prefix, and how to tell
 * which one a record or a key name belongs to.
 *
 * @example
 * ```ts
 * const layout = clusterLayout('wl:');
 * layout.buckets.length; // 1024
 * layout.parse(layout.of('a').records.keyOf('spec', 'a')); // { bucket: layout.of('a'), kind: 'spec', key: 'a' }
 * layout.parse('wl:versions'); // undefined
 * ```
 */
export interface ClusterLayout {
  /** Every bucket, by index. */
  readonly buckets: readonly Bucket[];
  /** A glob for `SCAN MATCH` that every record name matches. */
  readonly scanPattern: string;
  /** The bucket a record's key belongs to (both kinds of one key share it). */
  of(key: string): Bucket;
  /** The bucket, kind and key of a record name; undefined for another name, or a record in the wrong bucket. */
  parse(name: string): { readonly bucket: Bucket; readonly kind: RecordKind; readonly key: string } | undefined;
}

/**
 * Lays out a Redis Cluster store's names under `prefix`: a record's key
 * goes to bucket `CRC16(key) mod 1024`, and bucket n's names carry the hash
 * tag of slot 16 × n (the smallest decimal number that hashes there).
 *
 * @example
 * ```ts
 * clusterLayout('wl:').of('route-a').records.keyOf('spec', 'route-a'); // 'wl:{<tag>}:spec:route-a'
 * ```
 * @param prefix What every name starts with; must contain no `{` or `}`.
 * @returns The layout.
 */
export function clusterLayout(prefix: string): ClusterLayout {
  const tags = bucketTags();
  const byTag = new Map<string, Bucket>();
  const buckets = tags.map((tag, index): Bucket => {
    const root = `${prefix}{${tag}}:`;
    const bucket = {
      index,
      slot: index * SLOT_STEP,
      records: recordLayout(root, ':'),
      versionsKey: `${root}versions`,
      revisionKey: `${root}revision`,
      channel: `${root}changes`,
    };
    byTag.set(tag, bucket);
    return bucket;
  });
  const of = (key: string): Bucket => buckets[crc16(Buffer.from(key)) % BUCKETS];
  return {
    buckets,
    scanPattern: `${escapeGlob(prefix)}{*`,
    of,
    parse(name) {
      if (!name.startsWith(`${prefix}{`)) return undefined;
      const close = name.indexOf('}', prefix.length + 1);
      const bucket = byTag.get(name.slice(prefix.length + 1, close));
      const record = bucket?.records.parse(name);
      if (bucket === undefined || record === undefined || of(record.key) !== bucket) return undefined;
      return { bucket, ...record };
    },
  };
}

let cachedTags: readonly string[] | undefined;

/**
 * Bucket n's tag: the smallest decimal number whose hash slot is 16 × n.
 * Found by counting up from 0 (about 70,000 CRCs, a few ms), once per process.
 */
function bucketTags(): readonly string[] {
  if (cachedTags !== undefined) return cachedTags;
  const tags = new Array<string>(BUCKETS);
  const digits = new Uint8Array(8);
  let found = 0;
  for (let n = 0; found < BUCKETS; n++) {
    const text = String(n);
    for (let i = 0; i < text.length; i++) digits[i] = text.charCodeAt(i);
    const slot = crc16(digits.subarray(0, text.length)) % HASH_SLOTS;
    if (slot % SLOT_STEP !== 0 || tags[slot / SLOT_STEP] !== undefined) continue;
    tags[slot / SLOT_STEP] = text;
    found++;
  }
  cachedTags = tags;
  return tags;
}
