import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CAMERA_PROCESS, childrenNamed, FAKE_LAUNCHER, gstElementsMissing, mjpegClip, processGone, referenceFrame, startCamera, testClip, waitUntil, WRAPPER_LAUNCHER, y4mClip,
} from './helpers.js';
import type { CaptureStats } from '../../src/capture/index.js';
import { gstQuote } from '../../src/capture/pipeline.js';
import { runProcess } from '../harness/index.js';

const W = 64;
const H = 48;
const fast = { initialMs: 100, maxMs: 400, jitter: 0.2 };

test('file: a testsrc clip arrives as exactly its frames, whole rgb24 and identical to ffmpeg\'s decode', async () => {
  const clip = testClip(W, H, 25, 0.48); // 12 frames
  const cam = await startCamera({ type: 'file', path: clip, width: W, height: H, fps: 240, loop: false });
  await cam.until(() => cam.statuses.some((s) => s.state === 'stopped'), 'end of file');
  assert.equal(cam.frames.length, 12);
  for (const [i, f] of cam.frames.entries()) {
    assert.equal(f.index, i);
    assert.equal(f.format, 'rgb24');
    assert.equal(f.width, W);
    assert.equal(f.height, H);
    assert.equal(f.data.length, W * H * 3);
  }
  assert.ok(cam.frames[0]!.data.equals(referenceFrame(clip, '')), 'first frame differs from ffmpeg\'s own decode');
  // Timestamps are taken as each frame completes: monotonic order, wall clock now.
  for (let i = 1; i < cam.frames.length; i++) assert.ok(cam.frames[i]!.capturedMono >= cam.frames[i - 1]!.capturedMono);
  assert.ok(Math.abs(cam.frames[0]!.capturedAt - Date.now()) < 60_000);
  assert.deepEqual(cam.statuses.map((s) => s.state), ['starting', 'streaming', 'stopped']);
  assert.equal(cam.stats().dropped, 0);
  assert.equal(cam.stats().restarts, 0);
});

test('frames come through a FIFO read in place; without mkfifo, through a plain pipe, the same frames and a warning', async () => {
  const clip = testClip(W, H, 25, 0.48); // 12 frames
  const read = async (binaries: { mkfifo?: string }) => {
    const cam = await startCamera({ type: 'file', path: clip, width: W, height: H, fps: 240, loop: false }, { binaries });
    await cam.until(() => cam.statuses.some((s) => s.state === 'stopped'), 'end of file');
    return cam;
  };
  const fifo = await read({});
  const plain = await read({ mkfifo: '/nonexistent/mkfifo' });
  assert.deepEqual(fifo.logs.filter((l) => /plain pipe/.test(l)), []);
  assert.equal(plain.logs.filter((l) => /^warn .*reading frames from a plain pipe .*\/nonexistent\/mkfifo/.test(l)).length, 1, plain.logs.join('\n'));
  assert.equal(fifo.frames.length, 12);
  assert.equal(plain.frames.length, 12);
  for (const [i, f] of fifo.frames.entries()) assert.ok(f.data.equals(plain.frames[i]!.data), `frame ${i} differs between the two reads`);
});

test('file: roi crop then rotation match ffmpeg crop + transpose on the same frame', async () => {
  const clip = testClip(W, H, 25, 0.48);
  const roi = { x: 8, y: 4, width: 40, height: 30 };
  const cases = [
    { rotate: 90, filter: 'transpose=clock', size: [30, 40] },
    { rotate: 180, filter: 'hflip,vflip', size: [40, 30] },
    { rotate: 270, filter: 'transpose=cclock', size: [30, 40] },
    { rotate: 0, filter: 'null', size: [40, 30] },
  ] as const;
  for (const c of cases) {
    const cam = await startCamera({ type: 'file', path: clip, width: W, height: H, fps: 240, loop: false, roi, rotate: c.rotate });
    await cam.until(() => cam.frames.length >= 1, `a frame rotated ${c.rotate}`);
    await cam.stop();
    const f = cam.frames[0]!;
    assert.deepEqual([f.width, f.height], c.size, `size after rotate ${c.rotate}`);
    const ref = referenceFrame(clip, `crop=40:30:8:4,${c.filter}`);
    assert.ok(f.data.equals(ref), `rotate ${c.rotate}: pixels differ from ffmpeg's ${c.filter}`);
  }
});

test('fps cap: a 25 fps stream capped at 5 fps hands on about a fifth, skipping (and counting) the rest', async () => {
  const clip = testClip(W, H, 25, 2);
  const cam = await startCamera({ type: 'file', path: clip, width: W, height: H, fps: 5 });
  const t0 = performance.now();
  await cam.until(() => cam.frames.length + cam.stats().drops.fps_cap >= 30, '30 frames read');
  const elapsedS = (performance.now() - t0) / 1000;
  await cam.stop();
  const { drops, frames } = cam.stats();
  assert.ok(drops.fps_cap >= 15, `only ${drops.fps_cap} frames skipped of ${frames + drops.fps_cap}`);
  // Never more than the cap allows over the time it ran (plus the burst of 2 it lets through).
  assert.ok(frames <= Math.ceil(elapsedS * 5) + 2, `${frames} frames in ${elapsedS.toFixed(2)} s exceed 5 fps`);
  assert.equal(cam.frames.length, frames);
});

test('a child killed mid-stream is restarted and frames resume, the restart counted with its reason', async () => {
  const clip = testClip(W, H, 25, 2);
  const cam = await startCamera({ type: 'file', path: clip, width: W, height: H, fps: 30, reconnect: fast });
  await cam.until(() => cam.frames.length >= 3, 'first frames');
  const [pid, ...others] = childrenNamed('ffmpeg');
  assert.ok(pid !== undefined && others.length === 0, 'expected one ffmpeg child');
  process.kill(pid, 'SIGKILL');
  await cam.until(() => cam.stats().restarts >= 1, 'the restart');
  const before = cam.frames.length;
  await cam.until(() => cam.frames.length >= before + 3, 'frames after the restart');
  await cam.stop();
  const stats = cam.stats();
  assert.equal(stats.restartReasons.exit, 1);
  assert.equal(stats.stalls, 0);
  assert.equal(stats.restartsLastHour, 1);
  const down = cam.statuses.find((s) => s.state === 'no_frames');
  assert.match(down?.message ?? '', /ffmpeg killed by SIGKILL/);
  assert.deepEqual(cam.statuses.map((s) => s.state), ['starting', 'streaming', 'no_frames', 'streaming', 'stopped']);
  assert.ok(!childrenNamed('ffmpeg').includes(pid));
  assert.ok(cam.logs.some((l) => /restarting \(exit: ffmpeg killed by SIGKILL\)/.test(l)));
});

test('a stream that stops sending trips the stall watchdog, which restarts it', async () => {
  const clip = testClip(W, H, 25, 2);
  const cam = await startCamera({ type: 'file', path: clip, width: W, height: H, fps: 30, stallTimeoutS: 0.8, reconnect: fast });
  await cam.until(() => cam.frames.length >= 3, 'first frames');
  const [pid] = childrenNamed('ffmpeg');
  assert.ok(pid !== undefined);
  process.kill(pid, 'SIGSTOP'); // alive, holding its pipe open, sending nothing
  await cam.until(() => cam.stats().stalls >= 1, 'the watchdog');
  const before = cam.frames.length;
  await cam.until(() => cam.frames.length >= before + 3, 'frames after the stall restart');
  await cam.stop();
  const stats = cam.stats();
  assert.equal(stats.stalls, 1);
  assert.equal(stats.restartReasons.stall, 1);
  assert.equal(stats.stallsLastHour, 1);
  assert.equal(stats.restartReasons.exit, 0, 'the watchdog\'s own kill is not counted again as an exit');
  assert.match(cam.statuses.find((s) => s.state === 'no_frames')?.message ?? '', /^no frame for \d+\.\d s$/);
  assert.ok(!childrenNamed('ffmpeg').includes(pid), 'the stalled child was killed');
});

test('a truncated last frame never reaches the consumer; it is dropped and counted', async () => {
  // Frames far larger than a pipe holds (64 KiB), so the launcher's writes wait for this reader.
  const [width, height] = [640, 480];
  const frameBytes = width * height * 3;
  const cam = await startCamera(
    { type: 'file', path: '/unused.mp4', width, height, fps: 240, reconnect: { initialMs: 60_000, maxMs: 60_000 } },
    { binaries: { ffmpeg: FAKE_LAUNCHER }, env: { ...process.env, FAKE_MODE: 'truncated', FAKE_FRAMES: '2', FAKE_FRAME_BYTES: String(frameBytes) } },
  );
  await cam.until(() => cam.stats().drops.truncated >= 1, 'the truncated frame');
  await cam.stop();
  assert.equal(cam.frames.length, 2);
  cam.frames.forEach((f, k) => {
    assert.equal(f.data.length, frameBytes);
    assert.ok(f.data.every((b) => b === k + 1), `frame ${k} holds bytes of another frame`);
  });
  assert.equal(cam.stats().dropped, 1);
  assert.ok(cam.logs.some((l) => l.includes(`truncated: ${frameBytes / 2} of ${frameBytes} bytes`)), cam.logs.join('\n'));
});

test('a missing launcher binary is reported and retried, never thrown; other cameras run on', async () => {
  const clip = testClip(W, H, 25, 2);
  const broken = await startCamera(
    { type: 'file', path: clip, width: W, height: H, reconnect: fast },
    { binaries: { ffmpeg: '/nonexistent/ffmpeg' } },
  );
  const good = await startCamera({ type: 'file', path: clip, width: W, height: H, fps: 30 });
  const off = await startCamera({ type: 'rtsp', url: 'rtsp://127.0.0.1:9/x', enabled: false }, { binaries: { ffmpeg: '/nonexistent/ffmpeg' } });
  await broken.until(() => broken.stats().restartReasons.spawn_error >= 2, 'two failed spawns');
  await good.until(() => good.frames.length >= 5, 'the healthy camera');
  await Promise.all([broken.stop(), good.stop(), off.stop()]);
  assert.deepEqual(off.statuses, [{ camera: 'cam', state: 'disabled', message: 'enabled: false in the config' }]);
  assert.equal(off.stats().restarts, 0, 'a disabled camera starts nothing');
  assert.match(broken.statuses.find((s) => s.state === 'no_frames')?.message ?? '', /\/nonexistent\/ffmpeg not found/);
  assert.equal(broken.frames.length, 0);
  assert.equal(good.stats().restarts, 0);
});

test('a launcher that spawn refuses outright (a NUL in its path) is reported and retried, never thrown', async () => {
  const cam = await startCamera({ type: 'file', path: '/unused.mp4', reconnect: fast }, { binaries: { ffmpeg: '/usr/bin/ff\0mpeg' } });
  // The second refusal comes from the restart timer, where a throw would end the process.
  await cam.until(() => cam.stats().restartReasons.spawn_error >= 2, 'two refused starts');
  await cam.stop();
  assert.match(cam.statuses.find((s) => s.state === 'no_frames')?.message ?? '', /^\/usr\/bin\/ff\0mpeg could not be started: .*null bytes/);
  assert.equal(cam.stats().restartReasons.exit, 0);
});

test('starts that find no file descriptor left are reported and retried, and the camera starts again once there are', async () => {
  // A process of its own, whose descriptors can all be taken: under `ulimit -n 128` that is quick.
  const r = await runProcess('sh', ['-c', 'ulimit -n 128 && exec "$0" "$@"', process.execPath, CAMERA_PROCESS, 'fd-starved'], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, `the camera process failed:\n${r.stderr}`);
  const { stats, restarts } = JSON.parse(r.stdout) as { stats: CaptureStats; restarts: string[] };
  assert.ok(stats.restartReasons.spawn_error >= 2, JSON.stringify(stats));
  assert.ok(stats.restartReasons.exit >= 2, 'ffmpeg ran before and after');
  assert.ok(restarts.some((l) => /restarting \(spawn_error: ffmpeg could not be started: no pipe to read it through/.test(l)), restarts.join('\n'));
});

test('a launcher behind a wrapper that does not exec: the watchdog ends its whole process group, restarts it, and stop leaves nothing behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'capture-wrapper-'));
  const pidFile = join(dir, 'pids');
  const started = (): number[] => (existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim().split('\n').map(Number) : []);
  try {
    const cam = await startCamera(
      { type: 'rtsp', url: 'rtsp://127.0.0.1:9/x', stallTimeoutS: 0.5, reconnect: fast },
      { binaries: { ffmpeg: WRAPPER_LAUNCHER }, env: { ...process.env, WRAPPER_PIDS: pidFile } },
    );
    // A second stall needs a second run, which needs the first one's grandchild gone.
    await cam.until(() => cam.stats().stalls >= 2, 'a second stall');
    await cam.stop();
    assert.ok(started().length >= 2);
    assert.deepEqual(started().filter((pid) => !processGone(pid)), [], 'grandchildren outlived their runs');
    assert.equal(cam.stats().restartReasons.exit, 0, 'the watchdog\'s kills are not counted again as exits');
  } finally {
    for (const pid of started().filter((p) => !processGone(p))) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true });
  }
});

test('a daemon that exits without stopping its cameras takes their process groups with it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'capture-exit-'));
  const pidFile = join(dir, 'pids');
  const r = await runProcess(process.execPath, [CAMERA_PROCESS, 'exit-unstopped'], { env: { WRAPPER_LAUNCHER, WRAPPER_PIDS: pidFile } });
  const [pid] = readFileSync(pidFile, 'utf8').trim().split('\n').map(Number);
  try {
    assert.equal(r.code, 0, r.stderr);
    assert.ok(pid !== undefined && pid > 0);
    await waitUntil(() => processGone(pid), `the wrapper's grandchild ${pid} to end with the process that started it`);
  } finally {
    if (pid !== undefined && !processGone(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true });
  }
});

test('a hostile URL reaches the child as one verbatim argument and runs nothing', async () => {
  const home = mkdtempSync(join(tmpdir(), 'capture-home-'));
  const canary = join(home, 'canary');
  writeFileSync(canary, 'still here');
  const url = 'rtsp://x/;rm -rf ~';
  const argvFile = join(home, 'argv.json');
  const env = { ...process.env, HOME: home };

  const recorded = await startCamera(
    { type: 'rtsp', url, reconnect: { initialMs: 60_000, maxMs: 60_000 } },
    { binaries: { ffmpeg: FAKE_LAUNCHER }, env: { ...env, FAKE_MODE: 'argv', FAKE_ARGV_FILE: argvFile } },
  );
  await recorded.until(() => recorded.stats().restarts >= 1, 'the fake launcher to exit');
  await recorded.stop();
  const argv = JSON.parse(readFileSync(argvFile, 'utf8')) as string[];
  assert.equal(argv[argv.indexOf('-i') + 1], url);

  // gst-launch gets the URL as one token, quoted so that its parser reads it back verbatim.
  const gstUrl = `rtsp://127.0.0.1:1/a" ! filesink location="${join(home, 'pwned')}`;
  const gstRecorded = await startCamera(
    { type: 'rtsp', url: gstUrl, launcher: 'gstreamer', reconnect: { initialMs: 60_000, maxMs: 60_000 } },
    { binaries: { gstLaunch: FAKE_LAUNCHER }, env: { ...env, FAKE_MODE: 'argv', FAKE_ARGV_FILE: argvFile } },
  );
  await gstRecorded.until(() => gstRecorded.stats().restarts >= 1, 'the fake gst-launch to exit');
  await gstRecorded.stop();
  const gstArgv = JSON.parse(readFileSync(argvFile, 'utf8')) as string[];
  assert.deepEqual(gstArgv.filter((a) => a.startsWith('location=')), [`location=${gstQuote(gstUrl)}`]);
  assert.ok(!gstArgv.includes('filesink'));

  // The real ffmpeg, and real gst-launch with a value that tries to close its quotes and add an element.
  const pwned = join(home, 'pwned');
  for (const [launcher, u] of [['ffmpeg', url], ['gstreamer', gstUrl]] as const) {
    const cam = await startCamera({ type: 'rtsp', url: u, launcher, reconnect: { initialMs: 60_000, maxMs: 60_000 } }, { env });
    await cam.until(() => cam.stats().restarts >= 1, `${launcher} to give up on the URL`);
    await cam.stop();
  }
  assert.equal(readFileSync(canary, 'utf8'), 'still here');
  assert.ok(!existsSync(pwned), 'gst-launch created a filesink from the URL');
  rmSync(home, { recursive: true });
});

test('credentials from the environment reach the child but never a log line or status message', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'capture-creds-'));
  const argvFile = join(dir, 'argv.json');
  const password = 's3cr:t/p@ss';
  const cam = await startCamera(
    { type: 'rtsp', url: 'rtsp://127.0.0.1:9/stream', username: 'admin', passwordEnv: 'CAM_PASS', reconnect: { initialMs: 60_000, maxMs: 60_000 } },
    { binaries: { ffmpeg: FAKE_LAUNCHER }, env: { ...process.env, CAM_PASS: password, FAKE_MODE: 'argv', FAKE_ARGV_FILE: argvFile } },
  );
  await cam.until(() => cam.stats().restarts >= 1, 'the fake launcher to exit');
  await cam.stop();
  const argv = JSON.parse(readFileSync(argvFile, 'utf8')) as string[];
  assert.equal(argv[argv.indexOf('-i') + 1], `rtsp://admin:${encodeURIComponent(password)}@127.0.0.1:9/stream`);
  const said = [...cam.logs, ...cam.statuses.map((s) => s.message ?? ''), cam.stats().lastError ?? ''].join('\n');
  assert.ok(said.includes('rtsp://***@127.0.0.1:9/stream'), `the failure should still name the camera: ${said}`);
  for (const leak of [password, encodeURIComponent(password), 'admin']) assert.ok(!said.includes(leak), `"${leak}" leaked: ${said}`);

  // A variable that is not set is a clear error naming the field, reported and retried.
  const unset = await startCamera({ type: 'rtsp', url: 'rtsp://127.0.0.1:9/s', passwordEnv: 'NO_SUCH_VAR_X', reconnect: { initialMs: 60_000, maxMs: 60_000 } }, { env: {} });
  await unset.until(() => unset.statuses.some((s) => s.state === 'no_frames'), 'the error');
  await unset.stop();
  assert.match(unset.statuses.find((s) => s.state === 'no_frames')?.message ?? '', /cameras\.cam\.passwordEnv: environment variable NO_SUCH_VAR_X is not set/);
  rmSync(dir, { recursive: true });
});

const gstSkip = gstElementsMissing('videotestsrc', 'decodebin', 'avidemux', 'jpegdec', 'videoconvert', 'videoscale', 'fdsink');

test('gst-launch: a looped file is replayed at EOS without counting a failure', { skip: gstSkip }, async () => {
  const clip = mjpegClip(W, H, 25, 5);
  const cam = await startCamera({ type: 'file', path: clip, launcher: 'gstreamer', width: 32, height: 24, fps: 240, reconnect: fast });
  await cam.until(() => cam.frames.length >= 12, 'frames across two replays');
  await cam.stop();
  assert.ok(cam.frames.every((f) => f.width === 32 && f.height === 24 && f.data.length === 32 * 24 * 3));
  assert.equal(cam.stats().restarts, 0);
  assert.equal(cam.stats().drops.truncated, 0);
  // The same frame comes back on each pass: frame 0 and frame 5 are the clip's first frame.
  assert.ok(cam.frames[0]!.data.equals(cam.frames[5]!.data));
  assert.ok(!cam.frames[0]!.data.equals(cam.frames[1]!.data));
});

test('gst-launch: a raw pipeline override runs as given, with the sink appended', { skip: gstSkip }, async () => {
  const cam = await startCamera({
    type: 'v4l2', width: W, height: H, fps: 240, reconnect: fast,
    pipeline: 'videotestsrc num-buffers=4 pattern="smpte" ! video/x-raw,format=RGB,width=64,height=48',
  });
  // 4 buffers, then gst-launch exits: counted as an exit and restarted, frames continue.
  await cam.until(() => cam.frames.length >= 6 && cam.stats().restarts >= 1, 'frames from two runs');
  await cam.stop();
  assert.ok(cam.frames.every((f) => f.data.length === W * H * 3));
  assert.equal(cam.stats().restartReasons.exit >= 1, true);
  assert.ok(cam.logs.some((l) => l.includes('starting gst-launch-1.0 -q videotestsrc num-buffers=4 pattern="smpte" ! video/x-raw,format=RGB,width=64,height=48 ! fdsink fd=1 sync=false')));
});

test('gst-launch: rows GStreamer pads to 4 bytes (width 42: 126 bytes of pixels in 128) come out packed', { skip: gstSkip }, async () => {
  const [width, height] = [42, 24];
  const cam = await startCamera({
    type: 'v4l2', width, height, fps: 240, reconnect: fast,
    pipeline: `videotestsrc num-buffers=3 pattern=solid-color foreground-color=0xff102030 ! video/x-raw,format=RGB,width=${width},height=${height}`,
  });
  await cam.until(() => cam.frames.length >= 3, 'three frames');
  await cam.stop();
  const pixel = Buffer.from([0x10, 0x20, 0x30]);
  for (const [k, f] of cam.frames.entries()) {
    assert.equal(f.data.length, width * height * 3);
    const wrong = [...Array(width * height).keys()].find((i) => !f.data.subarray(i * 3, i * 3 + 3).equals(pixel));
    assert.equal(wrong, undefined, `frame ${k}: pixel ${wrong} (row ${Math.floor((wrong ?? 0) / width)}) is not 10 20 30`);
  }
  assert.equal(cam.stats().drops.truncated, 0);
});

test('gst-launch: a file at a width whose rows GStreamer pads gives ffmpeg\'s frames', { skip: gstElementsMissing('y4mdec', 'decodebin', 'videoconvert', 'videoscale', 'fdsink') }, async () => {
  const [width, height] = [42, 24];
  const clip = y4mClip(width, height, 25, 3);
  const cam = await startCamera({ type: 'file', path: clip, launcher: 'gstreamer', width, height, fps: 240, loop: false });
  await cam.until(() => cam.statuses.some((s) => s.state === 'stopped'), 'end of file');
  assert.equal(cam.frames.length, 3);
  assert.equal(cam.stats().drops.truncated, 0);
  // The two convert YUV to RGB with different rounding (a mean of about 1.5 levels); rows out of place differ by far more.
  const ref = referenceFrame(clip, '');
  const got = cam.frames[0]!.data;
  const mean = ref.reduce((sum, b, i) => sum + Math.abs(b - got[i]!), 0) / ref.length;
  assert.ok(mean < 4, `frame 0 differs from ffmpeg's decode by ${mean.toFixed(1)} levels on average`);
});

test('status tells a stream that cannot be decoded (decode_error) from a source that is not there (no_frames)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'capture-bad-'));
  const garbage = join(dir, 'garbage.mp4');
  writeFileSync(garbage, Buffer.alloc(64 * 1024, 0x5a));
  const bad = await startCamera({ type: 'file', path: garbage, reconnect: { initialMs: 60_000, maxMs: 60_000 } });
  const gone = await startCamera({ type: 'file', path: join(dir, 'missing.mp4'), reconnect: { initialMs: 60_000, maxMs: 60_000 } });
  await bad.until(() => bad.stats().restarts >= 1, 'ffmpeg to refuse the garbage');
  await gone.until(() => gone.stats().restarts >= 1, 'ffmpeg to miss the file');
  await Promise.all([bad.stop(), gone.stop()]);
  const badStatus = bad.statuses.find((s) => s.state !== 'starting');
  assert.equal(badStatus?.state, 'decode_error');
  assert.match(badStatus?.message ?? '', /ffmpeg exited with code 1: .*Invalid data found/);
  const goneStatus = gone.statuses.find((s) => s.state !== 'starting');
  assert.equal(goneStatus?.state, 'no_frames');
  assert.match(goneStatus?.message ?? '', /No such file or directory/);
  rmSync(dir, { recursive: true });
});
