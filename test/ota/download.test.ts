/** One file of an update over real HTTP on loopback: sizes, hashes, deadlines and URLs. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { DownloadError, checkUpdateUrl, downloadFile } from '../../src/ota/download.js';
import { FileServer, freePort, tempDir, type TempDir } from '../harness/index.js';

let dir: TempDir;
let server: FileServer;
const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) & 255));
const sha = createHash('sha256').update(body).digest('hex');
let n = 0;
const out = () => dir.file(`out-${n++}`);

before(async () => {
  dir = await tempDir();
  await writeFile(dir.file('file.bin'), body);
  server = await FileServer.start(dir.path);
});
after(async () => {
  await server.close();
  await dir.remove();
});

describe('downloadFile', () => {
  test('writes the file and returns its size and sha256, with progress along the way', async () => {
    const seen: number[] = [];
    const target = out();
    const result = await downloadFile(server.url('file.bin'), target, { bytes: body.length, sha256: sha, maxBytes: 1 << 20, timeoutMs: 10_000, onProgress: (b) => seen.push(b) });
    assert.deepEqual(result, { bytes: body.length, sha256: sha });
    assert.ok((await readFile(target)).equals(body));
    assert.equal(seen.at(-1), body.length);
  });

  test('a short transfer, a longer one, another hash and an HTTP error are refused by URL', async () => {
    const url = server.url('file.bin');
    const limits = { bytes: body.length, sha256: sha, maxBytes: 1 << 20, timeoutMs: 10_000 };
    server.faults.set('file.bin', { kind: 'truncate', afterBytes: 1000 });
    await assert.rejects(downloadFile(url, out(), limits), (err: unknown) => err instanceof DownloadError && err.url === url && /broke off after 1000 bytes|1000 bytes received/.test(err.message));
    server.faults.set('file.bin', { kind: 'pad', extraBytes: 10 });
    await assert.rejects(downloadFile(url, out(), limits), new RegExp(`more than the ${body.length} bytes expected; transfer stopped`));
    server.faults.delete('file.bin');
    await assert.rejects(downloadFile(url, out(), { ...limits, sha256: '0'.repeat(64) }), /sha256 [0-9a-f]{64} does not match the manifest's 0{64} \(corrupted or tampered\)/);
    await assert.rejects(downloadFile(url, out(), { ...limits, bytes: 10 }), /the server sends 300000 bytes, at most 10 expected/);
    await assert.rejects(downloadFile(server.url('absent.bin'), out(), limits), /absent\.bin: HTTP 404/);
    server.faults.set('file.bin', { kind: 'status', code: 503 });
    await assert.rejects(downloadFile(url, out(), limits), /file\.bin: HTTP 503/);
    server.faults.delete('file.bin');
  });

  test('a stalled server is cut off at the deadline, and a cancel stops the transfer', async () => {
    server.faults.set('file.bin', { kind: 'stall' });
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { maxBytes: 1 << 20, timeoutMs: 300 }), /took longer than 0\.3 s/);
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(), 100);
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { maxBytes: 1 << 20, timeoutMs: 10_000, signal: cancel.signal }), /transfer broke off after 0 bytes \(cancelled\)/);
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { maxBytes: 1 << 20, timeoutMs: 10_000, signal: AbortSignal.abort() }), /file\.bin: cancelled$/);
    server.faults.delete('file.bin');
  });

  test('an existing file is never overwritten; nothing listens is a clear error', async () => {
    const target = out();
    await writeFile(target, 'keep');
    await assert.rejects(downloadFile(server.url('file.bin'), target, { maxBytes: 1 << 20, timeoutMs: 10_000 }), /EEXIST/);
    assert.equal(await readFile(target, 'utf8'), 'keep');
    const closed = new URL(server.url('file.bin'));
    closed.port = String(await freePort());
    const target2 = out();
    await assert.rejects(downloadFile(closed.href, target2, { maxBytes: 1 << 20, timeoutMs: 10_000 }), /file\.bin: fetch failed: connect ECONNREFUSED/);
    assert.ok(existsSync(target2), 'the staging file stays for the caller to remove with its folder');
  });
});

describe('retries', () => {
  const limits = { bytes: body.length, sha256: sha, maxBytes: 1 << 20, timeoutMs: 10_000, retryDelayMs: 10 };

  test('a transfer that broke off resumes where it stopped (Range), or starts over where the server ignores ranges', async () => {
    for (const ranges of [true, false]) {
      server.ranges = ranges;
      server.requests.length = 0;
      server.faults.set('file.bin', { kind: 'truncate', afterBytes: 120_000, times: 1 });
      const retried: string[] = [];
      const target = out();
      const result = await downloadFile(server.url('file.bin'), target, { ...limits, retries: 2, onRetry: (n, why) => retried.push(`${n} ${why}`) });
      assert.deepEqual(result, { bytes: body.length, sha256: sha });
      assert.ok((await readFile(target)).equals(body));
      assert.equal(retried.length, 1, retried.join('\n'));
      assert.match(retried[0] ?? '', /^1 .*file\.bin: transfer broke off after 120000 bytes/);
      assert.deepEqual(server.requests, ranges ? ['file.bin', 'file.bin bytes=120000-'] : ['file.bin', 'file.bin']);
    }
    server.ranges = true;
    server.faults.delete('file.bin');
  });

  test('gives up after the retries; a client error is not retried', async () => {
    server.faults.set('file.bin', { kind: 'truncate', afterBytes: 1000 });
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 2 }), /file\.bin: transfer broke off after \d+ bytes .*\(gave up after 2 retries\)$/);
    server.faults.set('file.bin', { kind: 'status', code: 503 });
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 1 }), /file\.bin: HTTP 503 Service Unavailable \(gave up after 1 retries\)$/);
    server.faults.delete('file.bin');
    server.requests.length = 0;
    await assert.rejects(downloadFile(server.url('absent.bin'), out(), { ...limits, retries: 3 }), /absent\.bin: HTTP 404 Not Found$/);
    assert.deepEqual(server.requests, ['absent.bin']);
  });

  test('a wrong hash is not retried, and a cancel during the wait between attempts ends it', async () => {
    server.requests.length = 0;
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, sha256: 'f'.repeat(64), retries: 3 }), /does not match/);
    assert.equal(server.requests.length, 1);
    server.faults.set('file.bin', { kind: 'status', code: 502 });
    const cancel = new AbortController();
    const pending = downloadFile(server.url('file.bin'), out(), { ...limits, retries: 3, retryDelayMs: 5000, signal: cancel.signal, onRetry: () => setTimeout(() => cancel.abort(), 20) });
    await assert.rejects(pending, /file\.bin: cancelled$/);
    server.faults.delete('file.bin');
  });
});

describe('redirects', () => {
  const limits = { bytes: body.length, sha256: sha, maxBytes: 1 << 20, timeoutMs: 10_000, retryDelayMs: 10 };

  test('an http(s) redirect is followed, relative or absolute, with the Range of a resumed transfer', async () => {
    server.faults.set('moved.bin', { kind: 'redirect', location: '/file.bin' });
    server.faults.set('elsewhere.bin', { kind: 'redirect', location: server.url('moved.bin') });
    assert.deepEqual(await downloadFile(server.url('elsewhere.bin'), out(), limits), { bytes: body.length, sha256: sha });
    server.faults.clear();
  });

  test('EXPECTED FAILURE - a redirect to another scheme, to credentials or in a loop is refused at once, naming the URL and why', async () => {
    const cases = [
      ['file:///etc/passwd', /file\.bin: redirected to a file: URL; only http: and https: are followed$/],
      ['data:text/plain,hello', /file\.bin: redirected to a data: URL; only http: and https: are followed$/],
      ['ftp://127.0.0.1/file.bin', /file\.bin: redirected to a ftp: URL; only http: and https: are followed$/],
      [server.url('file.bin').replace('//', '//user:pw@'), /file\.bin: redirected to a URL with credentials; they would be published in status messages$/],
      [server.url('file.bin'), /file\.bin: more than 10 redirects$/],
    ] as const;
    for (const [location, message] of cases) {
      server.faults.set('file.bin', { kind: 'redirect', location });
      server.requests.length = 0;
      await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 3 }), message, location);
      // Not worth another attempt: the server will send the same Location again.
      assert.ok(server.requests.length <= 11, `${server.requests.length} requests for ${location}`);
    }
    server.faults.delete('file.bin');
  });
});

describe('checkUpdateUrl', () => {
  test('takes http and https; refuses other schemes, credentials and non-URLs by field', () => {
    assert.equal(checkUpdateUrl('https://fleet.example/b/').href, 'https://fleet.example/b/');
    assert.throws(() => checkUpdateUrl('file:///etc/passwd'), /url: expected http: or https:, got file:/);
    assert.throws(() => checkUpdateUrl('https://user:pw@fleet.example/'), /url: credentials in the URL/);
    assert.throws(() => checkUpdateUrl('not a url'), /url: not a URL/);
  });

  test('the folder\'s URL ends in a slash added to its path, percent-encoding kept, so that the files resolve under it', () => {
    assert.equal(checkUpdateUrl('https://fleet.example/b').href, 'https://fleet.example/b/');
    assert.equal(checkUpdateUrl('https://fleet.example/line%203/b%2F1').href, 'https://fleet.example/line%203/b%2F1/');
    assert.equal(checkUpdateUrl('http://[::1]:8080/b').href, 'http://[::1]:8080/b/');
    // An empty query or fragment says nothing: dropped, not added to the path as `?/`.
    assert.equal(checkUpdateUrl('https://fleet.example/b?').href, 'https://fleet.example/b/');
    assert.equal(checkUpdateUrl('https://fleet.example/b/#').href, 'https://fleet.example/b/');
  });

  test('BAD CALL - a query string (a token as secret as credentials, and never sent for the files) or a fragment is refused, without repeating it', () => {
    for (const url of ['https://fleet.example/b?token=s3cret', 'https://fleet.example/b/?token=s3cret']) {
      assert.throws(
        () => checkUpdateUrl(url),
        (err: unknown) => err instanceof Error && /^url: a query string \(\?…\) would be published in status messages/.test(err.message) && !err.message.includes('s3cret'),
        url,
      );
    }
    assert.throws(() => checkUpdateUrl('https://fleet.example/b#v2'), /url: a fragment \(#…\) names nothing on the server/);
  });
});
