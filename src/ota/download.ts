/**
 * Downloads one file of an update into the staging folder: streamed to disk, never past the
 * size it may have, hashed on the way, and cut off by a deadline. A file that comes out
 * short, long or with another sha256 is an error that names its URL.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

export class DownloadError extends Error {
  override readonly name = 'DownloadError';
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(`${url}: ${message}`);
  }
}

export interface DownloadLimits {
  /** Exact size when known (the manifest says it), else `maxBytes` bounds it. */
  bytes?: number;
  maxBytes: number;
  /** Expected sha256 (hex); checked when given. */
  sha256?: string;
  timeoutMs: number;
  /** Called with the bytes received so far, after each chunk. */
  onProgress?: (received: number) => void;
  /** Aborts the transfer (the daemon is stopping). */
  signal?: AbortSignal;
}

/** Only plain HTTP(S): a `file:` or `data:` URL from a remote command must not read the device's disk. */
export function checkUpdateUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`url: not a URL: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`url: expected http: or https:, got ${url.protocol}`);
  if (url.username || url.password) throw new Error('url: credentials in the URL would be published in status messages; serve the bundle without them');
  return url;
}

/** `aborted` says why the signal fired (deadline or cancel), or undefined while it has not. */
async function fetchBody(url: string, signal: AbortSignal, aborted: () => string | undefined): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { signal, redirect: 'follow' });
  } catch (err) {
    const why = aborted();
    if (why !== undefined) throw new DownloadError(url, why);
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    throw new DownloadError(url, `${err instanceof Error ? err.message : String(err)}${cause}`);
  }
  if (!response.ok) throw new DownloadError(url, `HTTP ${response.status} ${response.statusText}`.trim());
  if (response.body === null) throw new DownloadError(url, 'the response has no body');
  return response;
}

/** Downloads `url` into `file` (created, never overwritten); returns its size and sha256. */
export async function downloadFile(url: string, file: string, limits: DownloadLimits): Promise<{ bytes: number; sha256: string }> {
  const deadline = AbortSignal.timeout(limits.timeoutMs);
  const signal = limits.signal ? AbortSignal.any([deadline, limits.signal]) : deadline;
  const limit = limits.bytes ?? limits.maxBytes;
  const hash = createHash('sha256');
  let received = 0;
  const aborted = () => (deadline.aborted ? `took longer than ${limits.timeoutMs / 1000} s` : limits.signal?.aborted ? 'cancelled' : undefined);
  const out = await open(file, 'wx');
  try {
    const response = await fetchBody(url, signal, aborted);
    const declared = Number(response.headers.get('content-length') ?? Number.NaN);
    if (Number.isFinite(declared) && declared > limit) throw new DownloadError(url, `the server sends ${declared} bytes, at most ${limit} expected`);
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        received += chunk.byteLength;
        if (received > limit) throw new DownloadError(url, `more than the ${limit} bytes expected; transfer stopped`);
        hash.update(chunk);
        await out.write(chunk);
        limits.onProgress?.(received);
      }
    } catch (err) {
      if (err instanceof DownloadError) throw err;
      throw new DownloadError(url, `transfer broke off after ${received} bytes (${aborted() ?? (err instanceof Error ? err.message : String(err))})`);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  if (limits.bytes !== undefined && received !== limits.bytes) {
    throw new DownloadError(url, `${received} bytes received, the manifest says ${limits.bytes} (truncated?)`);
  }
  const sha256 = hash.digest('hex');
  if (limits.sha256 !== undefined && sha256 !== limits.sha256) {
    throw new DownloadError(url, `sha256 ${sha256} does not match the manifest's ${limits.sha256} (corrupted or tampered)`);
  }
  return { bytes: received, sha256 };
}
