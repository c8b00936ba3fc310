/**
 * A loopback TCP proxy the tests control: everything between two parties goes through it, and
 * `cut()` drops every open connection and refuses new ones (the far side sees resets), until
 * `heal()`. Used for executor <-> server partitions and server <-> PostgreSQL outages.
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** Drops all connections; new ones are accepted and closed at once until heal(). */
  cut(): void;
  heal(): void;
  /** Points the proxy at another upstream port (e.g. a restarted server). */
  retarget(port: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(upstreamPort: number, listenPort = 0): Promise<TcpProxy> {
  let target = upstreamPort;
  let isCut = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (isCut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    // One side closing ends the other only after what is in flight has been written (a response
    // followed at once by the server closing must still reach the client).
    const finish = (other: net.Socket) => () => {
      other.destroySoon();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', finish(upstream));
    upstream.on('close', finish(client));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    cut() {
      isCut = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    heal() {
      isCut = false;
    },
    retarget(p) {
      target = p;
    },
    close() {
      isCut = true;
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
