/**
 * A real HTTP (or HTTPS) server on loopback that serves a folder, for download tests, with single
 * byte-range requests as web servers answer them (206). A test can make one path misbehave
 * the ways networks do: cut the body short, stall, answer with an error status, or send more
 * than it announced.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

export type Fault =
  /**
   * Announces the full length, sends this many bytes, then drops the connection; only for
   * the first `times` requests when given (a network that recovers).
   */
  | { kind: 'truncate'; afterBytes: number; times?: number }
  /** Sends the headers, then nothing. */
  | { kind: 'stall' }
  | { kind: 'status'; code: number }
  /** No Content-Length, and the file followed by this many extra bytes. */
  | { kind: 'pad'; extraBytes: number }
  /** 302 to this Location, whatever its scheme. */
  | { kind: 'redirect'; location: string };

export class FileServer {
  readonly faults = new Map<string, Fault>();
  /** Paths requested, in order, with the Range header when there was one: `a/b.onnx bytes=100-`. */
  readonly requests: string[] = [];
  /** Set false to serve whole files only, as some servers do. */
  ranges = true;
  readonly #server: Server;
  readonly #root: string;
  readonly #open = new Set<ServerResponse>();

  private constructor(root: string, server: Server, readonly scheme: 'http' | 'https') {
    this.#root = root;
    this.#server = server;
  }

  /** Serves `root`; over HTTPS with `tls` (a PEM key and certificate), else HTTP. */
  static async start(root: string, tls?: { key: Buffer; cert: Buffer }): Promise<FileServer> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void instance.serve(req, res);
    const server = tls ? createTlsServer(tls, handler) : createServer(handler);
    const instance = new FileServer(root, server, tls ? 'https' : 'http');
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return instance;
  }

  /** `http://127.0.0.1:PORT/` (or https:) + path. */
  url(path = ''): string {
    return `${this.scheme}://127.0.0.1:${(this.#server.address() as AddressInfo).port}/${path}`;
  }

  async close(): Promise<void> {
    for (const res of this.#open) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    const range = this.ranges ? /^bytes=(\d+)-$/.exec(String(req.headers.range ?? '')) : null;
    this.requests.push(range ? `${path} ${range[0]}` : path);
    this.#open.add(res);
    res.once('close', () => this.#open.delete(res));
    const fault = this.faults.get(path);
    if (fault?.kind === 'status') {
      res.writeHead(fault.code).end();
      return;
    }
    if (fault?.kind === 'redirect') {
      res.writeHead(302, { location: fault.location }).end();
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
    const start = range ? Number(range[1]) : 0;
    if (start >= info.size && start > 0) {
      res.writeHead(416, { 'content-range': `bytes */${info.size}` }).end();
      return;
    }
    const head = range ? { 'content-length': info.size - start, 'content-range': `bytes ${start}-${info.size - 1}/${info.size}` } : { 'content-length': info.size };
    if (fault?.kind === 'truncate' && (fault.times === undefined || fault.times-- > 0)) {
      res.writeHead(range ? 206 : 200, head);
      createReadStream(file, { start, end: start + fault.afterBytes - 1 })
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
    res.writeHead(range ? 206 : 200, head);
    createReadStream(file, { start }).pipe(res);
  }
}
