import { StoreValueError } from './errors.js';
import type { Generational, RecordKind } from './store.js';

const KINDS: readonly RecordKind[] = ['spec', 'status'];

/**
 * How records are named in a key-value store: `<root><kind><separator><key>`.
 * Redis uses root `wl:` and separator `:`, etcd root `/wl/` and separator `/`.
 *
 * @example
 * ```ts
 * const layout = recordLayout('/wl/', '/');
 * layout.keyOf('spec', 'route/a'); // '/wl/spec/route/a'
 * layout.parse('/wl/status/route/a'); // { kind: 'status', key: 'route/a' }
 * layout.parse('/wl/other/x'); // undefined
 * ```
 * @param root What every record name starts with, separator included.
 * @param separator What comes between the kind and the key.
 * @returns The naming functions.
 */
export function recordLayout(root: string, separator: string): RecordLayout {
  const keyOf = (kind: RecordKind, key: string): string => `${root}${kind}${separator}${key}`;
  return {
    root,
    keyOf,
    parse(name) {
      for (const kind of KINDS) {
        const start = keyOf(kind, '');
        if (name.startsWith(start)) return { kind, key: name.slice(start.length) };
      }
      return undefined;
    },
  };
}

/** The naming functions of {@link recordLayout}. */
export interface RecordLayout {
  /** What every record name starts with: list or watch this prefix to see every record. */
  readonly root: string;
  /** The full name of a record. */
  keyOf(kind: RecordKind, key: string): string;
  /** The kind and key of a full name; undefined for a name that is not a record's. */
  parse(name: string): { readonly kind: RecordKind; readonly key: string } | undefined;
}

/**
 * The identity of a record inside one store, unique across kinds: kinds
 * contain no `:`, so the first `:` separates the kind from the key.
 *
 * @example
 * ```ts
 * recordId('status', 'route:a'); // 'status:route:a'
 * ```
 * @param record The record's kind and key.
 * @returns `<kind>:<key>`.
 */
export function recordId({ kind, key }: { readonly kind: RecordKind; readonly key: string }): string {
  return `${kind}:${key}`;
}

/**
 * Serializes a value for a store, refusing one without a numeric `generation`
 * so that a bad write fails before it reaches the server.
 *
 * @example
 * ```ts
 * encodeRecord({ generation: 1, value: 'x' }, 'memory://', 'spec a'); // '{"generation":1,"value":"x"}'
 * ```
 * @param value The value to write.
 * @param url The store, for the error message.
 * @param record The record, for the error message.
 * @returns The JSON text.
 * @throws StoreValueError when `generation` is not a finite number.
 */
export function encodeRecord(value: Generational, url: string, record: string): string {
  assertGenerational(value, url, record);
  return JSON.stringify(value);
}

/**
 * Parses a value read from a store (JSON text, or an object a driver already
 * parsed, as `pg` does for `jsonb`) and checks that it has a numeric
 * `generation`: other tools may write to the same keys.
 *
 * @example
 * ```ts
 * decodeRecord('{"generation":2}', 'redis://h:6379', 'wl:spec:a'); // { generation: 2 }
 * decodeRecord('oops', 'redis://h:6379', 'wl:spec:a'); // throws StoreValueError
 * ```
 * @param raw JSON text or an already parsed value.
 * @param url The store, for the error message.
 * @param record The record, for the error message.
 * @param version The version it was read at, carried by the error.
 * @returns The value.
 * @throws StoreValueError when it is not JSON or has no numeric `generation`.
 */
export function decodeRecord<T extends Generational>(raw: unknown, url: string, record: string, version?: number): T {
  let value = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      throw new StoreValueError({ url, record, received: raw, version });
    }
  }
  assertGenerational(value, url, record, version);
  return value as T;
}

function assertGenerational(
  value: unknown,
  url: string,
  record: string,
  version?: number,
): asserts value is Generational {
  const generation = (value as Partial<Generational> | null)?.generation;
  if (typeof value !== 'object' || typeof generation !== 'number' || !Number.isFinite(generation)) {
    throw new StoreValueError({ url, record, received: value, version });
  }
}
