import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gstElementsMissing, startCamera } from './helpers.js';

const W = 64;
const H = 48;
const USER = 'viewer';
const PASSWORD = 'p@ss:w/rd';

let dir: string;
let jpegs: Buffer[];
let server: Server;
let port: number;
let requests = 0;

/** A real MJPEG-over-HTTP camera on loopback: Basic auth, multipart/x-mixed-replace at 25 fps. */
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capture-http-'));
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc=size=${W}x${H}:rate=25`, '-frames:v', '10', '-q:v', '3', join(dir, 'f%02d.jpg')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  jpegs = readdirSync(dir).sort().map((f) => readFileSync(join(dir, f)));
  const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  server = createServer((req, res) => {
    requests++;
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="cam"' }).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'multipart/x-mixed-replace; boundary=frame' });
    let i = 0;
    const timer = setInterval(() => {
      const jpeg = jpegs[i++ % jpegs.length]!;
      res.write(`--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`);
      res.write(jpeg);
      res.write('\r\n');
    }, 40);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true });
});

async function readAndReconnect(launcher: 'ffmpeg' | 'gstreamer'): Promise<void> {
  const cam = await startCamera(
    { type: 'http', url: `http://127.0.0.1:${port}/video.mjpg`, launcher, usernameEnv: 'CAM_USER', passwordEnv: 'CAM_PASSWORD', width: W, height: H, fps: 30, reconnect: { initialMs: 100, maxMs: 400 } },
    { env: { ...process.env, CAM_USER: USER, CAM_PASSWORD: PASSWORD } },
  );
  try {
    await cam.until(() => cam.frames.length >= 3, 'frames from the HTTP camera');
    assert.equal(cam.frames[0]!.data.length, W * H * 3);
    server.closeAllConnections(); // the camera drops every client
    await cam.until(() => cam.stats().restarts >= 1, 'the restart');
    const before = cam.frames.length;
    await cam.until(() => cam.frames.length >= before + 3, 'frames after reconnecting');
  } finally {
    await cam.stop();
  }
  const said = [...cam.logs, ...cam.statuses.map((s) => s.message ?? '')].join('\n');
  assert.ok(!said.includes(PASSWORD) && !said.includes(encodeURIComponent(PASSWORD)), `the password leaked: ${said}`);
}

test('http (ffmpeg): an MJPEG camera with Basic auth is read, dropped and read again', async () => {
  await readAndReconnect('ffmpeg');
});

test('http (gst-launch): the same through souphttpsrc and multipartdemux', { skip: gstElementsMissing('souphttpsrc', 'multipartdemux', 'jpegdec') }, async () => {
  await readAndReconnect('gstreamer');
});

test('http: a wrong password is reported (401) and retried, and not logged', async () => {
  const seen = requests;
  const cam = await startCamera(
    { type: 'http', url: `http://127.0.0.1:${port}/video.mjpg`, username: USER, password: 'wrong-secret', reconnect: { initialMs: 100, maxMs: 200 } },
  );
  await cam.until(() => cam.stats().restarts >= 2, 'two refused attempts');
  await cam.stop();
  assert.ok(requests - seen >= 2);
  assert.equal(cam.frames.length, 0);
  const status = cam.statuses.find((s) => s.state === 'no_frames');
  assert.match(status?.message ?? '', /401 Unauthorized/);
  assert.ok(![...cam.logs, status?.message ?? ''].join('\n').includes('wrong-secret'));
});
