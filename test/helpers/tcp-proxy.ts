/**
 * A TCP proxy on loopback between a client and a real server (here: the server and PostgreSQL), so
 * a test can cut the network and restore it without stopping the database others use. `cut()`
 * destroys every open connection and stops accepting (new connections are refused); `restore()`
 * accepts again on the same port.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections currently open through the proxy. */
  open(): number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;

  const accept = (client: net.Socket) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer(accept);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });

  const stop = async () => {
    const s = server;
    server = null;
    const closed = s ? new Promise<void>((r) => s.close(() => r())) : Promise.resolve();
    for (const sock of sockets) sock.destroy();
    await closed;
  };

  await listen();
  return {
    get port() {
      return port;
    },
    open: () => sockets.size / 2,
    cut: stop,
    restore: listen,
    close: stop,
  };
}
