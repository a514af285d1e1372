/**
 * A RecordStore over Kubernetes Ingress objects (networking.k8s.io/v1), through
 * @kubernetes/client-node 2: the store docs/kubernetes.md runs a StatusWriter on.
 * It follows docs/write-a-record-store.md; spec/ingressStatusStore.integration.spec.ts
 * runs the conformance suite against it.
 *
 * A record is one Ingress of one namespace; its key is the Ingress's name.
 *
 * - **spec**: the JSON text of `{ generation, value }` in the annotation
 *   `rx-writer-lease/spec`. Not `metadata.generation`: the API server assigns
 *   that one, while `put` writes the generation the driver chose.
 * - **status**: the JSON text of the StatusValue in `.status`, written through
 *   the status subresource (`replaceNamespacedIngressStatus`), where a
 *   controller writes status. Ingress's status has no conditions and no
 *   `observedGeneration`: only `status.loadBalancer.ingress`, whose `ip` and
 *   `hostname` the API server validates as an address and a DNS name. So the
 *   status is the `error` text of the one port entry of the one
 *   load-balancer entry this store writes; the store owns
 *   `status.loadBalancer` (see docs/kubernetes.md, "Where the status is written").
 * - **version**: `metadata.resourceVersion`, one for the whole object
 *   (`versioning: 'record'`). Kubernetes calls it opaque; an API server backed
 *   by etcd makes it etcd's revision, an integer that grows with every write of
 *   any object and never repeats, which is what the contract needs. The store
 *   refuses any other (it throws).
 *
 * A compare-and-set is a replace carrying the expected resourceVersion: the
 * API server checks it and writes in one step, and answers 409 Conflict when the
 * object moved (a refused compare-and-set) and 404 when it is gone (refused
 * too). The feed is a watch from the resourceVersion of a list, resumed from
 * the last one seen when it ends, and listed again when the API server says
 * 410 Gone (the version was compacted), replaying what changed meanwhile.
 *
 * The client is injected: `kc.makeApiClient(NetworkingV1Api)` and
 * `new Watch(kc)`, or anything with the same methods. This file imports only
 * the client's types, and the library from its sources; in your project, import
 * the library from 'rx-writer-lease'.
 */
import type { NetworkingV1Api, V1Ingress, V1IngressSpec, Watch } from '@kubernetes/client-node';
import { Subject, type Observable } from 'rxjs';
import {
  StoreClosedError,
  StoreValueError,
  type CallOptions,
  type CasOutcome,
  type Generational,
  type RecordChange,
  type RecordKind,
  type RecordStore,
  type Versioned,
} from '../../src/index.js';

/** The calls the store makes: `kc.makeApiClient(NetworkingV1Api)` has them. */
export type IngressApi = Pick<
  NetworkingV1Api,
  | 'listNamespacedIngress'
  | 'readNamespacedIngress'
  | 'createNamespacedIngress'
  | 'replaceNamespacedIngress'
  | 'replaceNamespacedIngressStatus'
>;

/** The watch the feed runs on: `new Watch(kc)`. */
export type IngressWatch = Pick<Watch, 'watch'>;

/** Options of {@link IngressStatusStore.open}. */
export interface IngressStatusStoreOptions {
  /** `kc.makeApiClient(NetworkingV1Api)`. */
  readonly api: IngressApi;
  /** `new Watch(kc)`. */
  readonly watch: IngressWatch;
  /** The namespace whose Ingresses are the records. */
  readonly namespace: string;
  /**
   * The spec of an Ingress that `put` or `compareAndSet` creates (the API
   * server wants a default backend or rules). Controllers rarely create
   * Ingresses; the driver and the tests do.
   * @default a default backend, Service `default-http-backend` port 80
   */
  readonly newIngressSpec?: V1IngressSpec;
}

/** The annotation that holds the spec. */
export const SPEC_ANNOTATION = 'rx-writer-lease/spec';

const KINDS: readonly RecordKind[] = ['spec', 'status'];
const CONFLICT: CasOutcome = { ok: false, reason: 'conflict' };
/** How often `put` and `delete` read and write again when the object moves under them. */
const ATTEMPTS = 10;
/** The longest wait before the feed watches again after its watch ended or failed. */
const MAX_RETRY_MS = 5_000;

/** A RecordStore whose records are the Ingresses of one namespace. */
export class IngressStatusStore implements RecordStore {
  readonly url: string;
  readonly versioning = 'record';
  readonly #api: IngressApi;
  readonly #watch: IngressWatch;
  readonly #namespace: string;
  readonly #newSpec: V1IngressSpec;
  readonly #changes = new Subject<RecordChange>();
  /** Every Ingress as the feed last saw it: what the next event is compared with. */
  readonly #seen = new Map<string, V1Ingress>();
  /** Where the watch resumes. */
  #resourceVersion = '';
  /** The API server said 410 Gone: list again before watching. */
  #expired = false;
  #failures = 0;
  #watching: AbortController | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  private constructor(options: IngressStatusStoreOptions) {
    this.#api = options.api;
    this.#watch = options.watch;
    this.#namespace = options.namespace;
    this.#newSpec = options.newIngressSpec ?? {
      defaultBackend: { service: { name: 'default-http-backend', port: { number: 80 } } },
    };
    this.url = `kubernetes:///apis/networking.k8s.io/v1/namespaces/${options.namespace}/ingresses`;
  }

  /**
   * Lists the namespace's Ingresses and starts watching them: the feed is live
   * when the Promise resolves. Rejects when the API server cannot be reached.
   */
  static async open(options: IngressStatusStoreOptions): Promise<IngressStatusStore> {
    const store = new IngressStatusStore(options);
    await store.#relist();
    await store.#startWatch();
    return store;
  }

  async get<T extends Generational>(
    kind: RecordKind,
    key: string,
    options?: CallOptions,
  ): Promise<Versioned<T> | undefined> {
    const ingress = await this.#read('get', key, options);
    const text = ingress && partOf(kind, ingress);
    if (ingress === undefined || text === undefined) return undefined;
    const value = decode(text);
    const version = versionOf(ingress);
    if (!isGenerational(value)) {
      throw new StoreValueError({ url: this.url, record: `${kind} ${key}`, received: value, version });
    }
    return { value: value as T, version };
  }

  async compareAndSet<T extends Generational>(
    kind: RecordKind,
    key: string,
    value: T,
    expected: number | null,
    options?: CallOptions,
  ): Promise<CasOutcome> {
    const text = this.#encode('compareAndSet', kind, key, value);
    if (expected === null) return this.#create(kind, key, text);
    // The object as the feed saw it at that version, or as the API server has it now.
    const seen = this.#seen.get(key);
    const current =
      seen !== undefined && versionOf(seen) === expected ? seen : await this.#read('compareAndSet', key, options);
    if (current === undefined || versionOf(current) !== expected) return CONFLICT;
    options?.signal?.throwIfAborted();
    return this.#replace(kind, key, withPart(kind, current, text));
  }

  async put<T extends Generational>(kind: RecordKind, key: string, value: T): Promise<number> {
    const text = this.#encode('put', kind, key, value);
    for (let attempt = 1; ; attempt++) {
      const current = await this.#read('put', key);
      const outcome =
        current === undefined
          ? await this.#create(kind, key, text)
          : await this.#replace(kind, key, withPart(kind, current, text));
      if (outcome.ok) return outcome.version;
      if (attempt === ATTEMPTS) throw new Error(`${this.url}: ${key} changed under ${ATTEMPTS} writes of its ${kind}`);
    }
  }

  /** Removes the part (the annotation, or the status entry); never deletes the Ingress. */
  async delete(kind: RecordKind, key: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.#read('delete', key);
      if (current === undefined || partOf(kind, current) === undefined) return;
      if ((await this.#replace(kind, key, withPart(kind, current, undefined))).ok) return;
      if (attempt === ATTEMPTS) throw new Error(`${this.url}: ${key} changed under ${ATTEMPTS} deletes of its ${kind}`);
    }
  }

  async list(options?: CallOptions): Promise<RecordChange[]> {
    this.#assertOpen('list', options);
    const { items } = await this.#api.listNamespacedIngress({ namespace: this.#namespace });
    return items.flatMap((ingress) =>
      KINDS.flatMap((kind) => {
        const text = partOf(kind, ingress);
        if (text === undefined) return [];
        return [{ kind, key: nameOf(ingress), value: decode(text), version: versionOf(ingress) }];
      }),
    );
  }

  changes(): Observable<RecordChange> {
    return this.#changes.asObservable();
  }

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#watching?.abort();
    this.#changes.complete();
    return Promise.resolve();
  }

  // ---- calls ----------------------------------------------------------------

  /** The Ingress, or undefined when there is none (404). */
  async #read(call: string, name: string, options?: CallOptions): Promise<V1Ingress | undefined> {
    this.#assertOpen(call, options);
    try {
      return await this.#api.readNamespacedIngress({ namespace: this.#namespace, name });
    } catch (error) {
      if (statusCodeOf(error) === 404) return undefined;
      throw error;
    }
  }

  /**
   * A compare-and-set against null: creates the Ingress with one part. When it
   * exists (409 AlreadyExists) but has neither part, the record does not: the
   * part is written on the version read. Otherwise the write is refused.
   */
  async #create(kind: RecordKind, name: string, text: string): Promise<CasOutcome> {
    const fresh: V1Ingress = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name, namespace: this.#namespace },
      spec: this.#newSpec,
    };
    let created: V1Ingress;
    try {
      created = await this.#api.createNamespacedIngress({
        namespace: this.#namespace,
        body: withPart(kind, fresh, text),
      });
    } catch (error) {
      if (statusCodeOf(error) !== 409) throw error;
      const existing = await this.#read('compareAndSet', name);
      const empty = existing !== undefined && KINDS.every((part) => partOf(part, existing) === undefined);
      return empty ? this.#replace(kind, name, withPart(kind, existing, text)) : CONFLICT;
    }
    if (kind === 'spec') return { ok: true, version: versionOf(created) };
    // The API server ignores the status of an object it creates: write it on the version just created.
    return this.#replace('status', name, withPart('status', created, text));
  }

  /**
   * Writes `body` on its resourceVersion: the main resource for the spec, the
   * status subresource for the status. 409 (the object moved) and 404 (it is
   * gone) are a refused compare-and-set.
   */
  async #replace(kind: RecordKind, name: string, body: V1Ingress): Promise<CasOutcome> {
    const request = { namespace: this.#namespace, name, body };
    try {
      const written =
        kind === 'spec'
          ? await this.#api.replaceNamespacedIngress(request)
          : await this.#api.replaceNamespacedIngressStatus(request);
      return { ok: true, version: versionOf(written) };
    } catch (error) {
      const code = statusCodeOf(error);
      if (code === 409 || code === 404) return CONFLICT;
      throw error;
    }
  }

  #encode(call: string, kind: RecordKind, key: string, value: Generational): string {
    this.#assertOpen(call);
    if (!isGenerational(value)) throw new StoreValueError({ url: this.url, record: `${kind} ${key}`, received: value });
    return JSON.stringify(value);
  }

  #assertOpen(call: string, options?: CallOptions): void {
    if (this.#closed) throw new StoreClosedError({ url: this.url, call });
    options?.signal?.throwIfAborted();
  }

  // ---- the feed -------------------------------------------------------------

  /** Lists every Ingress, emits what differs from what the feed saw, and resumes from the list's version. */
  async #relist(): Promise<void> {
    const list = await this.#api.listNamespacedIngress({ namespace: this.#namespace });
    const names = new Set(list.items.map(nameOf));
    for (const ingress of list.items) this.#saw(nameOf(ingress), ingress);
    for (const name of [...this.#seen.keys()]) if (!names.has(name)) this.#saw(name, undefined);
    this.#resourceVersion = list.metadata?.resourceVersion ?? '';
    this.#expired = false;
  }

  async #startWatch(): Promise<void> {
    if (this.#expired) await this.#relist();
    const path = `/apis/networking.k8s.io/v1/namespaces/${this.#namespace}/ingresses`;
    const watching = await this.#watch.watch(
      path,
      { resourceVersion: this.#resourceVersion, allowWatchBookmarks: true },
      (type: string, object: unknown) => this.#event(type, object),
      (error: unknown) => this.#ended(error),
    );
    if (this.#closed) watching.abort();
    else this.#watching = watching;
  }

  #event(type: string, object: unknown): void {
    if (this.#closed) return;
    this.#failures = 0;
    if (type === 'ERROR') {
      // A Status: 410 Gone when the version to resume from was compacted away. The watch ends next.
      if (statusCodeOf(object) === 410) this.#expired = true;
      return;
    }
    const ingress = object as V1Ingress;
    if (type !== 'BOOKMARK') this.#saw(nameOf(ingress), type === 'DELETED' ? undefined : ingress);
    this.#resourceVersion = ingress.metadata?.resourceVersion ?? this.#resourceVersion;
  }

  /** The watch ended (the API server closed it, or it failed): watch again, a little later each time in a row. */
  #ended(error: unknown): void {
    if (this.#closed) return;
    if (statusCodeOf(error) === 410) this.#expired = true;
    const delay = Math.min(MAX_RETRY_MS, 50 * 2 ** this.#failures++);
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => {
      this.#startWatch().catch((failed: unknown) => this.#ended(failed));
    }, delay);
  }

  /**
   * What one Ingress is now (undefined: deleted), against what the feed saw:
   * a change for each part whose text changed, a deletion (with the version
   * it had) for each part gone. An edit of neither part (labels, rules) moves
   * the resourceVersion without a change: the next write on the old version
   * is refused, and the writer reads again.
   */
  #saw(name: string, ingress: V1Ingress | undefined): void {
    const before = this.#seen.get(name);
    for (const kind of KINDS) {
      const was = before && partOf(kind, before);
      const now = ingress && partOf(kind, ingress);
      if (now === was) continue;
      if (ingress !== undefined && now !== undefined) {
        this.#changes.next({ kind, key: name, value: decode(now), version: versionOf(ingress) });
      } else if (before !== undefined) {
        this.#changes.next({ kind, key: name, value: undefined, version: versionOf(before) });
      }
    }
    if (ingress === undefined) this.#seen.delete(name);
    else this.#seen.set(name, ingress);
  }
}

// ---- the encoding: change these to keep spec and status elsewhere -------------

function partOf(kind: RecordKind, ingress: V1Ingress): string | undefined {
  if (kind === 'spec') return ingress.metadata?.annotations?.[SPEC_ANNOTATION];
  return ingress.status?.loadBalancer?.ingress?.[0]?.ports?.[0]?.error;
}

/** `ingress` with the part's text set, or removed (undefined). */
function withPart(kind: RecordKind, ingress: V1Ingress, text: string | undefined): V1Ingress {
  if (kind === 'spec') {
    const { [SPEC_ANNOTATION]: _old, ...annotations } = ingress.metadata?.annotations ?? {};
    if (text !== undefined) annotations[SPEC_ANNOTATION] = text;
    return { ...ingress, metadata: { ...ingress.metadata, annotations } };
  }
  const entry = { ports: [{ port: 0, protocol: 'TCP', error: text }] };
  return { ...ingress, status: { loadBalancer: text === undefined ? {} : { ingress: [entry] } } };
}

// ---- helpers ------------------------------------------------------------------

function nameOf(ingress: V1Ingress): string {
  return ingress.metadata?.name ?? '';
}

function versionOf(ingress: V1Ingress): number {
  const text = ingress.metadata?.resourceVersion ?? '';
  const version = Number(text);
  if (!/^[1-9][0-9]*$/.test(text) || !Number.isSafeInteger(version)) {
    throw new Error(`resourceVersion "${text}" is not an integer: this store needs an API server backed by etcd`);
  }
  return version;
}

/** The JSON value of a part, or its text when it is not JSON (the reader reports it). */
function decode(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function isGenerational(value: unknown): value is Generational {
  return typeof value === 'object' && value !== null && Number.isFinite((value as Generational).generation);
}

/** The HTTP status of a client error (`ApiException.code`, the watch's `statusCode`) or of a Status object. */
function statusCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  if (typeof code === 'number') return code;
  return typeof statusCode === 'number' ? statusCode : undefined;
}
