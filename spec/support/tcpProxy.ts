import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of a server, which can go silent on the
 * connections it carries: it keeps their sockets open and forwards nothing
 * more, as a NAT or a firewall that forgot them (no reset, no error, just
 * no bytes).
 *
 * @example
 * ```ts
 * const proxy = await startTcpProxy(5432);
 * const client = new Client(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`);
 * proxy.silence(); // the client's connection hears nothing more; a new one is forwarded
 * await proxy.close();
 * ```
 */
export interface TcpProxy {
  /** The port it listens on. */
  readonly port: number;
  /** Every connection it accepted, in order. */
  readonly connections: readonly ProxiedConnection[];
  /** Stops forwarding on every connection open now, in both directions; connections accepted later are forwarded. */
  silence(): void;
  /** Closes every connection and stops listening. */
  close(): Promise<void>;
}

/** One client connection through a {@link TcpProxy}. */
export interface ProxiedConnection {
  /** Whether the proxy stopped forwarding its bytes. */
  readonly silent: boolean;
  /** When the client closed it, on `performance.now()`'s clock; undefined while it is open. */
  readonly closedAt: number | undefined;
}

/**
 * Starts a {@link TcpProxy} to `targetPort` on 127.0.0.1, on a free port.
 *
 * @example
 * ```ts
 * const { port } = await startTcpProxy(5432); // 40123
 * ```
 * @param targetPort The server's port.
 * @returns The listening proxy.
 */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const connections: (ProxiedConnection & { silent: boolean; closedAt: number | undefined })[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const connection = { silent: false, closedAt: undefined as number | undefined };
    connections.push(connection);
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      // A reset from either side ends both; the test looks at closedAt, not at errors.
      socket.on('error', () => undefined);
    }
    // Bytes are read and dropped once silent, so that neither side's socket ever sees backpressure.
    client.on('data', (bytes) => connection.silent || upstream.write(bytes));
    upstream.on('data', (bytes) => connection.silent || client.write(bytes));
    client.on('close', () => {
      connection.closedAt = performance.now();
      upstream.destroy();
    });
    // A silent proxy does not pass on the server's goodbye either.
    upstream.on('close', () => connection.silent || client.destroy());
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    silence() {
      for (const connection of connections) if (connection.closedAt === undefined) connection.silent = true;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
