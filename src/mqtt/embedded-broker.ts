/**
 * The broker used when no mqtt.url is configured: aedes in this process, listening on
 * loopback only, so `npm start` works on a fresh clone without exposing anything to the network.
 */
import { Aedes } from 'aedes';
import { createServer, type AddressInfo, type Socket } from 'node:net';

export interface EmbeddedBroker {
  /** mqtt://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(port: number): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new Error(err.code === 'EADDRINUSE'
        ? `embedded MQTT broker: port ${port} on 127.0.0.1 is in use; set mqtt.embeddedPort (0 = any free port) or mqtt.url`
        : `embedded MQTT broker: cannot listen on 127.0.0.1:${port}: ${err.message}`));
    };
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${bound}`,
    port: bound,
    close: () => new Promise<void>((resolve) => {
      broker.close(() => server.close(() => resolve()));
      // Clients that never disconnect would keep server.close() waiting forever.
      for (const s of sockets) s.destroy();
    }),
  };
}
