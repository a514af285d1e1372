import type { RecordChange } from './store.js';

/**
 * Versions issued by one primary are below 2^32 × (its epoch + 1); each new
 * primary starts a new epoch, so versions fit a double for 2^21 failovers
 * (Redis Cluster: up to config epoch 2^21).
 *
 * @example
 * ```ts
 * Math.floor(version / EPOCH); // how many primaries counted before the one that issued `version`
 * ```
 */
export const EPOCH = 2 ** 32;

/**
 * The `expected` argument of the write script: write whatever the version.
 *
 * @example
 * ```ts
 * commands.writeRecord(name, versions, revision, replid, field, kind, key, channel, ANY, json);
 * ```
 */
export const ANY = '*';

/**
 * The `expected` argument of the write script: write only if the record is absent.
 *
 * @example
 * ```ts
 * commands.writeRecord(name, versions, revision, replid, field, kind, key, channel, ABSENT, json);
 * ```
 */
export const ABSENT = '-';

/**
 * Reads records with their versions in one atomic step.
 * KEYS[1]: the versions hash; KEYS[2..n]: record keys; ARGV: their hash fields.
 * Returns, for each record, its JSON ('' when missing) and its version ('0'
 * when another tool wrote the key without one).
 */
const READ_RECORDS = `
local out = {}
for i = 2, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i]) or ''
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i - 1]) or '0'
end
return out`;

/**
 * Writes or deletes one record if its version is as expected, and publishes the change.
 * KEYS: record key, versions hash, revision counter, and (one Redis) the
 * replication ID the counter counts under.
 * ARGV: hash field, kind, key, channel, expected ('*': any, '-': absent, else a
 * version), JSON ('' deletes).
 * Returns the new version, the deleted record's version (0 when there was
 * none), or -1 when the version was not as expected.
 */
const writeRecord = (server: RedisServer): string => `
local exists = redis.call('EXISTS', KEYS[1]) == 1
local current = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
local expected = ARGV[5]
if expected == '-' and exists then return -1 end
if expected ~= '-' and expected ~= '*' and (not exists or current ~= expected) then return -1 end
local version
if ARGV[6] == '' then
  if not exists then return 0 end
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  version = current
else
  -- Redis replicates asynchronously: a promoted replica may lack the last versions the old
  -- primary issued, and would issue them again for other values, so that a compare-and-set
  -- against a version read from the old primary could pass.
${server === 'cluster' ? CLUSTER_EPOCH : REPLICATION_EPOCH}
  version = redis.call('INCR', KEYS[3])
  redis.call('SET', KEYS[1], ARGV[6])
  redis.call('HSET', KEYS[2], ARGV[1], version)
end
local value = ARGV[6] == '' and 'null' or ARGV[6]
-- Lua prints numbers with 14 significant digits: format the version whole.
local versionText = string.format('%.0f', tonumber(version))
redis.call('${server === 'cluster' ? 'SPUBLISH' : 'PUBLISH'}', ARGV[4], '{"kind":' .. cjson.encode(ARGV[2]) .. ',"key":' .. cjson.encode(ARGV[3]) ..
  ',"version":' .. versionText .. ',"value":' .. value .. '}')
return tonumber(version)`;

/**
 * One Redis (alone or behind Sentinel): a new primary has a new replication
 * ID, and its first write moves the counter to the next epoch, above every
 * version the old primary can have issued.
 */
const REPLICATION_EPOCH = `  local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
  local countedUnder = redis.call('GET', KEYS[4])
  if countedUnder ~= replid then
    if countedUnder then
      local revision = tonumber(redis.call('GET', KEYS[3]) or '0')
      redis.call('SET', KEYS[3], string.format('%.0f', (math.floor(revision / ${EPOCH}) + 1) * ${EPOCH}))
    end
    redis.call('SET', KEYS[4], replid)
  end`;

/**
 * Redis Cluster: a master counts from 2^32 × its config epoch, which the
 * cluster raises, at each promotion, above every epoch it gave before. So
 * the fence holds even for a bucket whose every write the promoted replica
 * lacks (a counter it never received), which a replication ID cannot tell
 * from a bucket never written.
 */
const CLUSTER_EPOCH = `  local epoch = tonumber(string.match(redis.call('CLUSTER', 'INFO'), 'cluster_my_epoch:(%d+)'))
  if tonumber(redis.call('GET', KEYS[3]) or '0') < epoch * ${EPOCH} then
    redis.call('SET', KEYS[3], string.format('%.0f', epoch * ${EPOCH}))
  end`;

/**
 * The server the scripts run on: one Redis (`PUBLISH`, an epoch per
 * replication ID), or Redis Cluster (`SPUBLISH` on the channel's own slot,
 * an epoch per master's config epoch).
 *
 * @example
 * ```ts
 * const server: RedisServer = 'cluster';
 * ```
 */
export type RedisServer = 'redis' | 'cluster';

/**
 * The commands {@link defineRecordCommands} adds to a connection.
 *
 * @example
 * ```ts
 * await commands.writeRecord(name, versions, revision, replid, 'spec:a', 'spec', 'a', channel, ANY, '{"generation":1}'); // 7
 * ```
 */
export interface RecordCommands {
  /** Runs the read script: `keyCount` keys (the versions hash first, then the records), then their hash fields. */
  readRecords(keyCount: number, ...keysThenFields: string[]): Promise<string[]>;
  /**
   * Runs the write script: 4 keys on one Redis, 3 on Redis Cluster (no
   * replication ID), then 6 arguments. Resolves with the version, or -1 on a conflict.
   */
  writeRecord(...keysThenArgs: string[]): Promise<number>;
}

/** What both an ioredis `Redis` and `Cluster` offer to define a script as a command. */
interface ScriptHost {
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
}

/**
 * Defines the record scripts on an ioredis connection (a `Redis` or a
 * `Cluster`); ioredis sends them with `EVALSHA`, and with `EVAL` to a
 * server that does not have them yet.
 *
 * @example
 * ```ts
 * const commands = defineRecordCommands(new Redis(url), 'redis');
 * ```
 * @param connection The connection.
 * @param server What it talks to.
 * @returns The same connection, typed with the commands.
 */
export function defineRecordCommands<T extends ScriptHost>(connection: T, server: RedisServer): T & RecordCommands {
  connection.defineCommand('readRecords', { lua: READ_RECORDS });
  connection.defineCommand('writeRecord', { numberOfKeys: server === 'cluster' ? 3 : 4, lua: writeRecord(server) });
  return connection as T & RecordCommands;
}

/**
 * Reads records with their versions atomically, with the read script.
 *
 * @example
 * ```ts
 * await readVersioned(commands, 'wl:versions', [{ name: 'wl:spec:a', field: 'spec:a' }]);
 * // [{ json: '{"generation":1}', version: 7 }]
 * ```
 * @param commands A connection with {@link RecordCommands}.
 * @param versionsKey The versions hash.
 * @param records Each record's key and its field in the versions hash (all in one hash slot on Redis Cluster).
 * @returns Each record's JSON (undefined when missing) and version (0 without one), in order.
 */
export async function readVersioned(
  commands: RecordCommands,
  versionsKey: string,
  records: readonly { readonly name: string; readonly field: string }[],
): Promise<{ json?: string; version: number }[]> {
  const names = records.map(({ name }) => name);
  const fields = records.map(({ field }) => field);
  const reply = await commands.readRecords(names.length + 1, versionsKey, ...names, ...fields);
  return names.map((_, i) => ({ json: reply[2 * i] || undefined, version: Number(reply[2 * i + 1]) }));
}

/**
 * The change a write script published, read back from its message.
 *
 * @example
 * ```ts
 * decodeChange('{"kind":"spec","key":"a","version":7,"value":null}');
 * // { kind: 'spec', key: 'a', version: 7, value: undefined }
 * decodeChange('hello'); // undefined: another publisher's
 * ```
 * @param message The message's text.
 * @returns The change; undefined when the text is not JSON.
 */
export function decodeChange(message: string): RecordChange | undefined {
  try {
    const { kind, key, version, value } = JSON.parse(message) as Omit<RecordChange, 'value'> & { value: unknown };
    return { kind, key, version, value: value === null ? undefined : value };
  } catch {
    return undefined;
  }
}

/**
 * A glob that matches `text` literally in `SCAN MATCH`.
 *
 * @example
 * ```ts
 * escapeGlob('a*b'); // 'a\\*b'
 * ```
 * @param text Any text.
 * @returns It with `*`, `?`, `[`, `]` and `\` escaped.
 */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
