/**
 * The stable hash of a key and the shard it falls in. Stable means: the
 * same key gives the same shard in every process, on every run, and in any
 * language that has FNV-1a over UTF-8 (Go's `hash/fnv.New32a`) and
 * murmur3's 32-bit finalizer, so that replicas built from different code
 * still agree.
 */

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * FNV-1a, 32 bits, over the UTF-8 bytes of `text` (a lone surrogate counts
 * as U+FFFD, as `TextEncoder` encodes it). No allocation: this runs on every
 * `try`.
 *
 * @example
 * ```ts
 * fnv1a32(''); // 0x811c9dc5
 * fnv1a32('a'); // 0xe40c292c
 * fnv1a32('foobar'); // 0xbf9cf968
 * ```
 * @param text Any string.
 * @returns An unsigned 32-bit integer.
 */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET_BASIS;
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      hash = Math.imul(hash ^ code, FNV_PRIME);
      continue;
    }
    if (code < 0x800) {
      hash = Math.imul(hash ^ (0xc0 | (code >> 6)), FNV_PRIME);
      hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), FNV_PRIME);
      continue;
    }
    const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
    if (code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
      i++;
      hash = Math.imul(hash ^ (0xf0 | (code >> 18)), FNV_PRIME);
      hash = Math.imul(hash ^ (0x80 | ((code >> 12) & 0x3f)), FNV_PRIME);
      hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), FNV_PRIME);
      hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), FNV_PRIME);
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd;
    hash = Math.imul(hash ^ (0xe0 | (code >> 12)), FNV_PRIME);
    hash = Math.imul(hash ^ (0x80 | ((code >> 6) & 0x3f)), FNV_PRIME);
    hash = Math.imul(hash ^ (0x80 | (code & 0x3f)), FNV_PRIME);
  }
  return hash >>> 0;
}

/**
 * murmur3's 32-bit finalizer: every input bit moves every output bit. FNV-1a
 * alone leaves keys that differ in their last characters (`route/1`,
 * `route/2`...) unevenly spread over a modulus (1 to 18 keys per shard for
 * 300 such keys on 30 shards); mixed, they spread as random keys would.
 *
 * @example
 * ```ts
 * mix32(fnv1a32('route/1')) % 30; // the shard of 'route/1' among 30
 * ```
 * @param h An integer; only its low 32 bits count.
 * @returns An unsigned 32-bit integer.
 */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The shard of `key` among `shards`: `mix32(fnv1a32(key)) mod shards`.
 *
 * @example
 * ```ts
 * shardOf('route/a', 30); // the same number, from 0 to 29, everywhere and always
 * shardOf('route/a', 1); // 0
 * ```
 * @param key The record's key.
 * @param shards How many shards there are, an integer >= 1.
 * @returns The shard, from 0 to `shards - 1`.
 */
export function shardOf(key: string, shards: number): number {
  return mix32(fnv1a32(key)) % shards;
}
