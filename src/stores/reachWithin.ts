import { StoreUnreachableError } from './errors.js';

/**
 * Opens a store's connections within a deadline, or gives up on them and
 * fails with {@link StoreUnreachableError}. Client libraries time out the TCP
 * handshake but may wait much longer for a server that accepts and never
 * answers, or retry a refused call several times: the deadline bounds it all.
 *
 * @example
 * ```ts
 * await reachWithin('redis://127.0.0.1:6379', 5000, () => connectAll(), () => disconnectAll());
 * // rejects with StoreUnreachableError naming the URL after at most 5 s
 * ```
 * @param url The store, for the error message.
 * @param timeoutMs How long to wait for `connect`.
 * @param connect Connects and checks that the server answers.
 * @param abandon Releases whatever `connect` opened; called when it failed or was too slow.
 * @returns Resolves once connected.
 * @throws StoreUnreachableError with the cause, or "no answer within N ms".
 */
export async function reachWithin(
  url: string,
  timeoutMs: number,
  connect: () => Promise<void>,
  abandon: () => Promise<void>,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([connect(), deadline]);
  } catch (cause) {
    await abandon();
    throw new StoreUnreachableError({ url, cause });
  } finally {
    clearTimeout(timer);
  }
}
