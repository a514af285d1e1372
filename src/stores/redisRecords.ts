import type { RecordChange } from './store.js';
import { TurnBatches } from './turnBatches.js';

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
 * batches.write(target, { name, field, kind, key, expected: ANY, json });
 * ```
 */
export const ANY = '*';

/**
 * The `expected` argument of the write script: write only if the record is absent.
 *
 * @example
 * ```ts
 * batches.write(target, { name, field, kind, key, expected: ABSENT, json });
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
 * Writes or deletes records, each if its version is as expected, and
 * publishes the changes made, in order, as one message (a change alone, or
 * an array of them): one script call for a batch of writes, all of whose
 * keys are in one hash slot on Redis Cluster.
 * KEYS: versions hash, revision counter, (one Redis) the replication ID the
 * counter counts under, then each record's key.
 * ARGV: channel, then for each record: hash field, kind, key, expected ('*':
 * any, '-': absent, else a version), JSON ('' deletes).
 * Returns, for each record in order, the new version, the deleted record's
 * version (0 when there was none), or -1 when the version was not as expected.
 */
const writeRecords = (server: RedisServer): string => {
  const first = server === 'cluster' ? 3 : 4;
  const PUBLISH = server === 'cluster' ? 'SPUBLISH' : 'PUBLISH';
  return `
local epochChecked = false
local changes = {}
local function write(name, field, kind, key, expected, json)
  local exists = redis.call('EXISTS', name) == 1
  local current = redis.call('HGET', KEYS[1], field) or '0'
  if expected == '-' and exists then return -1 end
  if expected ~= '-' and expected ~= '*' and (not exists or current ~= expected) then return -1 end
  local version
  if json == '' then
    if not exists then return 0 end
    redis.call('DEL', name)
    redis.call('HDEL', KEYS[1], field)
    version = current
  else
    -- Redis replicates asynchronously: a promoted replica may lack the last versions the old
    -- primary issued, and would issue them again for other values, so that a compare-and-set
    -- against a version read from the old primary could pass. Checked once per batch.
    if not epochChecked then
${server === 'cluster' ? CLUSTER_EPOCH : REPLICATION_EPOCH}
      epochChecked = true
    end
    version = redis.call('INCR', KEYS[2])
    redis.call('SET', name, json)
    redis.call('HSET', KEYS[1], field, version)
  end
  local value = json == '' and 'null' or json
  -- Lua prints numbers with 14 significant digits: format the version whole.
  local versionText = string.format('%.0f', tonumber(version))
  changes[#changes + 1] = '{"kind":' .. cjson.encode(kind) .. ',"key":' .. cjson.encode(key) ..
    ',"version":' .. versionText .. ',"value":' .. value .. '}'
  return tonumber(version)
end
local out = {}
for i = ${first}, #KEYS do
  local a = 2 + (i - ${first}) * 5
  out[#out + 1] = write(KEYS[i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
end
-- One message for the batch: each subscriber reads one message per call, not one per record.
if #changes == 1 then
  redis.call('${PUBLISH}', ARGV[1], changes[1])
elseif #changes > 1 then
  redis.call('${PUBLISH}', ARGV[1], '[' .. table.concat(changes, ',') .. ']')
end
return out`;
};

/**
 * One Redis (alone or behind Sentinel): a new primary has a new replication
 * ID, and its first write moves the counter to the next epoch, above every
 * version the old primary can have issued.
 */
const REPLICATION_EPOCH = `      local replid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
      local countedUnder = redis.call('GET', KEYS[3])
      if countedUnder ~= replid then
        if countedUnder then
          local revision = tonumber(redis.call('GET', KEYS[2]) or '0')
          redis.call('SET', KEYS[2], string.format('%.0f', (math.floor(revision / ${EPOCH}) + 1) * ${EPOCH}))
        end
        redis.call('SET', KEYS[3], replid)
      end`;

/**
 * Redis Cluster: a master counts from 2^32 × its config epoch, which the
 * cluster raises, at each promotion, above every epoch it gave before. So
 * the fence holds even for a bucket whose every write the promoted replica
 * lacks (a counter it never received), which a replication ID cannot tell
 * from a bucket never written.
 */
const CLUSTER_EPOCH = `      local epoch = tonumber(string.match(redis.call('CLUSTER', 'INFO'), 'cluster_my_epoch:(%d+)'))
      if tonumber(redis.call('GET', KEYS[2]) or '0') < epoch * ${EPOCH} then
        redis.call('SET', KEYS[2], string.format('%.0f', epoch * ${EPOCH}))
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
 * await commands.writeRecords(4, versions, revision, replid, name, channel, 'spec:a', 'spec', 'a', ANY, '{"generation":1}'); // [7]
 * ```
 */
export interface RecordCommands {
  /** Runs the read script: `keyCount` keys (the versions hash first, then the records), then their hash fields. */
  readRecords(keyCount: number, ...keysThenFields: string[]): Promise<string[]>;
  /**
   * Runs the write script: `keyCount` keys (the versions hash, the revision
   * counter, on one Redis the replication ID, then the records), then the
   * channel and 5 arguments per record. Resolves with each record's
   * version, or -1 for a conflict.
   */
  writeRecords(keyCount: number, ...keysThenArgs: string[]): Promise<number[]>;
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
  connection.defineCommand('writeRecords', { lua: writeRecords(server) });
  return connection as T & RecordCommands;
}

/**
 * Where a batch of writes goes: the versions hash, the revision counter and
 * the channel the records share (on Redis Cluster, a bucket's, all in one
 * hash slot), and on one Redis the key holding the replication ID that the
 * counter counts under.
 */
export interface WriteTarget {
  readonly versionsKey: string;
  readonly revisionKey: string;
  readonly replicationKey?: string;
  readonly channel: string;
}

/** One record to write with the write script (`json` '' deletes it). */
export interface RecordWrite {
  readonly name: string;
  readonly field: string;
  readonly kind: string;
  readonly key: string;
  readonly expected: string;
  readonly json: string;
}

/** At most this many records in one script call: a script holds Redis while it runs (about 5 µs a record). */
const MAX_BATCH = 256;

/**
 * Gathers the writes made in one turn of the event loop and sends each
 * target's as one script call ({@link TurnBatches}): a replica whose units
 * write hundreds of statuses at once (a burst) makes one round trip and one
 * Redis command for each batch of {@link MAX_BATCH}, not one per record.
 * Each write still succeeds or conflicts on its own, in the order it was
 * made; when the call fails, every write of its batch fails with its error
 * (none is known to have been applied or not).
 *
 * @example
 * ```ts
 * const batches = new WriteBatches(commands);
 * await batches.write(target, { name, field: 'spec:a', kind: 'spec', key: 'a', expected: ANY, json }); // 7
 * ```
 */
export class WriteBatches {
  readonly #batches: TurnBatches<TargetedWrite, number>;

  /**
   * @param commands A connection with {@link RecordCommands}.
   */
  constructor(commands: RecordCommands) {
    this.#batches = new TurnBatches({
      maxBatch: MAX_BATCH,
      groupOf: ({ target }) => target,
      send: (writes) => {
        const { target } = writes[0];
        const keys = [target.versionsKey, target.revisionKey];
        if (target.replicationKey !== undefined) keys.push(target.replicationKey);
        for (const { write } of writes) keys.push(write.name);
        const args = [target.channel];
        for (const { write } of writes) args.push(write.field, write.kind, write.key, write.expected, write.json);
        return commands.writeRecords(keys.length, ...keys, ...args);
      },
    });
  }

  /**
   * Writes one record with the next batch of its target.
   *
   * @param target Where the record's version and change go.
   * @param write The record, its expected version and its JSON.
   * @returns The version written (or deleted), or -1 on a conflict.
   */
  write(target: WriteTarget, write: RecordWrite): Promise<number> {
    return this.#batches.add({ target, write });
  }
}

interface TargetedWrite {
  readonly target: WriteTarget;
  readonly write: RecordWrite;
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
 * The changes a write script published, read back from its message: one
 * change, or an array of the changes of one batch, in the order they were
 * made.
 *
 * @example
 * ```ts
 * decodeChanges('{"kind":"spec","key":"a","version":7,"value":null}');
 * // [{ kind: 'spec', key: 'a', version: 7, value: undefined }]
 * decodeChanges('[{"kind":"spec","key":"a","version":7,"value":{}},{"kind":"spec","key":"b","version":8,"value":{}}]');
 * // two changes
 * decodeChanges('hello'); // []: another publisher's
 * decodeChanges('42'); // []: JSON, but no change
 * ```
 * @param message The message's text.
 * @returns The changes; none when the text is not JSON, or JSON that is no object.
 */
export function decodeChanges(message: string): RecordChange[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return [];
  }
  const changes: RecordChange[] = [];
  for (const item of Array.isArray(parsed) ? (parsed as unknown[]) : [parsed]) {
    // JSON that is not an object is another publisher's.
    if (typeof item !== 'object' || item === null) continue;
    const { kind, key, version, value } = item as Omit<RecordChange, 'value'> & { value: unknown };
    changes.push({ kind, key, version, value: value === null ? undefined : value });
  }
  return changes;
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
