/**
 * A real HTTP (or HTTPS) server on loopback that serves a folder, for download tests, with single
 * byte-range requests as web servers answer them (206). A test can make one path misbehave
 * the ways networks and servers do: cut the body short, stall or drip, answer with an error
 * status or page, send more than it announced, compress the body, answer a range from the
 * wrong byte, or write raw bytes that are not the HTTP/1.1 this server speaks.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { Readable } from 'node:stream';
import { brotliCompressSync, constants, createBrotliCompress, createGzip, gzipSync } from 'node:zlib';

export type Fault =
  /**
   * Announces the full length, sends this many bytes, then drops the connection; only for
   * the first `times` requests when given (a network that recovers).
   */
  | { kind: 'truncate'; afterBytes: number; times?: number }
  /** Sends the headers, then nothing. */
  | { kind: 'stall' }
  /** This status, with `body` (an error page) and `headers` when given. */
  | { kind: 'status'; code: number; body?: string; headers?: Record<string, string> }
  /** No Content-Length, and the file followed by this many extra bytes. */
  | { kind: 'pad'; extraBytes: number }
  /** 302 (or `code`) to this Location, whatever its scheme. */
  | { kind: 'redirect'; location: string; code?: number }
  /**
   * The file with this Content-Encoding and the encoded body's Content-Length, as servers of
   * precompressed files send it. With `zeros`, that many zero bytes follow the file, streamed
   * without a Content-Length: a few KiB on the wire that decode to as much as asked (a bomb).
   */
  | { kind: 'encoded'; encoding: 'gzip' | 'br'; zeros?: number }
  /** 206 with the file from byte `start` on, whatever the request asked (a broken cache). */
  | { kind: 'range-from'; start: number }
  /** Announces the full length, then one byte every `everyMs`. */
  | { kind: 'drip'; everyMs: number }
  /**
   * Writes `head` as it is on the socket (a status line and headers, or part of them), then
   * the whole file when `body` is set, then closes the connection.
   */
  | { kind: 'raw'; head: string; body: boolean }
  /** The n-th request for the path gets `faults[n]` (null: served as it is); later ones are served as they are. */
  | { kind: 'sequence'; faults: Array<Fault | null> };

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

  /**
   * Serves `root` over HTTPS with `tls` (a PEM key and certificate), else HTTP; on `host`,
   * IPv4 loopback unless a test asks for IPv6's (`::1`).
   */
  static async start(root: string, options: { tls?: { key: Buffer; cert: Buffer }; host?: string } = {}): Promise<FileServer> {
    const { tls, host = '127.0.0.1' } = options;
    const handler = (req: IncomingMessage, res: ServerResponse) => void instance.serve(req, res);
    const server = tls ? createTlsServer(tls, handler) : createServer(handler);
    const instance = new FileServer(root, server, tls ? 'https' : 'http');
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    return instance;
  }

  /** `http://127.0.0.1:PORT/` (`https:` with TLS, `[::1]` on IPv6) + path. */
  url(path = ''): string {
    const { address, family, port } = this.#server.address() as AddressInfo;
    return `${this.scheme}://${family === 'IPv6' ? `[${address}]` : address}:${port}/${path}`;
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
    const set = this.faults.get(path);
    const fault = set?.kind === 'sequence' ? set.faults.shift() : set;
    if (fault?.kind === 'status') {
      const length = fault.body === undefined ? {} : { 'content-length': Buffer.byteLength(fault.body) };
      res.writeHead(fault.code, { ...length, ...fault.headers }).end(fault.body);
      return;
    }
    if (fault?.kind === 'redirect') {
      res.writeHead(fault.code ?? 302, { location: fault.location }).end();
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
    if (fault?.kind === 'raw') {
      // Below HTTP: what a broken server or proxy writes, not what ServerResponse would.
      const socket = res.socket;
      if (!fault.body) socket?.end(fault.head);
      else if (socket) {
        socket.write(fault.head);
        createReadStream(file).pipe(socket);
      }
      return;
    }
    if (fault?.kind === 'encoded' && fault.zeros === undefined) {
      const content = await readFile(file);
      const encoded = fault.encoding === 'gzip' ? gzipSync(content) : brotliCompressSync(content);
      res.writeHead(200, { 'content-encoding': fault.encoding, 'content-length': encoded.length }).end(encoded);
      return;
    }
    if (fault?.kind === 'encoded') {
      res.writeHead(200, { 'content-encoding': fault.encoding });
      const zeros = fault.zeros ?? 0;
      // Generated as it is read, so that a bomb of any size costs this side no memory.
      const padding = Readable.from(
        (function* () {
          for (let left = zeros; left > 0; left -= 1 << 16) yield Buffer.alloc(Math.min(left, 1 << 16));
        })(),
      );
      const compress = fault.encoding === 'gzip' ? createGzip() : createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 4 } });
      compress.pipe(res);
      res.once('close', () => compress.destroy());
      createReadStream(file)
        .on('end', () => padding.pipe(compress))
        .pipe(compress, { end: false });
      return;
    }
    if (fault?.kind === 'range-from') {
      res.writeHead(206, { 'content-length': info.size - fault.start, 'content-range': `bytes ${fault.start}-${info.size - 1}/${info.size}` });
      createReadStream(file, { start: fault.start }).pipe(res);
      return;
    }
    if (fault?.kind === 'drip') {
      res.writeHead(200, { 'content-length': info.size });
      res.flushHeaders();
      const content = await readFile(file);
      let sent = 0;
      const timer = setInterval(() => {
        if (sent < content.length) res.write(content.subarray(sent, ++sent));
        else res.end();
      }, fault.everyMs);
      res.once('close', () => clearInterval(timer));
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
