import { randomUUID } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import type { V1Ingress, V1IngressList } from '@kubernetes/client-node';
import type { IngressApi, IngressWatch } from '../../examples/kubernetes/ingressStatusStore';

/**
 * An IMITATION of the Kubernetes API server's semantics for the Ingress REST
 * calls that examples/kubernetes/ingressStatusStore.ts makes: not a
 * Kubernetes, and not a conformance check of one. No Kubernetes API server
 * can run on the test machines; this one, on 127.0.0.1, answers over real
 * HTTP as kube-apiserver does for networking.k8s.io/v1 Ingresses:
 *
 * - one revision counter for every write, as etcd's: each write's
 *   `resourceVersion`, never reused;
 * - `GET .../ingresses` (list, with the list's resourceVersion), `GET .../ingresses/{name}`,
 *   `POST .../ingresses` (409 AlreadyExists; the status of a new object is dropped),
 *   `PUT .../ingresses/{name}` (the status is kept as it was) and
 *   `PUT .../ingresses/{name}/status` (the spec is kept as it was), 409 Conflict when
 *   the body's resourceVersion is not the object's, 404 NotFound, 422 Invalid for an
 *   Ingress without backend or rules and for a load-balancer ip or hostname that is not
 *   one; an update that changes nothing writes nothing and keeps the version;
 *   `DELETE .../ingresses/{name}`;
 * - `GET .../ingresses?watch=true&resourceVersion=N`: every event after N, then
 *   live, as JSON lines on a chunked response; an ERROR event with a 410 Status
 *   (Expired) when N was compacted away.
 *
 * What it leaves out: authentication, admission, field managers, generateName,
 * label selectors, patches, protobuf, server-side apply, finalizers.
 */
export interface IngressApiImitation {
  /** `http://127.0.0.1:port`. */
  readonly url: string;
  /** Every request answered, as `METHOD path status` (a watch's path ends in `?watch=true`), a watch once it ended. */
  readonly requests: string[];
  /** Changes an object as another client would (a `kubectl edit`): a new version, a MODIFIED event. */
  edit(namespace: string, name: string, change: (ingress: V1Ingress) => void): void;
  /** Deletes an object as another client would (a `kubectl delete`). */
  remove(namespace: string, name: string): void;
  /** Ends every watch, as an API server does on restart or after `timeoutSeconds`. */
  dropWatches(): void;
  /** Forgets every event so far (etcd compaction): a watch resuming from before now gets 410 Gone. */
  compact(): void;
  close(): Promise<void>;
}

interface Stored {
  readonly object: V1Ingress;
  readonly namespace: string;
}
interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: V1Ingress;
  readonly namespace: string;
  readonly revision: number;
}

const PREFIX = '/apis/networking.k8s.io/v1/namespaces/';
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export async function startIngressApiImitation(): Promise<IngressApiImitation> {
  const objects = new Map<string, Stored>();
  let revision = 1;
  let compactedThrough = 0;
  const log: WatchEvent[] = [];
  const watchers = new Set<{ readonly namespace: string; readonly res: ServerResponse }>();
  const requests: string[] = [];
  const id = (namespace: string, name: string) => `${namespace}/${name}`;

  function record(type: WatchEvent['type'], namespace: string, object: V1Ingress): void {
    const event: WatchEvent = { type, object, namespace, revision };
    log.push(event);
    for (const watcher of watchers) if (watcher.namespace === namespace) send(watcher.res, event);
  }

  function send(res: ServerResponse, { type, object }: WatchEvent): void {
    res.write(
      `${JSON.stringify({ type, object: { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', ...object } })}\n`,
    );
  }

  /** Writes `next` as the object's new state: a new revision, unless nothing changed. */
  function store(namespace: string, next: V1Ingress, old: V1Ingress | undefined): V1Ingress {
    const name = next.metadata!.name!;
    if (old !== undefined && JSON.stringify(withoutVersion(next)) === JSON.stringify(withoutVersion(old))) return old;
    const generation =
      (old?.metadata?.generation ?? 0) + (JSON.stringify(next.spec) === JSON.stringify(old?.spec) ? 0 : 1);
    const object: V1Ingress = {
      ...next,
      metadata: {
        ...next.metadata,
        uid: old?.metadata?.uid ?? randomUUID(),
        creationTimestamp: old?.metadata?.creationTimestamp ?? (new Date().toISOString() as unknown as Date),
        generation,
        resourceVersion: String(++revision),
      },
    };
    delete object.apiVersion;
    delete object.kind;
    objects.set(id(namespace, name), { object, namespace });
    record(old === undefined ? 'ADDED' : 'MODIFIED', namespace, object);
    return object;
  }

  function handle(req: IncomingMessage, body: string, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://imitation');
    const target = url.searchParams.get('watch') === 'true' ? `${url.pathname}?watch=true` : url.pathname;
    res.on('finish', () => requests.push(`${req.method} ${target} ${res.statusCode}`));
    const match = url.pathname.startsWith(PREFIX)
      ? /^([^/]+)\/ingresses(?:\/([^/]+)(\/status)?)?$/.exec(url.pathname.slice(PREFIX.length))
      : null;
    if (match === null) return reply(res, statusObject(404, 'NotFound', `the server could not find ${url.pathname}`));
    const [, namespace, name, subresource] = match;
    const stored = name === undefined ? undefined : objects.get(id(namespace, name))?.object;
    const notFound = () => statusObject(404, 'NotFound', `ingresses.networking.k8s.io "${name}" not found`);

    if (name === undefined && req.method === 'GET') {
      if (url.searchParams.get('watch') === 'true')
        return watch(namespace, url.searchParams.get('resourceVersion'), res);
      const items = [...objects.values()].filter((o) => o.namespace === namespace).map((o) => o.object);
      const list: V1IngressList = {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressList',
        metadata: { resourceVersion: String(revision) },
        items,
      };
      return reply(res, list);
    }
    if (name === undefined && req.method === 'POST') {
      const ingress = JSON.parse(body) as V1Ingress;
      const created = ingress.metadata?.name ?? '';
      if (!DNS_SUBDOMAIN.test(created)) return reply(res, invalid(`metadata.name: Invalid value: "${created}"`));
      if (objects.has(id(namespace, created))) {
        return reply(
          res,
          statusObject(409, 'AlreadyExists', `ingresses.networking.k8s.io "${created}" already exists`),
        );
      }
      const problem = specProblem(ingress);
      if (problem !== undefined) return reply(res, invalid(problem));
      // A new object's status is not the client's to set: the create drops it.
      const fresh = { ...ingress, metadata: { ...ingress.metadata, namespace }, status: {} };
      return reply(res, withKind(store(namespace, fresh, undefined)), 201);
    }
    if (name !== undefined && req.method === 'GET') return reply(res, stored ? withKind(stored) : notFound());
    if (name !== undefined && req.method === 'PUT') {
      if (stored === undefined) return reply(res, notFound());
      const ingress = JSON.parse(body) as V1Ingress;
      const expected = ingress.metadata?.resourceVersion;
      if (expected !== undefined && expected !== '' && expected !== stored.metadata?.resourceVersion) {
        const message =
          `Operation cannot be fulfilled on ingresses.networking.k8s.io "${name}": ` +
          'the object has been modified; please apply your changes to the latest version and try again';
        return reply(res, statusObject(409, 'Conflict', message));
      }
      // The main resource keeps the status as it was; the status subresource keeps the spec.
      const next: V1Ingress =
        subresource === undefined ? { ...ingress, status: stored.status } : { ...ingress, spec: stored.spec };
      const problem = subresource === undefined ? specProblem(next) : loadBalancerProblem(next);
      if (problem !== undefined) return reply(res, invalid(problem));
      return reply(res, withKind(store(namespace, next, stored)));
    }
    if (name !== undefined && subresource === undefined && req.method === 'DELETE') {
      if (stored === undefined) return reply(res, notFound());
      remove(namespace, name);
      return reply(res, { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name } });
    }
    return reply(res, statusObject(405, 'MethodNotAllowed', `${req.method} is not supported here`));
  }

  function watch(namespace: string, from: string | null, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders(); // as the API server does: the client knows the watch is open before any event
    if (from === null || from === '' || from === '0') {
      // No version: every object as ADDED, then what follows.
      for (const { object } of [...objects.values()].filter((o) => o.namespace === namespace)) {
        send(res, { type: 'ADDED', object, namespace, revision });
      }
    } else if (Number(from) < compactedThrough) {
      const expired = statusObject(410, 'Expired', `too old resource version: ${from} (${compactedThrough})`);
      res.end(`${JSON.stringify({ type: 'ERROR', object: expired })}\n`);
      return;
    } else {
      for (const event of log) if (event.namespace === namespace && event.revision > Number(from)) send(res, event);
    }
    const watcher = { namespace, res };
    watchers.add(watcher);
    res.on('close', () => watchers.delete(watcher));
  }

  function remove(namespace: string, name: string): void {
    const stored = objects.get(id(namespace, name));
    if (stored === undefined) return;
    objects.delete(id(namespace, name));
    const object = { ...stored.object, metadata: { ...stored.object.metadata, resourceVersion: String(++revision) } };
    record('DELETED', namespace, object);
  }

  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => handle(req, body, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    edit(namespace, name, change) {
      const stored = objects.get(id(namespace, name));
      if (stored === undefined) throw new Error(`no ingress ${namespace}/${name}`);
      const next = structuredClone(stored.object);
      change(next);
      store(namespace, next, stored.object);
    },
    remove,
    dropWatches() {
      for (const { res } of watchers) res.end();
      watchers.clear();
    },
    compact() {
      compactedThrough = revision;
      log.length = 0;
    },
    async close() {
      for (const { res } of watchers) res.end();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Answers with `body`: a Status with its code, anything else with `status` (200 unless given). */
function reply(res: ServerResponse, body: object, status = 200): void {
  const { kind, code } = body as { kind?: string; code?: number };
  res.writeHead(kind === 'Status' ? (code ?? 200) : status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function statusObject(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function invalid(message: string): object {
  return statusObject(422, 'Invalid', `Ingress is invalid: ${message}`);
}

function withKind(object: V1Ingress): V1Ingress {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', ...object };
}

function withoutVersion(object: V1Ingress): V1Ingress {
  const { apiVersion: _apiVersion, kind: _kind, ...rest } = object;
  return { ...rest, metadata: { ...rest.metadata, resourceVersion: undefined } };
}

/** As pkg/apis/networking/validation: an Ingress needs a default backend or rules. */
function specProblem(ingress: V1Ingress): string | undefined {
  const spec = ingress.spec;
  if (spec?.defaultBackend === undefined && (spec?.rules ?? []).length === 0) {
    return 'spec: Invalid value: either `defaultBackend` or `rules` must be specified';
  }
  return undefined;
}

/** As ValidateIngressLoadBalancerStatus: an ip is an IP address, a hostname a DNS name and not an IP. */
function loadBalancerProblem(ingress: V1Ingress): string | undefined {
  for (const [i, entry] of (ingress.status?.loadBalancer?.ingress ?? []).entries()) {
    if (entry.ip !== undefined && entry.ip !== '' && isIP(entry.ip) === 0) {
      return `status.loadBalancer.ingress[${i}].ip: Invalid value: "${entry.ip}": must be a valid IP address`;
    }
    const hostname = entry.hostname ?? '';
    if (hostname !== '' && (!DNS_SUBDOMAIN.test(hostname) || hostname.length > 253 || isIP(hostname) !== 0)) {
      return `status.loadBalancer.ingress[${i}].hostname: Invalid value: "${hostname}": must be a DNS name`;
    }
  }
  return undefined;
}

/**
 * The client the store calls, when @kubernetes/client-node cannot be loaded
 * (client-node 2 needs Node 22.19+, for its undici 8): the same methods over
 * node:http, failing as the client does (an error whose `code` is the HTTP
 * status, as `ApiException`; the watch's `done` with an error whose
 * `statusCode` is the HTTP status, or null when the stream ends).
 */
export function minimalIngressClient(server: string): { api: IngressApi; watch: IngressWatch } {
  const path = (namespace: string, name?: string, status = false) =>
    `${PREFIX}${namespace}/ingresses${name === undefined ? '' : `/${name}`}${status ? '/status' : ''}`;
  const call = <T>(method: string, target: string, body?: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const req = request(`${server}${target}`, { method, headers: { 'Content-Type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const parsed = JSON.parse(text) as T;
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) resolve(parsed);
          else reject(Object.assign(new Error(`HTTP-Code: ${code}\nBody: ${text}`), { code, body: parsed }));
        });
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const api: IngressApi = {
    listNamespacedIngress: ({ namespace }: { namespace: string }) => call<V1IngressList>('GET', path(namespace)),
    readNamespacedIngress: ({ namespace, name }: { namespace: string; name: string }) =>
      call<V1Ingress>('GET', path(namespace, name)),
    createNamespacedIngress: ({ namespace, body }: { namespace: string; body: V1Ingress }) =>
      call<V1Ingress>('POST', path(namespace), body),
    replaceNamespacedIngress: ({ namespace, name, body }: { namespace: string; name: string; body: V1Ingress }) =>
      call<V1Ingress>('PUT', path(namespace, name), body),
    replaceNamespacedIngressStatus: ({ namespace, name, body }: { namespace: string; name: string; body: V1Ingress }) =>
      call<V1Ingress>('PUT', path(namespace, name, true), body),
  };
  const watch: IngressWatch = {
    watch(target, query, callback, done) {
      const controller = new AbortController();
      const params = new URLSearchParams({ watch: 'true' });
      for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
      let finished = false;
      const finish = (error: unknown) => {
        if (finished) return;
        finished = true;
        controller.abort();
        done(error);
      };
      return new Promise<AbortController>((resolve) => {
        const req = request(`${server}${target}?${params.toString()}`, { signal: controller.signal }, (res) => {
          resolve(controller);
          if (res.statusCode !== 200) {
            res.resume();
            return finish(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode }));
          }
          const lines = createInterface({ input: res });
          lines.on('line', (line) => {
            const event = JSON.parse(line) as { type: string; object: unknown };
            callback(event.type, event.object, event);
          });
          lines.on('close', () => finish(null));
          lines.on('error', finish);
          res.on('error', finish);
        });
        req.on('error', (error) => {
          resolve(controller);
          finish(error);
        });
        req.end();
      });
    },
  };
  return { api, watch };
}
