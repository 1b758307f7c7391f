/**
 * A real HTTP server on loopback that serves a folder, for download tests. A test can make
 * one path misbehave the ways networks do: cut the body short, stall, answer with an error
 * status, or send more than it announced.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

export type Fault =
  /** Announces the full length, sends this many bytes, then drops the connection. */
  | { kind: 'truncate'; afterBytes: number }
  /** Sends the headers, then nothing. */
  | { kind: 'stall' }
  | { kind: 'status'; code: number }
  /** No Content-Length, and the file followed by this many extra bytes. */
  | { kind: 'pad'; extraBytes: number };

export class FileServer {
  readonly faults = new Map<string, Fault>();
  /** Paths requested, in order. */
  readonly requests: string[] = [];
  readonly #server: Server;
  readonly #root: string;
  readonly #open = new Set<ServerResponse>();

  private constructor(root: string, server: Server) {
    this.#root = root;
    this.#server = server;
  }

  static async start(root: string): Promise<FileServer> {
    let instance: FileServer | undefined;
    const server = createServer((req, res) => void instance?.serve(req.url ?? '/', res));
    instance = new FileServer(root, server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return instance;
  }

  /** `http://127.0.0.1:PORT/` + path. */
  url(path = ''): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/${path}`;
  }

  async close(): Promise<void> {
    for (const res of this.#open) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  private async serve(url: string, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(url, 'http://x').pathname).replace(/^\/+/, '');
    this.requests.push(path);
    this.#open.add(res);
    res.once('close', () => this.#open.delete(res));
    const fault = this.faults.get(path);
    if (fault?.kind === 'status') {
      res.writeHead(fault.code).end();
      return;
    }
    const file = normalize(join(this.#root, path));
    const info = await stat(file).catch(() => undefined);
    if (!file.startsWith(this.#root) || !info?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    if (fault?.kind === 'stall') {
      res.writeHead(200, { 'content-length': info.size });
      res.flushHeaders();
      return;
    }
    if (fault?.kind === 'truncate') {
      res.writeHead(200, { 'content-length': info.size });
      createReadStream(file, { end: fault.afterBytes - 1 })
        .on('end', () => setTimeout(() => res.destroy(), 20))
        .pipe(res, { end: false });
      return;
    }
    if (fault?.kind === 'pad') {
      res.writeHead(200);
      createReadStream(file)
        .on('end', () => res.end(Buffer.alloc(fault.extraBytes, 7)))
        .pipe(res, { end: false });
      return;
    }
    res.writeHead(200, { 'content-length': info.size });
    createReadStream(file).pipe(res);
  }
}
