/**
 * Downloads one file of an update into the staging folder: streamed to disk, never past the
 * size it may have, hashed on the way, and cut off by a deadline. A transfer that breaks off
 * (network error, server error, connection dropped, or a clean end short of the expected
 * size) is retried with backoff and resumed where it stopped when the server honours a Range
 * request; a client error (4xx), a file longer than expected or one with another sha256 fails
 * at once. Errors name the URL.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { certificateDateError } from '../util/cert-dates.js';

export class DownloadError extends Error {
  override readonly name = 'DownloadError';
  constructor(
    readonly url: string,
    /** What went wrong, without the URL. */
    readonly reason: string,
    /** Worth another attempt: the network or the server failed, not the file. */
    readonly transient = false,
  ) {
    super(`${url}: ${reason}`);
  }
}

export interface DownloadLimits {
  /** Exact size when known (the manifest says it), else `maxBytes` bounds it. */
  bytes?: number;
  maxBytes: number;
  /** Expected sha256 (hex); checked when given. */
  sha256?: string;
  /** For the whole file, retries included. */
  timeoutMs: number;
  /** Further attempts after a transient failure (default 0). */
  retries?: number;
  /** Wait before the first retry, doubled for each next one up to 30 s (default 1000). */
  retryDelayMs?: number;
  /** Called with the bytes received so far, after each chunk. */
  onProgress?: (received: number) => void;
  /** Called before each retry with its number and what failed. */
  onRetry?: (attempt: number, reason: string) => void;
  /** Aborts the transfer (the daemon is stopping). */
  signal?: AbortSignal;
}

const MAX_RETRY_DELAY_MS = 30_000;
/** As many as browsers and fetch follow before they give up on a loop. */
const MAX_REDIRECTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** The content codings Node's fetch decodes (Node 20). */
const DECODED = new Set(['gzip', 'x-gzip', 'deflate', 'br']);

/**
 * The URL of a bundle's folder, from an update command: plain HTTP(S) only (a `file:` or
 * `data:` URL from a remote command must not read the device's disk), with nothing secret in
 * it, and ending in `/` so that the bundle's files resolve under it.
 */
export function checkUpdateUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`url: not a URL: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`url: expected http: or https:, got ${url.protocol}`);
  if (url.username || url.password) throw new Error('url: credentials in the URL would be published in status messages; serve the bundle without them');
  // A query is often a token (?token=…), as secret as credentials; and the files' URLs are
  // resolved against the folder's, which drops the query anyway: it would never reach them.
  if (url.search) throw new Error('url: a query string (?…) would be published in status messages and is not sent for the bundle\'s files; serve the bundle without one');
  if (url.hash) throw new Error('url: a fragment (#…) names nothing on the server; leave it out');
  // Added to the path, not to the text: `…/b?x` or `…/b#x` would otherwise stay the file `b`,
  // and the bundle's files would be looked for in its parent folder.
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  // An empty `?` or `#` says nothing either; the href published in status messages goes without it.
  url.search = '';
  url.hash = '';
  return url;
}

/** Server trouble that may pass: 5xx, timeouts and rate limits. Other 4xx will not change by asking again. */
const transientStatus = (status: number) => status >= 500 || status === 408 || status === 429;

/** The bytes received so far and their running hash, across attempts. */
interface Progress {
  received: number;
  hash: Hash;
}

const statusLine = (response: Response) => `HTTP ${response.status} ${response.statusText}`.trim();

/** One request: from byte `progress.received` on when there is something to resume. */
async function attempt(url: string, out: { handle: FileHandle; file: string }, progress: Progress, limit: number, signal: AbortSignal, limits: DownloadLimits, aborted: () => string | undefined): Promise<void> {
  const resumeAt = progress.received;
  let response: Response;
  let current = url;
  // After a redirect, errors also say where it led: origin and path, not the query, which may
  // carry a token (a pre-signed URL) that status messages would publish.
  const via = () => {
    if (current === url) return '';
    const where = new URL(current);
    return ` (redirected to ${where.origin}${where.pathname})`;
  };
  // Redirects are followed here rather than by fetch: fetch refuses one to file: or data:, but
  // as a network error, which would be retried although the server will say the same again.
  for (let hops = 0; ; hops++) {
    try {
      response = await fetch(current, { signal, redirect: 'manual', headers: resumeAt > 0 ? { range: `bytes=${resumeAt}-` } : {} });
    } catch (err) {
      const why = aborted();
      if (why !== undefined) throw new DownloadError(url, why);
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
      // Retried like other network failures: NTP may set the clock meanwhile.
      const dates = certificateDateError(cause && 'code' in cause ? cause.code : undefined, 'the update server');
      throw new DownloadError(url, `${dates ?? `${err instanceof Error ? err.message : String(err)}${cause ? `: ${cause.message}` : ''}`}${via()}`, true);
    }
    if (!REDIRECTS.has(response.status)) break;
    await response.body?.cancel().catch(() => undefined);
    const location = response.headers.get('location');
    if (location === null) throw new DownloadError(url, `${statusLine(response)} without a Location header to follow${via()}`);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new DownloadError(url, `HTTP ${response.status} to a Location that is not a URL`);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new DownloadError(url, `redirected to a ${next.protocol} URL; only http: and https: are followed`);
    if (next.username || next.password) throw new DownloadError(url, 'redirected to a URL with credentials; they would be published in status messages');
    if (hops >= MAX_REDIRECTS) throw new DownloadError(url, `more than ${MAX_REDIRECTS} redirects`);
    current = next.href;
  }
  /** The error to throw, once the body this answer still has is cancelled (it would hold the connection). */
  const refuse = async (reason: string, transient = false) => {
    await response.body?.cancel().catch(() => undefined);
    return new DownloadError(url, `${reason}${via()}`, transient);
  };
  const restart = async () => {
    progress.received = 0;
    progress.hash = createHash('sha256');
    await out.handle.truncate(0);
  };
  const contentRange = response.headers.get('content-range');
  if (response.status === 416 && resumeAt > 0) {
    // Nothing from that byte on: when the file ends there, the transfer before broke off after
    // its last byte (a chunked body cut before its end marker), and the file is complete.
    const size = Number(/^bytes \*\/(\d+)$/.exec(contentRange ?? '')?.[1] ?? Number.NaN);
    if (size === resumeAt && (limits.bytes === undefined || limits.bytes === size)) {
      await response.body?.cancel().catch(() => undefined);
      return;
    }
    if (Number.isFinite(size)) throw await refuse(`${statusLine(response)}: the server's file is ${size} bytes, ${resumeAt} were received already`);
  }
  if (!response.ok) throw await refuse(statusLine(response), transientStatus(response.status));
  if (response.body === null) throw new DownloadError(url, `the response has no body${via()}`, true);
  if (response.status === 206) {
    if (Number(/^bytes (\d+)-/.exec(contentRange ?? '')?.[1] ?? Number.NaN) !== resumeAt) {
      // Bytes from elsewhere in the file (a broken cache or proxy) must not be written where
      // the next ones belong: what came before is dropped and the next attempt asks for the
      // whole file, without a Range.
      await restart();
      throw await refuse(`HTTP 206 with Content-Range ${JSON.stringify(contentRange)} to a request for ${resumeAt > 0 ? `bytes ${resumeAt}-` : 'the whole file'}`, true);
    }
  } else if (resumeAt > 0) {
    // The server sends the whole file again: start over.
    await restart();
  }
  const codings = (response.headers.get('content-encoding') ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '');
  const encoded = codings.some((c) => c !== 'identity');
  // fetch hands over a body in any other coding (or with identity among others) as it came,
  // encoded: its bytes would then fail the size or the sha256 as if damaged in transit.
  if (encoded && !codings.every((c) => DECODED.has(c))) throw await refuse(`sent with Content-Encoding ${JSON.stringify(codings.join(', '))}, which this device does not decode`);
  // A compressed body's Content-Length counts the encoded bytes, which may be more than the
  // file's (an incompressible PNG); the decoded bytes are held to the limit as they arrive.
  const declared = encoded ? Number.NaN : Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && progress.received + declared > limit) throw await refuse(`the server sends ${progress.received + declared} bytes, at most ${limit} expected`);
  // The whole file's size as the server states it: another size than the manifest's is another
  // file (an error page served with 200, a stale copy), not a transfer to retry.
  const total = response.status === 206 ? Number(/\/(\d+)$/.exec(contentRange ?? '')?.[1] ?? Number.NaN) : declared;
  if (limits.bytes !== undefined && Number.isFinite(total) && total !== limits.bytes) {
    throw await refuse(`the server's file is ${total} bytes by its ${response.status === 206 ? 'Content-Range' : 'Content-Length'}, the manifest says ${limits.bytes}`);
  }
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      if (progress.received + chunk.byteLength > limit) throw new DownloadError(url, `more than the ${limit} bytes expected; transfer stopped`);
      try {
        await out.handle.write(chunk, 0, chunk.byteLength, progress.received);
      } catch (err) {
        // This machine's disk, not the transfer (a full disk: ENOSPC): another attempt would
        // fetch the same bytes into the same disk, so it is not retried.
        throw new DownloadError(url, `could not be written to ${out.file} after ${progress.received} bytes (${err instanceof Error ? err.message : String(err)})`);
      }
      progress.hash.update(chunk);
      progress.received += chunk.byteLength;
      limits.onProgress?.(progress.received);
    }
  } catch (err) {
    if (err instanceof DownloadError) throw err;
    const why = aborted();
    throw new DownloadError(url, `transfer broke off after ${progress.received} bytes (${why ?? (err instanceof Error ? err.message : String(err))})${via()}`, why === undefined);
  }
  if (limits.bytes !== undefined && progress.received < limits.bytes) {
    // The connection ended cleanly but early: a proxy or server that gave up. Resume it.
    throw new DownloadError(url, `${progress.received} bytes received, the manifest says ${limits.bytes} (truncated?)`, true);
  }
}

/** Downloads `url` into `file` (created, never overwritten); returns its size and sha256. */
export async function downloadFile(url: string, file: string, limits: DownloadLimits): Promise<{ bytes: number; sha256: string }> {
  const deadline = AbortSignal.timeout(limits.timeoutMs);
  const signal = limits.signal ? AbortSignal.any([deadline, limits.signal]) : deadline;
  const aborted = () => (deadline.aborted ? `took longer than ${limits.timeoutMs / 1000} s` : limits.signal?.aborted ? 'cancelled' : undefined);
  const limit = limits.bytes ?? limits.maxBytes;
  const retries = limits.retries ?? 0;
  const progress: Progress = { received: 0, hash: createHash('sha256') };
  const out = await open(file, 'wx');
  try {
    for (let retry = 0; ; retry++) {
      try {
        await attempt(url, { handle: out, file }, progress, limit, signal, limits, aborted);
        break;
      } catch (err) {
        if (!(err instanceof DownloadError) || !err.transient || aborted() !== undefined) throw err;
        if (retry >= retries) throw retries === 0 ? err : new DownloadError(url, `${err.reason} (gave up after ${retries} retries)`);
        limits.onRetry?.(retry + 1, err.message);
        const delay = Math.min(MAX_RETRY_DELAY_MS, (limits.retryDelayMs ?? 1000) * 2 ** retry);
        await sleep(delay, undefined, { signal }).catch(() => {
          throw new DownloadError(url, aborted() ?? 'cancelled');
        });
      }
    }
    await out.sync();
  } finally {
    await out.close();
  }
  const sha256 = progress.hash.digest('hex');
  if (limits.sha256 !== undefined && sha256 !== limits.sha256) {
    throw new DownloadError(url, `sha256 ${sha256} does not match the manifest's ${limits.sha256} (corrupted or tampered)`);
  }
  return { bytes: progress.received, sha256 };
}
