import { fnv1a32, mix32 } from './shardOf.js';

/**
 * Who should write each shard, computed alone by every replica from the
 * names it knows: no coordinator, no message. Two replicas with the same
 * view compute the same answer, whatever order they learned the names in.
 *
 * - {@link rendezvousScore}: how much a replica "wants" a shard (rendezvous,
 *   or highest-random-weight, hashing): a shard's ranking of replicas moves
 *   only where a name comes or goes.
 * - {@link assignShards}: the preferred writer of every shard, rendezvous
 *   with bounded loads: each shard goes to the replica that wants it most
 *   among those that still have room (loads within one of each other), so
 *   that 30 shards on 3 replicas are 10, 10 and 10, not the 7 to 13 that
 *   plain rendezvous draws.
 * - {@link preferenceOrder}: the order in which replicas get their turn at a
 *   shard: its preferred writer, then the others by rendezvous score.
 */

/** The score from a member's hash, so that a ranking hashes each name once. */
function scoreOf(shard: number, memberHash: number): number {
  return mix32(memberHash ^ Math.imul(shard + 1, 0x9e3779b1));
}

/**
 * How much `member` wants `shard`: `mix32(fnv1a32(member) xor ((shard + 1) × 0x9e3779b1))`,
 * with murmur3's finalizer as `mix32`. Portable: any language gets the same number.
 *
 * @example
 * ```ts
 * rendezvousScore(3, 'replica-1') > rendezvousScore(3, 'replica-2'); // the same answer on every replica
 * ```
 * @param shard The shard, an integer >= 0.
 * @param member A replica's name.
 * @returns An unsigned 32-bit integer.
 */
export function rendezvousScore(shard: number, member: string): number {
  return scoreOf(shard, fnv1a32(member));
}

/** Higher score first; a tie (one in 2^32) by name, so that the order is total. */
function byScore(a: { score: number; member: string }, b: { score: number; member: string }): number {
  return b.score - a.score || (a.member < b.member ? -1 : a.member > b.member ? 1 : 0);
}

/**
 * The members in the order `shard` wants them, highest score first.
 *
 * @example
 * ```ts
 * rendezvousRanking(3, ['a', 'b', 'c']); // e.g. ['c', 'a', 'b']; without 'c': ['a', 'b']
 * ```
 * @param shard The shard.
 * @param members Replica names, in any order.
 * @returns A new array of the same names.
 */
export function rendezvousRanking(shard: number, members: readonly string[]): string[] {
  return members
    .map((member) => ({ member, score: rendezvousScore(shard, member) }))
    .sort(byScore)
    .map(({ member }) => member);
}

/**
 * The preferred writer of every shard: rendezvous hashing with bounded loads.
 * Every (shard, member) pair is taken from the highest score down; a pair
 * assigns its shard when the shard has no writer yet and the member has
 * room: `floor(shards / members)` shards each, and one more for the first
 * `shards mod members` members to reach that. Loads therefore differ by one
 * at most (with 30 shards and 3 members: 10 each), and a shard leaves its
 * top replica only when that replica is full of shards it wants more.
 *
 * The price of the bound: a member coming or going can move a few shards
 * between the others too (plain rendezvous moves only the shards that member
 * takes or leaves). `marbles/shards.spec.ts` measures it.
 *
 * @example
 * ```ts
 * const preferred = assignShards(30, ['replica-1', 'replica-2', 'replica-3']);
 * preferred.filter((name) => name === 'replica-1').length; // 10
 * ```
 * @param shards How many shards, an integer >= 1.
 * @param members Replica names, at least one, no duplicates.
 * @returns The preferred writer of each shard, by shard.
 */
export function assignShards(shards: number, members: readonly string[]): string[] {
  // floor(shards / members) each, and one more for `shards mod members` of them: loads differ by one at most.
  const base = Math.floor(shards / members.length);
  let extras = shards % members.length;
  const pairs: { shard: number; member: string; score: number }[] = [];
  for (const member of members) {
    const hash = fnv1a32(member);
    for (let shard = 0; shard < shards; shard++) pairs.push({ shard, member, score: scoreOf(shard, hash) });
  }
  pairs.sort((a, b) => byScore(a, b) || a.shard - b.shard);
  const writers = new Array<string | undefined>(shards).fill(undefined);
  const loads = new Map<string, number>();
  let left = shards;
  for (const { shard, member } of pairs) {
    if (writers[shard] !== undefined) continue;
    const load = loads.get(member) ?? 0;
    if (load > base || (load === base && extras === 0)) continue;
    if (load === base) extras--;
    writers[shard] = member;
    loads.set(member, load + 1);
    if (--left === 0) break;
  }
  return writers as string[];
}

/**
 * The order in which the members get their turn at `shard`: `preferred`
 * first, then the others by rendezvous score. A replica's rank is its index.
 *
 * @example
 * ```ts
 * preferenceOrder(3, ['a', 'b', 'c'], 'b'); // ['b', then 'a' and 'c' in the order shard 3 wants them]
 * ```
 * @param shard The shard.
 * @param members Replica names.
 * @param preferred The shard's preferred writer (from {@link assignShards}), one of `members`.
 * @returns A new array of the same names.
 */
export function preferenceOrder(shard: number, members: readonly string[], preferred: string): string[] {
  return [preferred, ...rendezvousRanking(shard, members).filter((member) => member !== preferred)];
}
