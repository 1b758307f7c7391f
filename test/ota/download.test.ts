/** One file of an update over real HTTP on loopback: sizes, hashes, deadlines and URLs. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { DownloadError, checkUpdateUrl, downloadFile } from '../../src/ota/download.js';
import { FileServer, freePort, rng, tempDir, type TempDir } from '../harness/index.js';

let dir: TempDir;
let server: FileServer;
const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) & 255));
const sha = createHash('sha256').update(body).digest('hex');
/** Bytes that do not compress (a PNG, a quantized model): gzip makes them longer. */
const noise = Buffer.from(Array.from({ length: 300_000 }, rng(7)).map((x) => Math.floor(x * 256)));
const noiseSha = createHash('sha256').update(noise).digest('hex');
let n = 0;
const out = () => dir.file(`out-${n++}`);

before(async () => {
  dir = await tempDir();
  await writeFile(dir.file('file.bin'), body);
  await writeFile(dir.file('noise.bin'), noise);
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

  test('301, 307 and 308 are followed too, relative to the URL they answer, and to another port', async () => {
    const other = await FileServer.start(dir.path);
    try {
      server.faults.set('a/b/moved.bin', { kind: 'redirect', code: 301, location: '../../temp.bin' });
      server.faults.set('temp.bin', { kind: 'redirect', code: 307, location: 'perm.bin' });
      server.faults.set('perm.bin', { kind: 'redirect', code: 308, location: other.url('file.bin') });
      server.requests.length = 0;
      assert.deepEqual(await downloadFile(server.url('a/b/moved.bin'), out(), limits), { bytes: body.length, sha256: sha });
      assert.deepEqual(server.requests, ['a/b/moved.bin', 'temp.bin', 'perm.bin']);
      assert.deepEqual(other.requests, ['file.bin']);
    } finally {
      server.faults.clear();
      await other.close();
    }
  });

  test('EXPECTED FAILURE - a redirect without a Location, or to where nothing answers, says so and where it led (without its query)', async () => {
    server.faults.set('file.bin', { kind: 'status', code: 302 });
    server.requests.length = 0;
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 3 }), /file\.bin: HTTP 302 Found without a Location header to follow$/);
    assert.equal(server.requests.length, 1, 'not retried: the server will answer the same');
    const closed = new URL(server.url('gone.bin'));
    closed.port = String(await freePort());
    closed.search = '?token=secret';
    server.faults.set('file.bin', { kind: 'redirect', location: closed.href });
    await assert.rejects(downloadFile(server.url('file.bin'), out(), limits), (err: unknown) => {
      assert.ok(err instanceof DownloadError);
      assert.match(err.message, new RegExp(`file\\.bin: fetch failed: connect ECONNREFUSED .* \\(redirected to http://127\\.0\\.0\\.1:${closed.port}/gone\\.bin\\)$`));
      assert.doesNotMatch(err.message, /secret/);
      return true;
    });
    server.faults.delete('file.bin');
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

describe('misbehaving servers', () => {
  const limits = { bytes: body.length, sha256: sha, maxBytes: 1 << 20, timeoutMs: 10_000, retryDelayMs: 10 };

  test('a compressed body (gzip, br) is decoded and held to the manifest\'s size and sha256, also when its encoding is longer than the file', async () => {
    for (const encoding of ['gzip', 'br'] as const) {
      for (const [name, content, hash] of [
        ['file.bin', body, sha],
        ['noise.bin', noise, noiseSha],
      ] as const) {
        server.faults.set(name, { kind: 'encoded', encoding });
        const target = out();
        assert.deepEqual(await downloadFile(server.url(name), target, { ...limits, sha256: hash }), { bytes: content.length, sha256: hash }, `${name} in ${encoding}`);
        assert.ok((await readFile(target)).equals(content));
        server.faults.delete(name);
      }
    }
  });

  test('EXPECTED FAILURE - a body in a coding fetch does not decode is refused at once by name, not taken for damaged bytes', async () => {
    for (const coding of ['zstd', 'identity, gzip']) {
      server.faults.set('file.bin', { kind: 'status', code: 200, body: 'not the file', headers: { 'content-encoding': coding } });
      server.requests.length = 0;
      await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 3 }), new RegExp(`file\\.bin: sent with Content-Encoding "${coding}", which this device does not decode$`));
      assert.equal(server.requests.length, 1);
    }
    server.faults.delete('file.bin');
  });

  test('EXPECTED FAILURE - a decompression bomb is stopped at the size expected, not decoded whole', async () => {
    for (const encoding of ['gzip', 'br'] as const) {
      server.faults.set('file.bin', { kind: 'encoded', encoding, zeros: 1 << 30 });
      const before = process.memoryUsage().rss;
      const target = out();
      await assert.rejects(downloadFile(server.url('file.bin'), target, { ...limits, retries: 2 }), /file\.bin: more than the 300000 bytes expected; transfer stopped$/);
      // Without a manifest size (manifest.json itself), the bound given stops it.
      await assert.rejects(downloadFile(server.url('file.bin'), out(), { maxBytes: 1 << 20, timeoutMs: 10_000 }), /file\.bin: more than the 1048576 bytes expected; transfer stopped$/);
      assert.ok((await readFile(target)).length <= body.length);
      // A GiB decoded in memory would show here; the bound is far above what a stopped transfer costs.
      assert.ok(process.memoryUsage().rss - before < 256 << 20, `RSS grew by ${(process.memoryUsage().rss - before) >> 20} MiB`);
    }
    server.faults.delete('file.bin');
  });

  test('EXPECTED FAILURE - a range answered from another byte than asked is not written there: the download starts over without Range', async () => {
    // Resumed at 100000, answered from 50000 (a broken cache); then the whole file.
    server.faults.set('file.bin', { kind: 'sequence', faults: [{ kind: 'truncate', afterBytes: 100_000 }, { kind: 'range-from', start: 50_000 }] });
    server.requests.length = 0;
    const retried: string[] = [];
    const target = out();
    // No sha256 (as for reference frames of bundles from before they had one): only the bytes' places protect the file.
    assert.deepEqual(await downloadFile(server.url('file.bin'), target, { bytes: body.length, maxBytes: 1 << 20, timeoutMs: 10_000, retryDelayMs: 10, retries: 3, onRetry: (_n, why) => retried.push(why) }), { bytes: body.length, sha256: sha });
    assert.ok((await readFile(target)).equals(body));
    assert.deepEqual(server.requests, ['file.bin', 'file.bin bytes=100000-', 'file.bin']);
    assert.match(retried[1] ?? '', /file\.bin: HTTP 206 with Content-Range "bytes 50000-299999\/300000" to a request for bytes 100000-$/);
    // 206 to a request that asked for no range: the same.
    server.faults.set('file.bin', { kind: 'range-from', start: 100 });
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 1 }), /file\.bin: HTTP 206 with Content-Range "bytes 100-299999\/300000" to a request for the whole file \(gave up after 1 retries\)$/);
    server.faults.delete('file.bin');
  });

  test('EXPECTED FAILURE - a file of another size than the manifest\'s (a page served with 200, a file replaced during a resumed download) fails at once, naming both sizes', async () => {
    server.faults.set('file.bin', { kind: 'status', code: 200, body: '<html><body>Please log in</body></html>', headers: { 'content-type': 'text/html' } });
    server.requests.length = 0;
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 3 }), /file\.bin: the server's file is 39 bytes by its Content-Length, the manifest says 300000$/);
    assert.equal(server.requests.length, 1, 'not retried: the server has another file');
    server.faults.delete('file.bin');
    await writeFile(dir.file('replaced.bin'), body);
    server.faults.set('replaced.bin', { kind: 'truncate', afterBytes: 1000, times: 1 });
    server.requests.length = 0;
    // Replaced by a shorter file before the transfer resumes: the Content-Range's total tells.
    const replace = () => writeFileSync(dir.file('replaced.bin'), body.subarray(10));
    await assert.rejects(downloadFile(server.url('replaced.bin'), out(), { ...limits, retries: 3, onRetry: replace }), /replaced\.bin: the server's file is 299990 bytes by its Content-Range, the manifest says 300000$/);
    assert.deepEqual(server.requests, ['replaced.bin', 'replaced.bin bytes=1000-']);
    server.faults.delete('replaced.bin');
  });

  test('EXPECTED FAILURE - a chunked body cut after its last byte is complete when the server answers the resume with 416 at that size; at another size it fails saying so', async () => {
    // All 300000 bytes in one chunk, then the connection closes before the end marker.
    const cut = { kind: 'raw', head: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`, body: true } as const;
    for (const bytes of [undefined, body.length]) {
      server.faults.set('file.bin', { kind: 'sequence', faults: [cut] });
      server.requests.length = 0;
      const sized = bytes === undefined ? {} : { bytes };
      assert.deepEqual(await downloadFile(server.url('file.bin'), out(), { maxBytes: 1 << 20, timeoutMs: 10_000, retries: 2, retryDelayMs: 10, ...sized }), { bytes: body.length, sha256: sha });
      assert.deepEqual(server.requests, ['file.bin', 'file.bin bytes=300000-']);
    }
    // The manifest expects more than the server has: 416 names both.
    server.faults.set('file.bin', { kind: 'sequence', faults: [cut] });
    await assert.rejects(
      downloadFile(server.url('file.bin'), out(), { maxBytes: 1 << 20, timeoutMs: 10_000, retries: 2, retryDelayMs: 10, bytes: body.length + 1 }),
      /file\.bin: HTTP 416 Range Not Satisfiable: the server's file is 300000 bytes, 300000 were received already$/,
    );
    server.faults.delete('file.bin');
  });

  test('a body that keeps dripping is cut at the deadline: it bounds the whole file, not the wait for each byte', async () => {
    server.faults.set('file.bin', { kind: 'drip', everyMs: 20 });
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, timeoutMs: 500, retries: 3 }), /file\.bin: transfer broke off after [1-9]\d* bytes \(took longer than 0\.5 s\)$/);
    server.faults.delete('file.bin');
  });

  test('an HTTP/1.0 body ended by closing the connection is taken; a connection that breaks in the headers, or headers too large, are retried and then fail by URL', async () => {
    server.faults.set('file.bin', { kind: 'raw', head: 'HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n', body: true });
    assert.deepEqual(await downloadFile(server.url('file.bin'), out(), limits), { bytes: body.length, sha256: sha });
    server.faults.set('file.bin', { kind: 'raw', head: 'HTTP/1.1 200 OK\r\nContent-Le', body: false });
    server.requests.length = 0;
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 1 }), /file\.bin: fetch failed: other side closed \(gave up after 1 retries\)$/);
    assert.equal(server.requests.length, 2);
    server.faults.set('file.bin', { kind: 'status', code: 200, headers: { 'x-padding': 'a'.repeat(100_000) } });
    await assert.rejects(downloadFile(server.url('file.bin'), out(), { ...limits, retries: 1 }), /file\.bin: fetch failed: Headers Overflow Error \(gave up after 1 retries\)$/);
    server.faults.delete('file.bin');
  });

  test('IPv6 loopback: a server on [::1] is fetched like any other', async () => {
    const v6 = await FileServer.start(dir.path, { host: '::1' });
    try {
      assert.match(v6.url('file.bin'), /^http:\/\/\[::1\]:\d+\/file\.bin$/);
      assert.deepEqual(await downloadFile(v6.url('file.bin'), out(), limits), { bytes: body.length, sha256: sha });
    } finally {
      await v6.close();
    }
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
